"""SASL listeners: PLAIN (JAAS users) and SCRAM-SHA-256/512 (users made with
AlterUserScramCredentials) with kafka-python, confluent-kafka and aiokafka; Kafka's handshake rules
at the wire (v0 raw tokens, v1+ SaslAuthenticate, what closes the connection); the admin APIs'
validation; re-authentication; SASL_SSL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import uuid

import pytest
from security_helpers import produce_through_reauthentications, ssl_listener_config, start_up_error
from waiting import wait_until
from wire import Wire

from kbroker.security.jaas import JaasError, parse_jaas, plain_users, server_entry
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


@pytest.fixture(scope="module")
def broker():
    with BrokerThread(sasl_config()) as b:
        yield b


@pytest.fixture(scope="module")
def sasl(broker) -> str:
    return _address(broker, "SASL_PLAINTEXT")


@pytest.fixture(scope="module")
def plaintext(broker) -> str:
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


def _raw(wire: Wire, token: bytes) -> bytes:
    wire.sock.sendall(struct.pack(">i", len(token)) + token)
    (size,) = struct.unpack(">i", wire._read_exact(4))
    return wire._read_exact(size)


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


# -- real clients ---------------------------------------------------------------------------------


def test_plain_with_kafka_python_confluent_and_aiokafka(broker, sasl) -> None:
    from confluent_kafka import Consumer, Producer
    from kafka import KafkaConsumer, KafkaProducer

    topic = f"plain-{uuid.uuid4().hex[:8]}"
    kp = KafkaProducer(bootstrap_servers=sasl, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                       sasl_plain_username="alice", sasl_plain_password="alice-secret")
    try:
        kp.send(topic, b"from-kafka-python").get(30)
        assert "User:alice" in _principals(broker)
    finally:
        kp.close()
    cp = Producer({"bootstrap.servers": sasl, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                   "sasl.username": "admin", "sasl.password": "admin-secret"})
    cp.produce(topic, b"from-confluent")
    assert cp.flush(30) == 0

    async def aio() -> None:
        from aiokafka import AIOKafkaProducer

        p = AIOKafkaProducer(bootstrap_servers=sasl, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                             sasl_plain_username="alice", sasl_plain_password="alice-secret")
        await p.start()
        try:
            await p.send_and_wait(topic, b"from-aiokafka")
        finally:
            await p.stop()

    import asyncio
    asyncio.run(aio())
    consumer = Consumer({"bootstrap.servers": sasl, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                         "sasl.username": "alice", "sasl.password": "alice-secret", "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        def more() -> bool:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
            return len(got) >= 3
        wait_until(more, timeout=60)
    finally:
        consumer.close()
    assert got == [b"from-kafka-python", b"from-confluent", b"from-aiokafka"]
    kc = KafkaConsumer(topic, bootstrap_servers=sasl, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                       sasl_plain_username="admin", sasl_plain_password="admin-secret", auto_offset_reset="earliest",
                       consumer_timeout_ms=15000)
    try:
        assert [m.value for _, m in zip(range(3), kc, strict=False)] == got
    finally:
        kc.close()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_users_made_with_confluent_admin_authenticate_every_client(broker, sasl, plaintext, mechanism) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )
    from kafka import KafkaProducer

    user = f"u{uuid.uuid4().hex[:6]}"
    mech = ScramMechanism.SCRAM_SHA_256 if mechanism == "SCRAM-SHA-256" else ScramMechanism.SCRAM_SHA_512
    admin = AdminClient({"bootstrap.servers": plaintext})
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion(user, ScramCredentialInfo(mech, 8192), f"{user}-pw".encode())])
    assert futures[user].result(30) is None
    described = admin.describe_user_scram_credentials([user])[user].result(30)
    assert [(i.mechanism, i.iterations) for i in described.scram_credential_infos] == [(mech, 8192)]

    topic = f"scram-{uuid.uuid4().hex[:8]}"
    cp = Producer({"bootstrap.servers": sasl, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
                   "sasl.username": user, "sasl.password": f"{user}-pw"})
    cp.produce(topic, b"confluent")
    assert cp.flush(30) == 0
    assert f"User:{user}" in _principals(broker)
    kp = KafkaProducer(bootstrap_servers=sasl, security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                       sasl_plain_username=user, sasl_plain_password=f"{user}-pw")
    try:
        kp.send(topic, b"kafka-python").get(30)
    finally:
        kp.close()

    async def aio() -> None:
        from aiokafka import AIOKafkaProducer

        p = AIOKafkaProducer(bootstrap_servers=sasl, security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                             sasl_plain_username=user, sasl_plain_password=f"{user}-pw")
        await p.start()
        try:
            await p.send_and_wait(topic, b"aiokafka")
        finally:
            await p.stop()

    import asyncio
    asyncio.run(aio())


def test_kafka_python_admin_creates_and_describes_scram_users(broker, sasl, plaintext) -> None:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin._users import UserScramCredentialUpsertion

    admin = KafkaAdminClient(bootstrap_servers=plaintext)
    try:
        result = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion("kp-user", "SCRAM-SHA-512", "kp-pw", iterations=5000)])
        assert result == {"kp-user": None}
        described = admin.describe_user_scram_credentials(["kp-user"])
        assert "kp-user" in str(described) and "5000" in str(described)
    finally:
        admin.close()
    kp = KafkaProducer(bootstrap_servers=sasl, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                       sasl_plain_username="kp-user", sasl_plain_password="kp-pw")
    try:
        kp.send("kp-topic", b"x").get(30)
    finally:
        kp.close()


def test_wrong_password_is_an_authentication_failure_for_librdkafka(sasl) -> None:
    from confluent_kafka import KafkaError, Producer

    errors: list = []
    p = Producer({"bootstrap.servers": sasl, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                  "sasl.username": "alice", "sasl.password": "wrong", "error_cb": errors.append})
    wait_until(lambda: p.poll(0.2) is not None and any(
        e.code() == KafkaError._AUTHENTICATION for e in errors), timeout=30)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert "Authentication failed: Invalid username or password" in auth[0].str()


# -- the handshake at the wire ---------------------------------------------------------------------


def test_plain_wrong_password_answers_kafkas_failure_then_closes(sasl) -> None:
    w = Wire(sasl)
    try:
        assert w.call(17, 1, mechanism="PLAIN").mechanisms == MECHANISMS.split(",")
        r = w.call(36, 2, auth_bytes=b"\0alice\0nope")
        assert (r.error_code, r.error_message) == (E.SASL_AUTHENTICATION_FAILED,
                                                   "Authentication failed: Invalid username or password")
        assert _closed(w)
    finally:
        w.close()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_at_the_wire(plaintext, sasl, mechanism) -> None:
    admin = Wire(plaintext)
    try:
        assert _upsert(admin, "wire-user", "pw1", mechanism=1 if mechanism == "SCRAM-SHA-256" else 2
                       ).results[0].error_code == E.NONE
    finally:
        admin.close()
    w = Wire(sasl)
    try:
        final = _authenticate_scram(w, mechanism, "wire-user", "pw1")
        assert final.error_code == E.NONE and final.session_lifetime_ms == 0
        assert w.call(3, 12, topics=[]).brokers  # served once authenticated
    finally:
        w.close()
    for user, password in (("wire-user", "wrong"), ("nobody", "pw1")):
        w = Wire(sasl)
        try:
            final = w.call(17, 1, mechanism=mechanism)
            client = ScramClient(mechanism, user, password)
            first = w.call(36, 1, auth_bytes=client.first())
            if user == "nobody":  # unknown users fail at the first message, with the same words
                final = first
            else:
                final = w.call(36, 1, auth_bytes=client.final(first.auth_bytes))
            assert (final.error_code, final.error_message) == (
                E.SASL_AUTHENTICATION_FAILED,
                f"Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}")
            assert _closed(w)
        finally:
            w.close()


def test_handshake_v0_takes_raw_tokens(plaintext, sasl) -> None:
    w = Wire(sasl)
    try:
        assert w.call(18, 3, client_software_name="t", client_software_version="1").error_code == E.NONE
        assert w.call(17, 0, mechanism="PLAIN").error_code == E.NONE
        assert _raw(w, b"\0alice\0alice-secret") == b""  # Kafka answers PLAIN's last token with an empty one
        assert w.call(3, 12, topics=[]).brokers
    finally:
        w.close()
    admin = Wire(plaintext)
    _upsert(admin, "raw-user", "raw-pw")
    admin.close()
    w = Wire(sasl)
    try:
        assert w.call(17, 0, mechanism="SCRAM-SHA-256").error_code == E.NONE
        client = ScramClient("SCRAM-SHA-256", "raw-user", "raw-pw")
        server_first = _raw(w, client.first())
        assert client.verify(_raw(w, client.final(server_first)))
        assert w.call(3, 12, topics=[]).brokers
    finally:
        w.close()
    w = Wire(sasl)
    try:  # v0 failure: no answer, the connection closes
        w.call(17, 0, mechanism="PLAIN")
        w.sock.sendall(struct.pack(">i", 12) + b"\0alice\0wrong")
        assert _closed(w)
    finally:
        w.close()


@pytest.mark.parametrize("before", ["nothing", "api-versions"])
def test_a_request_before_authentication_closes_the_connection(sasl, before) -> None:
    w = Wire(sasl)
    try:
        if before == "api-versions":
            assert w.call(18, 3, client_software_name="t", client_software_version="1").error_code == E.NONE
        w.send(REQUESTS[3](topics=[]), 12)
        assert _closed(w)
    finally:
        w.close()


def test_api_versions_twice_before_the_handshake_closes_the_connection(sasl) -> None:
    w = Wire(sasl)
    try:
        assert w.call(18, 3, client_software_name="t", client_software_version="1").error_code == E.NONE
        w.send(REQUESTS[18](client_software_name="t", client_software_version="1"), 3)
        assert _closed(w)
    finally:
        w.close()


def test_another_request_during_authentication_is_an_illegal_sasl_state(sasl) -> None:
    w = Wire(sasl)
    try:
        assert w.call(17, 1, mechanism="PLAIN").error_code == E.NONE
        assert w.call(16, 4).error_code == E.ILLEGAL_SASL_STATE  # ListGroups
        assert _closed(w)
    finally:
        w.close()


def test_unsupported_mechanism_lists_the_enabled_ones_and_closes(sasl) -> None:
    w = Wire(sasl)
    try:
        r = w.call(17, 1, mechanism="GSSAPI")
        assert (r.error_code, r.mechanisms) == (E.UNSUPPORTED_SASL_MECHANISM, MECHANISMS.split(","))
        assert _closed(w)
    finally:
        w.close()


def test_an_oversized_frame_before_authentication_closes_the_connection(sasl) -> None:
    w = Wire(sasl)
    try:
        w.sock.sendall(struct.pack(">i", 524288 + 1) + b"\0" * 1024)
        assert _closed(w)
    finally:
        w.close()


def test_sasl_apis_on_a_plaintext_listener_are_an_illegal_sasl_state(plaintext) -> None:
    w = Wire(plaintext)
    try:
        assert w.call(17, 1, mechanism="PLAIN").error_code == E.ILLEGAL_SASL_STATE
        r = w.call(36, 2, auth_bytes=b"x")
        assert (r.error_code, r.error_message) == (
            E.ILLEGAL_SASL_STATE, "SaslAuthenticate request received after successful authentication")
        assert w.call(3, 12, topics=[]).brokers
    finally:
        w.close()


# -- AlterUserScramCredentials / DescribeUserScramCredentials --------------------------------------


def test_alter_user_scram_credentials_validates_as_kafka(plaintext) -> None:
    Req = REQUESTS[51]
    w = Wire(plaintext)

    def up(name: str, mechanism: int = 1, iterations: int = 4096) -> object:
        return Req.ScramCredentialUpsertion(name=name, mechanism=mechanism, iterations=iterations, salt=b"salt",
                                            salted_password=_salted(1, "p", b"salt", 4096))

    try:
        r = w.call(51, 0, deletions=[Req.ScramCredentialDeletion(name="ghost", mechanism=1),
                                     Req.ScramCredentialDeletion(name="dup", mechanism=1)],
                   upsertions=[up("few", iterations=4095), up("many", iterations=16385), up("", 1),
                               up("mech", mechanism=3), up("dup"), up("ok", iterations=16384)])
        got = {x.user: (x.error_code, x.error_message) for x in r.results}
        assert got == {
            "ghost": (E.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist"),
            "dup": (E.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist"),
            "few": (E.UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
            "many": (E.UNACCEPTABLE_CREDENTIAL, "Too many iterations"),
            "": (E.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"),
            "mech": (E.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
            "ok": (E.NONE, None),
        }
        r = w.call(51, 0, deletions=[Req.ScramCredentialDeletion(name="ok", mechanism=1)],
                   upsertions=[up("ok", mechanism=2), up("twice"), up("twice")])
        got = {x.user: (x.error_code, x.error_message) for x in r.results}
        assert got == {
            "ok": (E.DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request"),
            "twice": (E.DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request"),
        }
        D = REQUESTS[50]
        d = w.call(50, 0, users=[D.UserName(name="ok"), D.UserName(name="ghost"), D.UserName(name="x"),
                                 D.UserName(name="x")])
        got = {x.user: (x.error_code, x.error_message, [(c.mechanism, c.iterations) for c in x.credential_infos])
               for x in d.results}
        assert got == {
            "ok": (E.NONE, None, [(1, 16384)]),
            "ghost": (E.RESOURCE_NOT_FOUND, "Attempt to describe a user credential that does not exist: ghost", []),
            "x": (E.DUPLICATE_RESOURCE,
                  "Cannot describe SCRAM credentials for the same user twice in a single request: x", []),
        }
        r = w.call(51, 0, deletions=[Req.ScramCredentialDeletion(name="ok", mechanism=1)], upsertions=[])
        assert [(x.user, x.error_code) for x in r.results] == [("ok", E.NONE)]
        assert "ok" not in {x.user for x in w.call(50, 0, users=None).results}
    finally:
        w.close()


def test_scram_credentials_survive_a_restart(tmp_path) -> None:
    data = str(tmp_path / "data")
    with BrokerThread(sasl_config(), data_dir=data) as b:
        w = Wire(_address(b, "PLAINTEXT"))
        assert _upsert(w, "kept", "kept-pw", mechanism=2).results[0].error_code == E.NONE
        w.close()
    with BrokerThread(sasl_config(), data_dir=data) as b:
        w = Wire(_address(b, "SASL_PLAINTEXT"))
        try:
            assert _authenticate_scram(w, "SCRAM-SHA-512", "kept", "kept-pw").error_code == E.NONE
        finally:
            w.close()


# -- re-authentication (KIP-368) -------------------------------------------------------------------


def test_without_a_session_lifetime_a_handshake_after_authentication_is_refused(sasl) -> None:
    w = Wire(sasl)
    try:
        w.call(17, 1, mechanism="PLAIN")
        assert w.call(36, 2, auth_bytes=b"\0alice\0alice-secret").session_lifetime_ms == 0
        assert w.call(17, 1, mechanism="PLAIN").error_code == E.ILLEGAL_SASL_STATE
        assert w.call(3, 12, topics=[]).brokers
    finally:
        w.close()


def test_session_lifetime_and_reauthentication() -> None:
    config = sasl_config(**{"listener.name.sasl_plaintext.connections.max.reauth.ms": "60000"})
    with BrokerThread(config) as b:
        w = Wire(_address(b, "SASL_PLAINTEXT"))
        try:
            assert w.call(17, 1, mechanism="PLAIN").error_code == E.NONE
            r = w.call(36, 2, auth_bytes=b"\0alice\0alice-secret")
            assert (r.error_code, r.session_lifetime_ms) == (E.NONE, 60000)
            assert w.call(3, 12, topics=[]).brokers
            # re-authenticate on the same connection, same mechanism and principal
            assert w.call(17, 1, mechanism="PLAIN").error_code == E.NONE
            assert w.call(36, 2, auth_bytes=b"\0alice\0alice-secret").session_lifetime_ms == 60000
            assert w.call(3, 12, topics=[]).brokers
            # again within the second: not a re-authentication (Kafka: once a second at most)
            assert w.call(17, 1, mechanism="PLAIN").error_code == E.ILLEGAL_SASL_STATE
            assert w.call(3, 12, topics=[]).brokers
        finally:
            w.close()
        w = Wire(_address(b, "SASL_PLAINTEXT"))
        try:  # re-authentication as another principal is refused
            w.call(17, 1, mechanism="PLAIN")
            assert w.call(36, 2, auth_bytes=b"\0alice\0alice-secret").error_code == E.NONE
            assert w.call(17, 1, mechanism="PLAIN").error_code == E.NONE
            r = w.call(36, 2, auth_bytes=b"\0admin\0admin-secret")
            assert (r.error_code, r.error_message) == (
                E.SASL_AUTHENTICATION_FAILED,
                "Cannot change principals during re-authentication from User:alice: User:admin")
            assert _closed(w)
        finally:
            w.close()


def test_connections_max_reauth_ms_per_mechanism() -> None:
    """Kafka's listener.name.<l>.<mechanism>.connections.max.reauth.ms overrides the listener's value."""
    config = sasl_config(**{"listener.name.sasl_plaintext.connections.max.reauth.ms": "60000",
                            "listener.name.sasl_plaintext.plain.connections.max.reauth.ms": "30000"})
    with BrokerThread(config) as b:
        addr = _address(b, "SASL_PLAINTEXT")
        w = Wire(addr)
        try:
            w.call(17, 1, mechanism="PLAIN")
            assert w.call(36, 2, auth_bytes=b"\0alice\0alice-secret").session_lifetime_ms == 30000
        finally:
            w.close()
        admin = Wire(_address(b, "PLAINTEXT"))
        try:
            assert _upsert(admin, "sam", "sam-secret").results[0].error_code == E.NONE
        finally:
            admin.close()
        w = Wire(addr)
        try:  # SCRAM has no override: the listener's value
            assert _authenticate_scram(w, "SCRAM-SHA-256", "sam", "sam-secret").session_lifetime_ms == 60000
        finally:
            w.close()


def test_a_request_after_the_session_expired_closes_the_connection() -> None:
    config = sasl_config(**{"connections.max.reauth.ms": "300"})
    with BrokerThread(config) as b:
        w = Wire(_address(b, "SASL_PLAINTEXT"))
        try:
            w.call(17, 1, mechanism="PLAIN")
            assert w.call(36, 2, auth_bytes=b"\0alice\0alice-secret").session_lifetime_ms == 300

            def closed_on_request() -> bool:
                try:
                    w.call(18, 3, client_software_name="t", client_software_version="1")
                except ConnectionError:
                    return True
                return False

            assert wait_until(closed_on_request, timeout=30)
        finally:
            w.close()


# -- SASL_SSL --------------------------------------------------------------------------------------


def test_sasl_ssl_with_scram_and_confluent(certs) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    config = ssl_listener_config(certs, listener="SASL_SSL")
    config.update({"listeners": "SASL_SSL://127.0.0.1:0", "sasl.enabled.mechanisms": MECHANISMS,
                   "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS})
    with BrokerThread(config) as b:
        common = {"bootstrap.servers": b.bootstrap_servers, "security.protocol": "SASL_SSL",
                  "ssl.ca.location": str(certs.ca)}
        admin = AdminClient({**common, "sasl.mechanism": "PLAIN", "sasl.username": "admin",
                             "sasl.password": "admin-secret"})
        futures = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "tls-user", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"tls-pw")])
        assert futures["tls-user"].result(30) is None
        p = Producer({**common, "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "tls-user",
                      "sasl.password": "tls-pw"})
        p.produce("over-sasl-ssl", b"x")
        assert p.flush(30) == 0
        assert "User:tls-user" in _principals(b, "SASL_SSL")
        # and a TLS client that skips the SASL handshake is closed
        host, port = b.bootstrap_servers.rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        sock = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname="localhost")
        try:
            from kbroker_protocol.api import encode_request
            from kbroker_protocol.messages import RequestHeader
            payload = encode_request(RequestHeader(request_api_key=3, request_api_version=12, correlation_id=1,
                                                   client_id="x"), REQUESTS[3](topics=[]))
            sock.sendall(struct.pack(">i", len(payload)) + payload)
            assert sock.recv(1) == b""
        finally:
            sock.close()


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"sasl.enabled.mechanisms": None}, "SASL mechanism GSSAPI in sasl.enabled.mechanisms is not supported"),
    ({"sasl.enabled.mechanisms": "PLAIN,OAUTHBEARER"},
     "Listener SASL_PLAINTEXT enables OAUTHBEARER but has no JAAS configuration"),
    ({"listener.name.sasl_plaintext.plain.sasl.jaas.config": None},
     "Listener SASL_PLAINTEXT enables PLAIN but has no JAAS configuration"),
    ({"listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS.rstrip(";")},
     "JAAS config entry not terminated by semi-colon"),
    ({"listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS + PLAIN_JAAS},
     "JAAS config property contains 2 login modules, should be 1 module"),
    ({"listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT,X:KERBEROS"},
     "Invalid security protocol `KERBEROS` defined in listener.security.protocol.map"),
    ({"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT"},
     "No security protocol defined for listener SASL_PLAINTEXT"),
    ({"listener.security.protocol.map": "SASL_PLAINTEXT"},
     "Error parsing configuration property 'listener.security.protocol.map'"),
])
def test_bad_sasl_settings_stop_start_up(changes, message) -> None:
    assert message in start_up_error(sasl_config(), changes)


def test_per_listener_settings_and_several_sasl_listeners() -> None:
    other_jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required user_bob="bob-secret";')
    config = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,CLIENTS://127.0.0.1:0",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CLIENTS:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.clients.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.clients.plain.sasl.jaas.config": other_jaas,
    }
    with BrokerThread(config) as b:
        for listener, mechanisms, user, password in (("SASL_PLAINTEXT", ["PLAIN"], "alice", "alice-secret"),
                                                     ("CLIENTS", ["PLAIN", "SCRAM-SHA-256"], "bob", "bob-secret")):
            w = Wire(_address(b, listener))
            try:
                assert w.call(17, 1, mechanism="PLAIN").mechanisms == mechanisms
                assert w.call(36, 2, auth_bytes=f"\0{user}\0{password}".encode()).error_code == E.NONE
            finally:
                w.close()
        w = Wire(_address(b, "CLIENTS"))
        try:  # alice is a user of the other listener only
            w.call(17, 1, mechanism="PLAIN")
            assert w.call(36, 2, auth_bytes=b"\0alice\0alice-secret").error_code == E.SASL_AUTHENTICATION_FAILED
        finally:
            w.close()


# -- the JAAS line ---------------------------------------------------------------------------------


def test_jaas_line_is_read_as_kafkas_jaasconfig() -> None:
    entry = server_entry(
        'org.apache.kafka.common.security.plain.PlainLoginModule required /* a comment */\n'
        'username="admin" password="a;b=c" // another\n'
        "user_admin=\"a;b=c\" user_x-y='q\\\"uote' user_plain=bare-word$1;")
    assert entry.flag == "REQUIRED"
    assert plain_users(entry) == {"admin": "a;b=c", "x-y": 'q"uote', "plain": "bare-word$1"}
    for bad, message in (("", "Login module not specified in JAAS config"),
                         ("M", "Login module control flag not specified in JAAS config"),
                         ("M sometimes;", "Invalid login module control flag 'sometimes' in JAAS config"),
                         ("M required user_a=123;", "Value not specified for key 'user_a' in JAAS config"),
                         ("M required user_a;", "Value not specified for key 'user_a' in JAAS config")):
        with pytest.raises(JaasError, match=message):
            parse_jaas(bad)


def test_librdkafka_re_authenticates_before_its_session_expires() -> None:
    """KIP-368 with a real client: librdkafka (SaslAuthenticate v1+) re-authenticates each
    connection before the session lifetime the broker sent runs out, so a producer keeps working
    across several lifetimes; the broker counts the re-authentications."""
    from confluent_kafka import Producer

    config = sasl_config(**{"listener.name.sasl_plaintext.connections.max.reauth.ms": "1500"})
    with BrokerThread(config) as b:
        p = Producer({"bootstrap.servers": _address(b, "SASL_PLAINTEXT"), "security.protocol": "SASL_PLAINTEXT",
                      "sasl.mechanisms": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret"})
        assert produce_through_reauthentications(b, p, f"reauth-{uuid.uuid4().hex[:6]}") == []
        # every connection still open is alice's: none was closed for an expired session and
        # replaced without re-authenticating
        assert _principals(b) == {"User:alice"}
