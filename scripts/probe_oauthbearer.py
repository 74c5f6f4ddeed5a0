#!/usr/bin/env python3
"""SASL/OAUTHBEARER with Kafka's unsecured-JWS validator: kbroker and Apache Kafka 4.4 side by side.

Starts kbroker (in-process) and the reference Kafka 4.4 (scripts/reference_kafka.py) with the same
SASL_PLAINTEXT listener (OAUTHBEARER, ``unsecuredValidatorRequiredScope="kafka"``,
``connections.max.reauth.ms`` set), sends each the same initial responses (a valid token, missing
scope, expired, no ``exp``, no subject, a signed ``alg``, a signature, ``iat`` in the future, a
non-JWS, a wrong scheme, no ``auth``, an authorization id that is not the subject) and prints the
SaslAuthenticate answers (the challenge, then the answer to ``\\x01``), the session lifetime,
and whether a Metadata request is then served. ``--check`` exits 1 on a difference. Starting
Kafka takes a JVM (about a minute).

    .venv/bin/python scripts/probe_oauthbearer.py [--check] [--jwks]

``--jwks``: Kafka's JWKS validator instead (OAuthBearerValidatorCallbackHandler, expected audience and
issuer, a JWKS served here over HTTP), with RS256 tokens: valid ones, another audience or issuer, none,
another key under the kid, an unknown kid, expired within and beyond the clock skew, no ``exp``/
``iat``/``sub``, ``iat``/``nbf`` in the future, duplicate scopes, another algorithm, ``alg`` none.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests" / "integration")]

import reference_kafka  # noqa: E402
from wire import Wire  # noqa: E402

from kbroker_protocol.errors import ErrorCode  # noqa: E402

SETTINGS = {
    "sasl.enabled.mechanisms": "OAUTHBEARER",
    "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config":
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
        'unsecuredLoginStringClaim_sub="broker" unsecuredValidatorRequiredScope="kafka";',
    "listener.name.sasl_plaintext.connections.max.reauth.ms": "600000",
    "connection.failed.authentication.delay.ms": "0",
}


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def jws(claims: dict, header: dict | None = None, signature: str = "") -> str:
    return f"{b64(header or {'alg': 'none'})}.{b64(claims)}.{signature}"


def cases() -> list[tuple[str, bytes]]:
    now = int(time.time())
    good = {"sub": "alice", "iat": now, "exp": now + 300, "scope": ["kafka"]}

    def initial(token: str, authzid: str = "", scheme: str = "Bearer") -> bytes:
        return f"n,{'a=' + authzid if authzid else ''},\x01auth={scheme} {token}\x01\x01".encode()

    return [
        ("valid, 300 s", initial(jws(good))),
        ("valid, scope string", initial(jws({**good, "scope": "kafka"}))),
        ("missing scope", initial(jws({**good, "scope": ["other"]}))),
        ("expired", initial(jws({**good, "exp": now - 10, "iat": now - 20}))),
        ("no exp", initial(jws({"sub": "alice", "scope": "kafka"}))),
        ("no sub", initial(jws({**good, "sub": ""}))),
        ("sub not a string", initial(jws({**good, "sub": 7}))),
        ("alg RS256", initial(jws(good, {"alg": "RS256"}))),
        ("a signature", initial(jws(good, signature="c2ln"))),
        ("iat in the future", initial(jws({**good, "iat": now + 100}))),
        ("exp before iat", initial(jws({**good, "iat": now + 1, "exp": now}))),
        ("not a JWS", initial("abc")),
        ("scheme Basic", initial(jws(good), scheme="Basic")),
        ("no auth", b"n,,\x01\x01"),
        ("authzid bob", initial(jws(good), authzid="bob")),
        ("authzid alice", initial(jws(good), authzid="alice")),
    ]


def jwks_cases(jwks: Any) -> list[tuple[str, bytes]]:
    """Signed tokens for the JWKS validator (``jwks``: tests/security/test_oauthbearer.py's Jwks)."""
    import jwt

    now = int(time.time())

    def initial(token: str) -> bytes:
        return f"n,,\x01auth=Bearer {token}\x01\x01".encode()

    def signed(kid: str = "k1", signer: str | None = None, alg: str = "RS256", drop: tuple[str, ...] = (),
               **claims: Any) -> bytes:
        body = {"iss": "https://issuer.test", "aud": "kbroker", "sub": "alice", "iat": now, "exp": now + 300,
                **claims}
        for key in drop:
            body.pop(key)
        return initial(jwt.encode(body, jwks.keys[signer or kid], algorithm=alg, headers={"kid": kid}))

    return [
        ("valid", signed()),
        ("valid, scope list", signed(scope=["a", "b"])),
        ("aud list with ours", signed(aud=["x", "kbroker"])),
        ("wrong audience", signed(aud="x")),
        ("no audience", signed(drop=("aud",))),
        ("wrong issuer", signed(iss="https://elsewhere.test")),
        ("no issuer", signed(drop=("iss",))),
        ("other key, same kid", signed(signer="k2")),
        ("unknown kid", signed(kid="k2")),
        ("expired 10 s (skew 30)", signed(exp=now - 10, iat=now - 100)),
        ("expired 100 s", signed(exp=now - 100, iat=now - 200)),
        ("no exp", signed(drop=("exp",))),
        ("no iat", signed(drop=("iat",))),
        ("iat in the future", signed(iat=now + 3600)),
        ("nbf in the future", signed(nbf=now + 3600)),
        ("no sub", signed(drop=("sub",))),
        ("sub empty", signed(sub="")),
        ("duplicate scope", signed(scope=["a", "a"])),
        ("PS256 with the RSA key", signed(alg="PS256")),
        ("alg none", initial(jws({"sub": "alice", "iat": now, "exp": now + 300, "aud": "kbroker",
                                   "iss": "https://issuer.test"}))),
    ]


def run(addr: str, cases: Any = cases) -> list[tuple[str, str]]:
    out = []
    for name, token in cases():
        w = Wire(addr)
        try:
            w.call(17, 1, mechanism="OAUTHBEARER")
            first = w.call(36, 2, auth_bytes=token)
            answer = [ErrorCode(first.error_code).name, first.error_message, bytes(first.auth_bytes).decode(),
                      "lifetime (0, 300 s]" if 0 < first.session_lifetime_ms <= 300000 else first.session_lifetime_ms]
            if first.error_code == 0 and first.auth_bytes:
                final = w.call(36, 2, auth_bytes=b"\x01")
                answer += [ErrorCode(final.error_code).name, final.error_message]
            elif first.error_code == 0:
                answer.append(f"metadata brokers: {len(w.call(3, 12, topics=[]).brokers)}")
        except Exception as exc:
            answer = [f"{type(exc).__name__}: {exc}"]
        finally:
            w.close()
        out.append((name, str(answer)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="exit 1 when the brokers answer differently")
    ap.add_argument("--jwks", action="store_true",
                    help="the JWKS validator (OAuthBearerValidatorCallbackHandler) with RS256 tokens instead")
    args = ap.parse_args()
    from kbroker.testing import BrokerThread

    settings, chosen, jwks = dict(SETTINGS), cases, None
    if args.jwks:
        sys.path.insert(0, str(ROOT / "tests" / "security"))
        from test_oauthbearer import VALIDATOR, Jwks

        jwks = Jwks()
        jwks.served = ["k1"]
        settings.update({
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": VALIDATOR,
            "sasl.oauthbearer.jwks.endpoint.url": jwks.url,
            "sasl.oauthbearer.expected.audience": "kbroker",
            "sasl.oauthbearer.expected.issuer": "https://issuer.test",
        })
        # Kafka reads a JWKS URL only when its JVM property lists it; kbroker's equivalent key
        os.environ["JAVA_TOOL_OPTIONS"] = f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={jwks.url}"

        def chosen() -> list[tuple[str, bytes]]:
            return jwks_cases(jwks)  # made at each run: their times are relative to it

    with BrokerThread({"listeners": "SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0", **settings,
                       **({"kbroker.sasl.oauthbearer.allowed.urls": jwks.url} if jwks else {})}) as kb:
        ours = run("{}:{}".format(*kb.broker.listener_endpoint("SASL_PLAINTEXT")), chosen)

    ports = [reference_kafka.free_port() for _ in range(3)]
    given = itertools.chain(ports[:2], iter(reference_kafka.free_port, None))
    original = reference_kafka.free_port
    reference_kafka.free_port = lambda: next(given)
    port, cport, sport = ports
    overrides = {
        **settings,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sport},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sport}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
    }
    print("starting the reference Apache Kafka 4.4.0 ...", file=sys.stderr)
    ref = reference_kafka.start_reference_kafka(tempfile.mkdtemp(prefix="probe-oauth-"), overrides)
    reference_kafka.free_port = original
    try:
        theirs = run(f"127.0.0.1:{sport}", chosen)
    finally:
        ref.stop()
        if jwks is not None:
            jwks.close()

    differ = reference_kafka.print_differences(ours, theirs, 22, "cases")
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    sys.exit(main())
