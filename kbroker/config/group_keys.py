"""Group configs (ConfigResource type GROUP, 32): Kafka 4.4's ``GroupConfig`` keys, declared once as
data (:class:`GroupKey`: type, default, validator, the broker key it defaults to and the broker keys
that bound it), and what follows from them: validation of a group's new overrides (IncrementalAlter-
Configs/AlterConfigs), DescribeConfigs of a group, and the typed value a group's coordinator uses.

Set with ``kafka-configs.sh --entity-type groups`` or ``Admin.incrementalAlterConfigs``, stored as
ConfigRecords in the metadata log. A key's own validator is Kafka's ``GroupConfig.CONFIG_DEF``
(``share.record.lock.duration.ms`` at least 1000, ...); a value must then lie within the broker's
``group.<kind>.min.*``/``group.<kind>.max.*`` settings (``GroupConfig.validateValues``), and a stored
value outside bounds changed since is capped to them when used (``GroupConfig.evaluate``). Every
failure is a :class:`~kbroker.config.values.ConfigError` with Kafka's message (INVALID_CONFIG).
kbroker lists the keys it has of Kafka 4.4's (not the ``*.assignor.offload.enable`` ones nor
``streams.num.warmup.replicas``). As in Kafka's ``GroupMetadataManager``, a group's override
replaces the broker default for that group wherever the coordinator reads it: the consumer groups'
session timeout and heartbeat interval, the streams groups' session timeout, heartbeat interval,
standby replicas, initial rebalance delay, task offset interval and acceptable recovery lag, the share groups' ``share.*`` settings and their
dead-letter queue (``errors.deadletterqueue.*``). The ``*.assignment.interval.ms`` keys, the rack
tags and ``share.renew.acknowledge.enable`` are accepted and stored without effect (their docs say so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kbroker.config.broker_config import ConfigEntry
from kbroker.config.values import ConfigError, ConfigKey, format_config_value

RESOURCE_GROUP = 32  # Kafka's ConfigResource.Type.GROUP
GROUP_CONFIG_SOURCE, DEFAULT_CONFIG_SOURCE = 8, 5  # DescribeConfigs ConfigSource ids


class ConfigValues(Protocol):
    """The broker's configuration as read here (:class:`~kbroker.config.BrokerConfig`)."""

    def __getitem__(self, name: str, /) -> Any: ...


_DURATION = re.compile(r"P(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?", re.IGNORECASE)


def _offset_reset(name: str, value: str, raw: str) -> None:
    """Kafka's ``ShareGroupAutoOffsetResetStrategy.Validator``: earliest, latest or
    ``by_duration:<non-negative ISO-8601 duration>``."""
    v = value.lower()
    if v in ("earliest", "latest") or (v.startswith("by_duration:") and _DURATION.fullmatch(value[12:])):
        return
    raise ConfigError(name, raw, f"Invalid value `{value}` for configuration {name}. The value must be either "
                      "'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'.")


@dataclass(frozen=True, slots=True)
class GroupKey:
    """One group config: its spec (Kafka's type, default and ``CONFIG_DEF`` validator), the broker
    key it defaults to (``GroupConfig.ALL_GROUP_CONFIG_SYNONYMS``; None: its own default) and the
    broker keys bounding it (``GroupConfig.validateValues``; None: that side unbounded)."""

    spec: ConfigKey
    synonym: str | None = None
    lowest: str | None = None
    highest: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def type(self) -> str:
        return self.spec.type

    def bounds(self, config: ConfigValues) -> tuple[int | None, int | None]:
        return (None if self.lowest is None else int(config[self.lowest]),
                None if self.highest is None else int(config[self.highest]))

    def default(self, config: ConfigValues) -> Any:
        """The value of a group without an override: its broker synonym's, else its own default
        (``streams.assignor.name``: the first of the broker's ``group.streams.assignors``)."""
        if self.synonym is None:
            return self.spec.parse(self.spec.default or "")
        value = config[self.synonym]
        return value[0] if self.name == "streams.assignor.name" else value


def _int(name: str, at_least: int, synonym: str, doc: str, bounded: str | None = "range") -> GroupKey:
    """An INT group key ``atLeast(at_least)``, defaulting to broker key ``synonym``
    (``group.<kind>.<rest>``) and bounded by ``group.<kind>.min.<rest>``/``max.<rest>`` ("range"),
    by the max alone ("max", streams.num.standby.replicas: ``max.standby.replicas``), by the min
    alone ("min", streams.task.offset.interval.ms) or not (None)."""
    kind, rest = synonym.removeprefix("group.").split(".", 1)
    lowest = f"group.{kind}.min.{rest}" if bounded in ("range", "min") else None
    highest = (f"group.{kind}.max.{rest}" if bounded == "range"
               else f"group.{kind}.max.{rest.removeprefix('num.')}" if bounded == "max" else None)
    return GroupKey(ConfigKey(name, "int", None, minimum=at_least, read_only=False, doc=doc), synonym, lowest, highest)


def _own(name: str, type_: str, default: str, doc: str, **validators: Any) -> GroupKey:
    return GroupKey(ConfigKey(name, type_, default, read_only=False, doc=doc, **validators))


# Kafka's GroupConfig.CONFIG_DEF, in its order (values are parsed and checked in this order), with
# each key's DescribeConfigs documentation. A change is used from the group's next heartbeat on (the
# interval it is told, the session timer it re-arms), as in Kafka.
_NEXT = " A change applies from each member's next heartbeat."
GROUP_KEYS: dict[str, GroupKey] = {
    k.name: k
    for k in [
        _int("consumer.session.timeout.ms", 1, "group.consumer.session.timeout.ms",
             "How long, in ms, a member of this consumer group may go without a heartbeat before it is removed, "
             "within the broker's group.consumer.min/max.session.timeout.ms." + _NEXT),
        _int("consumer.heartbeat.interval.ms", 1, "group.consumer.heartbeat.interval.ms",
             "How often, in ms, members of this consumer group are told to heartbeat, within the broker's "
             "group.consumer.min/max.heartbeat.interval.ms." + _NEXT),
        _int("consumer.assignment.interval.ms", 0, "group.consumer.assignment.interval.ms",
             "The least time, in ms, between two assignment updates of this group. Accepted, no effect: kbroker "
             "updates the assignment whenever the group changes."),
        _int("share.session.timeout.ms", 1, "group.share.session.timeout.ms",
             "How long, in ms, a member of this share group may go without a heartbeat before it is removed."),
        _int("share.heartbeat.interval.ms", 1, "group.share.heartbeat.interval.ms",
             "How often, in ms, members of this share group are told to heartbeat."),
        _int("share.record.lock.duration.ms", 1000, "group.share.record.lock.duration.ms",
             "How long, in ms, a record delivered to a member of this share group stays locked to it before it "
             "is released for redelivery."),
        _int("share.delivery.count.limit", 2, "group.share.delivery.count.limit",
             "How many times this share group delivers a record before it is archived as undeliverable (or "
             "written to the group's dead-letter queue)."),
        _int("share.partition.max.record.locks", 100, "group.share.partition.max.record.locks",
             "The most records of one partition that may be locked to members of this share group at once."),
        _own("share.auto.offset.reset", "string", "latest",
             "Where this share group starts on a partition it has no state for: earliest, latest, or "
             "by_duration:<ISO-8601 duration> (the first record at most that long ago).", check=_offset_reset),
        _own("share.isolation.level", "string", "read_uncommitted",
             "read_committed delivers only committed transactional records (up to the last stable offset); "
             "read_uncommitted delivers every record, aborted ones included.",
             choices=("read_committed", "read_uncommitted")),
        _own("share.renew.acknowledge.enable", "boolean", "true",
             "Whether members of this share group may acknowledge a record with RENEW, extending its lock. "
             "Accepted and stored, no effect: kbroker takes RENEW acknowledgements whatever its value."),
        _int("share.assignment.interval.ms", 0, "group.share.assignment.interval.ms",
             "The least time, in ms, between two assignment updates of this share group. Accepted, no effect: "
             "kbroker updates the assignment whenever the group changes."),
        _int("streams.session.timeout.ms", 1, "group.streams.session.timeout.ms",
             "How long, in ms, a member of this streams group may go without a heartbeat before it is removed, "
             "within the broker's group.streams.min/max.session.timeout.ms." + _NEXT),
        _int("streams.heartbeat.interval.ms", 1, "group.streams.heartbeat.interval.ms",
             "How often, in ms, members of this streams group are told to heartbeat, within the broker's "
             "group.streams.min/max.heartbeat.interval.ms." + _NEXT),
        _int("streams.num.standby.replicas", 0, "group.streams.num.standby.replicas",
             "Standby replicas per stateful task for this streams group, at most the broker's "
             "group.streams.max.standby.replicas. A change makes the group's next heartbeat compute a new "
             "assignment.", bounded="max"),
        _int("streams.initial.rebalance.delay.ms", 0, "group.streams.initial.rebalance.delay.ms",
             "How long, in ms, this streams group's first assignment waits for more members when a member joins "
             "it empty.", bounded=None),
        _int("streams.assignment.interval.ms", 0, "group.streams.assignment.interval.ms",
             "The least time, in ms, between two assignment updates of this streams group. Accepted, no effect: "
             "kbroker updates the assignment whenever the group changes."),
        _int("streams.task.offset.interval.ms", 1, "group.streams.task.offset.interval.ms",
             "How often, in ms, members of this streams group are told to report their tasks' changelog offsets, "
             "at least the broker's group.streams.min.task.offset.interval.ms." + _NEXT, bounded="min"),
        GroupKey(ConfigKey("streams.rack.aware.assignment.tags", "list", None, read_only=False,
                           doc="Client tags the streams assignor should spread this group's standby replicas over. "
                               "kbroker's assignor does not use them; as in Kafka, a change makes the group's "
                               "next heartbeat compute a new assignment."),
                 "group.streams.rack.aware.assignment.tags"),
        GroupKey(ConfigKey("streams.acceptable.recovery.lag", "long", None, minimum=0, read_only=False,
                           doc="How far behind (in offsets) a member's state may be and still count as caught up "
                               "for an active task; sent to the members of this streams group." + _NEXT),
                 "group.streams.acceptable.recovery.lag"),
        GroupKey(ConfigKey("streams.assignor.name", "string", None, read_only=False,
                           doc="The task assignor of this streams group, one of the broker's "
                               "group.streams.assignors (default: the first of them); kbroker has sticky."),
                 "group.streams.assignors"),
        _own("errors.deadletterqueue.topic.name", "string", "",
             "The topic this share group writes undeliverable records to (its dead-letter queue, KIP-1191); "
             "empty means none. The name may not start with __."),
        _own("errors.deadletterqueue.copy.record.enable", "boolean", "false",
             "Whether a dead-letter record carries a copy of the original record's key and value, not only the "
             "headers describing where it came from."),
    ]
}

# GroupConfig.validateValues' order of the broker-bound checks.
_BOUNDS_ORDER = ("consumer.heartbeat.interval.ms", "consumer.session.timeout.ms", "consumer.assignment.interval.ms",
                 "share.heartbeat.interval.ms", "share.session.timeout.ms", "share.record.lock.duration.ms",
                 "share.delivery.count.limit", "share.partition.max.record.locks", "share.assignment.interval.ms",
                 "streams.heartbeat.interval.ms", "streams.session.timeout.ms", "streams.num.standby.replicas",
                 "streams.assignment.interval.ms", "streams.task.offset.interval.ms")
_TAGS = "streams.rack.aware.assignment.tags"
_TAG_SEPARATOR = re.compile(r"\s*,\s*")


def _invalid(name: str, value: object, message: str) -> ConfigError:
    """Kafka's InvalidConfigurationException: the message alone."""
    return ConfigError(name, value, message, message)


def validate_group_configs(config: ConfigValues, new: Mapping[str, str]) -> dict[str, Any]:
    """Kafka's ``GroupConfig.validate`` of a group's whole new set of overrides against the broker's
    ``config``: names, then each value (type and validator), then the broker's bounds, the
    registered streams assignors, session timeouts above heartbeat intervals and the dead-letter
    topic's name. Returns the values typed; raises :class:`ConfigError` with Kafka's message."""
    for name in new:
        if name not in GROUP_KEYS:
            raise _invalid(name, new[name], f"Unknown group config name: {name}")
    raw_tags = new.get(_TAGS)
    if raw_tags is not None:  # checked on the text: Kafka's LIST parsing drops duplicates
        tags = _TAG_SEPARATOR.split(raw_tags.strip()) if raw_tags.strip() else []
        if len(set(tags)) != len(tags):
            raise _invalid(_TAGS, raw_tags, f"{_TAGS} must not contain duplicate tag keys.")
    typed = {name: key.spec.parse(new[name]) for name, key in GROUP_KEYS.items() if name in new}
    for name in _BOUNDS_ORDER:
        if name not in typed:
            continue
        value, (lo, hi) = typed[name], GROUP_KEYS[name].bounds(config)
        if lo is not None and hi is not None and not lo <= value <= hi:
            raise _invalid(name, value, f"{name} must be in the range {lo} to {hi} inclusive.")
        if lo is None and hi is not None and value > hi:
            raise _invalid(name, value, f"{name} must be less than or equal to {hi}")
        if lo is not None and hi is None and value < lo:
            raise _invalid(name, value, f"{name} must be greater than or equal to {lo}")
    assignor = typed.get("streams.assignor.name")
    if "streams.assignor.name" in typed and assignor not in (registered := list(config["group.streams.assignors"])):
        raise _invalid("streams.assignor.name", assignor, f"streams.assignor.name '{assignor}' is not a registered "
                       f"task assignor. Registered assignors are: [{', '.join(registered)}].")
    for kind in ("consumer", "share", "streams"):
        session, heartbeat = f"{kind}.session.timeout.ms", f"{kind}.heartbeat.interval.ms"
        if session in typed or heartbeat in typed:
            s = typed.get(session, config[f"group.{session}"])
            h = typed.get(heartbeat, config[f"group.{heartbeat}"])
            if s <= h:
                raise _invalid(session, s, f"{session} must be greater than {heartbeat}")
    dlq = typed.get("errors.deadletterqueue.topic.name")
    if dlq and dlq.startswith("__"):
        raise _invalid("errors.deadletterqueue.topic.name", dlq,
                       "errors.deadletterqueue.topic.name: DLQ topic name must not start with '__'")
    return typed


def group_value(config: ConfigValues, overrides: Mapping[str, str], name: str) -> Any:
    """The value of group config ``name`` for a group with ``overrides``, typed: its override capped
    to the broker's current bounds (Kafka's ``GroupConfig.evaluate``), else its default."""
    key = GROUP_KEYS[name]
    raw = overrides.get(name)
    if raw is None:
        return key.default(config)
    value = key.spec.parse(raw)
    if key.lowest is not None or key.highest is not None:
        lo, hi = key.bounds(config)
        if lo is not None and value < lo:
            value = lo
        elif hi is not None and value > hi:
            value = hi
    return value


def describe_group_configs(config: ConfigValues, overrides: Mapping[str, str]) -> list[ConfigEntry]:
    """DescribeConfigs of a GROUP resource: every group config, sorted, the group's own value
    (GROUP_CONFIG source) or the default (DEFAULT_CONFIG); the synonyms are the group's own value,
    then the default."""
    out = []
    for name in sorted(GROUP_KEYS):
        key = GROUP_KEYS[name]
        default = format_config_value(key.default(config))
        synonyms: list[tuple[str, str | None, int]] = [(name, default, DEFAULT_CONFIG_SOURCE)]
        if name in overrides:
            synonyms.insert(0, (name, overrides[name], GROUP_CONFIG_SOURCE))
        value, source = synonyms[0][1], synonyms[0][2]
        out.append(ConfigEntry(name, value, source, False, False, key.type, synonyms, key.spec.doc or None))
    return out
