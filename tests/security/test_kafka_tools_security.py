"""Kafka 4.4's own tools (the Java client) against kbroker's security: ``kafka-configs --alter
--add-config 'SCRAM-SHA-256=[...]' --entity-type users`` makes users other clients then log in
as, and the tools themselves connect over SASL_PLAINTEXT (PLAIN, SCRAM) and SASL_SSL."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from security_helpers import ssl_listener_config
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from tests.security.kafka_tools_helpers import client_properties, tool

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              'password="admin-secret" user_admin="admin-secret";')


@pytest.fixture(scope="module")
def broker(certs) -> Iterator[BrokerThread]:
    config = ssl_listener_config(certs, listener="SASL_SSL")
    config.update({
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "sasl.jaas.config": PLAIN_JAAS,  # both listeners' PLAIN users
    })
    with BrokerThread(config) as b:
        yield b


def _address(b: BrokerThread, listener: str) -> str:
    host, port = b.broker.listener_endpoint(listener)
    return f"{host}:{port}"


def _scram_login(address: str, mechanism: str, user: str, password: str) -> int:
    """SaslAuthenticate's answer to a full SCRAM exchange at the wire (its error code)."""
    import base64
    import hashlib
    import hmac

    digest = "sha256" if mechanism == "SCRAM-SHA-256" else "sha512"
    w = Wire(address)
    try:
        w.call(17, 1, mechanism=mechanism)
        bare = f"n={user},r=toolnonce"
        first = w.call(36, 2, auth_bytes=("n,," + bare).encode())
        if first.error_code:
            return first.error_code
        attrs = dict(x.split("=", 1) for x in first.auth_bytes.decode().split(","))
        salted = hashlib.pbkdf2_hmac(digest, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        key = hmac.new(salted, b"Client Key", digest).digest()
        final_bare = f"c=biws,r={attrs['r']}"
        auth = f"{bare},{first.auth_bytes.decode()},{final_bare}".encode()
        sig = hmac.new(hashlib.new(digest, key).digest(), auth, digest).digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(key, sig, strict=True))).decode()
        return w.call(36, 2, auth_bytes=f"{final_bare},p={proof}".encode()).error_code
    finally:
        w.close()


def test_kafka_configs_adds_and_deletes_scram_users(broker, certs, tmp_path) -> None:
    sasl = _address(broker, "SASL_PLAINTEXT")
    admin = client_properties(tmp_path / "admin.properties", **{
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required '
                            'username="admin" password="admin-secret";'})
    user = f"tool-{uuid.uuid4().hex[:6]}"
    def add(config: str, ok: bool = True) -> subprocess.CompletedProcess:
        return tool("ConfigCommand", "--bootstrap-server", sasl, "--command-config", admin, "--alter",
                    "--add-config", config, "--entity-type", "users", "--entity-name", user, ok=ok)

    # Two mechanisms of one user in one request: refused, as Kafka 4.4's controller does (checked
    # against Apache Kafka 4.4.0: DuplicateResourceException), and nothing is written.
    res = add("SCRAM-SHA-256=[iterations=8192,password=tool-secret],SCRAM-SHA-512=[password=x512]", ok=False)
    assert res.returncode == 1
    assert ("DuplicateResourceException: A user credential cannot be altered twice in the same request"
            in res.stdout + res.stderr)
    assert _scram_login(sasl, "SCRAM-SHA-256", user, "tool-secret") == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert add("SCRAM-SHA-256=[iterations=8192,password=tool-secret]").stdout.strip() == (
        f"Completed updating config for user {user}.")
    assert add("SCRAM-SHA-512=[password=x512]").stdout.strip() == f"Completed updating config for user {user}."
    assert _scram_login(sasl, "SCRAM-SHA-256", user, "tool-secret") == ErrorCode.NONE
    assert _scram_login(sasl, "SCRAM-SHA-256", user, "wrong") == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert _scram_login(sasl, "SCRAM-SHA-512", user, "x512") == ErrorCode.NONE

    # The Java client logs in with the user it made (SCRAM over SASL_PLAINTEXT, then SASL_SSL).
    scram = client_properties(tmp_path / "scram.properties", **{
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                            f'username="{user}" password="tool-secret";'})
    topic = f"tool-topic-{uuid.uuid4().hex[:6]}"
    res = tool("TopicCommand", "--bootstrap-server", sasl, "--command-config", scram, "--create", "--topic", topic,
               "--partitions", "1", "--replication-factor", "1")
    assert res.stdout.strip() == f"Created topic {topic}."
    ssl_scram = client_properties(tmp_path / "ssl-scram.properties", **{
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "ssl.truststore.type": "PEM", "ssl.truststore.location": str(certs.ca),
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                            f'username="{user}" password="x512";'})
    res = tool("TopicCommand", "--bootstrap-server", _address(broker, "SASL_SSL"), "--command-config", ssl_scram,
               "--list")
    assert topic in res.stdout.split()

    res = tool("ConfigCommand", "--bootstrap-server", sasl, "--command-config", admin, "--alter",
               "--delete-config", "SCRAM-SHA-256", "--entity-type", "users", "--entity-name", user)
    assert res.stdout.strip() == f"Completed updating config for user {user}."
    assert _scram_login(sasl, "SCRAM-SHA-256", user, "tool-secret") == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert _scram_login(sasl, "SCRAM-SHA-512", user, "x512") == ErrorCode.NONE

    # A wrong password: the Java client reports Kafka's authentication failure.
    bad = client_properties(tmp_path / "bad.properties", **{
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                            f'username="{user}" password="nope";'})
    res = tool("TopicCommand", "--bootstrap-server", sasl, "--command-config", bad, "--list", ok=False)
    assert res.returncode != 0
    assert ("SaslAuthenticationException: Authentication failed during authentication due to invalid credentials "
            "with SASL mechanism SCRAM-SHA-512") in res.stdout + res.stderr


def test_kafka_acls_against_the_standard_authorizer(tmp_path) -> None:
    config = {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "PLAIN",
              "sasl.jaas.config": PLAIN_JAAS.replace(";", ' user_alice="alice-secret";'),
              "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
              "super.users": "User:admin"}

    def props(name: str, user: str) -> str:
        return client_properties(tmp_path / f"{name}.properties", **{
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required '
                                f'username="{user}" password="{user}-secret";'})

    with BrokerThread(config) as b:
        admin, alice = props("admin", "admin"), props("alice", "alice")
        acls = ("AclCommand", "--bootstrap-server", b.bootstrap_servers, "--command-config", admin)
        res = tool(*acls, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--operation",
                   "Describe", "--topic", "orders", "--group", "billing")
        assert "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`" \
            in res.stdout
        res = tool(*acls, "--list", "--topic", "orders")
        assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in res.stdout
        assert "(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)" in res.stdout
        # alice is no super user: she may not list ACLs
        res = tool("AclCommand", "--bootstrap-server", b.bootstrap_servers, "--command-config", alice, "--list",
                   ok=False)
        assert "ClusterAuthorizationException" in res.stdout + res.stderr
        tool(*acls, "--remove", "--force", "--allow-principal", "User:alice", "--operation", "Read", "--topic",
             "orders")
        res = tool(*acls, "--list", "--topic", "orders")
        assert "operation=READ" not in res.stdout and "operation=DESCRIBE" in res.stdout
