"""The console's login on a broker whose only SASL listener is SASL_SSL: the console's own Kafka
connections make a TLS handshake trusting the listener's ``ssl.truststore.*`` (as the broker's
inter-node client), then authenticate as the user who logs in."""

from __future__ import annotations

import pytest

from kbroker.security import acls as A
from kbroker.testing import BrokerThread
from kbroker.testing.certs import make_ca, make_server_store
from tests.console.helpers import login, page_call

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" '
        'user_alice="alice-secret";')


def _config(ca, store) -> dict[str, str]:
    return {
        "listeners": "SASL_SSL://127.0.0.1:0",
        "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
        "listener.name.sasl_ssl.ssl.keystore.location": str(store),
        "listener.name.sasl_ssl.ssl.truststore.type": "PEM",
        "listener.name.sasl_ssl.ssl.truststore.location": str(ca),
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": A.STANDARD_AUTHORIZER,
        "super.users": "User:admin",
        "connection.failed.authentication.delay.ms": "0",
        "kbroker.http.listeners": "http://127.0.0.1:0",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
    }


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    ca, store = make_server_store(tmp_path_factory.mktemp("console-tls"))
    with BrokerThread(_config(ca, store)) as b:
        yield b


@pytest.fixture(scope="module")
def base(broker) -> str:
    return broker.broker.metrics.http.url


def test_login_through_the_sasl_ssl_listener(base) -> None:
    status, data, _ = page_call(base, "/api/session")
    assert status == 200 and data["login_required"] is True
    assert data["mechanisms"] == ["SCRAM-SHA-512", "PLAIN"]
    assert page_call(base, "/api/topics")[0] == 401
    status, data, headers = page_call(base, "/api/login", {"username": "alice", "password": "wrong", "mechanism": "PLAIN"})
    assert status == 401 and "Set-Cookie" not in headers
    assert "Invalid username or password" in data["error"]  # the broker's SASL server answered, over TLS

    admin = login(base, "admin", "admin-secret", "PLAIN")
    assert page_call(base, "/api/session", cookie=admin)[1]["principal"] == "User:admin"
    status, data, _ = page_call(base, "/api/topics", {"name": "over-tls", "partitions": 1}, cookie=admin)
    assert status == 200, data
    assert "over-tls" in [t["name"] for t in page_call(base, "/api/topics", cookie=admin)[1]["topics"]]
    alice = login(base, "alice", "alice-secret", "PLAIN")  # authorized as alice: no DESCRIBE, not shown
    status, data, _ = page_call(base, "/api/topics", cookie=alice)
    assert status == 200 and "over-tls" not in [t["name"] for t in data["topics"]]


def test_the_console_checks_the_brokers_certificate_against_the_listeners_trust_store(tmp_path) -> None:
    """A trust store that does not hold the CA of the listener's certificate: the console's TLS
    handshake fails (it does not skip verification), and the login says so."""
    _ca, store = make_server_store(tmp_path / "server")
    other_ca = make_ca(tmp_path, "otherca")
    with BrokerThread(_config(other_ca, store)) as b:
        base = b.broker.metrics.http.url
        assert page_call(base, "/api/session")[1]["login_required"] is True
        status, data, headers = page_call(base, "/api/login", {"username": "admin", "password": "admin-secret",
                                                          "mechanism": "PLAIN"})
        assert status == 502 and "Set-Cookie" not in headers
        assert "SSL handshake failed" in data["error"] and "CERTIFICATE_VERIFY_FAILED" in data["error"]
