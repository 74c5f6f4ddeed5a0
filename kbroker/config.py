"""Broker and topic configuration with Apache Kafka's own keys.

``server.properties`` is read with Java properties syntax. Every key Kafka users put in that file
is known here with its type and default; keys kbroker does not know produce a warning, and a value
that does not parse or is out of range stops start-up with a :class:`ConfigError` naming the key.

Topic-level configs (``segment.bytes``, ``retention.ms``, ...) take their defaults from the broker
keys Kafka names as their synonyms (``log.segment.bytes``, ``log.retention.hours``, ...), in
Kafka's order of precedence; DescribeConfigs reports those synonyms.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(f"Invalid value {value!r} for configuration {key}: {reason}")
        self.key = key
        self.value = value
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Types (Kafka's ConfigDef.Type names; DescribeConfigs v3+ reports them as numbers)

CONFIG_TYPE_IDS = {
    "boolean": 1,
    "string": 2,
    "int": 3,
    "short": 4,
    "long": 5,
    "double": 6,
    "list": 7,
    "class": 8,
    "password": 9,
}


def _parse_bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise ConfigError(key, raw, "Expected value to be either true or false")


def _parse_int(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(key: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(key, raw, "Not a number") from None
        if not lo <= value <= hi:
            raise ConfigError(key, raw, f"Value must be in the range [{lo}, {hi}]")
        return value

    return parse


def _parse_double(key: str, raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ConfigError(key, raw, "Not a number") from None


def _parse_string(key: str, raw: str) -> str:
    return raw.strip()


def _parse_list(key: str, raw: str) -> list[str]:
    raw = raw.strip()
    return [item.strip() for item in raw.split(",") if item.strip()] if raw else []


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "boolean": _parse_bool,
    "string": _parse_string,
    "int": _parse_int(-(2**31), INT_MAX),
    "short": _parse_int(-(2**15), 2**15 - 1),
    "long": _parse_int(-(2**63), LONG_MAX),
    "double": _parse_double,
    "list": _parse_list,
    "class": _parse_string,
    "password": _parse_string,
}


@dataclass(frozen=True, slots=True)
class ConfigKey:
    name: str
    type: str
    default: str | None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    list_choices: tuple[str, ...] | None = None
    read_only: bool = True
    sensitive: bool = False
    applied: bool = True  # False: accepted for compatibility, has no effect in kbroker

    def parse(self, raw: str) -> Any:
        value = _PARSERS[self.type](self.name, raw)
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(self.name, raw, f"Value must be at least {_fmt(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(self.name, raw, f"Value must be no more than {_fmt(self.maximum)}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(self.name, raw, f"String must be one of: {', '.join(self.choices)}")
        if self.list_choices is not None:
            for item in value:
                if item not in self.list_choices:
                    raise ConfigError(
                        self.name, raw, f"Invalid value {item}; must be one of {', '.join(self.list_choices)}"
                    )
        return value


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _k(name: str, type_: str, default: str | None, **kw: Any) -> ConfigKey:
    return ConfigKey(name, type_, default, **kw)


_COMPRESSION = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
_TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")

# Broker configuration keys. `applied=False` marks keys accepted (so real server.properties files
# start) that do not change kbroker's behaviour; they are listed by DescribeConfigs like any other.
BROKER_KEYS: dict[str, ConfigKey] = {
    k.name: k
    for k in [
        _k("node.id", "int", "-1", minimum=-1),
        _k("broker.id", "int", "-1", minimum=-1),
        _k("process.roles", "list", "broker,controller", list_choices=("broker", "controller")),
        _k("listeners", "list", "PLAINTEXT://localhost:9092"),
        _k("advertised.listeners", "list", None),
        _k("listener.security.protocol.map", "string",
           "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
        _k("inter.broker.listener.name", "string", None),
        _k("controller.listener.names", "list", None),
        _k("controller.quorum.voters", "list", ""),
        _k("controller.quorum.bootstrap.servers", "list", ""),
        _k("cluster.id", "string", None),
        _k("log.dirs", "list", None),
        _k("log.dir", "list", "./kbroker-data"),
        _k("metadata.log.dir", "string", None),
        _k("num.partitions", "int", "1", minimum=1),
        _k("default.replication.factor", "int", "1", minimum=1),
        _k("auto.create.topics.enable", "boolean", "true"),
        _k("delete.topic.enable", "boolean", "true"),
        _k("message.max.bytes", "int", "1048588", minimum=0, read_only=False),
        _k("log.segment.bytes", "int", "1073741824", minimum=14, read_only=False),
        _k("log.roll.ms", "long", None, minimum=1, read_only=False),
        _k("log.roll.hours", "int", "168", minimum=1),
        _k("log.roll.jitter.ms", "long", None, minimum=0, read_only=False),
        _k("log.roll.jitter.hours", "int", "0", minimum=0),
        _k("log.index.size.max.bytes", "int", "10485760", minimum=4, read_only=False),
        _k("log.index.interval.bytes", "int", "4096", minimum=0, read_only=False),
        _k("log.retention.ms", "long", None, read_only=False),
        _k("log.retention.minutes", "int", None),
        _k("log.retention.hours", "int", "168"),
        _k("log.retention.bytes", "long", "-1", read_only=False),
        _k("log.retention.check.interval.ms", "long", "300000", minimum=1),
        _k("log.flush.interval.messages", "long", str(LONG_MAX), minimum=1, read_only=False),
        _k("log.flush.interval.ms", "long", None, read_only=False),
        _k("log.flush.scheduler.interval.ms", "long", str(LONG_MAX)),
        _k("log.flush.offset.checkpoint.interval.ms", "int", "60000", minimum=0),
        _k("log.cleanup.policy", "list", "delete", list_choices=("compact", "delete"), read_only=False),
        _k("log.cleaner.enable", "boolean", "true"),
        _k("log.cleaner.delete.retention.ms", "long", "86400000", minimum=0, read_only=False),
        _k("log.cleaner.min.compaction.lag.ms", "long", "0", minimum=0, read_only=False),
        _k("log.cleaner.max.compaction.lag.ms", "long", str(LONG_MAX), minimum=1, read_only=False),
        _k("log.cleaner.min.cleanable.ratio", "double", "0.5", minimum=0, maximum=1, read_only=False),
        _k("log.cleaner.backoff.ms", "long", "15000", minimum=0),
        _k("log.cleaner.threads", "int", "1", minimum=0, applied=False),
        _k("log.segment.delete.delay.ms", "long", "60000", minimum=0, read_only=False),
        _k("log.preallocate", "boolean", "false", read_only=False, applied=False),
        _k("log.message.timestamp.type", "string", "CreateTime", choices=_TIMESTAMP_TYPES, read_only=False),
        _k("log.message.timestamp.before.max.ms", "long", str(LONG_MAX), minimum=0, read_only=False),
        _k("log.message.timestamp.after.max.ms", "long", "3600000", minimum=0, read_only=False),
        _k("compression.type", "string", "producer", choices=_COMPRESSION, read_only=False),
        _k("compression.gzip.level", "int", "-1", minimum=-1, maximum=9, read_only=False),
        _k("compression.lz4.level", "int", "9", minimum=1, maximum=17, read_only=False),
        _k("compression.zstd.level", "int", "3", minimum=-131072, maximum=22, read_only=False),
        _k("min.insync.replicas", "int", "1", minimum=1, read_only=False),
        _k("unclean.leader.election.enable", "boolean", "false", read_only=False),
        _k("socket.request.max.bytes", "int", "104857600", minimum=1),
        _k("socket.send.buffer.bytes", "int", "102400"),
        _k("socket.receive.buffer.bytes", "int", "102400"),
        _k("connections.max.idle.ms", "long", "600000"),
        _k("num.network.threads", "int", "3", minimum=1, applied=False),
        _k("num.io.threads", "int", "8", minimum=1, applied=False),
        _k("num.recovery.threads.per.data.dir", "int", "2", minimum=1, applied=False),
        _k("num.replica.fetchers", "int", "1", minimum=1, applied=False),
        _k("queued.max.requests", "int", "500", minimum=1, applied=False),
        _k("group.initial.rebalance.delay.ms", "int", "3000", minimum=0),
        _k("group.min.session.timeout.ms", "int", "6000"),
        _k("group.max.session.timeout.ms", "int", "1800000"),
        _k("group.max.size", "int", str(INT_MAX), minimum=1),
        _k("group.coordinator.rebalance.protocols", "list", "classic,consumer,streams",
           list_choices=("classic", "consumer", "share", "streams")),
        _k("group.consumer.session.timeout.ms", "int", "45000", minimum=1),
        _k("group.consumer.heartbeat.interval.ms", "int", "5000", minimum=1),
        _k("group.consumer.assignors", "list", "uniform,range"),
        _k("offsets.topic.num.partitions", "int", "50", minimum=1),
        _k("offsets.topic.replication.factor", "short", "3", minimum=1),
        _k("offsets.topic.segment.bytes", "int", "104857600", minimum=1),
        _k("offsets.retention.minutes", "int", "10080", minimum=1),
        _k("offsets.retention.check.interval.ms", "long", "600000", minimum=1),
        _k("offsets.commit.timeout.ms", "int", "5000", minimum=1),
        _k("offset.metadata.max.bytes", "int", "4096"),
        _k("transaction.state.log.num.partitions", "int", "50", minimum=1),
        _k("transaction.state.log.replication.factor", "short", "3", minimum=1),
        _k("transaction.state.log.min.isr", "int", "2", minimum=1),
        _k("transaction.state.log.segment.bytes", "int", "104857600", minimum=1),
        _k("transaction.max.timeout.ms", "int", "900000", minimum=1),
        _k("transactional.id.expiration.ms", "int", "604800000", minimum=1),
        _k("transaction.abort.timed.out.transaction.cleanup.interval.ms", "int", "10000", minimum=1),
        _k("producer.id.expiration.ms", "int", "86400000", minimum=1),
        _k("producer.id.expiration.check.interval.ms", "int", "600000", minimum=1),
        _k("max.incremental.fetch.session.cache.slots", "int", "1000", minimum=0),
        _k("fetch.max.bytes", "int", "57671680", minimum=1024),
        _k("replica.lag.time.max.ms", "long", "30000"),
        # Segment files kept open at once (kbroker/log/fd_budget.py); -1: half the open file limit.
        _k("kbroker.log.max.open.files", "int", "-1", minimum=-1),
        _k("zookeeper.connect", "string", None, applied=False),
        _k("zookeeper.connection.timeout.ms", "int", None, applied=False),
        _k("zookeeper.session.timeout.ms", "int", "18000", applied=False),
    ]
}


@dataclass(frozen=True, slots=True)
class TopicKey:
    """A topic-level config and the broker keys it falls back to, first match wins."""

    name: str
    type: str
    synonyms: tuple[str, ...]
    convert: Callable[[str, Any], Any] | None = None  # (broker key, broker value) -> topic value
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    list_choices: tuple[str, ...] | None = None
    default: str | None = None  # only when no broker synonym exists

    def parse(self, raw: str) -> Any:
        key = ConfigKey(self.name, self.type, None, minimum=self.minimum, choices=self.choices,
                        list_choices=self.list_choices)
        return key.parse(raw)


def _hours_to_ms(_key: str, value: Any) -> Any:
    return None if value is None else int(value) * 3_600_000


def _minutes_or_hours_to_ms(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key.endswith(".minutes"):
        return int(value) * 60_000
    if key.endswith(".hours"):
        return int(value) * 3_600_000
    return int(value)


def _ratio(_key: str, value: Any) -> Any:
    return value


TOPIC_KEYS: dict[str, TopicKey] = {
    t.name: t
    for t in [
        TopicKey("cleanup.policy", "list", ("log.cleanup.policy",), list_choices=("compact", "delete")),
        TopicKey("compression.type", "string", ("compression.type",), choices=_COMPRESSION),
        TopicKey("compression.gzip.level", "int", ("compression.gzip.level",)),
        TopicKey("compression.lz4.level", "int", ("compression.lz4.level",)),
        TopicKey("compression.zstd.level", "int", ("compression.zstd.level",)),
        TopicKey("delete.retention.ms", "long", ("log.cleaner.delete.retention.ms",), minimum=0),
        TopicKey("file.delete.delay.ms", "long", ("log.segment.delete.delay.ms",), minimum=0),
        TopicKey("flush.messages", "long", ("log.flush.interval.messages",), minimum=1),
        TopicKey("flush.ms", "long", ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"), minimum=0),
        TopicKey("index.interval.bytes", "int", ("log.index.interval.bytes",), minimum=0),
        TopicKey("max.compaction.lag.ms", "long", ("log.cleaner.max.compaction.lag.ms",), minimum=1),
        TopicKey("max.message.bytes", "int", ("message.max.bytes",), minimum=0),
        TopicKey("message.timestamp.after.max.ms", "long", ("log.message.timestamp.after.max.ms",), minimum=0),
        TopicKey("message.timestamp.before.max.ms", "long", ("log.message.timestamp.before.max.ms",), minimum=0),
        TopicKey("message.timestamp.type", "string", ("log.message.timestamp.type",), choices=_TIMESTAMP_TYPES),
        TopicKey("min.cleanable.dirty.ratio", "double", ("log.cleaner.min.cleanable.ratio",), minimum=0),
        TopicKey("min.compaction.lag.ms", "long", ("log.cleaner.min.compaction.lag.ms",), minimum=0),
        TopicKey("min.insync.replicas", "int", ("min.insync.replicas",), minimum=1),
        TopicKey("preallocate", "boolean", ("log.preallocate",)),
        TopicKey("retention.bytes", "long", ("log.retention.bytes",)),
        TopicKey("retention.ms", "long", ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
                 convert=_minutes_or_hours_to_ms, minimum=-1),
        TopicKey("segment.bytes", "int", ("log.segment.bytes",), minimum=14),
        TopicKey("segment.index.bytes", "int", ("log.index.size.max.bytes",), minimum=4),
        TopicKey("segment.jitter.ms", "long", ("log.roll.jitter.ms", "log.roll.jitter.hours"),
                 convert=_minutes_or_hours_to_ms, minimum=0),
        TopicKey("segment.ms", "long", ("log.roll.ms", "log.roll.hours"), convert=_minutes_or_hours_to_ms,
                 minimum=1),
        TopicKey("unclean.leader.election.enable", "boolean", ("unclean.leader.election.enable",)),
    ]
}


# ---------------------------------------------------------------------------------------------
# server.properties


def parse_properties(text: str, source: str = "<string>") -> dict[str, str]:
    """Parse Java ``.properties`` text: ``key=value``, ``key: value`` or ``key value``; ``#``/``!``
    comments; backslash line continuation and escapes."""
    result: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#!":
            continue
        while _ends_with_continuation(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip()
            i += 1
        if _ends_with_continuation(line):
            line = line[:-1]
        key, value = _split_property(line)
        result[_unescape(key)] = _unescape(value)
    return result


def _ends_with_continuation(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_property(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in "=: \t\f":
            key = line[:i]
            rest = line[i:].lstrip(" \t\f")
            if rest[:1] in ("=", ":") and c in " \t\f":
                rest = rest[1:].lstrip(" \t\f")
            elif c in "=:":
                rest = line[i + 1 :].lstrip(" \t\f")
            return key, rest
        i += 1
    return line, ""


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6] or ""):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def load_properties_file(path: str | Path) -> dict[str, str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("<file>", str(path), f"cannot read configuration file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("<file>", str(path), "configuration file is not UTF-8 text") from None
    return parse_properties(text, str(p))


# ---------------------------------------------------------------------------------------------
# Listeners


@dataclass(frozen=True, slots=True)
class Endpoint:
    listener: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.listener}://{host}:{self.port}"


_ENDPOINT_RE = re.compile(r"^([A-Za-z0-9_]+)://(\[[^\]]*\]|[^:/\s]*):(-?\d+)$")


def parse_endpoints(key: str, items: Iterable[str], protocol_map: Mapping[str, str]) -> list[Endpoint]:
    endpoints: list[Endpoint] = []
    seen: set[str] = set()
    for item in items:
        m = _ENDPOINT_RE.match(item.strip())
        if not m:
            raise ConfigError(key, item, "expected LISTENER_NAME://host:port")
        name, host, port_s = m.group(1).upper(), m.group(2), m.group(3)
        port = int(port_s)
        if not 0 <= port <= 65535:
            raise ConfigError(key, item, "port must be between 0 and 65535")
        if host.startswith("["):
            host = host[1:-1]
        if name in seen:
            raise ConfigError(key, item, f"listener name {name} appears more than once")
        seen.add(name)
        protocol = protocol_map.get(name)
        if protocol is None:
            raise ConfigError(key, item, f"listener {name} not found in listener.security.protocol.map")
        if protocol != "PLAINTEXT":
            raise ConfigError(key, item, f"security protocol {protocol} is not supported (PLAINTEXT only)")
        endpoints.append(Endpoint(name, host, port, protocol))
    return endpoints


# ---------------------------------------------------------------------------------------------
# The broker's configuration


@dataclass(slots=True)
class ConfigEntry:
    """One config as DescribeConfigs reports it."""

    name: str
    value: str | None
    source: int  # Kafka's ConfigSource ids
    read_only: bool
    sensitive: bool
    type: str
    synonyms: list[tuple[str, str | None, int]] = field(default_factory=list)


# DescribeConfigs ConfigSource values.
SOURCE_UNKNOWN = 0
SOURCE_TOPIC = 1
SOURCE_DYNAMIC_BROKER = 2
SOURCE_DYNAMIC_DEFAULT_BROKER = 3
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5


class BrokerConfig:
    """Validated broker configuration. ``raw`` holds the strings as given."""

    def __init__(
        self,
        props: Mapping[str, str] | None = None,
        *,
        warn: bool = True,
        dynamic_default: Mapping[str, str] | None = None,
        dynamic_node: Mapping[str, str] | None = None,
    ) -> None:
        self.raw: dict[str, str] = dict(props or {})
        # Dynamic configs (AlterConfigs on BROKER resources): cluster-wide default and this node.
        self.dynamic_default: dict[str, str] = dict(dynamic_default or {})
        self.dynamic_node: dict[str, str] = dict(dynamic_node or {})
        self.values: dict[str, Any] = {}
        self.unknown: list[str] = []
        for name, key in BROKER_KEYS.items():
            raw = self.dynamic_node.get(name, self.dynamic_default.get(name, self.raw.get(name)))
            self.values[name] = key.parse(raw) if raw is not None else (
                key.parse(key.default) if key.default is not None else None
            )
        for name in self.raw:
            if name not in BROKER_KEYS:
                self.unknown.append(name)
        if warn:
            for name in self.unknown:
                log.warning("unknown configuration key %s (ignored)", name)
            if "zookeeper.connect" in self.raw:
                log.warning("zookeeper.connect is not needed: kbroker has a built-in controller (ignored)")
            for name, key in BROKER_KEYS.items():
                if not key.applied and name in self.raw and name != "zookeeper.connect":
                    log.info("configuration key %s is accepted but has no effect in kbroker", name)
        self._derive()

    def _derive(self) -> None:
        v = self.values
        node_id = v["node.id"]
        broker_id = v["broker.id"]
        if node_id == -1 and broker_id != -1:
            node_id = broker_id
        elif node_id != -1 and broker_id != -1 and node_id != broker_id:
            raise ConfigError("broker.id", self.raw["broker.id"],
                              f"must equal node.id ({node_id}) when both are set")
        if node_id == -1:
            node_id = 1
        self.node_id: int = node_id
        protocol_map: dict[str, str] = {}
        for item in _parse_list("listener.security.protocol.map", v["listener.security.protocol.map"]):
            if ":" not in item:
                raise ConfigError("listener.security.protocol.map", item, "expected NAME:PROTOCOL pairs")
            name, proto = item.split(":", 1)
            protocol_map[name.strip().upper()] = proto.strip().upper()
        self.listeners = parse_endpoints("listeners", v["listeners"], protocol_map)
        if not self.listeners:
            raise ConfigError("listeners", self.raw.get("listeners", ""), "at least one listener is required")
        controller_names = {n.upper() for n in (v["controller.listener.names"] or [])}
        self.client_listeners = [e for e in self.listeners if e.listener not in controller_names]
        if not self.client_listeners:
            raise ConfigError("listeners", self.raw.get("listeners", ""),
                              "no client listener (all are controller listeners)")
        advertised = v["advertised.listeners"]
        if advertised:
            self.advertised_listeners = parse_endpoints("advertised.listeners", advertised, protocol_map)
            for e in self.advertised_listeners:
                if e.host in ("0.0.0.0", "::"):
                    raise ConfigError("advertised.listeners", str(e),
                                      "advertised.listeners cannot use the nonroutable meta-address")
        else:
            self.advertised_listeners = []
        dirs = v["log.dirs"] if v["log.dirs"] else v["log.dir"]
        if not dirs:
            raise ConfigError("log.dirs", self.raw.get("log.dirs", ""), "at least one log directory is required")
        self.log_dirs: list[Path] = [Path(d) for d in dirs]
        if v["group.min.session.timeout.ms"] > v["group.max.session.timeout.ms"]:
            raise ConfigError("group.min.session.timeout.ms", v["group.min.session.timeout.ms"],
                              "must not exceed group.max.session.timeout.ms")

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def with_overrides(self, overrides: Mapping[str, str]) -> BrokerConfig:
        merged = dict(self.raw)
        merged.update(overrides)
        return BrokerConfig(merged, warn=False, dynamic_default=self.dynamic_default,
                            dynamic_node=self.dynamic_node)

    def with_dynamic(self, default: Mapping[str, str], node: Mapping[str, str]) -> BrokerConfig:
        return BrokerConfig(self.raw, warn=False, dynamic_default=default, dynamic_node=node)

    def _layers(self) -> list[tuple[dict[str, str], int]]:
        return [
            (self.dynamic_node, SOURCE_DYNAMIC_BROKER),
            (self.dynamic_default, SOURCE_DYNAMIC_DEFAULT_BROKER),
            (self.raw, SOURCE_STATIC_BROKER),
        ]

    # -- topic defaults ---------------------------------------------------------------------

    def topic_default(self, topic_key: str) -> tuple[Any, str | None]:
        """The broker-level value of a topic config and the broker key it came from."""
        key = TOPIC_KEYS[topic_key]
        for layer, _source in self._layers():
            for syn in key.synonyms:
                if syn in layer:
                    value = BROKER_KEYS[syn].parse(layer[syn])
                    return (key.convert(syn, value) if key.convert else value), syn
        for syn in key.synonyms:
            value = self.values.get(syn)
            if value is not None:
                return (key.convert(syn, value) if key.convert else value), syn
        return (key.parse(key.default) if key.default is not None else None), None

    def topic_config(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        """Effective topic-level config values for a topic with the given (validated) overrides."""
        result: dict[str, Any] = {}
        for name, key in TOPIC_KEYS.items():
            if name in overrides:
                result[name] = key.parse(overrides[name])
            else:
                result[name] = self.topic_default(name)[0]
        return result

    def describe_broker(self) -> list[ConfigEntry]:
        entries = []
        for name, key in sorted(BROKER_KEYS.items()):
            synonyms: list[tuple[str, str | None, int]] = [
                (name, layer[name], source) for layer, source in self._layers() if name in layer
            ]
            if key.default is not None:
                synonyms.append((name, key.default, SOURCE_DEFAULT))
            value, source = (synonyms[0][1], synonyms[0][2]) if synonyms else (None, SOURCE_DEFAULT)
            if key.sensitive:
                value = None
            entries.append(ConfigEntry(name, value, source, key.read_only, key.sensitive, key.type, synonyms))
        return entries

    def describe_topic(self, overrides: Mapping[str, str]) -> list[ConfigEntry]:
        entries = []
        for name, key in sorted(TOPIC_KEYS.items()):
            synonyms: list[tuple[str, str | None, int]] = []
            if name in overrides:
                synonyms.append((name, overrides[name], SOURCE_TOPIC))
            for layer, source in self._layers():
                for syn in key.synonyms:
                    if syn in layer:
                        synonyms.append((syn, layer[syn], source))
            for syn in key.synonyms:
                default = BROKER_KEYS[syn].default
                if default is not None:
                    synonyms.append((syn, default, SOURCE_DEFAULT))
            if name in overrides:
                value, source = overrides[name], SOURCE_TOPIC
            else:
                effective, _ = self.topic_default(name)
                value = format_config_value(effective)
                source = synonyms[0][2] if synonyms else SOURCE_DEFAULT
            entries.append(ConfigEntry(name, value, source, False, False, key.type, synonyms))
        return entries


def format_config_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Check topic-level overrides; returns the non-null ones. Raises ConfigError naming the key."""
    out: dict[str, str] = {}
    for name, raw in configs.items():
        key = TOPIC_KEYS.get(name)
        if key is None:
            raise ConfigError(name, raw, "Unknown topic config name")
        if raw is None:
            raise ConfigError(name, raw, "Null value not supported for topic configs")
        key.parse(raw)
        out[name] = raw
    return out
