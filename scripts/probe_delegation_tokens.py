#!/usr/bin/env python3
"""The same delegation-token conversation with kbroker and with Apache Kafka 4.4, side by side.

Starts kbroker (in-process) and the reference Kafka 4.4 (scripts/reference_kafka.py) with the same
SASL_PLAINTEXT listener (PLAIN users alice, bob, carol; SCRAM enabled) and
``delegation.token.secret.key``, then runs at the wire: the token APIs on PLAINTEXT, create
(renewers, another owner, a bad renewer type), describe (null / empty / named owners), renew by the
owner, a renewer and a stranger, a SCRAM login with the token (``tokenauth=true``) and the token
APIs on it, expiry in 0 ms (expired: renew, login, the next request), expiry now (-1). Each step's
answer is normalized (timestamps relative to now, ids by shape) and printed for both brokers;
``--check`` exits 1 when any differs. Starting Kafka takes a JVM (about a minute).

    .venv/bin/python scripts/probe_delegation_tokens.py [--check]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests" / "integration")]

import reference_kafka  # noqa: E402
from wire import Wire  # noqa: E402

from kbroker_protocol.errors import ErrorCode  # noqa: E402
from kbroker_protocol.messages import REQUESTS  # noqa: E402

SECRET = "probe-secret"
USERS = ("alice", "bob", "carol")
PLAIN_JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
              + " ".join(f'user_{u}="{u}-secret"' for u in USERS) + ";")


def settings() -> dict[str, str]:
    return {
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "delegation.token.secret.key": SECRET,
        "connection.failed.authentication.delay.ms": "0",
    }


def code(value: int) -> str:
    return ErrorCode(value).name


def rel(ts: int) -> str:
    """A timestamp relative to now, in whole minutes (-1 and 0 kept as they are)."""
    if ts in (-1, 0):
        return str(ts)
    return f"now{(ts - int(time.time() * 1000)) / 60000:+.0f}min"


class Conversation:
    def __init__(self, plaintext: str, sasl: str) -> None:
        self.plaintext, self.sasl = plaintext, sasl

    def login(self, user: str) -> Wire:
        w = Wire(self.sasl)
        w.call(17, 1, mechanism="PLAIN")
        r = w.call(36, 2, auth_bytes=f"\0{user}\0{user}-secret".encode())
        assert r.error_code == 0, r
        return w

    def token_login(self, token_id: str, token_hmac: bytes) -> tuple[Wire, Any]:
        w = Wire(self.sasl)
        w.call(17, 1, mechanism="SCRAM-SHA-256")
        bare = f"n={token_id},r={base64.b64encode(os.urandom(12)).decode()},tokenauth=true"
        first = w.call(36, 2, auth_bytes=("n,," + bare).encode())
        if first.error_code:
            return w, first
        attrs = dict(x.split("=", 1) for x in first.auth_bytes.decode().split(","))
        salted = hashlib.pbkdf2_hmac("sha256", base64.b64encode(token_hmac), base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        key = hmac.new(salted, b"Client Key", "sha256").digest()
        final_bare = f"c=biws,r={attrs['r']}"
        auth = f"{bare},{first.auth_bytes.decode()},{final_bare}".encode()
        sig = hmac.new(hashlib.sha256(key).digest(), auth, "sha256").digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(key, sig, strict=True))).decode()
        return w, w.call(36, 2, auth_bytes=f"{final_bare},p={proof}".encode())

    def run(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []

        def step(name: str, fn: Callable[[], Any]) -> Any:
            try:
                value = fn()
            except Exception as exc:  # a closed connection is an answer too
                value = f"{type(exc).__name__}: {exc}"
            out.append((name, str(value)))
            return value

        Req38, Req41 = REQUESTS[38], REQUESTS[41]

        def create(w: Wire, renewers=(), owner=None, version=3):
            fields = {}
            if owner:
                fields = dict(owner_principal_type=owner[0], owner_principal_name=owner[1])
            return w.call(38, version, renewers=[Req38.CreatableRenewers(principal_type=t, principal_name=n)
                                                 for t, n in renewers], max_lifetime_ms=-1, **fields)

        def shape(r) -> tuple:
            return (code(r.error_code), r.principal_type, r.principal_name,
                    getattr(r, "token_requester_principal_name", None), rel(r.issue_timestamp_ms),
                    rel(r.expiry_timestamp_ms), rel(r.max_timestamp_ms), len(r.token_id),
                    bytes(r.hmac) == hmac.new(SECRET.encode(), r.token_id.encode(), "sha512").digest())

        def describe(w: Wire, owners):
            r = w.call(41, 3, owners=None if owners is None else [
                Req41.DescribeDelegationTokenOwner(principal_type=t, principal_name=n) for t, n in owners])
            return (code(r.error_code), sorted((t.principal_name, t.token_requester_principal_name,
                                                tuple(x.principal_name for x in t.renewers)) for t in r.tokens))

        def settle(w: Wire, done: Callable[[list[Any]], bool]) -> None:
            """Kafka's brokers see a token change once the metadata publisher ran (a little after
            the controller answered): wait for it (10 s at most) before the next step."""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if done(w.call(41, 3, owners=None).tokens):
                    return
                time.sleep(0.05)

        def expiry_of(tokens: list[Any], token_id: str) -> int | None:
            return next((t.expiry_timestamp for t in tokens if t.token_id == token_id), None)

        plain = Wire(self.plaintext)
        step("PLAINTEXT create", lambda: shape(create(plain)))
        step("PLAINTEXT renew", lambda: (lambda r: (code(r.error_code), r.expiry_timestamp_ms))(
            plain.call(39, 2, hmac=b"x", renew_period_ms=1)))
        step("PLAINTEXT describe", lambda: describe(plain, None))
        alice, bob, carol = (self.login(u) for u in USERS)
        created = create(alice, renewers=[("User", "bob")])
        step("create (renewer bob)", lambda: shape(created))
        step("create renewer Group:x", lambda: shape(create(alice, renewers=[("Group", "x")])))
        step("create owner User:bob", lambda: shape(create(alice, owner=("User", "bob"))))
        step("create v1", lambda: shape(create(alice, version=1)))
        settle(alice, lambda tokens: len(tokens) == 3)
        step("describe null", lambda: describe(alice, None))
        step("describe []", lambda: describe(alice, []))
        step("describe [User:bob]", lambda: describe(carol, [("User", "bob")]))
        h = bytes(created.hmac)
        renewed = bob.call(39, 2, hmac=h, renew_period_ms=600000)
        step("renew by renewer", lambda: (code(renewed.error_code), rel(renewed.expiry_timestamp_ms)))
        settle(alice, lambda tokens: expiry_of(tokens, created.token_id) == renewed.expiry_timestamp_ms)
        step("renew by stranger", lambda: (lambda r: (code(r.error_code), r.expiry_timestamp_ms))(
            carol.call(39, 2, hmac=h, renew_period_ms=600000)))
        step("renew unknown", lambda: (lambda r: (code(r.error_code), r.expiry_timestamp_ms))(
            alice.call(39, 2, hmac=b"nope", renew_period_ms=1)))
        step("expire by stranger", lambda: code(carol.call(40, 2, hmac=h, expiry_time_period_ms=-1).error_code))
        w, final = self.token_login(created.token_id, h)
        step("token login", lambda: (code(final.error_code), final.session_lifetime_ms > 0))
        step("token: create", lambda: shape(create(w)))
        step("token: renew", lambda: (lambda r: (code(r.error_code), r.expiry_timestamp_ms))(
            w.call(39, 2, hmac=h, renew_period_ms=1)))
        step("token: describe", lambda: describe(w, None))
        step("token: metadata", lambda: len(w.call(3, 12, topics=[]).brokers))
        w.close()
        zero = alice.call(40, 2, hmac=h, expiry_time_period_ms=0)
        step("expire in 0 ms", lambda: (code(zero.error_code), rel(zero.expiry_timestamp_ms)))
        settle(alice, lambda tokens: expiry_of(tokens, created.token_id) == zero.expiry_timestamp_ms)
        time.sleep(0.05)  # the probe's own pacing: past the expiry
        step("renew expired", lambda: code(alice.call(39, 2, hmac=h, renew_period_ms=1000).error_code))
        step("expire expired (1000)", lambda: code(alice.call(40, 2, hmac=h, expiry_time_period_ms=1000).error_code))
        w, final = self.token_login(created.token_id, h)
        step("expired token login", lambda: (code(final.error_code), final.session_lifetime_ms))
        step("expired token: next request", lambda: len(w.call(3, 12, topics=[]).brokers))
        w.close()
        now = alice.call(40, 2, hmac=h, expiry_time_period_ms=-1)
        step("expire now (-1)", lambda: (code(now.error_code), rel(now.expiry_timestamp_ms)))
        settle(alice, lambda tokens: expiry_of(tokens, created.token_id) is None)
        step("describe after expiry", lambda: describe(alice, [("User", "alice")]))
        w, final = self.token_login(created.token_id, h)
        step("removed token login", lambda: (code(final.error_code), final.error_message))
        w.close()
        for c in (plain, alice, bob, carol):
            c.close()
        return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="exit 1 when the brokers answer differently")
    args = ap.parse_args()
    from kbroker.testing import BrokerThread

    with BrokerThread({"listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0", **settings()}) as kb:
        addr = {name: "{}:{}".format(*kb.broker.listener_endpoint(name)) for name in ("PLAINTEXT", "SASL_PLAINTEXT")}
        ours = Conversation(addr["PLAINTEXT"], addr["SASL_PLAINTEXT"]).run()

    # Kafka: the SASL listener's port is chosen here, the others by reference_kafka (in its order)
    ports = [reference_kafka.free_port() for _ in range(3)]
    given = itertools.chain(ports[:2], iter(reference_kafka.free_port, None))
    original = reference_kafka.free_port
    reference_kafka.free_port = lambda: next(given)
    port, cport, sport = ports[0], ports[1], ports[2]
    overrides = {
        **settings(),
        "listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sport},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sport}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
    }
    print("starting the reference Apache Kafka 4.4.0 ...", file=sys.stderr)
    ref = reference_kafka.start_reference_kafka(tempfile.mkdtemp(prefix="probe-tokens-"), overrides)
    reference_kafka.free_port = original
    try:
        theirs = Conversation(f"127.0.0.1:{port}", f"127.0.0.1:{sport}").run()
    finally:
        ref.stop()

    differ = reference_kafka.print_differences(ours, theirs, 28, "steps")
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    sys.exit(main())
