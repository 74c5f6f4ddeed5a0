"""SSL listeners: real clients (kafka-python, confluent-kafka, aiokafka) produce and consume over
TLS; client certificates give the principal (Kafka's DN format, ssl.principal.mapping.rules); the
ssl.* keys are checked as Kafka checks them."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import uuid

import pytest
from security_helpers import KEY_PASSWORD, Certs, ssl_listener_config, start_up_error
from waiting import wait_until

from kbroker.errors import StartupError
from kbroker.security.tls import PrincipalMapper, distinguished_name
from kbroker.testing import BrokerThread
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.messages import REQUESTS, RequestHeader


def _principals(b: BrokerThread) -> list[str]:
    return b.call(lambda: sorted(c.principal for c in b.broker.connections if not c.closed))


def _client_ctx(certs: Certs, cert: bool = True, **kw) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if cert:
        ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def _api_versions_over(sock: socket.socket) -> object:
    header = RequestHeader(request_api_key=18, request_api_version=0, correlation_id=7, client_id="tls-test")
    payload = encode_request(header, REQUESTS[18]())
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    data = b""
    while len(data) < 4:
        chunk = sock.recv(4 - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    (size,) = struct.unpack(">i", data)
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return decode_response(body, 18, 0)[1]


def _tls_api_versions(bootstrap: str, ctx: ssl.SSLContext) -> tuple[object, ssl.SSLSocket]:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    return _api_versions_over(sock), sock


# -- real clients --------------------------------------------------------------------------------


def test_kafka_python_over_ssl_with_client_certificate_gives_the_dn_principal(certs) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    ssl_args = dict(security_protocol="SSL", ssl_cafile=str(certs.ca), ssl_certfile=str(certs.client_cert),
                    ssl_keyfile=str(certs.client_key))
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    with BrokerThread(ssl_listener_config(certs, client_auth="required")) as b:
        producer = KafkaProducer(bootstrap_servers=b.bootstrap_servers, **ssl_args)
        try:
            for i in range(10):
                producer.send(topic, f"m{i}".encode()).get(30)
            # Kafka's DEFAULT rule: the subject as X500Principal.getName() writes it
            assert wait_until(lambda: _principals(b)) == [f"User:{certs.client_dn}"]
        finally:
            producer.close()
        consumer = KafkaConsumer(topic, bootstrap_servers=b.bootstrap_servers, auto_offset_reset="earliest",
                                 consumer_timeout_ms=15000, **ssl_args)
        try:
            got = [m.value for _, m in zip(range(10), consumer, strict=False)]
        finally:
            consumer.close()
        assert got == [f"m{i}".encode() for i in range(10)]


def test_confluent_over_ssl_without_client_auth_is_anonymous_and_fetches_big_batches(certs) -> None:
    """Large fetches over TLS: the segment bytes are copied through the TLS transport (sendfile on
    the raw socket would put plaintext into the TLS stream and the client would fail)."""
    from confluent_kafka import Consumer, Producer

    topic = f"tls-{uuid.uuid4().hex[:8]}"
    with BrokerThread(ssl_listener_config(certs)) as b:
        conf = {"bootstrap.servers": b.bootstrap_servers, "security.protocol": "SSL",
                "ssl.ca.location": str(certs.ca)}
        producer = Producer({**conf, "linger.ms": 5})
        values = [bytes([i % 251]) * 50_000 for i in range(60)]  # 3 MB: fetches far above sendfile's floor
        for v in values:
            producer.produce(topic, v)
        assert producer.flush(30) == 0
        assert wait_until(lambda: _principals(b)) == ["User:ANONYMOUS"]
        consumer = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                             "fetch.max.bytes": 4 * 1024 * 1024})
        consumer.subscribe([topic])
        got: list[bytes] = []
        try:
            def more() -> bool:
                msg = consumer.poll(0.5)
                if msg is not None:
                    assert msg.error() is None, msg.error()
                    got.append(msg.value())
                return len(got) >= len(values)
            wait_until(more, timeout=60)
        finally:
            consumer.close()
            del producer
        assert got == values


async def test_aiokafka_over_ssl_with_requested_client_auth(certs) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"tls-{uuid.uuid4().hex[:8]}"
    with BrokerThread(ssl_listener_config(certs, client_auth="requested")) as b:
        producer = AIOKafkaProducer(bootstrap_servers=b.bootstrap_servers, security_protocol="SSL",
                                    ssl_context=_client_ctx(certs))
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"with-cert")
            principals = await asyncio.to_thread(wait_until, lambda: _principals(b))
            assert principals == [f"User:{certs.client_dn}"]
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=b.bootstrap_servers, security_protocol="SSL",
                                    ssl_context=_client_ctx(certs, cert=False), auto_offset_reset="earliest")
        await consumer.start()
        try:
            msg = await asyncio.wait_for(consumer.getone(), 30)
            assert msg.value == b"with-cert"
            # requested, not required: a client without a certificate is served, as ANONYMOUS
            assert "User:ANONYMOUS" in _principals(b)
        finally:
            await consumer.stop()


# -- client authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["no-certificate", "untrusted-certificate"])
def test_required_client_auth_refuses_clients_without_a_trusted_certificate(certs, client) -> None:
    with BrokerThread(ssl_listener_config(certs, client_auth="required")) as b:
        ctx = _client_ctx(certs, cert=False)
        if client == "untrusted-certificate":
            ctx.load_cert_chain(str(certs.other_client_cert), str(certs.other_client_key))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _, sock = _tls_api_versions(b.bootstrap_servers, ctx)
            sock.close()
        response, sock = _tls_api_versions(b.bootstrap_servers, _client_ctx(certs))  # a good client still is
        sock.close()
        assert response.error_code == 0


def test_principal_mapping_rules_shape_the_principal(certs) -> None:
    rules = r"RULE:^CN=([^,]*),OU=eng,.*$/$1/L,DEFAULT"
    config = ssl_listener_config(certs, client_auth="required", **{"ssl.principal.mapping.rules": rules})
    with BrokerThread(config) as b:
        _, sock = _tls_api_versions(b.bootstrap_servers, _client_ctx(certs))
        try:
            assert wait_until(lambda: _principals(b)) == ["User:alice client"]
        finally:
            sock.close()


def test_dn_is_written_as_javas_x500principal() -> None:
    # From a certificate whose subject Java's X500Principal.getName() wrote as the expected string.
    subject = ((("countryName", "US"),), (("stateOrProvinceName", "Some State"),), (("localityName", "Town"),),
               (("organizationName", "Org, Inc."),), (("organizationalUnitName", "eng"),),
               (("commonName", 'a=b#c<d>e;f"g\\h '),), (("emailAddress", "me@ex.com"),),
               (("domainComponent", "ex"),), (("userId", "u1"),))
    assert distinguished_name(subject) == (
        'UID=u1,DC=ex,1.2.840.113549.1.9.1=#16096d654065782e636f6d,CN=a\\=b\\#c\\<d\\>e\\;f\\"g\\\\h\\ ,'
        "OU=eng,O=Org\\, Inc.,L=Town,ST=Some State,C=US")


def test_principal_mapper_follows_kafkas_rules() -> None:
    mapper = PrincipalMapper(", ".join([
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
        "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
        "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
        "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
        "DEFAULT",
    ]))
    assert mapper.name("CN=Duke,OU=ServiceUsers,O=Org,C=US") == "duke"
    assert mapper.name("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US") == "duke@sme"
    assert mapper.name("cn=duke,ou=sme,dc=mycp,dc=com") == "DUKE@SME"
    assert mapper.name("cN=duke,OU=JavaSoft,O=Sun Microsystems") == "DUKE"
    assert mapper.name("OU=JavaSoft,O=Sun Microsystems,C=US") == "OU=JavaSoft,O=Sun Microsystems,C=US"
    comma = PrincipalMapper("RULE:^CN=((\\\\, *|\\w)+)(,.*|$)/$1/,DEFAULT")
    assert comma.name("CN=Tkac\\, Adam,OU=ITZ,DC=geodis,DC=cz") == "Tkac\\, Adam"
    assert len(PrincipalMapper(",,RULE://,,,DEFAULT,,").rules) == 2
    with pytest.raises(LookupError):
        PrincipalMapper("RULE:^CN=x$/y/").name("CN=z")


@pytest.mark.parametrize("rules", [
    "default", "DEFAUL", "DEFAULT/L", "DEFAULT/U", "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
    "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/", "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/L", "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
])
def test_invalid_principal_mapping_rules_stop_start_up(certs, rules) -> None:
    config = ssl_listener_config(certs, **{"ssl.principal.mapping.rules": rules})
    with pytest.raises(StartupError, match="ssl.principal.mapping.rules.*Invalid rule"):
        BrokerThread(config).start()


# -- key and trust stores -------------------------------------------------------------------------


def _file_store_config(certs: Certs, key_file, password: str | None) -> dict[str, str]:
    store = certs.dir / f"store-{uuid.uuid4().hex[:6]}.pem"
    store.write_text(key_file.read_text() + certs.text(certs.server_cert) + certs.text(certs.ca))
    config = {"listeners": "SSL://127.0.0.1:0", "ssl.keystore.type": "PEM", "ssl.keystore.location": str(store)}
    if password is not None:
        config["ssl.key.password"] = password
    return config


def test_encrypted_key_file_with_its_password_serves_tls(certs) -> None:
    with BrokerThread(_file_store_config(certs, certs.server_key_encrypted, KEY_PASSWORD)) as b:
        response, sock = _tls_api_versions(b.bootstrap_servers, _client_ctx(certs, cert=False))
        sock.close()
        assert response.error_code == 0


@pytest.mark.parametrize(("changes", "message"), [
    ({"ssl.keystore.type": "JKS", "ssl.keystore.location": "/x.jks", "ssl.keystore.password": "p",
      "listener.name.ssl.ssl.keystore.type": None, "listener.name.ssl.ssl.keystore.key": None, "listener.name.ssl.ssl.keystore.certificate.chain": None},
     "Key store type JKS is not supported by kbroker (ssl.keystore.type)"),
    ({"ssl.keystore.type": "PKCS12", "ssl.keystore.location": "/x.p12", "ssl.keystore.password": "p",
      "listener.name.ssl.ssl.keystore.type": None, "listener.name.ssl.ssl.keystore.key": None,
      "listener.name.ssl.ssl.keystore.certificate.chain": None},
     "Key store type PKCS12 is not supported by kbroker"),
    ({"listener.name.ssl.ssl.keystore.type": "JKS"},
     "SSL private key can be specified only for PEM, but key store type is JKS."),
    ({"listener.name.ssl.ssl.keystore.certificate.chain": None},
     "SSL private key is specified, but certificate chain is not specified."),
    ({"listener.name.ssl.ssl.keystore.location": "/tmp/x.pem"},
     "Both SSL key store location and separate private key are specified."),
    ({"listener.name.ssl.ssl.keystore.password": "p"},
     "SSL key store password cannot be specified with PEM format, only key password may be specified. "
     "(listener.name.ssl.ssl.keystore.password)"),
    ({"listener.name.ssl.ssl.truststore.type": "JKS"}, "Key store type JKS is not supported"),
    ({"listener.name.ssl.ssl.truststore.location": None, "listener.name.ssl.ssl.truststore.type": "JKS",
      "ssl.truststore.certificates": "x"},
     "SSL trust store certs can be specified only for PEM, but trust store type is JKS."),
    ({"listener.name.ssl.ssl.keystore.key": None, "listener.name.ssl.ssl.keystore.certificate.chain": None},
     "An SSL listener needs a key store"),
    ({"listener.name.ssl.ssl.enabled.protocols": "TLSv1.2,SSLv3"}, "Unsupported TLS protocol SSLv3"),
    ({"listener.name.ssl.ssl.cipher.suites": "TLS_NO_SUCH_CIPHER"}, "ssl.cipher.suites"),
    ({"listener.name.ssl.ssl.client.auth": "maybe"},
     "Invalid value maybe for configuration listener.name.ssl.ssl.client.auth: String must be one of"),
    ({"listener.name.ssl.ssl.keystore.key": "not a key"}, "Invalid PEM keystore configs"),
])
def test_bad_store_settings_stop_start_up_naming_the_key(certs, changes, message) -> None:
    assert message in start_up_error(ssl_listener_config(certs), changes)


def test_wrong_key_password_stops_start_up(certs) -> None:
    with pytest.raises(StartupError, match="Failed to load PEM SSL keystore"):
        BrokerThread(_file_store_config(certs, certs.server_key_encrypted, "wrong")).start()


# -- protocols and cipher suites -------------------------------------------------------------------


def test_enabled_protocols_refuse_other_tls_versions(certs) -> None:
    with BrokerThread(ssl_listener_config(certs, **{"ssl.enabled.protocols": "TLSv1.3"})) as b:
        with pytest.raises(ssl.SSLError):
            _tls_api_versions(b.bootstrap_servers,
                              _client_ctx(certs, cert=False, maximum_version=ssl.TLSVersion.TLSv1_2))
        response, sock = _tls_api_versions(b.bootstrap_servers, _client_ctx(certs, cert=False))
        assert sock.version() == "TLSv1.3"
        sock.close()
        assert response.error_code == 0


def test_cipher_suites_by_kafkas_names(certs) -> None:
    config = ssl_listener_config(certs, **{"ssl.enabled.protocols": "TLSv1.2",
                                           "ssl.cipher.suites": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"})
    with BrokerThread(config) as b:
        _, sock = _tls_api_versions(b.bootstrap_servers, _client_ctx(certs, cert=False))
        try:
            assert sock.version() == "TLSv1.2"
            assert sock.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"
        finally:
            sock.close()
        ctx = _client_ctx(certs, cert=False)
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")  # not among the broker's
        with pytest.raises(ssl.SSLError):
            _tls_api_versions(b.bootstrap_servers, ctx)
