"""Broker and topic configuration with Apache Kafka's own keys: the one place they are declared.

Every broker key (``BROKER_KEYS``) and topic key (``TOPIC_KEYS``) is declared once, as data, in
:mod:`kbroker.config.keys` with Kafka 4.4's type, default, validator and documentation (the group
configs of GROUP resources, ``GROUP_KEYS``, in :mod:`kbroker.config.group_keys`), and
everything else takes them from here: start-up (``server.properties``, ``--override``),
DescribeConfigs, CreateTopics, AlterConfigs/IncrementalAlterConfigs, the coordinators and the log,
whose typed ``LogConfig`` is built from values parsed here once. This package imports nothing of
kbroker's, so every layer (the log included) may use it.

``server.properties`` is read with Java properties syntax. Keys kbroker does not know produce a
warning, and a value that does not parse or fails Kafka's validator stops start-up with a
:class:`ConfigError` naming the key, in Kafka's words (``Invalid value 14 for configuration
log.segment.bytes: Value must be at least 1048576``).

Topic-level configs (``segment.bytes``, ``retention.ms``, ...) take their defaults from the broker
keys Kafka names as their synonyms (``log.segment.bytes``, ``log.retention.hours``, ...), in
Kafka's order of precedence; DescribeConfigs reports those synonyms.

The modules, bottom up: :mod:`~kbroker.config.values` (types, parsers, :class:`ConfigKey`),
:mod:`~kbroker.config.addresses` (listeners, quorum addresses), :mod:`~kbroker.config.keys` (the
key table), :mod:`~kbroker.config.properties` (``server.properties`` syntax),
:mod:`~kbroker.config.broker_config` (:class:`BrokerConfig`) and :mod:`~kbroker.config.group_keys`
(the group configs, bounded by the broker's).
"""

from kbroker.config.addresses import (
    SECURITY_PROTOCOL_IDS,
    SECURITY_PROTOCOLS,
    Endpoint,
    parse_bootstrap_servers,
    parse_endpoints,
    parse_ip_overrides,
    parse_protocol_map,
    parse_quorum_voters,
)
from kbroker.config.broker_config import (
    SOURCE_DEFAULT,
    SOURCE_DYNAMIC_BROKER,
    SOURCE_DYNAMIC_DEFAULT_BROKER,
    SOURCE_STATIC_BROKER,
    SOURCE_TOPIC,
    SOURCE_UNKNOWN,
    BrokerConfig,
    ConfigEntry,
    validate_topic_configs,
)
from kbroker.config.group_keys import (
    GROUP_KEYS,
    RESOURCE_GROUP,
    GroupKey,
    describe_group_configs,
    group_value,
    validate_group_configs,
)
from kbroker.config.keys import (
    BROKER_DEFAULTS,
    BROKER_KEYS,
    BROKER_SYNONYMS,
    DYNAMIC_ONLY_BROKER_KEYS,
    TOPIC_DEFAULTS,
    TOPIC_KEYS,
    TopicKey,
)
from kbroker.config.properties import load_properties_file, parse_properties
from kbroker.config.security_keys import (
    DYNAMIC_LISTENER_KEYS,
    LISTENER_KEYS,
    MECHANISM_KEYS,
    dynamic_listener_key,
)
from kbroker.config.values import (
    CONFIG_TYPE_IDS,
    INT_MAX,
    LONG_MAX,
    SEGMENT_BYTES_MIN,
    ConfigError,
    ConfigKey,
    format_config_value,
)

__all__ = [
    "BROKER_DEFAULTS", "BROKER_KEYS", "BROKER_SYNONYMS", "CONFIG_TYPE_IDS", "DYNAMIC_LISTENER_KEYS", "GROUP_KEYS",
    "RESOURCE_GROUP", "GroupKey", "describe_group_configs", "group_value", "validate_group_configs",
    "DYNAMIC_ONLY_BROKER_KEYS", "INT_MAX", "LISTENER_KEYS", "LONG_MAX", "MECHANISM_KEYS", "SECURITY_PROTOCOLS",
    "SECURITY_PROTOCOL_IDS", "SEGMENT_BYTES_MIN", "SOURCE_DEFAULT", "SOURCE_DYNAMIC_BROKER",
    "SOURCE_DYNAMIC_DEFAULT_BROKER", "SOURCE_STATIC_BROKER", "SOURCE_TOPIC", "SOURCE_UNKNOWN", "TOPIC_DEFAULTS",
    "TOPIC_KEYS", "BrokerConfig", "ConfigEntry", "ConfigError", "ConfigKey", "Endpoint", "TopicKey",
    "dynamic_listener_key", "format_config_value", "load_properties_file", "parse_bootstrap_servers",
    "parse_endpoints", "parse_ip_overrides", "parse_properties", "parse_protocol_map", "parse_quorum_voters",
    "validate_topic_configs",
]
