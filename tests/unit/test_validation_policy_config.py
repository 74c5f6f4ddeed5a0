"""The produce validation policy follows the partition's topic config (issue 23: the policy's
config part is kept on the partition while its config dict is the same one)."""

from __future__ import annotations

import uuid
from typing import Any

from kbroker.config import TOPIC_DEFAULTS
from kbroker.replication.partition import Partition
from kbroker.replication.validation import validation_policy


def _partition(**overrides: Any) -> Partition:
    config = dict(TOPIC_DEFAULTS, **overrides)
    return Partition("orders", 3, uuid.uuid4(), None, 0, [1], [1], config, node_id=1)  # type: ignore[arg-type]


def test_the_policy_reads_the_topic_config_and_the_time_of_each_request() -> None:
    p = _partition(**{"compression.type": "zstd", "compression.zstd.level": 7, "cleanup.policy": ["compact"]})
    first = validation_policy(p, 1_000)
    second = validation_policy(p, 2_000)
    assert (first.topic_partition, first.target_codec, first.compression_level, first.compacted) == ("orders-3", 4, 7, True)
    assert (first.now_ms, second.now_ms) == (1_000, 2_000)
    assert second.max_message_bytes == TOPIC_DEFAULTS["max.message.bytes"]


def test_a_replaced_topic_config_changes_the_next_policy() -> None:
    p = _partition()
    before = validation_policy(p, 1_000)
    assert (before.log_append_time, before.target_codec, before.max_message_bytes) == (
        False, None, TOPIC_DEFAULTS["max.message.bytes"])
    # as a topic config change does (kbroker/wiring/local_partitions.py: a new dict)
    p.config = dict(TOPIC_DEFAULTS, **{"message.timestamp.type": "LogAppendTime", "compression.type": "gzip",
                                       "compression.gzip.level": 5, "max.message.bytes": 2048,
                                       "message.timestamp.before.max.ms": 60_000})
    after = validation_policy(p, 3_000)
    assert (after.log_append_time, after.target_codec, after.compression_level) == (True, 1, 5)
    assert (after.max_message_bytes, after.before_max_ms, after.now_ms) == (2048, 60_000, 3_000)


def test_a_request_in_the_same_millisecond_gets_the_same_policy() -> None:
    p = _partition()
    first = validation_policy(p, 1_000)
    assert validation_policy(p, 1_000) is first
    later = validation_policy(p, 1_001)
    assert later is not first and later.now_ms == 1_001
    assert validation_policy(p, 1_000).now_ms == 1_000  # (a clock read earlier still gets its own time)
    p.config = dict(TOPIC_DEFAULTS, **{"max.message.bytes": 2048})
    changed = validation_policy(p, 1_000)
    assert (changed.max_message_bytes, changed.now_ms) == (2048, 1_000)
