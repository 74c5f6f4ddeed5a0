"""LogConfig: Kafka key parsing, validation errors naming the key, broker-level defaults."""

from __future__ import annotations

import pytest

from kbroker.log import LogConfig, LogConfigError


def test_defaults_match_kafka():
    c = LogConfig()
    assert c.segment_bytes == 1073741824
    assert c.segment_ms == 604800000
    assert c.flush_messages == c.flush_ms == 2**63 - 1
    assert c.retention_bytes == -1
    assert c.cleanup_policy == "delete" and c.delete and not c.compact
    assert c.max_message_bytes == 1048588


def test_from_topic_configs_parses_kafka_keys():
    c = LogConfig.from_topic_configs(
        {
            "segment.bytes": "1000",
            "flush.messages": "1",
            "cleanup.policy": "compact,delete",
            "min.cleanable.dirty.ratio": "0.25",
            "message.timestamp.type": "LogAppendTime",
            "retention.ms": "-1",
            "min.insync.replicas": "2",  # not a log setting: ignored
            "flush.ms": None,  # None: keep the default
        }
    )
    assert (c.segment_bytes, c.flush_messages, c.min_cleanable_dirty_ratio) == (1000, 1, 0.25)
    assert c.compact and c.delete and c.log_append_time and c.retention_ms == -1
    assert c.flush_ms == 2**63 - 1


def test_topic_configs_apply_on_top_of_defaults():
    defaults = LogConfig(retention_ms=5, segment_bytes=2000)
    c = LogConfig.from_topic_configs({"segment.bytes": "3000"}, defaults)
    assert (c.retention_ms, c.segment_bytes) == (5, 3000)


@pytest.mark.parametrize(
    "key,value",
    [
        ("segment.bytes", "10"),
        ("segment.bytes", "abc"),
        ("flush.messages", "0"),
        ("retention.ms", "-2"),
        ("cleanup.policy", "compact,forever"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("message.timestamp.type", "Now"),
        ("preallocate", "yes"),
        ("segment.bytes", str(2**31)),
    ],
)
def test_invalid_values_name_the_key(key, value):
    with pytest.raises(LogConfigError) as info:
        LogConfig.from_topic_configs({key: value})
    assert info.value.key == key
    assert key in str(info.value)


def test_broker_configs_and_time_units():
    c = LogConfig.from_broker_configs(
        {"log.flush.interval.messages": "1", "log.retention.hours": "2", "log.segment.bytes": "5000"}
    )
    assert (c.flush_messages, c.retention_ms, c.segment_bytes) == (1, 7_200_000, 5000)
    c = LogConfig.from_broker_configs({"log.retention.ms": "7", "log.retention.hours": "2"})
    assert c.retention_ms == 7
    with pytest.raises(LogConfigError) as info:
        LogConfig.from_broker_configs({"log.flush.interval.ms": "-5"})
    assert info.value.key == "log.flush.interval.ms"


def test_round_trip_through_topic_keys():
    c = LogConfig(segment_bytes=1234, cleanup_policy="compact", preallocate=True)
    assert LogConfig.from_topic_configs(c.to_topic_configs()) == c
