"""Dynamic group configs (ConfigResource type GROUP, 32) for share groups, as Kafka's ``GroupConfig``.

Set with IncrementalAlterConfigs/AlterConfigs on a group (``kafka-configs.sh --entity-type groups``,
``Admin.incrementalAlterConfigs``), stored as ConfigRecords in the metadata log and read by the share
groups of that id: ``share.auto.offset.reset`` (``latest`` by default, ``earliest``,
``by_duration:<ISO-8601 duration>``), ``share.record.lock.duration.ms``,
``share.delivery.count.limit``, ``share.partition.max.record.locks``, ``share.session.timeout.ms``,
``share.heartbeat.interval.ms``, ``share.isolation.level`` (read_committed: up to the last stable
offset, aborted transactions archived). Values are checked against the broker's
``group.share.min.*``/``group.share.max.*`` bounds with Kafka's messages (INVALID_CONFIG). The
consumer group keys Kafka also accepts are accepted and stored (not applied here);
``errors.deadletterqueue.topic.name``/``copy.record.enable`` drive the share group's dead-letter
queue (``share_dlq``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from kbroker.config import BROKER_DEFAULTS

if TYPE_CHECKING:
    from kbroker.coordinator.hosts import BrokerView

RESOURCE_GROUP = 32

_INT_KEYS = {
    # key: (minimum, broker min key, broker max key)
    "consumer.session.timeout.ms": (1, None, None),
    "consumer.heartbeat.interval.ms": (1, None, None),
    "consumer.assignment.interval.ms": (0, None, None),
    "share.assignment.interval.ms": (0, None, None),
    "streams.assignment.interval.ms": (0, None, None),
    "streams.heartbeat.interval.ms": (1, None, None),
    "streams.initial.rebalance.delay.ms": (0, None, None),
    "streams.num.standby.replicas": (0, None, None),
    "streams.session.timeout.ms": (1, None, None),
    "share.session.timeout.ms": (1, "group.share.min.session.timeout.ms", "group.share.max.session.timeout.ms"),
    "share.heartbeat.interval.ms": (1, "group.share.min.heartbeat.interval.ms",
                                    "group.share.max.heartbeat.interval.ms"),
    "share.record.lock.duration.ms": (1000, "group.share.min.record.lock.duration.ms",
                                      "group.share.max.record.lock.duration.ms"),
    "share.delivery.count.limit": (2, "group.share.min.delivery.count.limit", "group.share.max.delivery.count.limit"),
    "share.partition.max.record.locks": (100, "group.share.min.partition.max.record.locks",
                                         "group.share.max.partition.max.record.locks"),
}
_STRING_KEYS = {"share.auto.offset.reset", "share.isolation.level", "errors.deadletterqueue.topic.name",
                "streams.assignor.name"}
_LIST_KEYS = {"streams.rack.aware.assignment.tags"}
_BOOL_KEYS = {"share.renew.acknowledge.enable", "errors.deadletterqueue.copy.record.enable"}
GROUP_CONFIG_NAMES = frozenset(_INT_KEYS) | _STRING_KEYS | _BOOL_KEYS | _LIST_KEYS

_DURATION = re.compile(r"-?P(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?", re.IGNORECASE)


class GroupConfigError(ValueError):
    pass


def validate_group_configs(config: Any, new: dict[str, str]) -> None:
    """Kafka's ``GroupConfig.validate``; raises GroupConfigError with its message."""
    for name in new:
        if name not in GROUP_CONFIG_NAMES:
            raise GroupConfigError(f"Unknown group config name: {name}")
    for name, raw in new.items():
        if name in _INT_KEYS:
            lowest, min_key, max_key = _INT_KEYS[name]
            try:
                value = int(raw.strip())
            except ValueError:
                raise GroupConfigError(f"Invalid value {raw} for configuration {name}: Not a number of type INT") \
                    from None
            if value < lowest:
                raise GroupConfigError(f"Invalid value {value} for configuration {name}: Value must be at least "
                                       f"{lowest}")
            if min_key is not None:
                lo, hi = config[min_key], config[max_key]
                if not lo <= value <= hi:
                    raise GroupConfigError(f"{name} must be in the range {lo} to {hi} inclusive.")
        elif name == "share.auto.offset.reset":
            v = raw.strip().lower()
            if v not in ("earliest", "latest") and not (
                    v.startswith("by_duration:") and _DURATION.fullmatch(raw.strip()[len("by_duration:"):])
                    and not raw.strip()[len("by_duration:"):].startswith("-")):
                raise GroupConfigError(f"Invalid value {raw} for configuration share.auto.offset.reset: "
                                       "must be one of earliest, latest, by_duration:<duration>")
        elif name == "share.isolation.level":
            if raw not in ("read_committed", "read_uncommitted"):
                raise GroupConfigError(f"Invalid value {raw} for configuration share.isolation.level: String must be "
                                       "one of: read_committed, read_uncommitted")
        elif name == "errors.deadletterqueue.topic.name":
            if raw.startswith("__"):
                raise GroupConfigError("errors.deadletterqueue.topic.name: DLQ topic name must not start with '__'")
        elif name in _BOOL_KEYS and raw.strip().lower() not in ("true", "false"):
            raise GroupConfigError(f"Invalid value {raw} for configuration {name}: Expected value to be either true "
                                   "or false")


def group_config(broker: BrokerView, group_id: str) -> dict[str, str]:
    """The dynamic configs of ``group_id`` (empty without any)."""
    return dict(getattr(broker.image, "group_configs", {}).get(group_id, {}))


def _broker(key: str) -> tuple[str, str]:
    """A group key that falls back to broker config ``key`` (its default as the config module declares it)."""
    return key, str(BROKER_DEFAULTS[key])


# Each group key's default: the broker config it falls back to, or Kafka's constant default.
_DEFAULTS: dict[str, tuple[str | None, str]] = {
    "consumer.session.timeout.ms": _broker("group.consumer.session.timeout.ms"),
    "consumer.heartbeat.interval.ms": _broker("group.consumer.heartbeat.interval.ms"),
    "share.session.timeout.ms": _broker("group.share.session.timeout.ms"),
    "share.heartbeat.interval.ms": _broker("group.share.heartbeat.interval.ms"),
    "share.record.lock.duration.ms": _broker("group.share.record.lock.duration.ms"),
    "share.delivery.count.limit": _broker("group.share.delivery.count.limit"),
    "share.partition.max.record.locks": _broker("group.share.partition.max.record.locks"),
    "share.auto.offset.reset": (None, "latest"),
    "share.isolation.level": (None, "read_uncommitted"),
    "share.renew.acknowledge.enable": (None, "true"),
    "errors.deadletterqueue.topic.name": (None, ""),
    "errors.deadletterqueue.copy.record.enable": (None, "false"),
    # Accepted and listed as Kafka 4.4 lists them; not applied by kbroker.
    "consumer.assignment.interval.ms": (None, "1000"),
    "share.assignment.interval.ms": (None, "1000"),
    "streams.assignment.interval.ms": (None, "1000"),
    "streams.assignor.name": (None, "sticky"),
    "streams.heartbeat.interval.ms": (None, "5000"),
    "streams.initial.rebalance.delay.ms": (None, "3000"),
    "streams.num.standby.replicas": (None, "0"),
    "streams.rack.aware.assignment.tags": (None, ""),
    "streams.session.timeout.ms": (None, "45000"),
}
GROUP_CONFIG_SOURCE, DEFAULT_CONFIG_SOURCE = 8, 5


def describe_group_configs(config: Any, overrides: dict[str, str]) -> list[Any]:
    """DescribeConfigs of a GROUP resource: every group config, the group's own values
    (GROUP_CONFIG source) or the defaults (DEFAULT_CONFIG)."""
    from kbroker.config import ConfigEntry

    out = []
    for name in sorted(_DEFAULTS):
        broker_key, constant = _DEFAULTS[name]
        kind = ("int" if name in _INT_KEYS else "boolean" if name in _BOOL_KEYS
                else "list" if name in _LIST_KEYS else "string")
        default = str(config[broker_key]) if broker_key is not None else constant
        if isinstance(config[broker_key] if broker_key is not None else None, bool):
            default = default.lower()
        # As Kafka: the synonyms are the group's own value, then the default.
        synonyms = [(name, default, DEFAULT_CONFIG_SOURCE)]
        if name in overrides:
            synonyms.insert(0, (name, overrides[name], GROUP_CONFIG_SOURCE))
            out.append(ConfigEntry(name, overrides[name], GROUP_CONFIG_SOURCE, False, False, kind, synonyms))
        else:
            out.append(ConfigEntry(name, default, DEFAULT_CONFIG_SOURCE, False, False, kind, synonyms))
    return out


def effective(broker: BrokerView, group_id: str, name: str) -> Any:
    """The value of group config ``name`` for ``group_id``: its override, else the default, typed."""
    raw = group_config(broker, group_id).get(name)
    broker_key, constant = _DEFAULTS[name]
    if raw is None:
        if broker_key is not None:
            return broker.config[broker_key]
        raw = constant
    if name in _INT_KEYS:
        return int(raw.strip())
    if name in _BOOL_KEYS:
        return raw.strip().lower() == "true"
    return raw.strip()
