"""SASL PLAIN and SCRAM-SHA-256/512 with real clients (kafka-python, confluent-kafka, aiokafka), SCRAM users
made with the admin clients, and SASL_SSL with SCRAM."""

from __future__ import annotations

import socket
import ssl
import struct
import uuid

import pytest
from sasl_listener_helpers import (  # noqa: F401 (fixtures)
    MECHANISMS,
    PLAIN_JAAS,
    _principals,
    broker_fixture,
    plaintext_fixture,
    sasl_fixture,
)
from security_helpers import ssl_listener_config
from waiting import wait_until

from kbroker.testing import BrokerThread
from kbroker_protocol.messages import REQUESTS

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
