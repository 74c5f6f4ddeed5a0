"""The broker's configuration (:class:`BrokerConfig`): the static, dynamic cluster-default and
dynamic per-broker layers parsed once against the key table, Kafka's start-up checks, topic
defaults, and what DescribeConfigs reports (:class:`ConfigEntry`)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbroker.config.addresses import (
    parse_bootstrap_servers,
    parse_endpoints,
    parse_ip_overrides,
    parse_protocol_map,
    parse_quorum_voters,
)
from kbroker.config.keys import (
    BROKER_DEFAULTS,
    BROKER_KEYS,
    BROKER_SYNONYMS,
    DYNAMIC_ONLY_BROKER_KEYS,
    INTERNAL_BROKER_KEYS,
    TOPIC_KEYS,
    _from_synonyms,
)
from kbroker.config.security_keys import _listener_key, dynamic_listener_key
from kbroker.config.values import ConfigError, format_config_value

log = logging.getLogger(__name__)

_UNSET = object()

@dataclass(slots=True)
class ConfigEntry:
    """One config as DescribeConfigs reports it."""

    name: str
    value: str | None
    source: int  # Kafka's ConfigSource ids
    read_only: bool
    sensitive: bool
    type: str
    synonyms: Sequence[tuple[str, str | None, int]] = field(default_factory=list)
    doc: str | None = None


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
        # They were validated when altered; one that no longer validates is ignored with a warning
        # (as Kafka's DynamicBrokerConfig drops invalid stored configs) rather than stopping the
        # broker while it replays its metadata.
        self.dynamic_default: dict[str, str] = _valid_dynamic(dynamic_default or {}, "cluster default")
        self.dynamic_node: dict[str, str] = _valid_dynamic(dynamic_node or {}, "this broker")
        self.values: dict[str, Any] = {}
        self.unknown: list[str] = []
        # Typed values of each layer, highest precedence first (the strings are parsed once, here).
        self._typed: list[tuple[dict[str, Any], int]] = [
            ({k: BROKER_KEYS[k].parse(v) for k, v in layer.items() if k in BROKER_KEYS}, source)
            for layer, source in self._layers()
        ]
        for name in BROKER_KEYS:
            self.values[name] = next(
                (typed[name] for typed, _ in self._typed if name in typed), None
            )
            if self.values[name] is None:
                self.values[name] = BROKER_DEFAULTS[name]
        for name in self.raw:
            if name not in BROKER_KEYS and not _listener_key(name):
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
        protocol_map = parse_protocol_map(v["listener.security.protocol.map"])
        self.protocol_map = protocol_map
        self.listener_overrides = self._listener_overrides()
        self.listeners = parse_endpoints("listeners", v["listeners"], protocol_map)
        if not self.listeners:
            raise ConfigError("listeners", self.raw.get("listeners", ""), "at least one listener is required")
        controller_names = {n.upper() for n in (v["controller.listener.names"] or [])}
        self.client_listeners = [e for e in self.listeners if e.listener not in controller_names]
        self.controller_listeners = [e for e in self.listeners if e.listener in controller_names]
        self.process_roles: frozenset[str] = frozenset(v["process.roles"] or ())
        self.quorum_voters: dict[int, tuple[str, int]] = parse_quorum_voters(v["controller.quorum.voters"] or [])
        self.quorum_bootstrap_servers = parse_bootstrap_servers(v["controller.quorum.bootstrap.servers"] or [])
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
        self.cordoned_log_dirs: list[Path] = self._cordoned_log_dirs([str(d) for d in dirs])
        # KRaft mode as Kafka 4 runs it: process.roles given (with a quorum and a controller listener).
        # Without it kbroker runs its single-node start: one process, a one-voter quorum of its own,
        # no controller listener (the data directory is formatted on first start).
        # Kafka's getInterBrokerListenerNameAndSecurityProtocol: inter.broker.listener.name, or the
        # listener named as security.inter.broker.protocol (default PLAINTEXT); not both
        if v["inter.broker.listener.name"] is not None and self.is_set("security.inter.broker.protocol"):
            raise ConfigError("security.inter.broker.protocol", v["security.inter.broker.protocol"], "",
                              "Only one of inter.broker.listener.name and security.inter.broker.protocol should be "
                              "set.")
        self.inter_broker_listener = (v["inter.broker.listener.name"] or v["security.inter.broker.protocol"]).upper()
        self.kraft_mode = "process.roles" in self.raw
        if self.kraft_mode:
            self._validate_kraft(controller_names)
        elif not self.client_listeners:
            raise ConfigError("listeners", self.raw.get("listeners", ""),
                              "no client listener (all are controller listeners)")
        self._validate_connection_limits()
        self._validate_streams_groups()
        if v["group.min.session.timeout.ms"] > v["group.max.session.timeout.ms"]:
            raise ConfigError("group.min.session.timeout.ms", v["group.min.session.timeout.ms"],
                              "must not exceed group.max.session.timeout.ms")
        if v["replica.fetch.wait.max.ms"] > v["replica.socket.timeout.ms"]:  # KafkaConfig.validateValues
            raise ConfigError("replica.socket.timeout.ms", v["replica.socket.timeout.ms"], "",
                              "requirement failed: replica.socket.timeout.ms should always be at least "
                              "replica.fetch.wait.max.ms to prevent unnecessary socket timeouts")

    def _validate_kraft(self, controller_names: set[str]) -> None:
        """Kafka's KafkaConfig.validateValues for the KRaft keys, with its messages."""
        v = self.values
        roles = self.process_roles
        voter_ids = set(self.quorum_voters)
        node_id = self.node_id
        listener_names = {e.listener for e in self.listeners}
        names_list = [n.upper() for n in (v["controller.listener.names"] or [])]
        cln = "controller.listener.names"

        def fail(key: str, message: str) -> None:
            raise ConfigError(key, self.raw.get(key), "", message)

        if "node.id" not in self.raw and "broker.id" not in self.raw:
            fail("node.id", 'Missing required configuration "node.id" which has no default value.')
        if not names_list:
            fail(cln, f'Missing required configuration "{cln}" which has no default value.')
        if not voter_ids and not self.quorum_bootstrap_servers:
            fail("controller.quorum.voters",
                 "If using process.roles, either controller.quorum.bootstrap.servers must contain the set of "
                 "bootstrap controllers or controller.quorum.voters must contain a parseable set of controllers.")
        advertised = self.advertised_listeners or self.listeners
        broker_advertised = [e for e in advertised if e.listener not in controller_names]
        if roles == {"broker"}:
            if node_id in voter_ids:
                fail("node.id", f"If process.roles contains just the 'broker' role, the node id {node_id} must not "
                     f"be included in the set of voters controller.quorum.voters={_java_set(voter_ids)}")
            if self.controller_listeners:
                fail(cln, f"{cln} must not contain a value appearing in the 'listeners' configuration when running "
                     "KRaft with just the broker role")
        else:
            if roles == {"controller"}:
                if len(self.controller_listeners) != len(self.listeners):
                    fail("listeners", f"The listeners config must only contain KRaft controller listeners from {cln} "
                         "when process.roles=controller")
                ibl = v["inter.broker.listener.name"]
                if ibl is not None and ibl.upper() in controller_names:
                    fail(cln, f"{cln} must not contain an explicitly set inter.broker.listener.name configuration "
                         "value when process.roles=controller'")
            if voter_ids and node_id not in voter_ids:
                fail("controller.quorum.voters",
                     f"If process.roles contains the 'controller' role, the node id {node_id} must be included in "
                     f"the set of voters controller.quorum.voters={_java_set(voter_ids)}")
            if not self.controller_listeners:
                fail(cln, f"{cln} must contain at least one value appearing in the 'listeners' configuration when "
                     "running the KRaft controller role")
            if not all(n in listener_names for n in names_list):
                fail(cln, f"{cln} must only contain values appearing in the 'listeners' configuration when running "
                     "the KRaft controller role")
        if "broker" in roles:
            # A controller listener named in advertised.listeners is the controller endpoint this node
            # advertises to the quorum (Kafka 4.4's effectiveAdvertisedControllerListeners, KIP-853); the
            # broker advertises the others only (effectiveAdvertisedBrokerListeners). Kafka 3.x refused it.
            if not broker_advertised:
                fail("listeners", "There must be at least one broker advertised listener. Perhaps all listeners "
                     f"appear in {cln}?")
            names = [e.listener for e in broker_advertised]
            ibl = self.inter_broker_listener
            if ibl not in names:
                fail("inter.broker.listener.name",
                     "inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid "
                     f"options based on currently configured listeners are {','.join(names)}")
            self.inter_broker_listener = ibl
        if v["broker.heartbeat.interval.ms"] * 2 > v["broker.session.timeout.ms"]:
            log.error("broker.heartbeat.interval.ms (%d ms) must be less than or equal to half of the "
                      "broker.session.timeout.ms (%d ms). The broker.session.timeout.ms is configured on controller. "
                      "The broker.heartbeat.interval.ms is configured on broker. If a broker doesn't send heartbeat "
                      "request within broker.session.timeout.ms, it loses broker lease. Please increase "
                      "broker.session.timeout.ms or decrease broker.heartbeat.interval.ms.",
                      v["broker.heartbeat.interval.ms"], v["broker.session.timeout.ms"])

    @property
    def metadata_log_dir(self) -> Path:
        """Kafka's metadataLogDir: metadata.log.dir, else the first log dir."""
        meta = self.values["metadata.log.dir"]
        return Path(meta) if meta else self.log_dirs[0]

    def _validate_streams_groups(self) -> None:
        """Kafka's ``GroupCoordinatorConfig.verifyStreamsGroupConfigs`` (start-up refuses these)."""
        v = self.values
        p = "group.streams."

        def require(ok: bool, key: str, message: str) -> None:
            if not ok:
                raise ConfigError(p + key, v[p + key], message, message)

        ge, le, lt = "must be greater than or equal to", "must be less than or equal to", "must be less than"
        checks = [
            ("max.heartbeat.interval.ms", ge, "min.heartbeat.interval.ms"),
            ("heartbeat.interval.ms", ge, "min.heartbeat.interval.ms"),
            ("heartbeat.interval.ms", le, "max.heartbeat.interval.ms"),
            ("max.session.timeout.ms", ge, "min.session.timeout.ms"),
            ("session.timeout.ms", ge, "min.session.timeout.ms"),
            ("session.timeout.ms", le, "max.session.timeout.ms"),
            ("heartbeat.interval.ms", lt, "session.timeout.ms"),
            ("max.assignment.interval.ms", ge, "min.assignment.interval.ms"),
            ("assignment.interval.ms", ge, "min.assignment.interval.ms"),
            ("assignment.interval.ms", le, "max.assignment.interval.ms"),
            ("num.standby.replicas", le, "max.standby.replicas"),
            ("task.offset.interval.ms", ge, "min.task.offset.interval.ms"),
            ("num.warmup.replicas", le, "max.warmup.replicas"),
        ]
        for key, relation, other in checks:
            a, b = v[p + key], v[p + other]
            ok = a >= b if relation == ge else a <= b if relation == le else a < b
            require(ok, key, f"{p}{key} {relation} {p}{other}")

    def _cordoned_log_dirs(self, log_dirs: list[str]) -> list[Path]:
        """KIP-1066's ``cordoned.log.dirs`` (``*``: every log dir), checked as Kafka's
        KafkaConfig.validateCordonedLogDirs; an invalid dynamic value is ignored with a warning (the
        static one applies), as Kafka's DynamicBrokerConfig drops invalid stored configs."""
        problem = cordoned_log_dirs_problem(self.values["cordoned.log.dirs"] or [], log_dirs)
        if problem is not None:
            if "cordoned.log.dirs" not in self.dynamic_node and "cordoned.log.dirs" not in self.dynamic_default:
                raise ConfigError("cordoned.log.dirs", self.raw.get("cordoned.log.dirs"), "", problem)
            log.warning("ignoring stored dynamic broker config cordoned.log.dirs: %s", problem)
            static = self.raw.get("cordoned.log.dirs")
            self.values["cordoned.log.dirs"] = (BROKER_KEYS["cordoned.log.dirs"].parse(static) if static is not None
                                                else BROKER_DEFAULTS["cordoned.log.dirs"])
            return self._cordoned_log_dirs(log_dirs)
        cordoned = self.values["cordoned.log.dirs"] or []
        return [Path(d) for d in (log_dirs if CORDON_ALL in cordoned else cordoned)]

    def _validate_connection_limits(self) -> None:
        """Kafka's start-up checks of the connection and request-queue keys (KafkaConfig)."""
        v = self.values
        overrides = parse_ip_overrides(v["max.connections.per.ip.overrides"] or "")
        if v["max.connections.per.ip"] == 0 and not overrides:
            raise ConfigError("max.connections.per.ip", 0, "max.connections.per.ip can be set to zero only "
                              "if max.connections.per.ip.overrides property is set.")
        queued = v["queued.max.request.bytes"]
        if self.is_set("queued.max.request.bytes") and 0 < queued < v["socket.request.max.bytes"]:
            raise ConfigError("queued.max.request.bytes", queued,
                              "queued.max.request.bytes must be larger or equal to socket.request.max.bytes")

    def _listener_overrides(self) -> dict[tuple[str, str], Any]:
        """The ``listener.name.<listener>.<key>`` settings, typed: (LISTENER, key) -> value, where key
        is a security key or ``<mechanism>.sasl.jaas.config``. A value that does not parse stops
        start-up, naming the prefixed key."""
        out: dict[tuple[str, str], Any] = {}
        # static, then the dynamic cluster default, then this broker's (dynamic listener keys only)
        for name, raw in itertools.chain(self.raw.items(), self.dynamic_default.items(), self.dynamic_node.items()):
            parts = _listener_key(name)
            if parts is None:
                continue
            listener, key = parts
            base = key.split(".", 1)[1] if key not in BROKER_KEYS and "." in key else key
            spec = BROKER_KEYS[key] if key in BROKER_KEYS else BROKER_KEYS.get(base, BROKER_KEYS["sasl.jaas.config"])
            try:
                out[(listener.upper(), key)] = spec.parse(raw)
            except ConfigError as exc:
                raise ConfigError(name, raw, exc.reason, str(exc).replace(f"configuration {spec.name}",
                                                                          f"configuration {name}")) from None
        return out

    def listener_value(self, listener: str, key: str) -> Any:
        """``key`` for ``listener``: ``listener.name.<listener>.<key>`` when set, else the broker-wide
        value (Kafka's ListenerName.configPrefix)."""
        found = self.listener_overrides.get((listener.upper(), key), _UNSET)
        return self.values.get(key) if found is _UNSET else found

    def listener_jaas(self, listener: str, mechanism: str) -> str | None:
        """The JAAS line for a SASL mechanism on a listener:
        ``listener.name.<listener>.<mechanism>.sasl.jaas.config``, else ``listener.name.<listener>.
        sasl.jaas.config``, else ``sasl.jaas.config``."""
        found = self.listener_overrides.get((listener.upper(), f"{mechanism.lower()}.sasl.jaas.config"))
        jaas = found if found is not None else self.listener_value(listener, "sasl.jaas.config")
        return None if jaas is None else str(jaas)

    def is_set(self, name: str) -> bool:
        """Whether ``name`` was given (file, overrides or dynamic config) rather than defaulted."""
        return name in self.raw or name in self.dynamic_default or name in self.dynamic_node

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

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
        for typed, _source in self._typed:
            value, syn = _from_synonyms(key, typed.get)
            if syn is not None:
                return value, syn
        return _from_synonyms(key, self.values.get)

    def topic_config(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        """Effective topic-level config values (typed) for a topic with the given stored overrides.

        The overrides were validated when they were set; one that no longer validates (stored by
        an older version with laxer rules) is ignored with a warning: the broker default applies."""
        result: dict[str, Any] = {}
        for name, key in TOPIC_KEYS.items():
            raw = overrides.get(name)
            if raw is not None:
                try:
                    result[name] = key.parse(raw)
                    continue
                except ConfigError as exc:
                    log.warning("ignoring stored topic config: %s", exc)
            result[name] = self.topic_default(name)[0]
        return result

    def validate_topic_configs(self, configs: Mapping[str, str | None]) -> dict[str, Any]:
        """Check a topic's complete set of overrides as Kafka's controller does (names, then each
        value, then the values together with the broker defaults); returns them typed. Raises
        :class:`ConfigError` with Kafka's message."""
        nulls = [name for name, raw in configs.items() if raw is None]
        if nulls:
            raise ConfigError(nulls[0], None, "", f"Null value not supported for topic configs: {','.join(nulls)}")
        for name in configs:
            if name not in TOPIC_KEYS:
                raise ConfigError(name, configs[name], "", f"Unknown topic config name: {name}")
        typed = {name: TOPIC_KEYS[name].parse(raw) for name, raw in configs.items() if raw is not None}
        lag = {k: typed[k] if k in typed else self.topic_default(k)[0]
               for k in ("min.compaction.lag.ms", "max.compaction.lag.ms")}
        if lag["min.compaction.lag.ms"] > lag["max.compaction.lag.ms"]:
            raise ConfigError("min.compaction.lag.ms", lag["min.compaction.lag.ms"], "", (
                f"conflict topic config setting min.compaction.lag.ms ({lag['min.compaction.lag.ms']}) > "
                f"max.compaction.lag.ms ({lag['max.compaction.lag.ms']})"))
        return typed

    def _synonyms(self, name: str, chain: tuple[str, ...]) -> list[tuple[str, str | None, int]]:
        """Kafka's ConfigHelper.configSynonyms: the values of ``chain``'s keys, layer by layer
        (dynamic per-broker, dynamic default, static, default), less the leading ones not named
        ``name``: unless ``name`` itself has a value, a lower-precedence synonym's (say
        log.retention.hours for log.retention.ms) is not listed."""
        synonyms: list[tuple[str, str | None, int]] = []
        for layer, source in self._layers():
            synonyms.extend((syn, layer[syn], source) for syn in chain if syn in layer)
        for syn in chain:
            default = BROKER_KEYS[syn].default
            if default is not None:
                synonyms.append((syn, default, SOURCE_DEFAULT))
        return list(itertools.dropwhile(lambda s: s[0] != name, synonyms))

    def describe_broker(self) -> list[ConfigEntry]:
        entries = []
        for name, key in sorted(BROKER_KEYS.items()):
            synonyms = self._synonyms(name, BROKER_SYNONYMS.get(name, (name,)))
            if name in DYNAMIC_ONLY_BROKER_KEYS or name in INTERNAL_BROKER_KEYS:
                synonyms = [s for s in synonyms if s[2] != SOURCE_DEFAULT]
                if not synonyms:
                    continue  # Kafka lists them only once set (no KafkaConfig keys, or internal ones)
            value, source = (synonyms[0][1], synonyms[0][2]) if synonyms else (None, SOURCE_DEFAULT)
            if key.sensitive:
                value = None
            entries.append(ConfigEntry(name, value, source, key.read_only, key.sensitive, key.type, synonyms,
                                       key.doc or None))
        return entries

    def describe_topic(self, overrides: Mapping[str, str]) -> list[ConfigEntry]:
        entries = []
        for name, key in sorted(TOPIC_KEYS.items()):
            synonyms = self._synonyms(key.synonyms[0], key.synonyms) if key.synonyms else []
            if name in overrides:
                synonyms.insert(0, (name, overrides[name], SOURCE_TOPIC))
            value: str | None
            if name in overrides:
                value, source = overrides[name], SOURCE_TOPIC
            else:
                effective, _ = self.topic_default(name)
                value = format_config_value(effective)
                source = synonyms[0][2] if synonyms else SOURCE_DEFAULT
            entries.append(ConfigEntry(name, value, source, False, False, key.type, synonyms, key.spec.doc or None))
        return entries


def _java_set(ids: Iterable[int]) -> str:
    """A Scala Set's toString, as Kafka's messages print the voter ids."""
    return "Set(" + ", ".join(str(i) for i in sorted(ids)) + ")"


CORDON_ALL = "*"  # cordoned.log.dirs=*: every log dir


def cordoned_log_dirs_problem(cordoned: list[str], log_dirs: list[str]) -> str | None:
    """Kafka's KafkaConfig.validateCordonedLogDirs message for a ``cordoned.log.dirs`` value that
    is not ``*`` alone nor made of entries of ``log.dirs`` (or ``log.dir``); None when valid."""
    if CORDON_ALL in cordoned:
        if len(cordoned) != 1:
            return ("requirement failed: When cordoned.log.dirs is set to *, it must not contain other values")
        return None
    missing = [d for d in cordoned if d not in log_dirs]
    if missing:
        return ("requirement failed: All entries in cordoned.log.dirs must be present in log.dirs or log.dir. "
                f"Missing entries : {', '.join(missing)}")
    return None


def _valid_dynamic(layer: Mapping[str, str], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, raw in layer.items():
        key = BROKER_KEYS.get(name)
        if key is None:
            base = dynamic_listener_key(name)
            if base is None:
                continue
            key = BROKER_KEYS[base]
        try:
            key.parse(raw)
        except ConfigError as exc:
            log.warning("ignoring stored dynamic broker config (%s): %s", where, exc)
            continue
        out[name] = raw
    return out


def validate_topic_configs(configs: Mapping[str, str | None], broker: BrokerConfig) -> dict[str, str]:
    """Check a new topic's overrides (:meth:`BrokerConfig.validate_topic_configs`); returns them
    as given. Raises :class:`ConfigError` with Kafka's message."""
    broker.validate_topic_configs(configs)
    return {name: raw for name, raw in configs.items() if raw is not None}
