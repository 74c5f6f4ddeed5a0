"""KRaft configuration keys and Kafka's start-up checks of them (KafkaConfig.validateValues, QuorumConfig)."""

from __future__ import annotations

import pytest

from kbroker.config import BrokerConfig, ConfigError, parse_quorum_voters
from kbroker.wiring.endpoints import advertised_endpoints
from kbroker.wiring.metadata_quorum import advertised_controller_endpoint

COMBINED = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.quorum.voters": "1@localhost:9093,2@localhost:9095",
    "listeners": "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
    "controller.listener.names": "CONTROLLER",
    "log.dirs": "/tmp/x",
}


def test_combined_node_config():
    c = BrokerConfig(COMBINED)
    assert c.kraft_mode and c.process_roles == {"broker", "controller"}
    assert c.quorum_voters == {1: ("localhost", 9093), 2: ("localhost", 9095)}
    assert [e.listener for e in c.controller_listeners] == ["CONTROLLER"]
    assert [e.listener for e in c.client_listeners] == ["PLAINTEXT"]
    assert c.inter_broker_listener == "PLAINTEXT"
    assert c["controller.quorum.election.timeout.ms"] == 1000
    assert c["controller.quorum.fetch.timeout.ms"] == 2000
    assert c["broker.session.timeout.ms"] == 9000 and c["broker.heartbeat.interval.ms"] == 2000
    assert c["metadata.log.max.snapshot.interval.ms"] == 3600000


@pytest.mark.parametrize("roles, node, listeners", [
    ("broker,controller", "1", COMBINED["listeners"]),
    ("broker", "5", "PLAINTEXT://localhost:9092"),
])
def test_a_controller_listener_in_advertised_listeners_is_not_advertised_to_clients(roles, node, listeners):
    """Kafka 4.4 accepts it in both broker roles (KafkaConfig.validateValues keeps only the broker
    entries as effectiveAdvertisedBrokerListeners; Kafka 3.x refused it). The controller entry is the
    endpoint a controller advertises to the quorum."""
    c = BrokerConfig(dict(COMBINED, **{"process.roles": roles, "node.id": node, "listeners": listeners,
                                       "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                                       "advertised.listeners": "PLAINTEXT://b.example:9092,CONTROLLER://c.example:9093"}))
    assert advertised_endpoints(c, {}) == [("PLAINTEXT", "b.example", 9092)]
    assert advertised_controller_endpoint(c) == (("c.example", 9093) if "controller" in roles else None)


def test_dev_start_is_not_kraft_mode():
    c = BrokerConfig({"listeners": "PLAINTEXT://localhost:9092"})
    assert not c.kraft_mode and c.quorum_voters == {}


@pytest.mark.parametrize("changes, message", [
    ({"listeners": "PLAINTEXT://localhost:9092"},
     "controller.listener.names must contain at least one value appearing in the 'listeners' configuration when "
     "running the KRaft controller role"),
    ({"controller.listener.names": "CONTROLLER,OTHER"},
     "controller.listener.names must only contain values appearing in the 'listeners' configuration when running "
     "the KRaft controller role"),
    ({"node.id": "3"},
     "If process.roles contains the 'controller' role, the node id 3 must be included in the set of voters "
     "controller.quorum.voters=Set(1, 2)"),
    ({"process.roles": "broker", "node.id": "1"},
     "If process.roles contains just the 'broker' role, the node id 1 must not be included in the set of voters "
     "controller.quorum.voters=Set(1, 2)"),
    ({"process.roles": "broker", "node.id": "5"},
     "controller.listener.names must not contain a value appearing in the 'listeners' configuration when running "
     "KRaft with just the broker role"),
    ({"process.roles": "controller"},
     "The listeners config must only contain KRaft controller listeners from controller.listener.names when "
     "process.roles=controller"),
    ({"controller.quorum.voters": ""},
     "If using process.roles, either controller.quorum.bootstrap.servers must contain the set of bootstrap "
     "controllers or controller.quorum.voters must contain a parseable set of controllers."),
    ({"advertised.listeners": "CONTROLLER://localhost:9093"},
     "There must be at least one broker advertised listener. Perhaps all listeners appear in "
     "controller.listener.names?"),
    ({"inter.broker.listener.name": "INTERNAL"},
     "inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid options based "
     "on currently configured listeners are PLAINTEXT"),
    ({"controller.listener.names": ""},
     'Missing required configuration "controller.listener.names" which has no default value.'),
    ({"process.roles": "broker,observer"}, "Invalid value observer for configuration process.roles: String must be "
     "one of: broker, controller"),
    ({"controller.quorum.election.timeout.ms": "-1"},
     "Invalid value -1 for configuration controller.quorum.election.timeout.ms: Value must be at least 0"),
])
def test_refused_with_kafkas_message(changes, message):
    props = dict(COMBINED)
    for k, v in changes.items():
        if v == "" and k == "controller.listener.names":
            props.pop(k)
        else:
            props[k] = v
    with pytest.raises(ConfigError) as e:
        BrokerConfig(props)
    assert str(e.value) == message


def test_missing_node_id_in_kraft_mode():
    props = dict(COMBINED)
    props.pop("node.id")
    with pytest.raises(ConfigError, match='Missing required configuration "node.id" which has no default value.'):
        BrokerConfig(props)


@pytest.mark.parametrize("voters, message", [
    ("1localhost:9093", "Invalid configuration value for controller.quorum.voters. Each entry should be in the form "
     "`{id}@{host}:{port}`."),
    ("x@localhost:9093", "Failed to parse voter ID as an integer from x"),
    ("1@localhost", "Failed to parse host name from entry 1@localhost for the configuration controller.quorum.voters. "
     "Each entry should be in the form `{id}@{host}:{port}`."),
    ("1@:9093", "Failed to parse host name from entry 1@:9093 for the configuration controller.quorum.voters. Each "
     "entry should be in the form `{id}@{host}:{port}`."),
])
def test_voters_refused(voters, message):
    props = dict(COMBINED, **{"controller.quorum.voters": voters})
    with pytest.raises(ConfigError) as e:
        BrokerConfig(props)
    assert str(e.value) == message


def test_voters_parse_ipv6_and_bootstrap_servers():
    assert parse_quorum_voters(["1@[::1]:9093"]) == {1: ("::1", 9093)}
    c = BrokerConfig(dict(COMBINED, **{"controller.quorum.voters": "",
                                       "controller.quorum.bootstrap.servers": "localhost:9093"}))
    assert c.quorum_bootstrap_servers == [("localhost", 9093)]
    with pytest.raises(ConfigError, match="Failed to parse host name from nohost for the configuration "
                                          "controller.quorum.bootstrap.servers"):
        BrokerConfig(dict(COMBINED, **{"controller.quorum.bootstrap.servers": "nohost"}))
