"""The key table: every broker key (``BROKER_KEYS``) and topic key (``TOPIC_KEYS``) Kafka 4.4 has
and kbroker knows, declared once as data (:class:`~kbroker.config.values.ConfigKey`: type, default,
validator, documentation, dynamic or read-only), and what follows from it: typed defaults,
DescribeConfigs synonyms, the keys a listener may override.

A topic key is declared by the broker key it defaults to (its first synonym): its type and
validator are that key's, except where Kafka's LogConfig validates differently (given with the
topic key). Keys without a broker synonym (the replication throttles, KIP-1191's dead-letter
flag) carry their own type, default and validator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from kbroker.config.addresses import parse_bootstrap_servers, parse_quorum_voters
from kbroker.config.values import (
    INT_MAX,
    LONG_MAX,
    SEGMENT_BYTES_MIN,
    ConfigKey,
    _gzip_level,
    _k,
    _one_of_ignoring_case,
    _throttled_replicas,
)

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
        # the rack registered with the controller (BrokerRegistration Rack): replica placement
        # spreads each partition's replicas over racks (kbroker/controller/placement.py)
        _k("broker.rack", "string", None,
           doc="Rack of the broker. This will be used in rack aware replication assignment for fault tolerance. "
               "Examples: <code>RACK1</code>, <code>us-east-1d</code>"),
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
        _k("controller.quorum.fetch.snapshot.max.bytes", "int", "1048576", minimum=1),
        _k("broker.heartbeat.interval.ms", "int", "2000"),
        _k("initial.broker.registration.timeout.ms", "int", "60000"),
        _k("broker.session.timeout.ms", "int", "9000"),
        _k("log.dir.failure.timeout.ms", "long", "30000", minimum=1),
        _k("metadata.log.max.snapshot.interval.ms", "long", "3600000", minimum=0),
        _k("metadata.log.max.record.bytes.between.snapshots", "long", "20971520", minimum=1),
        _k("cluster.id", "string", None),
        _k("log.dirs", "list", None, nonempty=True),
        _k("log.dir", "list", "./kbroker-data", nonempty=True),
        # KIP-1066: log dirs that take no new replica (``*``: all); per-broker dynamic
        _k("cordoned.log.dirs", "list", "", read_only=False,
           doc="A comma-separated list of the directories that are cordoned. Entries in this list must be "
               "entries in log.dirs or log.dir configuration. This can also be set to * to cordon all log "
               "directories."),
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
        _k("num.recovery.threads.per.data.dir", "int", "2", minimum=1),  # log_manager.py: the load at start-up
        _k("num.replica.fetchers", "int", "1", minimum=1),
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
        _k("group.consumer.min.session.timeout.ms", "int", "45000", minimum=1),
        _k("group.consumer.max.session.timeout.ms", "int", "60000", minimum=1),
        _k("group.consumer.heartbeat.interval.ms", "int", "5000", minimum=1),
        _k("group.consumer.min.heartbeat.interval.ms", "int", "5000", minimum=1),
        _k("group.consumer.max.heartbeat.interval.ms", "int", "15000", minimum=1),
        _k("group.consumer.assignment.interval.ms", "int", "1000", minimum=0, applied=False),
        _k("group.consumer.min.assignment.interval.ms", "int", "0", minimum=0, applied=False),
        _k("group.consumer.max.assignment.interval.ms", "int", "15000", minimum=0, applied=False),
        _k("group.consumer.assignors", "list", "uniform,range", nonempty=True),
        # Kafka's ConsumerGroupMigrationPolicy: which way a group may move between the classic
        # and the consumer protocol while it has members.
        _k("group.consumer.migration.policy", "string", "bidirectional",
           check=_one_of_ignoring_case("disabled", "upgrade", "downgrade", "bidirectional")),
        # an internal key of Kafka's (defineInternal): DescribeConfigs lists it only once set
        _k("group.consumer.regex.refresh.interval.ms", "int", "600000", minimum=10000,
           doc="The interval at which the group coordinator will refresh the topics matching the group subscribed "
               "regexes. This is only applicable to consumer groups using the consumer group protocol. "),
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
        _k("group.streams.assignors", "list", "sticky", nonempty=True),
        _k("group.streams.rack.aware.assignment.tags", "list", "", applied=False),
        # KIP-932 share groups (Kafka's GroupCoordinatorConfig/ShareGroupConfig defaults and ranges).
        _k("group.share.max.size", "int", "200", minimum=1, maximum=1000),
        _k("group.share.session.timeout.ms", "int", "45000", minimum=1),
        _k("group.share.min.session.timeout.ms", "int", "45000", minimum=1),
        _k("group.share.max.session.timeout.ms", "int", "60000", minimum=1),
        _k("group.share.heartbeat.interval.ms", "int", "5000", minimum=1),
        _k("group.share.min.heartbeat.interval.ms", "int", "5000", minimum=1),
        _k("group.share.max.heartbeat.interval.ms", "int", "15000", minimum=1),
        _k("group.share.assignors", "list", "simple", list_choices=("simple",), nonempty=True),
        _k("group.share.assignment.interval.ms", "int", "1000", minimum=0, applied=False),
        _k("group.share.min.assignment.interval.ms", "int", "0", minimum=0, applied=False),
        _k("group.share.max.assignment.interval.ms", "int", "15000", minimum=0, applied=False),
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


def _minutes_or_hours_to_ms(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key.endswith(".minutes"):
        return int(value) * 60_000
    if key.endswith(".hours"):
        return int(value) * 3_600_000
    return int(value)


def _key_default(name: str) -> Any:
    key = BROKER_KEYS[name]
    return None if key.default is None else key.parse(key.default)


# Kafka's QuotaConfig broker throttles: dynamic broker configs that are no KafkaConfig key, so
# DescribeConfigs lists them only when set (no default synonym), as Kafka 4.4 does.
DYNAMIC_ONLY_BROKER_KEYS = frozenset({
    "leader.replication.throttled.rate", "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
})

# Kafka's internal broker keys (ConfigDef.defineInternal): DescribeConfigs lists them only when set
# (Kafka's ConfigHelper.allConfigs: the originals, and the values of the keys that are not internal).
INTERNAL_BROKER_KEYS = frozenset({"group.consumer.regex.refresh.interval.ms"})

# Kafka's default of every broker key, typed (None where Kafka has none).
BROKER_DEFAULTS: Mapping[str, Any] = MappingProxyType({name: _key_default(name) for name in BROKER_KEYS})

# Kafka's DynamicBrokerConfig.brokerConfigSynonyms: the keys a broker key's DescribeConfigs
# synonyms are drawn from (every other key has only itself); a topic key defaulting to one of
# them falls back along the same chain.
_RETENTION = ("log.retention.ms", "log.retention.minutes", "log.retention.hours")
_ROLL = ("log.roll.ms", "log.roll.hours")
_ROLL_JITTER = ("log.roll.jitter.ms", "log.roll.jitter.hours")
BROKER_SYNONYMS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    **dict.fromkeys(_RETENTION, _RETENTION),
    **dict.fromkeys(_ROLL, _ROLL),
    **dict.fromkeys(_ROLL_JITTER, _ROLL_JITTER),
    "log.flush.interval.ms": ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
})


def _topic(name: str, synonym: str, doc: str, minimum: float | None = None) -> TopicKey:
    """The topic key ``name`` whose default is the broker key ``synonym`` (then the rest of its
    ``BROKER_SYNONYMS`` chain): its type and validator are the synonym's declaration, changed only
    by ``minimum`` where Kafka's LogConfig validates otherwise."""
    chain = BROKER_SYNONYMS.get(synonym, (synonym,))
    spec_minimum = BROKER_KEYS[synonym].minimum
    spec = replace(BROKER_KEYS[synonym], name=name, default=None, read_only=True, sensitive=False, applied=True,
                   doc=doc, minimum=spec_minimum if minimum is None else minimum)
    in_units = any(k.endswith((".minutes", ".hours")) for k in chain)
    return TopicKey(name, chain, spec, _minutes_or_hours_to_ms if in_units else None)


def _topic_only(name: str, type_: str, default: str, doc: str,
                check: Callable[[str, list[str], str], None] | None = None) -> TopicKey:
    """A topic key without a broker synonym: Kafka's LogConfig default is its own."""
    return TopicKey(name, (), ConfigKey(name, type_, default, doc=doc, check=check))


# Kafka's LogConfig: each topic key with the broker key it defaults to (whose type and validator it
# shares) and its DescribeConfigs documentation.
TOPIC_KEYS: dict[str, TopicKey] = {
    t.name: t
    for t in [
        _topic("cleanup.policy", "log.cleanup.policy", "How old segments go: delete (by retention.ms/"
               "retention.bytes), compact (keep the latest record of each key), or both."),
        _topic("compression.type", "compression.type",
               "The codec the log keeps batches in: producer (as sent), uncompressed, gzip, snappy, lz4 or zstd."),
        _topic("compression.gzip.level", "compression.gzip.level",
               "gzip level used when the broker compresses (1-9, or -1 for the codec's default)."),
        _topic("compression.lz4.level", "compression.lz4.level", "lz4 level used when the broker compresses (1-17)."),
        _topic("compression.zstd.level", "compression.zstd.level",
               "zstd level used when the broker compresses (-131072 to 22)."),
        _topic("delete.retention.ms", "log.cleaner.delete.retention.ms",
               "How long a tombstone stays in a compacted log after it was cleaned."),
        _topic("file.delete.delay.ms", "log.segment.delete.delay.ms",
               "How long a deleted segment's files are kept before they are removed from disk."),
        _topic("flush.messages", "log.flush.interval.messages", "fsync the log after this many records."),
        _topic("flush.ms", "log.flush.interval.ms", "fsync the log when its oldest unflushed data is this old.",
               minimum=0),
        _topic("index.interval.bytes", "log.index.interval.bytes", "Bytes of log between two offset index entries."),
        _topic("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", "The longest a record may stay uncompacted."),
        _topic("max.message.bytes", "message.max.bytes", "The largest record batch the topic accepts, in bytes."),
        _topic("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms",
               "How far in the future a CreateTime timestamp may be."),
        _topic("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms",
               "How far in the past a CreateTime timestamp may be."),
        _topic("message.timestamp.type", "log.message.timestamp.type",
               "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock."),
        _topic("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio",
               "The share of uncleaned log (0 to 1) from which the log is compacted."),
        _topic("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms",
               "The shortest time a record stays uncompacted."),
        _topic("min.insync.replicas", "min.insync.replicas", "In-sync replicas an acks=all produce needs."),
        _topic("preallocate", "log.preallocate", "Reserve a new segment's disk space when it is created."),
        _topic("retention.bytes", "log.retention.bytes",
               "The size the log is cut back to by deleting old segments (-1: no limit)."),
        _topic("retention.ms", "log.retention.ms", "How long a segment is kept before it is deleted (-1: for ever).",
               minimum=-1),
        _topic("segment.bytes", "log.segment.bytes",
               "The size of a segment file; a new one starts when it is full (at least 1 MiB)."),
        _topic("segment.index.bytes", "log.index.size.max.bytes",
               "The size of a segment's offset index; the segment rolls when the index is full."),
        _topic("segment.jitter.ms", "log.roll.jitter.ms",
               "Random jitter taken off segment.ms so segments do not all roll at once."),
        _topic("segment.ms", "log.roll.ms", "A new segment starts after this long even if the current one is not full."),
        _topic("unclean.leader.election.enable", "unclean.leader.election.enable",
               "Whether a replica outside the ISR may become leader, losing records."),
        # Kafka's QuotaConfig replication throttles (set by kafka-reassign-partitions.sh --throttle):
        # enforced on replica fetches (kbroker/security/replication_quotas.py).
        _topic_only("leader.replication.throttled.replicas", "list", "",
                    "Replicas (partitionId:brokerId, or *) whose leader-side replication is throttled.",
                    check=_throttled_replicas),
        _topic_only("follower.replication.throttled.replicas", "list", "",
                    "Replicas (partitionId:brokerId, or *) whose follower-side replication is throttled.",
                    check=_throttled_replicas),
        # KIP-1191: a topic share groups may use as their dead-letter queue (no broker synonym).
        _topic_only("errors.deadletterqueue.group.enable", "boolean", "false",
                    "Whether share groups may write undeliverable records to this topic (a dead-letter queue)."),
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


# Kafka's default of every topic-level config, typed (its broker synonyms' defaults).
TOPIC_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {name: _from_synonyms(key, _key_default)[0] for name, key in TOPIC_KEYS.items()}
)


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


# Kafka's SocketServer.ListenerReconfigurableConfigs: the listener.name.<l>. keys that are dynamic
# broker configs (kept in the dynamic layers; BrokerConfig.listener_overrides reads them).
DYNAMIC_LISTENER_KEYS = frozenset({"max.connections", "max.connection.creation.rate"})


def dynamic_listener_key(name: str) -> str | None:
    """The base key of a dynamic ``listener.name.<l>.<key>`` config, else None."""
    parts = _listener_key(name)
    return parts[1] if parts is not None and parts[1] in DYNAMIC_LISTENER_KEYS else None


