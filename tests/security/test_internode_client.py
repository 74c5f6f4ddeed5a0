"""The inter-node client's security (kbroker/security/client.py, sasl_client.py, inbound.py): SCRAM
and PLAIN exchanges against kbroker's server side, the client settings read from the listener's
keys, and the errors of bad settings."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from kbroker.config import BrokerConfig, ConfigError
from kbroker.security.client import (
    AuthenticationError,
    ClientSecurity,
    controller_client_security,
    inter_broker_client_security,
    open_connection,
)
from kbroker.security.inbound import authenticate_inbound
from kbroker.security.listeners import ListenerSecurity
from kbroker.security.sasl_client import ScramClient
from kbroker.security.scram import (
    MECHANISMS_BY_NAME,
    SaslFailure,
    ScramCredentials,
    ScramServer,
    credential_from_salted,
    salted_password,
)

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"


def _credentials(user: str, password: str) -> ScramCredentials:
    creds = ScramCredentials()
    for mechanism in MECHANISMS_BY_NAME.values():
        salt = os.urandom(16)
        creds.credentials[(user, mechanism.type)] = credential_from_salted(
            mechanism, salt, salted_password(mechanism, password, salt, 4096), 4096)
    return creds


@pytest.mark.parametrize("name", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_client_against_kbroker_server(name):
    mechanism = MECHANISMS_BY_NAME[name]
    creds = _credentials("node", "s3cret")
    server = ScramServer(mechanism, creds)
    client = ScramClient(mechanism, "node", "s3cret")
    server_first = server.evaluate(client.first())
    server_final = server.evaluate(client.final(server_first))
    client.verify(server_final)
    assert server.complete and server.authorization_id == "node"

    wrong = ScramClient(mechanism, "node", "nope")
    server = ScramServer(mechanism, creds)
    first = server.evaluate(wrong.first())
    with pytest.raises(SaslFailure):
        server.evaluate(wrong.final(first))


def test_scram_client_refuses_a_server_that_does_not_know_the_password():
    mechanism = MECHANISMS_BY_NAME["SCRAM-SHA-256"]
    client2 = ScramClient(mechanism, "node", "s3cret", nonce="abc")
    client2.first()
    salt = base64.b64encode(b"salt").decode()
    client2.final(f"r=abcdef,s={salt},i=4096".encode())
    with pytest.raises(AuthenticationError, match="Sasl server signature verification failed"):
        client2.verify(b"v=" + base64.b64encode(b"x" * 32))
    client3 = ScramClient(mechanism, "node", "s3cret", nonce="abc")
    client3.first()
    with pytest.raises(AuthenticationError, match="does not start with client nonce"):
        client3.final(f"r=xyz,s={salt},i=4096".encode())
    with pytest.raises(AuthenticationError, match="Requested iterations 1000 is less than minimum 4096"):
        client3.final(f"r=abcd,s={salt},i=1000".encode())


async def _serve_once(security: ListenerSecurity, creds: ScramCredentials, results: list):
    async def handle(reader, writer):
        results.append(await authenticate_inbound(reader, writer, security, creds, lambda frame: None))
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_plaintext_exchange_with_the_inbound_authenticator(mechanism):
    security = ListenerSecurity("CONTROLLER", "SASL_PLAINTEXT", sasl_mechanisms=["PLAIN", "SCRAM-SHA-256",
                                                                                "SCRAM-SHA-512"],
                                plain_users={"node": "s3cret"}, failed_auth_delay_ms=0)
    results: list = []
    server = await _serve_once(security, _credentials("node", "s3cret"), results)
    port = server.sockets[0].getsockname()[1]
    try:
        good = ClientSecurity("CONTROLLER", "SASL_PLAINTEXT", mechanism=mechanism, username="node", password="s3cret")
        _reader, writer = await open_connection("127.0.0.1", port, good, client_id="t")
        writer.close()
        bad = ClientSecurity("CONTROLLER", "SASL_PLAINTEXT", mechanism=mechanism, username="node", password="wrong")
        with pytest.raises(AuthenticationError) as info:
            await open_connection("127.0.0.1", port, bad, client_id="t")
        if mechanism == "PLAIN":
            assert str(info.value) == "Authentication failed: Invalid username or password"
        else:
            assert str(info.value) == ("Authentication failed during authentication due to invalid credentials "
                                       f"with SASL mechanism {mechanism}")
        assert isinstance(info.value, ConnectionError)  # the callers retry it as a broken connection
        await asyncio.sleep(0)
    finally:
        server.close()
        await server.wait_closed()
    assert results[0] == "User:node" and results[1] is None


async def test_unsupported_mechanism_names_the_enabled_ones():
    security = ListenerSecurity("CONTROLLER", "SASL_PLAINTEXT", sasl_mechanisms=["PLAIN"],
                                plain_users={"node": "s3cret"}, failed_auth_delay_ms=0)
    server = await _serve_once(security, ScramCredentials(), [])
    port = server.sockets[0].getsockname()[1]
    try:
        sec = ClientSecurity("CONTROLLER", "SASL_PLAINTEXT", mechanism="SCRAM-SHA-256", username="n", password="p")
        with pytest.raises(AuthenticationError, match=r"Client SASL mechanism 'SCRAM-SHA-256' not enabled in the "
                                                      r"server, enabled mechanisms are \[PLAIN\]"):
            await open_connection("127.0.0.1", port, sec, client_id="t")
    finally:
        server.close()
        await server.wait_closed()


BASE = {"process.roles": "broker,controller", "node.id": "1", "controller.quorum.voters": "1@127.0.0.1:9093",
        "controller.listener.names": "CONTROLLER", "log.dirs": "/tmp/unused-kbroker-test"}


def _config(**extra: str) -> BrokerConfig:
    props = dict(BASE, listeners="PLAINTEXT://127.0.0.1:9092,INTERNAL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093",
                 **{"inter.broker.listener.name": "INTERNAL",
                    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT,"
                                                      "CONTROLLER:SASL_PLAINTEXT"})
    props.update(extra)
    return BrokerConfig(props, warn=False)


def test_client_settings_from_the_listener_keys():
    config = _config(**{
        "listener.name.internal.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.internal.scram-sha-512.sasl.jaas.config": f'{SCRAM} required username="b" password="pb";',
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config":
            f'{PLAIN} required username="c" password="pc" user_c="pc";',
    })
    ib = inter_broker_client_security(config)
    assert (ib.listener, ib.protocol, ib.mechanism, ib.username, ib.password) == \
        ("INTERNAL", "SASL_PLAINTEXT", "SCRAM-SHA-512", "b", "pb")
    ctl = controller_client_security(config)
    assert (ctl.listener, ctl.mechanism, ctl.username, ctl.password) == ("CONTROLLER", "PLAIN", "c", "pc")


def test_bad_client_settings_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match="sasl.mechanism.inter.broker.protocol must be included in "
                                          "sasl.enabled.mechanisms when SASL is used for inter-broker communication"):
        inter_broker_client_security(_config(**{"sasl.mechanism.inter.broker.protocol": "PLAIN"}))
    plain = {"listener.name.internal.sasl.enabled.mechanisms": "PLAIN"}
    with pytest.raises(ConfigError, match="GSSAPI is Kafka's default: set sasl.mechanism.inter.broker.protocol"):
        inter_broker_client_security(_config(**{"listener.name.internal.sasl.enabled.mechanisms": "GSSAPI"}))
    with pytest.raises(ConfigError, match="listener.name.internal.plain.sasl.jaas.config"):
        inter_broker_client_security(_config(**plain, **{"sasl.mechanism.inter.broker.protocol": "PLAIN"}))
    with pytest.raises(ConfigError, match="has no username and password"):
        inter_broker_client_security(_config(**plain, **{
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.internal.plain.sasl.jaas.config": f'{PLAIN} required user_b="pb";'}))
    with pytest.raises(ConfigError, match="Only one of inter.broker.listener.name and security.inter.broker.protocol "
                                          "should be set."):
        _config(**{"security.inter.broker.protocol": "SASL_PLAINTEXT"})


def test_security_inter_broker_protocol_names_the_listener():
    config = BrokerConfig(dict(BASE, **{
        "listeners": "SASL_PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "security.inter.broker.protocol": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256",
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config":
            f'{SCRAM} required username="b" password="pb";'}), warn=False)
    ib = inter_broker_client_security(config)
    assert (ib.listener, ib.protocol, ib.mechanism) == ("SASL_PLAINTEXT", "SASL_PLAINTEXT", "SCRAM-SHA-256")
    assert controller_client_security(config).protocol == "PLAINTEXT"


def test_a_final_nonce_that_repeats_the_client_nonce_is_refused_as_kafka_does():
    """librdkafka 2.0.2 (Debian's, kcat's) sends ``r=<client nonce><server-first nonce>`` in its
    client-final message, the client nonce twice; Kafka 4.4 refuses it ("Invalid client nonce in the
    final client message.", seen against the reference Kafka with kcat; the librdkafka suite's SCRAM
    runs fail on both brokers, compat/suites/LIBRDKAFKA.md), and so does kbroker."""
    mechanism = MECHANISMS_BY_NAME["SCRAM-SHA-256"]
    server = ScramServer(mechanism, _credentials("node", "s3cret"))
    client = ScramClient(mechanism, "node", "s3cret", nonce="cnonce")
    server_first = server.evaluate(client.first())
    final = client.final(server_first).decode()
    full_nonce = server_first.decode().split(",")[0][2:]
    doubled = final.replace(f"r={full_nonce}", f"r=cnonce{full_nonce}")
    with pytest.raises(SaslFailure, match="Invalid client nonce in the final client message."):
        server.evaluate(doubled.encode())
    assert not server.complete
