import logging

import pytest

from kbroker.__main__ import build_config, parse_args
from kbroker.config import BrokerConfig, ConfigError, parse_properties


def test_properties_syntax():
    text = "a=1\nb : 2\nc 3\n# comment\n! also\nd=long\\\n   line\ne\nf=x\\=y\\u0041\n"
    assert parse_properties(text) == {"a": "1", "b": "2", "c": "3", "d": "longline", "e": "", "f": "x=yA"}


def test_defaults_follow_kafka():
    c = BrokerConfig({})
    assert c.node_id == 1
    assert c["message.max.bytes"] == 1048588
    assert c["num.partitions"] == 1
    assert c.topic_default("retention.ms") == (7 * 24 * 3600 * 1000, "log.retention.hours")
    assert c.topic_default("segment.bytes") == (1073741824, "log.segment.bytes")


def test_retention_precedence_ms_over_minutes_over_hours():
    c = BrokerConfig({"log.retention.hours": "1", "log.retention.minutes": "2"})
    assert c.topic_default("retention.ms") == (120000, "log.retention.minutes")
    c = BrokerConfig({"log.retention.hours": "1", "log.retention.ms": "5"})
    assert c.topic_default("retention.ms") == (5, "log.retention.ms")


@pytest.mark.parametrize(
    "key,value",
    [
        ("num.partitions", "zero"),
        ("num.partitions", "0"),
        ("auto.create.topics.enable", "yes"),
        ("listeners", "PLAINTEXT:/localhost:9092"),
        ("listeners", "PLAINTEXT://localhost:99999"),
        ("log.cleanup.policy", "shred"),
        ("log.message.timestamp.type", "Whenever"),
        ("message.max.bytes", "-1"),
    ],
)
def test_invalid_values_name_the_key(key, value):
    with pytest.raises(ConfigError) as info:
        BrokerConfig({key: value})
    assert key in str(info.value)


def test_broker_id_is_node_id_and_zookeeper_warns(caplog):
    with caplog.at_level(logging.WARNING):
        c = BrokerConfig({"broker.id": "7", "zookeeper.connect": "localhost:2181", "bogus.key": "1"})
    assert c.node_id == 7
    assert "zookeeper.connect" in caplog.text
    assert "unknown configuration key bogus.key" in caplog.text


def test_conflicting_node_and_broker_id():
    with pytest.raises(ConfigError, match="broker.id"):
        BrokerConfig({"broker.id": "2", "node.id": "3"})


def test_cli_file_and_overrides(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("broker.id=0\nlisteners=PLAINTEXT://127.0.0.1:19092\nlog.dirs=/tmp/x\nnum.partitions=3\n")
    config = build_config(parse_args([str(props), "--override", "num.partitions=5"]))
    assert config.node_id == 0
    assert config["num.partitions"] == 5
    assert config.listeners[0].port == 19092


def test_cli_without_arguments_uses_documented_defaults():
    config = build_config(parse_args([]))
    assert config.node_id == 1
    assert str(config.listeners[0]) == "PLAINTEXT://localhost:9092"
    assert [str(d) for d in config.log_dirs] == ["kbroker-data"]


def test_cli_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        build_config(parse_args([str(tmp_path / "nope.properties")]))
