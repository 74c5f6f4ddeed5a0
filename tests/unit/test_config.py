import logging

import pytest

from kbroker.__main__ import build_config, parse_args
from kbroker.config import (
    BROKER_DEFAULTS,
    TOPIC_DEFAULTS,
    TOPIC_KEYS,
    BrokerConfig,
    ConfigError,
    format_config_value,
    parse_properties,
)


def test_properties_syntax():
    text = "a=1\nb : 2\nc 3\n# comment\n! also\nd=long\\\n   line\ne\nf=x\\=y\\u0041\n"
    assert parse_properties(text) == {"a": "1", "b": "2", "c": "3", "d": "longline", "e": "", "f": "x=yA"}


def test_defaults_follow_kafka():
    c = BrokerConfig({})
    assert c.node_id == 1
    assert c["message.max.bytes"] == 1048588
    assert c["num.partitions"] == 1
    assert c["group.consumer.migration.policy"] == "bidirectional"
    assert BrokerConfig({"group.consumer.migration.policy": "UPGRADE"})["group.consumer.migration.policy"] == "UPGRADE"
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


# -- Kafka 4.4's validators and messages (issue 13, hole 7) -----------------------------------


@pytest.mark.parametrize("key,value,message", [
    ("segment.bytes", "14", "Invalid value 14 for configuration segment.bytes: Value must be at least 1048576"),
    ("segment.bytes", "1048575", "Value must be at least 1048576"),
    ("segment.bytes", "2147483648", "Invalid value 2147483648 for configuration segment.bytes: "
                                    "Not a number of type INT"),
    ("segment.index.bytes", "3", "Value must be at least 4"),
    ("max.message.bytes", "-1", "Value must be at least 0"),
    ("retention.ms", "-2", "Value must be at least -1"),
    ("min.cleanable.dirty.ratio", "1.5", "Value must be no more than 1"),
    ("min.cleanable.dirty.ratio", "NaN", "Not a number of type DOUBLE"),
    ("compression.gzip.level", "0", "Value must be between 1 and 9 or equal to -1"),
    ("compression.lz4.level", "18", "Value must be no more than 17"),
    ("compression.zstd.level", "23", "Value must be no more than 22"),
    ("cleanup.policy", "compact,forever",
     "Invalid value forever for configuration cleanup.policy: String must be one of: compact, delete"),
    ("cleanup.policy", "delete,delete", "Configuration 'cleanup.policy' values must not be duplicated."),
    ("cleanup.policy", "delete,", "Configuration 'cleanup.policy' values must not be empty."),
    ("message.timestamp.type", "Now", "String must be one of: CreateTime, LogAppendTime"),
    ("preallocate", "yes", "Expected value to be either true or false"),
    ("flush.messages", "1_000", "Not a number of type LONG"),
    ("bogus.key", "1", "Unknown topic config name: bogus.key"),
])
def test_topic_values_are_checked_with_kafkas_validators_and_messages(key, value, message):
    with pytest.raises(ConfigError) as info:
        BrokerConfig({}, warn=False).validate_topic_configs({key: value})
    assert message in str(info.value)
    assert info.value.key == key


def test_values_kafka_accepts_are_accepted_typed():
    typed = BrokerConfig({}, warn=False).validate_topic_configs({
        "segment.bytes": "1048576", "segment.index.bytes": "4", "max.message.bytes": "2147483647",
        "cleanup.policy": "compact, delete", "compression.gzip.level": "-1", "preallocate": " TRUE ",
        "min.cleanable.dirty.ratio": "1e-1",
    })
    assert typed == {
        "segment.bytes": 1048576, "segment.index.bytes": 4, "max.message.bytes": 2147483647,
        "cleanup.policy": ["compact", "delete"], "compression.gzip.level": -1, "preallocate": True,
        "min.cleanable.dirty.ratio": 0.1,
    }


def test_null_topic_values_are_named():
    with pytest.raises(ConfigError, match=r"^Null value not supported for topic configs: retention.ms,segment.ms$"):
        BrokerConfig({}, warn=False).validate_topic_configs({"retention.ms": None, "segment.ms": None})


def test_compaction_lags_are_checked_together_with_the_broker_defaults():
    broker = BrokerConfig({"log.cleaner.max.compaction.lag.ms": "1000"}, warn=False)
    with pytest.raises(ConfigError, match=r"^conflict topic config setting min.compaction.lag.ms \(5000\) > "
                                          r"max.compaction.lag.ms \(1000\)$"):
        broker.validate_topic_configs({"min.compaction.lag.ms": "5000"})
    broker.validate_topic_configs({"min.compaction.lag.ms": "5000", "max.compaction.lag.ms": "5000"})


@pytest.mark.parametrize("key,value,message", [
    ("log.segment.bytes", "14", "Invalid value 14 for configuration log.segment.bytes: Value must be at least 1048576"),
    ("message.max.bytes", "-1", "Value must be at least 0"),
    ("log.index.size.max.bytes", "3", "Value must be at least 4"),
    ("compression.gzip.level", "10", "Value must be between 1 and 9 or equal to -1"),
    ("process.roles", "", "Configuration 'process.roles' must not be empty. Valid values include: [broker, controller]"),
    ("log.dirs", "/a,/a", "Configuration 'log.dirs' values must not be duplicated."),
    ("log.dirs", "", "Configuration 'log.dirs' must not be empty. Valid values include: any non-empty value"),
    ("num.partitions", "2147483648", "Not a number of type INT"),
    ("offsets.topic.replication.factor", "40000", "Not a number of type SHORT"),
    ("max.request.partition.size.limit", "0", "Value must be at least 1"),
    ("group.consumer.regex.refresh.interval.ms", "9999", "Value must be at least 10000"),
    ("group.consumer.migration.policy", "sideways",
     "String must be one of (case insensitive): disabled, upgrade, downgrade, bidirectional"),
])
def test_broker_values_are_checked_with_kafkas_validators(key, value, message):
    with pytest.raises(ConfigError) as info:
        BrokerConfig({key: value}, warn=False)
    assert message in str(info.value)
    assert info.value.key == key


def test_every_topic_default_is_its_broker_synonyms_default():
    assert TOPIC_DEFAULTS["segment.bytes"] == BROKER_DEFAULTS["log.segment.bytes"] == 1073741824
    assert TOPIC_DEFAULTS["retention.ms"] == BROKER_DEFAULTS["log.retention.hours"] * 3_600_000
    assert TOPIC_DEFAULTS["segment.ms"] == 604800000
    assert TOPIC_DEFAULTS["flush.ms"] == 2**63 - 1  # log.flush.scheduler.interval.ms
    assert TOPIC_DEFAULTS["max.message.bytes"] == BROKER_DEFAULTS["message.max.bytes"] == 1048588
    fresh = BrokerConfig({}, warn=False).topic_config({})
    assert fresh == dict(TOPIC_DEFAULTS)
    for name, key in TOPIC_KEYS.items():  # every default passes the topic key's own validator
        value = TOPIC_DEFAULTS[name]
        key.parse(format_config_value(value) if value is not None else "")


def test_a_stored_override_that_no_longer_validates_is_ignored_not_fatal(caplog):
    # An override stored by an older version (segment.bytes had a floor of 14) must not stop the
    # broker replaying its metadata: the broker default applies and the problem is logged.
    broker = BrokerConfig({}, warn=False)
    with caplog.at_level(logging.WARNING):
        values = broker.topic_config({"segment.bytes": "1000", "retention.ms": "5"})
    assert values["segment.bytes"] == 1073741824 and values["retention.ms"] == 5
    assert "segment.bytes" in caplog.text


def test_a_stored_dynamic_broker_value_that_no_longer_validates_is_ignored(caplog):
    with caplog.at_level(logging.WARNING):
        c = BrokerConfig({}, warn=False, dynamic_node={"log.segment.bytes": "14", "log.retention.ms": "9"})
    assert c["log.segment.bytes"] == 1073741824
    assert c.topic_default("retention.ms") == (9, "log.retention.ms")
    assert "log.segment.bytes" in caplog.text


def test_dynamic_values_are_typed_once_and_take_precedence():
    c = BrokerConfig({"log.segment.bytes": "2097152"}, warn=False,
                     dynamic_default={"log.segment.bytes": "3145728"}, dynamic_node={"log.retention.minutes": "2"})
    assert c["log.segment.bytes"] == 3145728
    assert c.topic_default("segment.bytes") == (3145728, "log.segment.bytes")
    assert c.topic_default("retention.ms") == (120_000, "log.retention.minutes")


def test_topic_keys_take_type_and_validator_from_their_broker_synonym():
    """A topic key is declared by the broker key it defaults to: same type and validator, but for
    what Kafka's LogConfig validates differently (retention.ms >= -1, flush.ms >= 0)."""
    from kbroker.config import BROKER_KEYS

    fields = ("type", "maximum", "choices", "list_choices", "nonempty", "check")
    differing = {}
    for name, key in TOPIC_KEYS.items():
        if not key.synonyms:
            continue
        broker = BROKER_KEYS[key.synonyms[0]]
        assert [getattr(key.spec, f) for f in fields] == [getattr(broker, f) for f in fields], name
        if key.spec.minimum != broker.minimum:
            differing[name] = (broker.minimum, key.spec.minimum)
        assert key.spec.doc, name
    assert differing == {"retention.ms": (None, -1), "flush.ms": (None, 0)}
    c = BrokerConfig({"log.retention.ms": "-2"}, warn=False)  # no validator on the broker key
    assert c["log.retention.ms"] == -2
    with pytest.raises(ConfigError, match="Invalid value -2 for configuration retention.ms: Value must be at least -1"):
        c.validate_topic_configs({"retention.ms": "-2"})


def test_an_internal_key_of_kafkas_is_described_only_once_set():
    """group.consumer.regex.refresh.interval.ms is a ConfigDef.defineInternal key of Kafka 4.4's:
    its DescribeConfigs of a broker lists it only when the broker's config sets it."""
    key = "group.consumer.regex.refresh.interval.ms"
    assert BROKER_DEFAULTS[key] == 600_000
    assert key not in {e.name for e in BrokerConfig({}, warn=False).describe_broker()}
    config = BrokerConfig({key: "20000"}, warn=False)
    assert config[key] == 20_000
    [entry] = [e for e in config.describe_broker() if e.name == key]
    assert entry.value == "20000"
