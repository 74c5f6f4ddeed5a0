"""SASL/OAUTHBEARER: Kafka's unsecured-JWS validator (the default) with confluent-kafka's
(librdkafka's) unsecured tokens and kafka-python's token provider, the JWKS validator with RS256
tokens against a JWKS served here over HTTP, RFC 7628's error challenge then failure, and the
session lifetime cut at the token's expiry."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from security_helpers import produce_through_reauthentications
from waiting import wait_until
from wire import Wire

from kbroker.errors import StartupError
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode

E = ErrorCode
UNSECURED_JAAS = ('org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required '
                  'unsecuredValidatorRequiredScope="kafka";')
VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"


def address(b: BrokerThread, listener: str = "SASL_PLAINTEXT") -> str:
    host, port = b.broker.listener_endpoint(listener)
    return f"{host}:{port}"


def principals(b: BrokerThread) -> set[str]:
    return b.call(lambda: {c.principal for c in b.broker.connections
                           if not c.closed and c.endpoint.listener == "SASL_PLAINTEXT"})


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def unsecured(claims: dict, header: dict | None = None, signature: str = "") -> str:
    return f"{_b64(header or {'alg': 'none'})}.{_b64(claims)}.{signature}"


def claims(sub: str = "alice", life_s: int = 3600, **more) -> dict:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + life_s, **more}


def initial(token: str, authzid: str = "", **extensions: str) -> bytes:
    ext = "".join(f"{k}={v}\x01" for k, v in extensions.items())
    return f"n,{'a=' + authzid if authzid else ''},\x01auth=Bearer {token}\x01{ext}\x01".encode()


def authenticate(addr: str, token_bytes: bytes) -> tuple[Wire, object, object | None]:
    """Handshake, the initial response, and the \\x01 answer to an error challenge; returns the
    connection, the first response and (after an error challenge) the final one."""
    w = Wire(addr)
    assert w.call(17, 1, mechanism="OAUTHBEARER").error_code == E.NONE
    first = w.call(36, 2, auth_bytes=token_bytes)
    if first.error_code != E.NONE or first.auth_bytes == b"":
        return w, first, None
    return w, first, w.call(36, 2, auth_bytes=b"\x01")


@pytest.fixture(scope="module")
def broker():
    config = {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "OAUTHBEARER",
              "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config": UNSECURED_JAAS,
              "connection.failed.authentication.delay.ms": "0"}
    with BrokerThread(config) as b:
        yield b


# -- the unsecured validator ---------------------------------------------------------------------


def test_unsecured_token_at_the_wire(broker) -> None:
    addr = address(broker)
    token = claims(scope=["kafka", "other"], life_s=600)
    before = int(time.time() * 1000)
    w, first, _ = authenticate(addr, initial(unsecured(token), traceId="abc"))
    after = int(time.time() * 1000)
    try:
        # Kafka leaves a success's error message at its default, the empty string
        assert (first.error_code, first.error_message, first.auth_bytes) == (E.NONE, "", b"")
        # the session ends at the token's expiry
        assert token["exp"] * 1000 - after <= first.session_lifetime_ms <= token["exp"] * 1000 - before
        assert w.call(3, 12, topics=[]).brokers
        assert "User:alice" in principals(broker)
    finally:
        w.close()


@pytest.mark.parametrize(("token", "challenge"), [
    (unsecured(claims(scope="other")), b'{"status":"insufficient_scope", "scope":"[kafka]"}'),
    (unsecured(claims(scope="kafka", life_s=-10)), b'{"status":"invalid_token"}'),  # expired
    (unsecured({"sub": "alice", "scope": "kafka"}), b'{"status":"invalid_token"}'),  # no exp
    (unsecured({**claims(scope="kafka"), "sub": ""}), b'{"status":"invalid_token"}'),  # no principal
    (unsecured(claims(scope="kafka"), header={"alg": "RS256"}), b'{"status":"invalid_token"}'),
    (unsecured(claims(scope="kafka"), signature="c2ln"), b'{"status":"invalid_token"}'),
    (unsecured({**claims(scope="kafka"), "iat": int(time.time()) + 3600}), b'{"status":"invalid_token"}'),
    ("not-a-jws", b'{"status":"invalid_token"}'),
])
def test_invalid_tokens_get_the_error_challenge_then_fail(broker, token, challenge) -> None:
    w, first, final = authenticate(address(broker), initial(token))
    try:
        assert (first.error_code, first.auth_bytes) == (E.NONE, challenge)
        assert (final.error_code, final.error_message) == (E.SASL_AUTHENTICATION_FAILED, challenge.decode())
    finally:
        w.close()


def test_malformed_initial_responses_fail_with_kafkas_message(broker) -> None:
    # another scheme than Bearer: Kafka 4.4 fails formatting its message and closes without an answer
    w = Wire(address(broker))
    try:
        assert w.call(17, 1, mechanism="OAUTHBEARER").error_code == E.NONE
        with pytest.raises(ConnectionError):
            w.call(36, 2, auth_bytes=b"n,,\x01auth=Basic abc\x01\x01")
    finally:
        w.close()
    for raw in (b"n,,\x01\x01", b"garbage"):
        w, first, _ = authenticate(address(broker), raw)
        try:
            assert (first.error_code, first.error_message) == (
                E.SASL_AUTHENTICATION_FAILED,
                "Authentication failed during authentication due to invalid credentials with SASL mechanism "
                "OAUTHBEARER")
        finally:
            w.close()
    token = unsecured(claims(scope="kafka"))
    w, first, _ = authenticate(address(broker), initial(token, authzid="bob"))
    try:
        assert first.error_code == E.SASL_AUTHENTICATION_FAILED
        assert first.error_message == ("Authentication failed: Client requested an authorization id (bob) that is "
                                       "different from the token's principal name (alice)")
    finally:
        w.close()


def test_confluent_kafka_unsecured_jwt_and_kafka_python_token_provider(broker) -> None:
    from confluent_kafka import Producer
    from kafka import KafkaProducer
    from kafka.net.sasl.oauth import AbstractTokenProvider

    addr = address(broker)
    topic = f"oauth-{uuid.uuid4().hex[:6]}"
    p = Producer({"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanisms": "OAUTHBEARER", "sasl.oauthbearer.method": "default",
                  "enable.sasl.oauthbearer.unsecure.jwt": True,
                  "sasl.oauthbearer.config": "principal=carol scope=kafka lifeSeconds=600"})
    delivered: list = []
    p.produce(topic, b"from librdkafka", on_delivery=lambda err, msg: delivered.append(err))
    assert p.flush(30) == 0
    assert delivered == [None]
    assert "User:carol" in principals(broker)

    class Provider(AbstractTokenProvider):
        def token(self) -> str:
            return unsecured(claims(sub="dave", scope="kafka"))

    kp = KafkaProducer(bootstrap_servers=addr, security_protocol="SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER",
                       sasl_oauth_token_provider=Provider())
    try:
        kp.send(topic, b"from kafka-python").get(timeout=30)
        assert "User:dave" in principals(broker)
    finally:
        kp.close()

    # librdkafka with a token lacking the required scope: its error is Kafka's JSON
    errors: list = []
    bad = Producer({"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanisms": "OAUTHBEARER", "enable.sasl.oauthbearer.unsecure.jwt": True,
                    "sasl.oauthbearer.config": "principal=eve scope=other",
                    "error_cb": lambda err: errors.append(str(err))})
    bad.poll(0)
    assert wait_until(lambda: bad.poll(0.1) is not None and any("insufficient_scope" in e for e in errors),
                      timeout=30, message="librdkafka reports the insufficient_scope failure")


# -- the JWKS validator ---------------------------------------------------------------------------


class Jwks:
    """RSA keys and a JWKS served over HTTP on an ephemeral port."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from jwt.algorithms import RSAAlgorithm

        self.keys = {kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in ("k1", "k2")}
        self.served = ["k1"]
        self.fetches = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                jwks.fetches += 1
                body = json.dumps({"keys": [
                    {**json.loads(RSAAlgorithm.to_jwk(jwks.keys[kid].public_key())), "kid": kid, "alg": "RS256",
                     "use": "sig"} for kid in jwks.served]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, kid: str = "k1", signer: str | None = None, alg: str = "RS256", **claim_values) -> str:
        import jwt

        body = {"iss": "https://issuer.test", "aud": "kbroker", **claims(**claim_values)}
        return jwt.encode(body, self.keys[signer or kid], algorithm=alg, headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def jwks_config(jwks: Jwks, **extra: str) -> dict[str, str]:
    config = {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "OAUTHBEARER",
              "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": VALIDATOR,
              "sasl.oauthbearer.jwks.endpoint.url": jwks.url,
              "kbroker.sasl.oauthbearer.allowed.urls": jwks.url,
              "sasl.oauthbearer.expected.audience": "kbroker,other",
              "sasl.oauthbearer.expected.issuer": "https://issuer.test",
              "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms": "0",
              "connection.failed.authentication.delay.ms": "0"}
    config.update(extra)
    return config


@pytest.fixture(scope="module")
def jwks():
    j = Jwks()
    yield j
    j.close()


def test_jwks_validator_with_rs256_tokens(jwks) -> None:
    from kafka import KafkaProducer
    from kafka.net.sasl.oauth import AbstractTokenProvider

    with BrokerThread(jwks_config(jwks)) as b:
        addr = address(b)
        assert jwks.fetches >= 1  # fetched at start-up

        class Provider(AbstractTokenProvider):
            def token(self) -> str:
                return jwks.token(sub="frank", scope="kafka.write")

        kp = KafkaProducer(bootstrap_servers=addr, security_protocol="SASL_PLAINTEXT",
                           sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Provider())
        try:
            kp.send(f"jwks-{uuid.uuid4().hex[:6]}", b"signed").get(timeout=30)
            assert "User:frank" in principals(b)
        finally:
            kp.close()

        good = jwks.token(life_s=300)
        w, first, _ = authenticate(addr, initial(good))
        assert (first.error_code, first.auth_bytes) == (E.NONE, b"")
        assert 0 < first.session_lifetime_ms <= 300000
        w.close()
        # any RSA algorithm with the RSA key, whatever its JWK "alg" says (as Kafka's jose4j)
        w, first, _ = authenticate(addr, initial(jwks.token(alg="PS256")))
        assert (first.error_code, first.auth_bytes) == (E.NONE, b"")
        w.close()
        invalid = [
            jwks.token(aud="someone-else"),  # not our audience
            jwks.token(iss="https://elsewhere.test"),  # not our issuer
            jwks.token(signer="k2"),  # signed by another key than the kid says
            jwks.token(life_s=-120),  # expired beyond the 30 s clock skew
            jwks.token(kid="k2"),  # a key the JWKS does not have (yet)
            unsecured(claims()),  # alg none
        ]
        for token in invalid:
            w, first, final = authenticate(addr, initial(token))
            assert (first.error_code, first.auth_bytes) == (E.NONE, b'{"status":"invalid_token"}'), token
            assert (final.error_code, final.error_message) == (E.SASL_AUTHENTICATION_FAILED,
                                                               '{"status":"invalid_token"}')
            w.close()

        # the provider rotates keys: a token naming a new kid makes the broker fetch the JWKS again
        jwks.served = ["k1", "k2"]

        def k2_accepted() -> bool:
            w, first, _ = authenticate(addr, initial(jwks.token(kid="k2")))
            w.close()
            return first.auth_bytes == b""

        assert wait_until(k2_accepted, timeout=30)


def test_jwks_settings_are_checked_at_start_up(jwks) -> None:
    with pytest.raises(StartupError, match="The URL cannot be accessed due to restrictions"):
        with BrokerThread(jwks_config(jwks, **{"kbroker.sasl.oauthbearer.allowed.urls": ""})):
            pass
    config = jwks_config(jwks)
    del config["sasl.oauthbearer.expected.audience"]
    with pytest.raises(StartupError, match='requires "sasl.oauthbearer.expected.audience" to be configured'):
        with BrokerThread(config):
            pass
    config = jwks_config(jwks, **{
        "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": "com.example.Mine"})
    with pytest.raises(StartupError, match="com.example.Mine"):
        with BrokerThread(config):
            pass


def test_the_java_client_with_its_unsecured_login(broker, tmp_path) -> None:
    """Kafka's own client (TopicCommand) logging in with OAuthBearerLoginModule's unsecured tokens:
    accepted with the required scope, refused with Kafka's JSON error without it."""
    from tests.security.kafka_tools_helpers import client_properties, tool

    def props(name: str, scope: str) -> str:
        # a list claim's value starts with its delimiter (Kafka's OAuthBearerUnsecuredLoginCallbackHandler)
        return client_properties(tmp_path / f"{name}.properties", **{
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "sasl.jaas.config": 'org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required '
                                f'unsecuredLoginStringClaim_sub="grace" unsecuredLoginListClaim_scope="{scope}";'})

    topic = f"java-oauth-{uuid.uuid4().hex[:6]}"
    res = tool("TopicCommand", "--bootstrap-server", address(broker), "--command-config", props("ok", ",kafka,extra"),
               "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1")
    assert res.stdout.strip() == f"Created topic {topic}."
    res = tool("TopicCommand", "--bootstrap-server", address(broker), "--command-config", props("bad", ",other"),
               "--list", ok=False)
    assert res.returncode != 0
    assert ('SaslAuthenticationException: {"status":"insufficient_scope", "scope":"[kafka]"}'
            in res.stdout + res.stderr)


def test_librdkafka_re_authenticates_with_oauthbearer() -> None:
    """KIP-368 with OAUTHBEARER and a real client: the session lifetime is the smaller of the
    token's and the mechanism's connections.max.reauth.ms (listener.name.<l>.oauthbearer.
    connections.max.reauth.ms here); librdkafka re-authenticates on the same connection before
    it runs out, producing throughout. (With a token shorter-lived than librdkafka's refresh, it
    re-authenticates with the old token for the few milliseconds left, then again within the second,
    which the broker refuses as Kafka does.)"""
    from confluent_kafka import Producer

    config = {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "OAUTHBEARER",
              "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config": UNSECURED_JAAS,
              "listener.name.sasl_plaintext.oauthbearer.connections.max.reauth.ms": "1500",
              "connection.failed.authentication.delay.ms": "0"}
    with BrokerThread(config) as b:
        p = Producer({"bootstrap.servers": address(b), "security.protocol": "SASL_PLAINTEXT",
                      "sasl.mechanisms": "OAUTHBEARER", "enable.sasl.oauthbearer.unsecure.jwt": True,
                      "sasl.oauthbearer.config": "principal=heidi scope=kafka lifeSeconds=600"})
        assert produce_through_reauthentications(b, p, f"oauth-reauth-{uuid.uuid4().hex[:6]}") == []
        assert principals(b) == {"User:heidi"}


def test_jwks_from_a_file_url(jwks, tmp_path) -> None:
    """``sasl.oauthbearer.jwks.endpoint.url`` may be a ``file:`` URL (Kafka's
    JwksFileVerificationKeyResolver): the keys are read from the file."""
    import urllib.request

    from kbroker.security.oauthbearer import JwksValidator, TokenInvalid

    path = tmp_path / "jwks.json"
    with urllib.request.urlopen(jwks.url, timeout=10) as resp:  # the JWKS the test server serves (k1)
        path.write_bytes(resp.read())
    validator = JwksValidator(path.as_uri(), ["kbroker"], "https://issuer.test")
    token = validator.validate(jwks.token(sub="ivan", scope=["a", "b"]))
    assert (token.principal, token.scope) == ("ivan", frozenset({"a", "b"}))
    with pytest.raises(TokenInvalid):
        validator.validate(jwks.token(signer="k2"))


@pytest.mark.parametrize(("jaas", "message"), [
    ('unsecuredValidatorAllowableClockSkewMs="-1"', "Allowable clock skew millis must not be negative: -1"),
    ('unsecuredValidatorAllowableClockSkewMs="soon"', 'For input string: "soon"'),
])
def test_bad_unsecured_validator_options_stop_start_up(jaas, message) -> None:
    config = {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "OAUTHBEARER",
              "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config":
                  f"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required {jaas};"}
    with pytest.raises(StartupError, match=message):
        with BrokerThread(config):
            pass
