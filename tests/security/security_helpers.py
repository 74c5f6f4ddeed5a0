"""Helpers of the security tests: certificates made with the openssl CLI (never committed), the
broker settings of a TLS listener, those of a SASL/PLAIN broker with Kafka's StandardAuthorizer
(the ACL tests), and checks shared by several modules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until
from wire import Wire, create_topic, plain_login

from kbroker.errors import StartupError
from kbroker.security import acls as A
from kbroker.testing import BrokerThread
from kbroker.testing.certs import SERVER_EXT, make_ca, make_leaf, openssl
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

KEY_PASSWORD = "key-secret"


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path  # CA certificate (PEM)
    server_cert: Path
    server_key: Path  # unencrypted PKCS#8
    server_key_encrypted: Path  # PKCS#8 encrypted with KEY_PASSWORD
    server_store: Path  # key + chain in one PEM file (ssl.keystore.location)
    client_cert: Path
    client_key: Path
    client_dn: str  # the client certificate's subject as Java's X500Principal.getName() writes it
    other_ca: Path  # a CA that signed nothing here
    other_client_cert: Path
    other_client_key: Path

    def text(self, path: Path) -> str:
        return path.read_text()


def make_certs(d: Path) -> Certs:
    make_ca(d, "ca")
    make_ca(d, "otherca")
    make_leaf(d, "server", "ca", "/CN=localhost", SERVER_EXT)
    make_leaf(d, "client", "ca", "/C=US/O=Kbroker, Inc./OU=eng/CN=Alice Client",
              "extendedKeyUsage=clientAuth\n")
    make_leaf(d, "otherclient", "otherca", "/CN=intruder", "extendedKeyUsage=clientAuth\n")
    openssl("pkcs8", "-topk8", "-in", "server.key", "-out", "server-enc.key", "-v2", "aes-256-cbc",
             "-passout", f"pass:{KEY_PASSWORD}", cwd=d)
    (d / "server-store.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text()
                                        + (d / "ca.pem").read_text())
    return Certs(d, d / "ca.pem", d / "server.pem", d / "server.key", d / "server-enc.key", d / "server-store.pem",
                 d / "client.pem", d / "client.key", "CN=Alice Client,OU=eng,O=Kbroker\\, Inc.,C=US",
                 d / "otherca.pem", d / "otherclient.pem", d / "otherclient.key")


def ssl_listener_config(certs: Certs, listener: str = "SSL", client_auth: str = "none", **extra: str) -> dict[str, str]:
    """A broker with one TLS listener (inline PEM key store, PEM trust store file)."""
    prefix = f"listener.name.{listener.lower()}."
    config = {
        "listeners": f"{listener}://127.0.0.1:0",
        prefix + "ssl.keystore.type": "PEM",
        prefix + "ssl.keystore.certificate.chain": certs.text(certs.server_cert) + certs.text(certs.ca),
        prefix + "ssl.keystore.key": certs.text(certs.server_key),
        prefix + "ssl.truststore.type": "PEM",
        prefix + "ssl.truststore.location": str(certs.ca),
        prefix + "ssl.client.auth": client_auth,
    }
    config.update(extra)
    return config


# -- a broker with an authorizer (the ACL tests) ----------------------------------------------------

# Each user's password is ``<user>-secret``; admin is a super user.
ACL_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" '
            'user_alice="alice-secret" user_bob="bob-secret";')


def acl_config(**extra: str) -> dict[str, str]:
    """A broker with one SASL_PLAINTEXT listener (PLAIN: admin, alice, bob), the StandardAuthorizer
    and admin as its super user."""
    config = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.jaas.config": ACL_JAAS,
        "authorizer.class.name": A.STANDARD_AUTHORIZER,
        "super.users": "User:admin",
        "connection.failed.authentication.delay.ms": "0",
    }
    config.update(extra)
    return config


def login(broker: BrokerThread, user: str) -> Wire:
    """A connection to ``broker`` authenticated as ``user`` (SASL/PLAIN, password ``<user>-secret``)."""
    return plain_login(broker.bootstrap_servers, user)


def client_config(broker: BrokerThread, user: str, **extra: Any) -> dict[str, Any]:
    """A confluent-kafka client's settings to connect to ``broker`` as ``user`` (SASL/PLAIN)."""
    return {"bootstrap.servers": broker.bootstrap_servers, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": f"{user}-secret", **extra}


def allow(resource_type: int, name: str, principal: str, operation: int) -> Any:
    """The CreateAcls creation of an ALLOW ACL on a literal resource name, from any host."""
    return REQUESTS[30].AclCreation(resource_type=resource_type, resource_name=name,
                                    resource_pattern_type=A.LITERAL, principal=principal, host="*",
                                    operation=operation, permission_type=A.ALLOW)


def grant(broker: BrokerThread, *creations: Any, topics: tuple[str, ...] = ()) -> None:
    """As admin (a super user): create ``topics`` (one partition each), then the ACLs ``creations``
    (see ``allow``); each must succeed."""
    admin = login(broker, "admin")
    try:
        for name in topics:
            create_topic(admin, name)
        if creations:
            r = admin.call(30, 3, creations=list(creations))
            assert [x.error_code for x in r.results] == [ErrorCode.NONE] * len(creations)
    finally:
        admin.close()


def produce_through_reauthentications(broker: BrokerThread, producer: Any, topic: str, times: int = 3) -> list[Any]:
    """Produce to ``topic`` with the (confluent-kafka) ``producer`` until one of ``broker``'s
    connections has re-authenticated ``times`` times (KIP-368), then flush it all; the delivery
    errors."""
    errors: list[Any] = []

    def reauthenticated() -> bool:
        producer.produce(topic, b"x", on_delivery=lambda err, msg: errors.append(err) if err else None)
        producer.poll(0.05)
        counts = broker.call(lambda: [c.authenticator.reauthentications for c in broker.broker.connections
                                      if c.authenticator is not None and not c.closed])
        return max(counts, default=0) >= times

    wait_until(reauthenticated, timeout=60, message=f"{times} re-authentications on one connection")
    assert producer.flush(30) == 0
    return errors


def start_up_error(config: dict[str, str], changes: dict[str, str | None]) -> str:
    """What stops a broker of ``config`` with ``changes`` (a None value removes the key) from
    starting: the message of its StartupError or ValueError (the test fails if it starts)."""
    config = dict(config)
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    with pytest.raises((StartupError, ValueError)) as info:
        BrokerThread(config).start()
    return str(info.value)
