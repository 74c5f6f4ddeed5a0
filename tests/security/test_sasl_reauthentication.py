"""SASL re-authentication (KIP-368): session lifetimes, connections.max.reauth.ms per mechanism, an expired
session closing the connection, and librdkafka re-authenticating before its session expires."""

from __future__ import annotations

import uuid

from sasl_listener_helpers import (  # noqa: F401 (fixtures)
    _address,
    _authenticate_scram,
    _closed,
    _principals,
    _upsert,
    broker_fixture,
    sasl_config,
    sasl_fixture,
)
from security_helpers import produce_through_reauthentications
from waiting import wait_until
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode

E = ErrorCode


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
