"""The SASL tests' broker (PLAIN and SCRAM on a SASL_PLAINTEXT listener beside a PLAINTEXT one, one a
module), its listeners' addresses, the principals of its open connections, and a SCRAM client for
the wire tests (RFC 5802, written from the RFC) (moved from test_sasl)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode


PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')


MECHANISMS = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"


def sasl_config(**extra: str) -> dict[str, str]:
    config = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": MECHANISMS,
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "connection.failed.authentication.delay.ms": "0",
    }
    config.update(extra)
    return config


def _address(b: BrokerThread, listener: str) -> str:
    host, port = b.broker.listener_endpoint(listener)
    return f"{host}:{port}"


@pytest.fixture(scope="module", name="broker")
def broker_fixture():
    with BrokerThread(sasl_config()) as b:
        yield b


@pytest.fixture(scope="module", name="sasl")
def sasl_fixture(broker) -> str:
    return _address(broker, "SASL_PLAINTEXT")


@pytest.fixture(scope="module", name="plaintext")
def plaintext_fixture(broker) -> str:
    return _address(broker, "PLAINTEXT")


def _principals(b: BrokerThread, listener: str = "SASL_PLAINTEXT") -> set[str]:
    return b.call(lambda: {c.principal for c in b.broker.connections
                           if not c.closed and c.endpoint.listener == listener})


# -- a SCRAM client for the wire tests (RFC 5802, written from the RFC) ---------------------------


class ScramClient:
    def __init__(self, mechanism: str, user: str, password: str) -> None:
        self.hash = "sha256" if mechanism == "SCRAM-SHA-256" else "sha512"
        self.user, self.password = user, password
        self.nonce = base64.b64encode(os.urandom(18)).decode()

    def first(self) -> bytes:
        self.bare = f"n={self.user},r={self.nonce}"
        return ("n,," + self.bare).encode()

    def final(self, server_first: bytes) -> bytes:
        self.server_first = server_first.decode()
        attrs = dict(item.split("=", 1) for item in self.server_first.split(","))
        assert attrs["r"].startswith(self.nonce)
        salted = hashlib.pbkdf2_hmac(self.hash, self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", self.hash).digest()
        stored = hashlib.new(self.hash, client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        self.auth_message = f"{self.bare},{self.server_first},{without_proof}".encode()
        signature = hmac.new(stored, self.auth_message, self.hash).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.server_key = hmac.new(salted, b"Server Key", self.hash).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> bool:
        expected = hmac.new(self.server_key, self.auth_message, self.hash).digest()
        return server_final == b"v=" + base64.b64encode(expected)


def _salted(mechanism: int, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256" if mechanism == 1 else "sha512", password.encode(), salt, iterations)


def _upsert(wire: Wire, user: str, password: str, mechanism: int = 1, iterations: int = 4096) -> object:
    Req = REQUESTS[51]
    salt = os.urandom(16)
    return wire.call(51, 0, deletions=[], upsertions=[Req.ScramCredentialUpsertion(
        name=user, mechanism=mechanism, iterations=iterations, salt=salt,
        salted_password=_salted(mechanism, password, salt, iterations))])


def _closed(wire: Wire) -> bool:
    """Whether the broker closed the connection (EOF, nothing more sent)."""
    wire.sock.settimeout(10)
    try:
        return wire.sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _authenticate_scram(wire: Wire, mechanism: str, user: str, password: str, version: int = 2) -> object:
    client = ScramClient(mechanism, user, password)
    hs = wire.call(17, 1, mechanism=mechanism)
    assert hs.error_code == E.NONE
    first = wire.call(36, version, auth_bytes=client.first())
    assert first.error_code == E.NONE, first.error_message
    final = wire.call(36, version, auth_bytes=client.final(first.auth_bytes))
    if final.error_code == E.NONE:
        assert client.verify(final.auth_bytes)
    return final
