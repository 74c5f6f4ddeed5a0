"""Delegation token requests and logins shared by the token tests (moved from test_delegation_tokens)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode


SECRET = "token-secret-key"


PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret" user_carol="carol-secret";')


def token_config(**extra: str) -> dict[str, str]:
    config = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "sasl.jaas.config": PLAIN_JAAS,
        "connection.failed.authentication.delay.ms": "0",
        "delegation.token.secret.key": SECRET,
    }
    config.update(extra)
    return config


def address(b: BrokerThread, listener: str) -> str:
    host, port = b.broker.listener_endpoint(listener)
    return f"{host}:{port}"


def login_plain(addr: str, user: str) -> Wire:
    w = Wire(addr)
    assert w.call(17, 1, mechanism="PLAIN").error_code == E.NONE
    r = w.call(36, 2, auth_bytes=f"\0{user}\0{user}-secret".encode())
    assert r.error_code == E.NONE, r.error_message
    return w


def scram_token_login(addr: str, token_id: str, token_hmac: bytes, mechanism: str = "SCRAM-SHA-256",
                      password: str | None = None) -> tuple[Wire, object]:
    """A SCRAM exchange with the token (username the id, password base64(HMAC), tokenauth=true),
    written from RFC 5802 as Kafka's ScramSaslClient sends it; returns the connection and the last
    SaslAuthenticate response."""
    digest = "sha256" if mechanism == "SCRAM-SHA-256" else "sha512"
    password = base64.b64encode(token_hmac).decode() if password is None else password
    w = Wire(addr)
    assert w.call(17, 1, mechanism=mechanism).error_code == E.NONE
    nonce = base64.b64encode(os.urandom(18)).decode()
    bare = f"n={token_id},r={nonce},tokenauth=true"
    first = w.call(36, 2, auth_bytes=("n,," + bare).encode())
    if first.error_code:
        return w, first
    attrs = dict(x.split("=", 1) for x in first.auth_bytes.decode().split(","))
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    key = hmac.new(salted, b"Client Key", digest).digest()
    final_bare = f"c=biws,r={attrs['r']}"
    auth = f"{bare},{first.auth_bytes.decode()},{final_bare}".encode()
    sig = hmac.new(hashlib.new(digest, key).digest(), auth, digest).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(key, sig, strict=True))).decode()
    final = w.call(36, 2, auth_bytes=f"{final_bare},p={proof}".encode())
    if final.error_code == E.NONE:
        expected = hmac.new(hmac.new(salted, b"Server Key", digest).digest(), auth, digest).digest()
        assert final.auth_bytes == b"v=" + base64.b64encode(expected)
    return w, final


def create(w: Wire, version: int = 3, renewers: tuple[str, ...] = (), max_lifetime_ms: int = -1,
           owner: str | None = None):
    Req = REQUESTS[38]
    fields = {}
    if owner is not None:
        fields = dict(owner_principal_type=owner.split(":")[0], owner_principal_name=owner.split(":", 1)[1])
    return w.call(38, version, renewers=[Req.CreatableRenewers(principal_type=r.split(":")[0],
                                                               principal_name=r.split(":", 1)[1]) for r in renewers],
                  max_lifetime_ms=max_lifetime_ms, **fields)


def describe(w: Wire, owners: list[str] | None = None, version: int = 3):
    Req = REQUESTS[41]
    return w.call(41, version, owners=None if owners is None else [
        Req.DescribeDelegationTokenOwner(principal_type=o.split(":")[0], principal_name=o.split(":", 1)[1])
        for o in owners])
