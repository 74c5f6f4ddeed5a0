"""Broker and topic configuration with Apache Kafka's own keys: the one place they are declared.

Every broker key (``BROKER_KEYS``) and topic key (``TOPIC_KEYS``) is declared once with Kafka 4.4's
type, default, validator (and, for topic keys, documentation), and everything else takes them from
here: start-up (``server.properties``, ``--override``), DescribeConfigs, CreateTopics,
AlterConfigs/IncrementalAlterConfigs, the coordinators and the log, whose typed ``LogConfig`` is
built from values parsed here once. This module imports nothing of kbroker's, so every layer
(the log included) may use it.

``server.properties`` is read with Java properties syntax. Keys kbroker does not know produce a
warning, and a value that does not parse or fails Kafka's validator stops start-up with a
:class:`ConfigError` naming the key, in Kafka's words (``Invalid value 14 for configuration
log.segment.bytes: Value must be at least 1048576``).

Topic-level configs (``segment.bytes``, ``retention.ms``, ...) take their defaults from the broker
keys Kafka names as their synonyms (``log.segment.bytes``, ``log.retention.hours``, ...), in
Kafka's order of precedence; DescribeConfigs reports those synonyms.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

log = logging.getLogger(__name__)

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
# Kafka 4's floor for segment.bytes and log.segment.bytes (LogConfig: atLeast(1024 * 1024)).
SEGMENT_BYTES_MIN = 1024 * 1024


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key.

    The text is Kafka's ``ConfigException``: ``Invalid value V for configuration K: reason``, or
    ``message`` as given for Kafka's checks that word it differently (list duplicates, unknown
    topic config names, conflicting values)."""

    def __init__(self, key: str, value: object, reason: str, message: str | None = None) -> None:
        shown = "null" if value is None else value
        super().__init__(message or f"Invalid value {shown} for configuration {key}: {reason}")
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


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _parse_int(type_name: str, lo: int, hi: int) -> Callable[[str, str], int]:
    """Java's Integer/Short/Long.parseInt: ASCII digits with an optional sign, within the type."""

    def parse(key: str, raw: str) -> int:
        text = raw.strip()
        if not _INTEGER.fullmatch(text) or not lo <= (value := int(text)) <= hi:
            raise ConfigError(key, raw, f"Not a number of type {type_name}")
        return value

    return parse


_DOUBLE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[dDfF]?")


def _parse_double(key: str, raw: str) -> float:
    # Java's Double.parseDouble also takes NaN and Infinity; kbroker does not (no config of
    # Kafka's means anything with them, and NaN passes every range check).
    text = raw.strip()
    if not _DOUBLE.fullmatch(text):
        raise ConfigError(key, raw, "Not a number of type DOUBLE")
    return float(text.rstrip("dDfF"))


def _parse_string(key: str, raw: str) -> str:
    return raw.strip()


_LIST_SEPARATOR = re.compile(r"\s*,\s*")


def _parse_list(key: str, raw: str) -> list[str]:
    """Kafka's LIST: split on commas (and the blanks around them); empty text is the empty list."""
    raw = raw.strip()
    return _LIST_SEPARATOR.split(raw) if raw else []


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "boolean": _parse_bool,
    "string": _parse_string,
    "int": _parse_int("INT", -(2**31), INT_MAX),
    "short": _parse_int("SHORT", -(2**15), 2**15 - 1),
    "long": _parse_int("LONG", -(2**63), LONG_MAX),
    "double": _parse_double,
    "list": _parse_list,
    "class": _parse_string,
    "password": _parse_string,
}


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One key: Kafka's type, default (as Kafka writes it) and validator.

    ``minimum``/``maximum`` are Kafka's ``Range.atLeast``/``between``; ``choices`` its
    ``ValidString.in``; ``list_choices`` its ``ValidList.in``; ``nonempty`` a ``ValidList`` that
    refuses the empty list; ``check`` any other validator of Kafka's (called with the key name,
    the parsed value and the raw text)."""

    name: str
    type: str
    default: str | None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    list_choices: tuple[str, ...] | None = None
    nonempty: bool = False
    check: Callable[[str, Any, str], None] | None = None
    read_only: bool = True
    sensitive: bool = False
    applied: bool = True  # False: accepted for compatibility, has no effect in kbroker
    doc: str = ""  # DescribeConfigs' documentation (v3+, when asked for)

    def parse(self, raw: str) -> Any:
        value = _PARSERS[self.type](self.name, raw)
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(self.name, raw, f"Value must be at least {_fmt(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(self.name, raw, f"Value must be no more than {_fmt(self.maximum)}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(self.name, raw, f"String must be one of: {', '.join(self.choices)}")
        if self.type == "list":
            _check_list(self, value, raw)
        if self.check is not None:
            self.check(self.name, value, raw)
        return value


def _check_list(key: ConfigKey, items: list[str], raw: str) -> None:
    """Kafka's ValidList: not empty (where required), no duplicates, no empty entries, and each
    entry one of ``list_choices`` when given."""
    name = key.name
    if key.nonempty and not items:
        valid = f"[{', '.join(key.list_choices)}]" if key.list_choices else "any non-empty value"
        raise ConfigError(name, raw, "", f"Configuration '{name}' must not be empty. Valid values include: {valid}")
    if len(set(items)) != len(items):
        raise ConfigError(name, raw, "", f"Configuration '{name}' values must not be duplicated.")
    for item in items:
        if not item:
            raise ConfigError(name, raw, "", f"Configuration '{name}' values must not be empty.")
        if key.list_choices is not None and item not in key.list_choices:
            raise ConfigError(name, item, f"String must be one of: {', '.join(key.list_choices)}")


def _gzip_level(name: str, value: Any, raw: str) -> None:
    # Kafka's CompressionType.GZIP.levelValidator: Deflater's 1..9, or -1 for its default.
    if value > 9 or (value < 1 and value != -1):
        raise ConfigError(name, raw, "Value must be between 1 and 9 or equal to -1")


_THROTTLED_REPLICA = re.compile(r"([0-9]+:[0-9]+)?")


def _throttled_replicas(name: str, value: Any, raw: str) -> None:
    # Kafka's ThrottledReplicaListValidator: the literal '*' or partitionId:brokerId entries.
    items = [str(v).strip() for v in value]
    if not (all(_THROTTLED_REPLICA.fullmatch(i) for i in items) or "".join(items) == "*"):
        raise ConfigError(name, raw, f"{name} must be the literal '*' or a list of replicas in the following "
                          "format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _k(name: str, type_: str, default: str | None, **kw: Any) -> ConfigKey:
    return ConfigKey(name, type_, default, **kw)


# ---------------------------------------------------------------------------------------------
# The KRaft quorum (Kafka's QuorumConfig)

_HOST_PORT = re.compile(r".*?\[?([0-9a-zA-Z\-%._:]*)\]?:([0-9]+)")  # Kafka's Utils.HOST_PORT_PATTERN
_VOTERS_FORM = ". Each entry should be in the form `{id}@{host}:{port}`."


def _host_port(text: str) -> tuple[str | None, int | None]:
    m = _HOST_PORT.fullmatch(text)
    if not m:
        return None, None
    return m.group(1), int(m.group(2))


def parse_quorum_voters(entries: Iterable[str]) -> dict[int, tuple[str, int]]:
    """``controller.quorum.voters`` (``id@host:port,...``) as Kafka's
    ``QuorumConfig.parseVoterConnections``: voter id -> (host, port), with Kafka's messages."""
    key = "controller.quorum.voters"
    voters: dict[int, tuple[str, int]] = {}
    for entry in entries:
        parts = entry.split("@")
        if len(parts) != 2:
            raise ConfigError(key, entry, "", f"Invalid configuration value for {key}{_VOTERS_FORM}")
        id_text, address = parts
        if not _INTEGER.fullmatch(id_text) or not -(2**31) <= int(id_text) <= INT_MAX:
            raise ConfigError(key, entry, "", f"Failed to parse voter ID as an integer from {id_text}")
        host, port = _host_port(address)
        if host is None or not _VALID_HOST.fullmatch(host):
            raise ConfigError(key, entry, "", f"Failed to parse host name from entry {entry} for the "
                              f"configuration {key}{_VOTERS_FORM}")
        if port is None:
            raise ConfigError(key, entry, "", f"Failed to parse host port from entry {entry} for the "
                              f"configuration {key}{_VOTERS_FORM}")
        voters[int(id_text)] = (host, port)
    return voters


def parse_bootstrap_servers(entries: Iterable[str]) -> list[tuple[str, int]]:
    """``controller.quorum.bootstrap.servers`` (``host:port,...``), Kafka's messages."""
    key = "controller.quorum.bootstrap.servers"
    out = []
    for entry in entries:
        host, port = _host_port(entry)
        if host is None or not _VALID_HOST.fullmatch(host):
            raise ConfigError(key, entry, "", f"Failed to parse host name from {entry} for the configuration "
                              f'{key}. Each entry should be in the form "{{host}}:{{port}}"')
        assert port is not None
        out.append((host, port))
    return out


# Security keys (kbroker/security): TLS stores, client authentication, SASL. Every one may also be
# given per listener as ``listener.name.<listener>.<key>`` (BrokerConfig.listener_value).
_SECURITY_KEYS = [
    _k("ssl.keystore.type", "string", "JKS"),
    _k("ssl.keystore.location", "string", None),
    _k("ssl.keystore.password", "password", None, sensitive=True),
    _k("ssl.key.password", "password", None, sensitive=True),
    _k("ssl.keystore.key", "password", None, sensitive=True),
    _k("ssl.keystore.certificate.chain", "password", None, sensitive=True),
    _k("ssl.truststore.type", "string", "JKS"),
    _k("ssl.truststore.location", "string", None),
    _k("ssl.truststore.password", "password", None, sensitive=True),
    _k("ssl.truststore.certificates", "password", None, sensitive=True),
    _k("ssl.client.auth", "string", "none", choices=("required", "requested", "none")),
    _k("ssl.principal.mapping.rules", "string", "DEFAULT"),
    _k("ssl.enabled.protocols", "list", "TLSv1.2,TLSv1.3"),
    _k("ssl.protocol", "string", "TLSv1.3"),
    _k("ssl.cipher.suites", "list", ""),
    _k("ssl.endpoint.identification.algorithm", "string", "https"),
    _k("ssl.keymanager.algorithm", "string", "SunX509", applied=False),
    _k("ssl.trustmanager.algorithm", "string", "PKIX", applied=False),
    _k("ssl.secure.random.implementation", "string", None, applied=False),
    _k("sasl.enabled.mechanisms", "list", "GSSAPI"),
    _k("sasl.jaas.config", "password", None, sensitive=True),
    # the inter-node clients' security (kbroker/security/client.py, issue 17)
    _k("sasl.mechanism.inter.broker.protocol", "string", "GSSAPI"),
    _k("sasl.mechanism.controller.protocol", "string", "GSSAPI"),
    _k("security.inter.broker.protocol", "string", "PLAINTEXT",
       choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")),
    _k("sasl.server.max.receive.size", "int", "524288"),
    _k("connections.max.reauth.ms", "long", "0"),
    _k("connection.failed.authentication.delay.ms", "int", "100", minimum=0),
    _k("authorizer.class.name", "string", ""),
    _k("super.users", "string", None),
    _k("allow.everyone.if.no.acl.found", "boolean", "false"),
    # OAUTHBEARER (Kafka's SaslConfigs): the validator a listener's
    # listener.name.<l>.oauthbearer.sasl.server.callback.handler.class names, and its settings.
    _k("sasl.server.callback.handler.class", "class", None),
    _k("sasl.oauthbearer.jwks.endpoint.url", "string", None),
    _k("sasl.oauthbearer.jwks.endpoint.refresh.ms", "long", "3600000"),
    _k("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", "long", "100"),
    _k("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", "long", "10000"),
    _k("sasl.oauthbearer.expected.audience", "list", ""),
    _k("sasl.oauthbearer.expected.issuer", "string", None),
    _k("sasl.oauthbearer.allow.unverified.audience", "boolean", "false"),
    _k("sasl.oauthbearer.allow.unverified.issuer", "boolean", "false"),
    _k("sasl.oauthbearer.sub.claim.name", "string", "sub"),
    _k("sasl.oauthbearer.scope.claim.name", "string", "scope"),
    _k("sasl.oauthbearer.clock.skew.seconds", "int", "30"),
    # Kafka's JVM property org.apache.kafka.sasl.oauthbearer.allowed.urls: the JWKS URLs a broker may
    # read (none by default, as Kafka 4.x)
    _k("kbroker.sasl.oauthbearer.allowed.urls", "list", ""),
    # Delegation tokens (Kafka's DelegationTokenManagerConfigs): enabled by the secret key.
    _k("delegation.token.secret.key", "password", None, sensitive=True),
    _k("delegation.token.max.lifetime.ms", "long", "604800000", minimum=1),
    _k("delegation.token.expiry.time.ms", "long", "86400000", minimum=1),
    _k("delegation.token.expiry.check.interval.ms", "long", "3600000", minimum=1),
]
# The keys a listener may override with ``listener.name.<listener>.`` (and the SASL ones also per
# mechanism: ``listener.name.<listener>.<mechanism>.sasl.jaas.config``).
LISTENER_KEYS = frozenset(k.name for k in _SECURITY_KEYS) - {
    "sasl.mechanism.inter.broker.protocol", "sasl.mechanism.controller.protocol", "security.inter.broker.protocol",
    "authorizer.class.name", "super.users", "allow.everyone.if.no.acl.found",
    "delegation.token.secret.key", "delegation.token.max.lifetime.ms", "delegation.token.expiry.time.ms",
    "delegation.token.expiry.check.interval.ms", "kbroker.sasl.oauthbearer.allowed.urls"} | {
    "max.connections", "max.connection.creation.rate"}  # Kafka's SocketServer.ListenerReconfigurableConfigs
# The keys also given per listener and SASL mechanism: listener.name.<listener>.<mechanism>.<key>.
MECHANISM_KEYS = frozenset(k for k in LISTENER_KEYS if k.startswith("sasl.") or k == "connections.max.reauth.ms")

_COMPRESSION = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
_TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")

# Broker configuration keys. `applied=False` marks keys accepted (so real server.properties files
# start) that do not change kbroker's behaviour; they are listed by DescribeConfigs like any other.
BROKER_KEYS: dict[str, ConfigKey] = {
    k.name: k
    for k in [
        _k("node.id", "int", "-1", minimum=-1),
        _k("broker.id", "int", "-1", minimum=-1),
        _k("process.roles", "list", "broker,controller", list_choices=("broker", "controller"), nonempty=True),
        _k("listeners", "list", "PLAINTEXT://localhost:9092", nonempty=True),
        _k("advertised.listeners", "list", None),
        _k("listener.security.protocol.map", "string",
           "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
        _k("inter.broker.listener.name", "string", None),
        _k("controller.listener.names", "list", None, nonempty=True),
        _k("controller.quorum.voters", "list", "", check=lambda k, v, r: parse_quorum_voters(v)),
        _k("controller.quorum.bootstrap.servers", "list", "", check=lambda k, v, r: parse_bootstrap_servers(v)),
        # Kafka's QuorumConfig (raft timeouts) and KRaftConfigs (broker lease), with Kafka's defaults.
        _k("controller.quorum.election.timeout.ms", "int", "1000", minimum=0),
        _k("controller.quorum.fetch.timeout.ms", "int", "2000", minimum=0),
        _k("controller.quorum.election.backoff.max.ms", "int", "1000", minimum=0),
        _k("controller.quorum.append.linger.ms", "int", "25", minimum=0),
        _k("controller.quorum.request.timeout.ms", "int", "2000", minimum=0),
        _k("controller.quorum.retry.backoff.ms", "int", "20", minimum=0),
        _k("broker.heartbeat.interval.ms", "int", "2000"),
        _k("broker.session.timeout.ms", "int", "9000"),
        _k("metadata.log.max.snapshot.interval.ms", "long", "3600000", minimum=0),
        _k("metadata.log.max.record.bytes.between.snapshots", "long", "20971520", minimum=1),
        _k("cluster.id", "string", None),
        _k("log.dirs", "list", None, nonempty=True),
        _k("log.dir", "list", "./kbroker-data", nonempty=True),
        _k("metadata.log.dir", "string", None),
        _k("num.partitions", "int", "1", minimum=1),
        _k("default.replication.factor", "int", "1", minimum=1),
        _k("auto.create.topics.enable", "boolean", "true"),
        _k("delete.topic.enable", "boolean", "true"),
        _k("unstable.api.versions.enable", "boolean", "false"),
        # Kafka's QuotaConfig broker throttles (kafka-reassign-partitions.sh --throttle sets them per
        # broker): enforced on replica fetches (kbroker/security/replication_quotas.py).
        _k("leader.replication.throttled.rate", "long", str(LONG_MAX), minimum=0, read_only=False),
        _k("follower.replication.throttled.rate", "long", str(LONG_MAX), minimum=0, read_only=False),
        _k("replica.alter.log.dirs.io.max.bytes.per.second", "long", str(LONG_MAX), minimum=0, read_only=False,
           applied=False),
        _k("message.max.bytes", "int", "1048588", minimum=0, read_only=False),
        _k("log.segment.bytes", "int", "1073741824", minimum=SEGMENT_BYTES_MIN, read_only=False),
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
        _k("compression.gzip.level", "int", "-1", check=_gzip_level, read_only=False),
        _k("compression.lz4.level", "int", "9", minimum=1, maximum=17, read_only=False),
        _k("compression.zstd.level", "int", "3", minimum=-131072, maximum=22, read_only=False),
        _k("min.insync.replicas", "int", "1", minimum=1, read_only=False),
        _k("unclean.leader.election.enable", "boolean", "false", read_only=False),
        _k("socket.request.max.bytes", "int", "104857600", minimum=1),
        _k("socket.send.buffer.bytes", "int", "102400"),
        _k("socket.receive.buffer.bytes", "int", "102400"),
        _k("connections.max.idle.ms", "long", "600000"),
        # Kafka's SocketServer.ReconfigurableConfigs: dynamic broker configs
        _k("max.connections", "int", str(INT_MAX), minimum=0, read_only=False),
        _k("max.connections.per.ip", "int", str(INT_MAX), minimum=0, read_only=False),
        _k("max.connections.per.ip.overrides", "string", "", read_only=False),
        _k("max.connection.creation.rate", "int", str(INT_MAX), minimum=0, read_only=False),
        # Kafka's default is -1 (unbounded); see kbroker/server/limits.py.
        _k("queued.max.request.bytes", "long", "104857600"),
        _k("kbroker.request.receive.timeout.ms", "long", "60000", minimum=0),
        _k("num.network.threads", "int", "3", minimum=1, applied=False),
        _k("num.io.threads", "int", "8", minimum=1, applied=False),
        _k("num.recovery.threads.per.data.dir", "int", "2", minimum=1, applied=False),
        _k("num.replica.fetchers", "int", "1", minimum=1, applied=False),
        _k("queued.max.requests", "int", "500", minimum=1),
        # client quotas (kbroker/security/quotas.py)
        _k("quota.window.num", "int", "11", minimum=1),
        _k("quota.window.size.seconds", "int", "1", minimum=1),
        _k("controller.quota.window.num", "int", "11", minimum=1),
        _k("controller.quota.window.size.seconds", "int", "1", minimum=1),
        _k("replication.quota.window.num", "int", "11", minimum=1),
        _k("replication.quota.window.size.seconds", "int", "1", minimum=1),
        _k("group.initial.rebalance.delay.ms", "int", "3000", minimum=0),
        _k("group.min.session.timeout.ms", "int", "6000"),
        _k("group.max.session.timeout.ms", "int", "1800000"),
        _k("group.max.size", "int", str(INT_MAX), minimum=1),
        _k("group.coordinator.rebalance.protocols", "list", "classic,consumer,streams",
           list_choices=("classic", "consumer", "share", "streams"), nonempty=True),
        _k("group.consumer.session.timeout.ms", "int", "45000", minimum=1),
        _k("group.consumer.heartbeat.interval.ms", "int", "5000", minimum=1),
        _k("group.consumer.assignors", "list", "uniform,range", nonempty=True),
        # Streams groups (KIP-1071), Kafka 4.4's defaults.
        _k("group.streams.session.timeout.ms", "int", "45000", minimum=1),
        _k("group.streams.min.session.timeout.ms", "int", "45000", minimum=1),
        _k("group.streams.max.session.timeout.ms", "int", "60000", minimum=1),
        _k("group.streams.heartbeat.interval.ms", "int", "5000", minimum=1),
        _k("group.streams.min.heartbeat.interval.ms", "int", "5000", minimum=1),
        _k("group.streams.max.heartbeat.interval.ms", "int", "15000", minimum=1),
        _k("group.streams.max.size", "int", str(INT_MAX), minimum=1),
        _k("group.streams.num.standby.replicas", "int", "0", minimum=0),
        _k("group.streams.max.standby.replicas", "int", "2", minimum=0),
        _k("group.streams.initial.rebalance.delay.ms", "int", "3000", minimum=0),
        _k("group.streams.task.offset.interval.ms", "int", "60000", minimum=1),
        _k("group.streams.acceptable.recovery.lag", "long", "10000", minimum=0),
        _k("group.streams.num.warmup.replicas", "int", "2", minimum=0, applied=False),
        _k("group.streams.max.warmup.replicas", "int", "20", minimum=0, applied=False),
        _k("group.streams.min.task.offset.interval.ms", "int", "15000", minimum=1),
        _k("group.streams.assignment.interval.ms", "int", "1000", minimum=0, applied=False),
        _k("group.streams.min.assignment.interval.ms", "int", "0", minimum=0, applied=False),
        _k("group.streams.max.assignment.interval.ms", "int", "15000", minimum=0, applied=False),
        # KIP-932 share groups (Kafka's GroupCoordinatorConfig/ShareGroupConfig defaults and ranges).
        _k("group.share.max.size", "int", "200", minimum=1, maximum=1000),
        _k("group.share.session.timeout.ms", "int", "45000", minimum=1),
        _k("group.share.min.session.timeout.ms", "int", "45000", minimum=1),
        _k("group.share.max.session.timeout.ms", "int", "60000", minimum=1),
        _k("group.share.heartbeat.interval.ms", "int", "5000", minimum=1),
        _k("group.share.min.heartbeat.interval.ms", "int", "5000", minimum=1),
        _k("group.share.max.heartbeat.interval.ms", "int", "15000", minimum=1),
        _k("group.share.assignors", "list", "simple", list_choices=("simple",), nonempty=True),
        _k("group.share.record.lock.duration.ms", "int", "30000", minimum=1000, maximum=3600000),
        _k("group.share.min.record.lock.duration.ms", "int", "15000", minimum=1000, maximum=30000),
        _k("group.share.max.record.lock.duration.ms", "int", "60000", minimum=30000, maximum=3600000),
        _k("group.share.delivery.count.limit", "int", "5", minimum=2, maximum=10),
        _k("group.share.min.delivery.count.limit", "int", "2", minimum=2, maximum=5),
        _k("group.share.max.delivery.count.limit", "int", "10", minimum=5, maximum=25),
        _k("group.share.partition.max.record.locks", "int", "2000", minimum=100, maximum=10000),
        _k("group.share.min.partition.max.record.locks", "int", "100", minimum=100, maximum=2000),
        _k("group.share.max.partition.max.record.locks", "int", "4000", minimum=2000, maximum=10000),
        _k("group.share.max.share.sessions", "int", "2000", minimum=1),
        _k("share.coordinator.state.topic.num.partitions", "int", "50", minimum=1),
        _k("share.coordinator.state.topic.replication.factor", "short", "3", minimum=1),
        _k("share.coordinator.state.topic.min.isr", "short", "2", minimum=1),
        _k("share.coordinator.state.topic.segment.bytes", "int", "104857600", minimum=1),
        _k("share.coordinator.state.topic.prune.interval.ms", "int", "300000", minimum=1),
        # KIP-1191 dead-letter queues of share groups.
        _k("errors.deadletterqueue.auto.create.topics.enable", "boolean", "false"),
        _k("errors.deadletterqueue.topic.name.prefix", "string", "dlq."),
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
        _k("transaction.remove.expired.transaction.cleanup.interval.ms", "int", "3600000", minimum=1,
           doc="How often transactional ids idle for transactional.id.expiration.ms are removed."),
        _k("producer.id.expiration.ms", "int", "86400000", minimum=1),
        _k("producer.id.expiration.check.interval.ms", "int", "600000", minimum=1),
        _k("max.incremental.fetch.session.cache.slots", "int", "1000", minimum=0),
        _k("fetch.max.bytes", "int", "57671680", minimum=1024),
        _k("max.request.partition.size.limit", "int", "2000", minimum=1),
        _k("replica.lag.time.max.ms", "long", "30000"),
        _k("replica.fetch.max.bytes", "int", "1048576", minimum=0),
        _k("replica.fetch.min.bytes", "int", "1"),
        _k("replica.fetch.wait.max.ms", "int", "500"),
        _k("replica.fetch.backoff.ms", "int", "1000", minimum=0),
        _k("replica.fetch.response.max.bytes", "int", "10485760", minimum=0),
        _k("replica.socket.timeout.ms", "int", "30000"),
        _k("replica.high.watermark.checkpoint.interval.ms", "long", "5000", minimum=1),
        # KIP-392 (fetch from the closest replica): the selectors kbroker has, by Kafka's class names.
        _k("replica.selector.class", "string", None,
           choices=("org.apache.kafka.common.replica.RackAwareReplicaSelector",
                    "org.apache.kafka.common.replica.LeaderSelector")),
        # The broker's own HTTP listener (kbroker.metrics): /metrics; off unless set.
        _k("kbroker.http.listeners", "list", ""),
        # The web console on that listener (kbroker.console); false: /metrics alone.
        _k("kbroker.console.enable", "boolean", "true"),
        # kbroker's test controls (kbroker.control): off unless set.
        _k("kbroker.control.listeners", "list", ""),
        _k("kbroker.control.allow.remote", "boolean", "false"),
        _k("kbroker.clock", "string", "real", choices=("real", "manual")),
        # Delayed delivery (kbroker/delayed.py, docs/delayed-delivery.md).
        _k("kbroker.delayed.enable", "boolean", "true"),
        _k("kbroker.delayed.max.delay.ms", "long", "604800000", minimum=0),
        _k("kbroker.delayed.topic.num.partitions", "int", "10", minimum=1),
        _k("kbroker.delayed.topic.replication.factor", "short", "3", minimum=1),
        _k("kbroker.delayed.topic.min.isr", "short", "2", minimum=1),
        _k("kbroker.trace.file", "string", None),
        _k("kbroker.trace.apis", "list", ""),
        _k("kbroker.trace.client.ids", "list", ""),
        _k("kbroker.trace.topics", "list", ""),
        # Segment files kept open at once (kbroker/log/fd_budget.py); -1: half the open file limit.
        _k("kbroker.log.max.open.files", "int", "-1", minimum=-1),
        *_SECURITY_KEYS,
        _k("zookeeper.connect", "string", None, applied=False),
        _k("zookeeper.connection.timeout.ms", "int", None, applied=False),
        _k("zookeeper.session.timeout.ms", "int", "18000", applied=False),
    ]
}


@dataclass(frozen=True, slots=True)
class TopicKey:
    """A topic-level config (validated as Kafka's LogConfig does) and the broker keys it falls back
    to, first match wins."""

    name: str
    synonyms: tuple[str, ...]
    spec: ConfigKey
    convert: Callable[[str, Any], Any] | None = None  # (broker key, broker value) -> topic value

    @property
    def type(self) -> str:
        return self.spec.type

    def parse(self, raw: str) -> Any:
        return self.spec.parse(raw)


def _t(name: str, type_: str, synonyms: tuple[str, ...], convert: Callable[[str, Any], Any] | None = None,
       default: str | None = None, **kw: Any) -> TopicKey:
    """``default``: the value of a topic config without a broker synonym (Kafka's LogConfig default)."""
    return TopicKey(name, synonyms, ConfigKey(name, type_, default, **kw), convert)


def _minutes_or_hours_to_ms(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key.endswith(".minutes"):
        return int(value) * 60_000
    if key.endswith(".hours"):
        return int(value) * 3_600_000
    return int(value)


# Kafka's LogConfig: each topic key's type and validator; its default is its broker synonym's.
TOPIC_KEYS: dict[str, TopicKey] = {
    t.name: t
    for t in [
        _t("cleanup.policy", "list", ("log.cleanup.policy",), list_choices=("compact", "delete"),
           doc="How old segments go: delete (by retention.ms/retention.bytes), compact (keep the latest record of each key), or both."),
        _t("compression.type", "string", ("compression.type",), choices=_COMPRESSION,
           doc="The codec the log keeps batches in: producer (as sent), uncompressed, gzip, snappy, lz4 or zstd."),
        _t("compression.gzip.level", "int", ("compression.gzip.level",), check=_gzip_level,
           doc="gzip level used when the broker compresses (1-9, or -1 for the codec's default)."),
        _t("compression.lz4.level", "int", ("compression.lz4.level",), minimum=1, maximum=17,
           doc="lz4 level used when the broker compresses (1-17)."),
        _t("compression.zstd.level", "int", ("compression.zstd.level",), minimum=-131072, maximum=22,
           doc="zstd level used when the broker compresses (-131072 to 22)."),
        _t("delete.retention.ms", "long", ("log.cleaner.delete.retention.ms",), minimum=0,
           doc="How long a tombstone stays in a compacted log after it was cleaned."),
        _t("file.delete.delay.ms", "long", ("log.segment.delete.delay.ms",), minimum=0,
           doc="How long a deleted segment's files are kept before they are removed from disk."),
        _t("flush.messages", "long", ("log.flush.interval.messages",), minimum=1,
           doc="fsync the log after this many records."),
        _t("flush.ms", "long", ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"), minimum=0,
           doc="fsync the log when its oldest unflushed data is this old."),
        _t("index.interval.bytes", "int", ("log.index.interval.bytes",), minimum=0,
           doc="Bytes of log between two offset index entries."),
        _t("max.compaction.lag.ms", "long", ("log.cleaner.max.compaction.lag.ms",), minimum=1,
           doc="The longest a record may stay uncompacted."),
        _t("max.message.bytes", "int", ("message.max.bytes",), minimum=0,
           doc="The largest record batch the topic accepts, in bytes."),
        _t("message.timestamp.after.max.ms", "long", ("log.message.timestamp.after.max.ms",), minimum=0,
           doc="How far in the future a CreateTime timestamp may be."),
        _t("message.timestamp.before.max.ms", "long", ("log.message.timestamp.before.max.ms",), minimum=0,
           doc="How far in the past a CreateTime timestamp may be."),
        _t("message.timestamp.type", "string", ("log.message.timestamp.type",), choices=_TIMESTAMP_TYPES,
           doc="CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock."),
        _t("min.cleanable.dirty.ratio", "double", ("log.cleaner.min.cleanable.ratio",), minimum=0, maximum=1,
           doc="The share of uncleaned log (0 to 1) from which the log is compacted."),
        _t("min.compaction.lag.ms", "long", ("log.cleaner.min.compaction.lag.ms",), minimum=0,
           doc="The shortest time a record stays uncompacted."),
        _t("min.insync.replicas", "int", ("min.insync.replicas",), minimum=1,
           doc="In-sync replicas an acks=all produce needs."),
        _t("preallocate", "boolean", ("log.preallocate",),
           doc="Reserve a new segment's disk space when it is created."),
        _t("retention.bytes", "long", ("log.retention.bytes",),
           doc="The size the log is cut back to by deleting old segments (-1: no limit)."),
        _t("retention.ms", "long", ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
           convert=_minutes_or_hours_to_ms, minimum=-1,
           doc="How long a segment is kept before it is deleted (-1: for ever)."),
        _t("segment.bytes", "int", ("log.segment.bytes",), minimum=SEGMENT_BYTES_MIN,
           doc="The size of a segment file; a new one starts when it is full (at least 1 MiB)."),
        _t("segment.index.bytes", "int", ("log.index.size.max.bytes",), minimum=4,
           doc="The size of a segment's offset index; the segment rolls when the index is full."),
        _t("segment.jitter.ms", "long", ("log.roll.jitter.ms", "log.roll.jitter.hours"),
           convert=_minutes_or_hours_to_ms, minimum=0,
           doc="Random jitter taken off segment.ms so segments do not all roll at once."),
        _t("segment.ms", "long", ("log.roll.ms", "log.roll.hours"), convert=_minutes_or_hours_to_ms, minimum=1,
           doc="A new segment starts after this long even if the current one is not full."),
        _t("unclean.leader.election.enable", "boolean", ("unclean.leader.election.enable",),
           doc="Whether a replica outside the ISR may become leader, losing records."),
        # Kafka's QuotaConfig replication throttles (set by kafka-reassign-partitions.sh --throttle):
        # enforced on replica fetches (kbroker/security/replication_quotas.py).
        _t("leader.replication.throttled.replicas", "list", (), default="", check=_throttled_replicas,
           doc="Replicas (partitionId:brokerId, or *) whose leader-side replication is throttled."),
        _t("follower.replication.throttled.replicas", "list", (), default="", check=_throttled_replicas,
           doc="Replicas (partitionId:brokerId, or *) whose follower-side replication is throttled."),
        # KIP-1191: a topic share groups may use as their dead-letter queue (no broker synonym).
        _t("errors.deadletterqueue.group.enable", "boolean", (), default="false",
           doc="Whether share groups may write undeliverable records to this topic (a dead-letter queue)."),
    ]
}


def _from_synonyms(key: TopicKey, lookup: Callable[[str], Any]) -> tuple[Any, str | None]:
    """The first of ``key``'s broker synonyms ``lookup`` has a value for, converted to the topic
    key's unit, and that synonym (a key without synonyms: its own default, and None)."""
    for syn in key.synonyms:
        value = lookup(syn)
        if value is not None:
            return (key.convert(syn, value) if key.convert else value), syn
    if not key.synonyms and key.spec.default is not None:
        return key.spec.parse(key.spec.default), None
    return None, None


def _key_default(name: str) -> Any:
    key = BROKER_KEYS[name]
    return None if key.default is None else key.parse(key.default)


# Kafka's QuotaConfig broker throttles: dynamic broker configs that are no KafkaConfig key, so
# DescribeConfigs lists them only when set (no default synonym), as Kafka 4.4 does.
DYNAMIC_ONLY_BROKER_KEYS = frozenset({
    "leader.replication.throttled.rate", "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
})

# Kafka's default of every broker key, typed (None where Kafka has none).
BROKER_DEFAULTS: Mapping[str, Any] = MappingProxyType({name: _key_default(name) for name in BROKER_KEYS})

# Kafka's default of every topic-level config, typed (its broker synonyms' defaults).
# Kafka's DynamicBrokerConfig.brokerConfigSynonyms: the keys a broker key's DescribeConfigs
# synonyms are drawn from (every other key has only itself).
_RETENTION = ("log.retention.ms", "log.retention.minutes", "log.retention.hours")
_ROLL = ("log.roll.ms", "log.roll.hours")
_ROLL_JITTER = ("log.roll.jitter.ms", "log.roll.jitter.hours")
BROKER_SYNONYMS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    **dict.fromkeys(_RETENTION, _RETENTION),
    **dict.fromkeys(_ROLL, _ROLL),
    **dict.fromkeys(_ROLL_JITTER, _ROLL_JITTER),
    "log.flush.interval.ms": ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
})

TOPIC_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {name: _from_synonyms(key, _key_default)[0] for name, key in TOPIC_KEYS.items()}
)


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


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# Kafka's SecurityProtocol ids (RegisterBrokerRecord, UpdateMetadata).
SECURITY_PROTOCOL_IDS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}


def parse_protocol_map(raw: str) -> dict[str, str]:
    """``listener.security.protocol.map`` as Kafka reads it (Csv.parseCsvMap: the last ``:`` splits;
    names normalised to upper case); each protocol must be one of Kafka's SecurityProtocol names."""
    key = "listener.security.protocol.map"
    out: dict[str, str] = {}
    raw = raw.strip()
    if not raw:
        return out
    for item in _LIST_SEPARATOR.split(raw):
        name, sep, proto = item.rpartition(":")
        if not sep:
            raise ConfigError(key, raw, "", f"Error parsing configuration property '{key}': "
                              f"expected LISTENER_NAME:SECURITY_PROTOCOL, got '{item}'")
        proto = proto.strip()
        if proto.upper() not in SECURITY_PROTOCOLS:
            raise ConfigError(key, raw, "", f"Invalid security protocol `{proto}` defined in {key}")
        out[name.strip().upper()] = proto.upper()
    return out


def parse_endpoints(key: str, items: Iterable[str], protocol_map: Mapping[str, str]) -> list[Endpoint]:
    items = list(items)
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
            raise ConfigError(key, item, "", f"Error creating broker listeners from '{','.join(items)}': "
                              f"Each listener must have a different name, listeners: {','.join(items)}")
        seen.add(name)
        protocol = protocol_map.get(name)
        if protocol is None:
            raise ConfigError(key, item, "", f"Error creating broker listeners from '{','.join(items)}': "
                              f"No security protocol defined for listener {name}")
        endpoints.append(Endpoint(name, host, port, protocol))
    return endpoints


# ---------------------------------------------------------------------------------------------
# The broker's configuration


# Kafka's Utils.validHostPattern
_VALID_HOST = re.compile(r"[a-zA-Z0-9\-:.]+")


def parse_ip_overrides(raw: str) -> dict[str, int]:
    """``max.connections.per.ip.overrides``: ``host:count`` pairs separated by commas (Kafka's
    ``Csv.parseCsvMap``: the last ``:`` splits, so IPv6 addresses work)."""
    key = "max.connections.per.ip.overrides"
    out: dict[str, int] = {}
    raw = raw.strip()
    if not raw:
        return out
    for item in re.split(r"\s*,\s*", raw):
        host, sep, count = item.rpartition(":")
        host = host.strip()
        if not sep or not host:
            raise ConfigError(key, raw, f"Error parsing configuration property '{key}': expected host:count, "
                              f"got {item!r}")
        try:
            value = int(count.strip())
        except ValueError:
            raise ConfigError(key, raw, f"Error parsing configuration property '{key}': "
                              f"{count.strip()!r} is not a number") from None
        if not _VALID_HOST.fullmatch(host):
            raise ConfigError(key, raw, f"{key} contains invalid addresses : {host}")
        out[host] = value
    return out


_UNSET = object()
_LISTENER_KEY = re.compile(r"listener\.name\.([A-Za-z0-9_]+)\.(.+)")
_JAAS_KEY = re.compile(r"[A-Za-z0-9_-]+\.sasl\.jaas\.config")
_MECHANISM_KEY = re.compile(r"([A-Za-z0-9_-]+)\.(.+)")


def _listener_key(name: str) -> tuple[str, str] | None:
    """(listener, key) of a ``listener.name.<listener>.<key>`` setting kbroker knows, else None."""
    m = _LISTENER_KEY.fullmatch(name)
    if m is None:
        return None
    key = m.group(2)
    if key in LISTENER_KEYS or _JAAS_KEY.fullmatch(key):
        return m.group(1), key
    mechanism_key = _MECHANISM_KEY.fullmatch(key)
    if mechanism_key is not None and mechanism_key.group(2) in MECHANISM_KEYS:
        return m.group(1), key
    return None


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
            if any(e.listener in controller_names for e in self.advertised_listeners):
                fail("advertised.listeners",
                     f"The advertised.listeners config must not contain KRaft controller listeners from {cln} when "
                     "process.roles contains the broker role because Kafka clients that send requests via "
                     "advertised listeners do not send requests to KRaft controllers -- they only send requests "
                     "to KRaft brokers.")
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
        return found if found is not None else self.listener_value(listener, "sasl.jaas.config")

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
            if name in DYNAMIC_ONLY_BROKER_KEYS:
                synonyms = [s for s in synonyms if s[2] != SOURCE_DEFAULT]
                if not synonyms:
                    continue  # Kafka lists them only once set (they are not KafkaConfig keys)
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


def format_config_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


# Kafka's SocketServer.ListenerReconfigurableConfigs: the listener.name.<l>. keys that are dynamic
# broker configs (kept in the dynamic layers; BrokerConfig.listener_overrides reads them).
DYNAMIC_LISTENER_KEYS = frozenset({"max.connections", "max.connection.creation.rate"})


def dynamic_listener_key(name: str) -> str | None:
    """The base key of a dynamic ``listener.name.<l>.<key>`` config, else None."""
    parts = _listener_key(name)
    return parts[1] if parts is not None and parts[1] in DYNAMIC_LISTENER_KEYS else None


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
