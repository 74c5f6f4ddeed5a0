"""Per-topic log configuration, named after Kafka's topic-level keys.

`LogConfig` holds the values as Python attributes (``segment.bytes`` → ``segment_bytes``).
`LogConfig.from_topic_configs` parses Kafka key strings on top of a set of defaults, and
`LogConfig.from_broker_configs` parses the broker-level ``log.*`` keys that supply those defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
SEVEN_DAYS_MS = 7 * 24 * 60 * 60 * 1000


class LogConfigError(ValueError):
    """A configuration value is invalid; ``key`` is the Kafka key that was rejected."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(f"Invalid value {value!r} for configuration {key}: {reason}")
        self.key = key
        self.value = value
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = 1073741824
    segment_ms: int = SEVEN_DAYS_MS
    segment_jitter_ms: int = 0
    segment_index_bytes: int = 10485760
    index_interval_bytes: int = 4096
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    retention_ms: int = SEVEN_DAYS_MS
    retention_bytes: int = -1
    cleanup_policy: str = "delete"
    delete_retention_ms: int = 86400000
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    file_delete_delay_ms: int = 60000
    min_cleanable_dirty_ratio: float = 0.5
    message_timestamp_type: str = "CreateTime"
    max_message_bytes: int = 1048588
    preallocate: bool = False

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy.split(",")

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy.split(",")

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @classmethod
    def from_topic_configs(
        cls, configs: Mapping[str, str | None], defaults: LogConfig | None = None
    ) -> LogConfig:
        """Apply topic-level Kafka keys (``"segment.bytes"`` ...) on top of ``defaults``.

        Keys that are not log settings (``min.insync.replicas``, ``compression.type`` ...) are
        ignored; a ``None`` value means "use the default". Raises `LogConfigError` naming the key.
        """
        return _apply(defaults or cls(), configs, TOPIC_KEYS)

    @classmethod
    def from_broker_configs(
        cls, configs: Mapping[str, str | None], defaults: LogConfig | None = None
    ) -> LogConfig:
        """Broker-level defaults from ``log.*`` keys (``log.flush.interval.messages`` ...)."""
        base = defaults or cls()
        # Kafka's precedence: ms over minutes over hours.
        merged = dict(configs)
        for target, units in (
            ("log.retention.ms", (("log.retention.minutes", 60_000), ("log.retention.hours", 3_600_000))),
            ("log.roll.ms", (("log.roll.hours", 3_600_000),)),
            ("log.roll.jitter.ms", (("log.roll.jitter.hours", 3_600_000),)),
        ):
            if merged.get(target) is None:
                for key, factor in units:
                    if merged.get(key) is not None:
                        merged[target] = str(_parse_int(key, merged[key]) * factor)
                        break
        return _apply(base, merged, BROKER_KEYS)

    def to_topic_configs(self) -> dict[str, str]:
        """The values as Kafka topic-level key strings (for DescribeConfigs)."""
        out = {}
        for key, (attr, _parse) in TOPIC_KEYS.items():
            value = getattr(self, attr)
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return out


def _parse_int(key: str, raw: str, low: int = -LONG_MAX - 1, high: int = LONG_MAX) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise LogConfigError(key, raw, "not a number") from None
    if not low <= value <= high:
        raise LogConfigError(key, raw, f"value must be in [{low}, {high}]")
    return value


def _int(low: int, high: int = LONG_MAX) -> Callable[[str, str], int]:
    return lambda key, raw: _parse_int(key, raw, low, high)


def _ratio(key: str, raw: str) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise LogConfigError(key, raw, "not a number") from None
    if not 0.0 <= value <= 1.0:
        raise LogConfigError(key, raw, "value must be in [0, 1]")
    return value


def _policy(key: str, raw: str) -> str:
    parts = [p.strip() for p in str(raw).split(",") if p.strip()]
    for p in parts:
        if p not in ("compact", "delete"):
            raise LogConfigError(key, raw, "each entry must be 'compact' or 'delete'")
    return ",".join(dict.fromkeys(parts))


def _timestamp_type(key: str, raw: str) -> str:
    value = str(raw).strip()
    if value not in ("CreateTime", "LogAppendTime"):
        raise LogConfigError(key, raw, "must be CreateTime or LogAppendTime")
    return value


def _bool(key: str, raw: str) -> bool:
    value = str(raw).strip().lower()
    if value not in ("true", "false"):
        raise LogConfigError(key, raw, "must be true or false")
    return value == "true"


# Kafka key -> (attribute, parser). Lower bounds follow Kafka's LogConfig validators.
TOPIC_KEYS: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "segment.bytes": ("segment_bytes", _int(14, INT_MAX)),
    "segment.ms": ("segment_ms", _int(1)),
    "segment.jitter.ms": ("segment_jitter_ms", _int(0)),
    "segment.index.bytes": ("segment_index_bytes", _int(4, INT_MAX)),
    "index.interval.bytes": ("index_interval_bytes", _int(0, INT_MAX)),
    "flush.messages": ("flush_messages", _int(1)),
    "flush.ms": ("flush_ms", _int(0)),
    "retention.ms": ("retention_ms", _int(-1)),
    "retention.bytes": ("retention_bytes", _int(-LONG_MAX - 1)),
    "cleanup.policy": ("cleanup_policy", _policy),
    "delete.retention.ms": ("delete_retention_ms", _int(0)),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", _int(0)),
    "max.compaction.lag.ms": ("max_compaction_lag_ms", _int(1)),
    "file.delete.delay.ms": ("file_delete_delay_ms", _int(0)),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", _ratio),
    "message.timestamp.type": ("message_timestamp_type", _timestamp_type),
    "max.message.bytes": ("max_message_bytes", _int(0, INT_MAX)),
    "preallocate": ("preallocate", _bool),
}

BROKER_KEYS: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "log.segment.bytes": TOPIC_KEYS["segment.bytes"],
    "log.roll.ms": TOPIC_KEYS["segment.ms"],
    "log.roll.jitter.ms": TOPIC_KEYS["segment.jitter.ms"],
    "log.index.size.max.bytes": TOPIC_KEYS["segment.index.bytes"],
    "log.index.interval.bytes": TOPIC_KEYS["index.interval.bytes"],
    "log.flush.interval.messages": TOPIC_KEYS["flush.messages"],
    "log.flush.interval.ms": TOPIC_KEYS["flush.ms"],
    "log.retention.ms": TOPIC_KEYS["retention.ms"],
    "log.retention.bytes": TOPIC_KEYS["retention.bytes"],
    "log.cleanup.policy": TOPIC_KEYS["cleanup.policy"],
    "log.cleaner.delete.retention.ms": TOPIC_KEYS["delete.retention.ms"],
    "log.cleaner.min.compaction.lag.ms": TOPIC_KEYS["min.compaction.lag.ms"],
    "log.cleaner.max.compaction.lag.ms": TOPIC_KEYS["max.compaction.lag.ms"],
    "log.segment.delete.delay.ms": TOPIC_KEYS["file.delete.delay.ms"],
    "log.cleaner.min.cleanable.ratio": TOPIC_KEYS["min.cleanable.dirty.ratio"],
    "log.message.timestamp.type": TOPIC_KEYS["message.timestamp.type"],
    "message.max.bytes": TOPIC_KEYS["max.message.bytes"],
    "log.preallocate": TOPIC_KEYS["preallocate"],
}


def _apply(
    base: LogConfig,
    configs: Mapping[str, str | None],
    keys: Mapping[str, tuple[str, Callable[[str, str], object]]],
) -> LogConfig:
    changes: dict[str, object] = {}
    for key, raw in configs.items():
        entry = keys.get(key)
        if entry is None or raw is None:
            continue
        attr, parse = entry
        changes[attr] = parse(key, raw)
    return dataclasses.replace(base, **changes) if changes else base
