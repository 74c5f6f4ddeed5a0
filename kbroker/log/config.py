"""Per-topic log settings, typed.

`LogConfig` holds the topic-level values the log acts on, as Python attributes named after Kafka's
keys (``segment.bytes`` → ``segment_bytes``). Keys, validators and defaults are declared once, in
:mod:`kbroker.config` (which imports nothing of kbroker's): the defaults here are its
``TOPIC_DEFAULTS`` and the broker hands over values it has already parsed and validated
(:meth:`LogConfig.from_topic_values`). Nothing here parses strings.

Built directly, a `LogConfig` is not validated: like Kafka's internal ``internal.segment.bytes``,
that is how the log's own tests ask for segments far smaller than the 1 MiB a client may set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from kbroker.config import INT_MAX, LONG_MAX, TOPIC_DEFAULTS

__all__ = ["INT_MAX", "LONG_MAX", "LogConfig"]

_D = TOPIC_DEFAULTS

@dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = _D["segment.bytes"]
    segment_ms: int = _D["segment.ms"]
    segment_jitter_ms: int = _D["segment.jitter.ms"]
    segment_index_bytes: int = _D["segment.index.bytes"]
    index_interval_bytes: int = _D["index.interval.bytes"]
    flush_messages: int = _D["flush.messages"]
    flush_ms: int = _D["flush.ms"]
    retention_ms: int = _D["retention.ms"]
    retention_bytes: int = _D["retention.bytes"]
    compact: bool = "compact" in _D["cleanup.policy"]
    delete: bool = "delete" in _D["cleanup.policy"]
    delete_retention_ms: int = _D["delete.retention.ms"]
    min_compaction_lag_ms: int = _D["min.compaction.lag.ms"]
    max_compaction_lag_ms: int = _D["max.compaction.lag.ms"]
    file_delete_delay_ms: int = _D["file.delete.delay.ms"]
    min_cleanable_dirty_ratio: float = _D["min.cleanable.dirty.ratio"]
    message_timestamp_type: str = _D["message.timestamp.type"]
    max_message_bytes: int = _D["max.message.bytes"]
    preallocate: bool = _D["preallocate"]

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @classmethod
    def from_topic_values(cls, values: Mapping[str, Any]) -> LogConfig:
        """The log settings among typed, validated topic-level values keyed by Kafka name (what
        ``BrokerConfig.topic_config`` returns); keys that are not log settings are ignored and
        missing ones keep Kafka's default."""
        kw: dict[str, Any] = {attr: values[key] for key, attr in _FIELDS.items() if key in values}
        policy = values.get("cleanup.policy")
        if policy is not None:
            kw["compact"] = "compact" in policy
            kw["delete"] = "delete" in policy
        return cls(**kw)


# Topic key -> LogConfig attribute: each attribute is its key with '_' for '.' (segment.bytes ->
# segment_bytes), but for cleanup.policy, which becomes the two flags ``compact``/``delete``.
_FIELDS = {f.name.replace("_", "."): f.name for f in fields(LogConfig) if f.name not in ("compact", "delete")}
