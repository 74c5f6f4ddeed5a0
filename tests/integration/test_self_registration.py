"""The single-node start registers its own broker as a remote registration would: each advertised
listener with its security protocol (listener.security.protocol.map), and its log directory ids."""

from __future__ import annotations

from kbroker.storage import read_meta_properties, uuid_from_str
from kbroker.testing import BrokerThread

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
              'password="admin-secret" user_admin="admin-secret";')


def test_the_registration_lists_security_protocols_and_log_directories(tmp_path):
    config = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "log.dirs": f"{tmp_path / 'a'},{tmp_path / 'b'}",
    }
    with BrokerThread(config) as b:
        broker = b.broker
        reg = broker.image.brokers[broker.node_id]
        assert {name: protocol for name, (_h, _p, protocol) in reg.endpoints.items()} == {
            "SASL_PLAINTEXT": 2, "PLAINTEXT": 0}
        expected = sorted(uuid_from_str(read_meta_properties(d)["directory.id"]) for d in (tmp_path / "a", tmp_path / "b"))
        assert sorted(reg.log_dirs) == expected and len(expected) == 2
