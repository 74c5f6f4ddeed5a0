"""LogConfig: typed values only, defaults from the one declaration in kbroker.config."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from kbroker.config import TOPIC_DEFAULTS, BrokerConfig
from kbroker.log import LogConfig


def test_defaults_match_kafka():
    c = LogConfig()
    assert c.segment_bytes == 1073741824
    assert c.segment_ms == 604800000
    assert c.segment_index_bytes == 10485760
    assert c.flush_messages == c.flush_ms == 2**63 - 1
    assert c.retention_ms == 604800000
    assert c.retention_bytes == -1
    assert c.delete and not c.compact
    assert c.max_message_bytes == 1048588
    assert c.min_cleanable_dirty_ratio == 0.5


def test_defaults_are_the_declared_topic_defaults():
    c = LogConfig()
    for key, value in TOPIC_DEFAULTS.items():
        attr = key.replace(".", "_")
        if attr in {f.name for f in dataclasses.fields(LogConfig)}:
            assert getattr(c, attr) == value, key


def test_from_topic_values_takes_typed_values():
    values = BrokerConfig({}, warn=False).topic_config({
        "segment.bytes": "2000000",
        "flush.messages": "1",
        "cleanup.policy": "compact,delete",
        "min.cleanable.dirty.ratio": "0.25",
        "message.timestamp.type": "LogAppendTime",
        "retention.ms": "-1",
        "min.insync.replicas": "2",  # not a log setting: ignored
    })
    c = LogConfig.from_topic_values(values)
    assert (c.segment_bytes, c.flush_messages, c.min_cleanable_dirty_ratio) == (2000000, 1, 0.25)
    assert c.compact and c.delete and c.log_append_time and c.retention_ms == -1
    assert c.flush_ms == 2**63 - 1


def test_cleanup_policy_flags():
    assert LogConfig.from_topic_values({"cleanup.policy": ["compact"]}) == LogConfig(compact=True, delete=False)
    assert LogConfig.from_topic_values({"cleanup.policy": []}) == LogConfig(compact=False, delete=False)
    assert LogConfig.from_topic_values({}) == LogConfig()


def test_broker_defaults_reach_the_log_in_their_units():
    broker = BrokerConfig({"log.retention.hours": "2", "log.segment.bytes": "2097152", "log.roll.hours": "3"},
                          warn=False)
    c = LogConfig.from_topic_values(broker.topic_config({}))
    assert (c.retention_ms, c.segment_bytes, c.segment_ms) == (7_200_000, 2097152, 10_800_000)


def test_direct_construction_allows_small_segments_for_the_logs_own_tests(tmp_path):
    # Kafka's tests reach the same through its internal.segment.bytes; clients never can.
    assert LogConfig(segment_bytes=300).segment_bytes == 300


def test_log_config_imports_only_the_bottom_config_module():
    """The log imports kbroker.config (declarations, standard library only), nothing above; the
    config package imports nothing of kbroker's but its own modules."""
    root = Path(__file__).resolve().parents[2] / "kbroker"
    checked = [(root / "log" / "config.py", lambda m: m == "kbroker.config")]
    checked += [(path, lambda m: m == "kbroker.config" or m.startswith("kbroker.config."))
                for path in sorted((root / "config").glob("*.py"))]
    assert len(checked) > 2
    for path, allowed in checked:
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert all(allowed(m) for m in imported if m.startswith("kbroker")), path


def test_every_log_setting_is_a_topic_key_of_the_same_name():
    """LogConfig's attributes are the topic keys' names with '_' for '.', defaulting to Kafka's
    defaults (cleanup.policy: the compact/delete flags)."""
    from dataclasses import fields

    c = LogConfig()
    for f in fields(LogConfig):
        if f.name in ("compact", "delete"):
            assert getattr(c, f.name) == (f.name in TOPIC_DEFAULTS["cleanup.policy"])
        else:
            assert getattr(c, f.name) == TOPIC_DEFAULTS[f.name.replace("_", ".")], f.name
