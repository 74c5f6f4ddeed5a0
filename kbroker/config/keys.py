"""The key table: every broker key (``BROKER_KEYS``) and topic key (``TOPIC_KEYS``) Kafka 4.4 has
and kbroker knows, declared once as data (:class:`~kbroker.config.values.ConfigKey`: type, default,
validator, documentation, dynamic or read-only), and what follows from it: typed defaults,
DescribeConfigs synonyms, the keys a listener may override. The metadata quorum's keys are declared
in :mod:`kbroker.config.quorum_keys`, the coordinators' in :mod:`kbroker.config.coordinator_keys`,
security's and the listener overrides in :mod:`kbroker.config.security_keys`; ``BROKER_KEYS`` holds
them all, in one order.

A topic key is declared by the broker key it defaults to (its first synonym): its type and
validator are that key's, except where Kafka's LogConfig validates differently (given with the
topic key). Keys without a broker synonym (the replication throttles, KIP-1191's dead-letter
flag) carry their own type, default and validator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from kbroker.config.coordinator_keys import COORDINATOR_KEYS
from kbroker.config.quorum_keys import QUORUM_KEYS
from kbroker.config.security_keys import SECURITY_KEYS
from kbroker.config.values import (
    INT_MAX,
    LONG_MAX,
    SEGMENT_BYTES_MIN,
    ConfigKey,
    _gzip_level,
    _k,
    _throttled_replicas,
    buffer_size,
)

_COMPRESSION = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
_TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")

# Broker configuration keys. `applied=False` marks keys accepted (so real server.properties files
# start) that do not change kbroker's behaviour; they are listed by DescribeConfigs like any other.
BROKER_KEYS: dict[str, ConfigKey] = {
    k.name: k
    for k in [
        _k("node.id", "int", "-1", minimum=-1,
           doc="The id of this node in the cluster, as a broker and as a quorum voter; required with "
               "process.roles. kbroker's single-node start (no process.roles) uses broker.id, else 1."),
        _k("broker.id", "int", "-1", minimum=-1,
           doc="The pre-KRaft name of node.id, still read: when node.id is not set this value is used as the node "
               "id, and when both are set they must be equal."),
        # the rack registered with the controller (BrokerRegistration Rack): replica placement
        # spreads each partition's replicas over racks (kbroker/controller/placement.py)
        _k("broker.rack", "string", None,
           doc="The rack (or zone) of this broker, sent to the controller when it registers; new partitions "
               "spread their replicas over racks and, with the rack-aware replica selector, consumers may fetch "
               "from a replica in their own rack."),
        _k("process.roles", "list", "broker,controller", list_choices=("broker", "controller"), nonempty=True,
           doc="The roles of this node in a KRaft cluster: broker, controller, or both. When it is not set "
               "kbroker runs as a self-contained single node that is its own one-voter quorum, formatted on first "
               "start."),
        _k("listeners", "list", "PLAINTEXT://localhost:9092", nonempty=True,
           doc="The addresses the node accepts connections on, as LISTENER_NAME://host:port entries (port 0 picks "
               "a free one); a listener named in controller.listener.names serves the KRaft quorum only."),
        _k("advertised.listeners", "list", None,
           doc="The addresses clients and other nodes are told to connect to, when they differ from listeners "
               "(behind NAT or a container); unset means the listeners themselves. The wildcard addresses 0.0.0.0 "
               "and :: are refused."),
        _k("listener.security.protocol.map", "string",
           "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
           doc="Maps each listener name to its security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL), as "
               "NAME:PROTOCOL pairs."),
        _k("inter.broker.listener.name", "string", None,
           doc="The listener brokers use to talk to each other (replica fetches); it must be one of the "
               "advertised listeners. Not to be set together with security.inter.broker.protocol."),
        _k("controller.listener.names", "list", None, nonempty=True,
           doc="The listener names the KRaft controllers serve the metadata quorum on; brokers reach the "
               "controllers through the first of them. Required with process.roles."),
        *QUORUM_KEYS,
        _k("cluster.id", "string", None,
           doc="kbroker's own key (Kafka keeps the cluster id only in meta.properties): the cluster id written to "
               "the log directories when kbroker formats them itself on first start; start-up fails if it differs "
               "from the id already stored there."),
        _k("log.dirs", "list", None, nonempty=True,
           doc="The directories partition data is stored in, comma-separated; each partition lives in one of "
               "them. Takes precedence over log.dir."),
        _k("log.dir", "list", "./kbroker-data", nonempty=True,
           doc="The data directory used when log.dirs is not set. kbroker's default is ./kbroker-data."),
        # KIP-1066: log dirs that take no new replica (``*``: all); per-broker dynamic
        _k("cordoned.log.dirs", "list", "", read_only=False,
           doc="Log directories that take no new partition replicas (KIP-1066), each one of log.dirs (or "
               "log.dir), or * for all of them; replicas already there stay. A dynamic per-broker setting."),
        _k("metadata.log.dir", "string", None,
           doc="The directory of the KRaft metadata log; unset means the first of log.dirs."),
        _k("num.partitions", "int", "1", minimum=1,
           doc="The number of partitions of a topic created without a partition count (CreateTopics with -1, or "
               "auto-creation)."),
        _k("default.replication.factor", "int", "1", minimum=1,
           doc="The replication factor of a topic created without one (CreateTopics with -1, or auto-creation)."),
        _k("auto.create.topics.enable", "boolean", "true",
           doc="Whether a Metadata request (that allows it) naming a topic that does not exist creates it, with "
               "num.partitions and default.replication.factor."),
        _k("delete.topic.enable", "boolean", "true",
           doc="Whether DeleteTopics may delete topics; when false it fails with TOPIC_DELETION_DISABLED "
               "(INVALID_REQUEST before DeleteTopics v3)."),
        _k("unstable.api.versions.enable", "boolean", "false",
           doc="Whether ApiVersions advertises API versions Kafka still marks unstable, which are otherwise "
               "refused. For testing only."),
        # Kafka's QuotaConfig broker throttles (kafka-reassign-partitions.sh --throttle sets them per
        # broker): enforced on replica fetches (kbroker/security/replication_quotas.py).
        _k("leader.replication.throttled.rate", "long", str(LONG_MAX), minimum=0, read_only=False,
           doc="Bytes per second this broker, as leader, may send to followers of the replicas listed in a "
               "topic's leader.replication.throttled.replicas (set by kafka-reassign-partitions.sh --throttle). A "
               "dynamic per-broker setting."),
        _k("follower.replication.throttled.rate", "long", str(LONG_MAX), minimum=0, read_only=False,
           doc="Bytes per second this broker, as follower, may fetch for the replicas listed in a topic's "
               "follower.replication.throttled.replicas. A dynamic per-broker setting."),
        _k("replica.alter.log.dirs.io.max.bytes.per.second", "long", str(LONG_MAX), minimum=0, read_only=False,
           applied=False,
           doc="The bandwidth, in bytes per second, for copying replicas between the log directories of one "
               "broker. Accepted for compatibility; kbroker does not throttle those moves, so it has no effect."),
        _k("message.max.bytes", "int", "1048588", minimum=0, read_only=False,
           doc="The largest record batch, in bytes, a topic accepts; the default of its max.message.bytes. Larger "
               "batches get MESSAGE_TOO_LARGE."),
        _k("log.segment.bytes", "int", "1073741824", minimum=SEGMENT_BYTES_MIN, read_only=False,
           doc="The size, in bytes, at which a segment file is closed and a new one started; the default of "
               "segment.bytes. At least 1 MiB."),
        _k("log.roll.ms", "long", None, minimum=1, read_only=False,
           doc="The age, in ms, after which a new segment is started even if the current one is not full; the "
               "default of segment.ms. When unset, log.roll.hours applies."),
        _k("log.roll.hours", "int", "168", minimum=1,
           doc="The same as log.roll.ms, in hours; used when log.roll.ms is not set."),
        _k("log.roll.jitter.ms", "long", None, minimum=0, read_only=False,
           doc="The most, in ms, taken at random off each segment's roll time so that segments of different "
               "partitions do not all roll together; the default of segment.jitter.ms. When unset, "
               "log.roll.jitter.hours applies."),
        _k("log.roll.jitter.hours", "int", "0", minimum=0,
           doc="The same as log.roll.jitter.ms, in hours; used when log.roll.jitter.ms is not set."),
        _k("log.index.size.max.bytes", "int", "10485760", minimum=4, read_only=False,
           doc="The size, in bytes, of a segment's offset index; a segment rolls when its index is full. The "
               "default of segment.index.bytes."),
        _k("log.index.interval.bytes", "int", "4096", minimum=0, read_only=False,
           doc="How many bytes of records go between two entries of the offset index; the default of "
               "index.interval.bytes. Smaller values give denser indexes and shorter scans."),
        _k("log.retention.ms", "long", None, read_only=False,
           doc="How long, in ms, a segment is kept before it is deleted; -1 keeps data for ever. The default of "
               "retention.ms; when unset, log.retention.minutes, then log.retention.hours, apply."),
        _k("log.retention.minutes", "int", None,
           doc="The same as log.retention.ms, in minutes; used when log.retention.ms is not set."),
        _k("log.retention.hours", "int", "168",
           doc="The same as log.retention.ms, in hours; used when neither log.retention.ms nor "
               "log.retention.minutes is set. Default 168 (7 days)."),
        _k("log.retention.bytes", "long", "-1", read_only=False,
           doc="The size, in bytes, a partition's log is cut back to by deleting its oldest segments; -1 means no "
               "size limit. The default of retention.bytes."),
        _k("log.retention.check.interval.ms", "long", "300000", minimum=1,
           doc="How often, in ms, logs are checked for segments to delete. kbroker checks every second on the "
               "real clock and uses this interval on its manual clock (kbroker.clock=manual)."),
        _k("log.flush.interval.messages", "long", str(LONG_MAX), minimum=1, read_only=False,
           doc="How many records a partition takes before its log is fsynced; the default of flush.messages. The "
               "default leaves flushing to the operating system."),
        _k("log.flush.interval.ms", "long", None, read_only=False,
           doc="How long, in ms, written data may stay unflushed before the log is fsynced; the default of "
               "flush.ms. When unset, log.flush.scheduler.interval.ms applies."),
        _k("log.flush.scheduler.interval.ms", "long", str(LONG_MAX),
           doc="In Kafka, how often the flusher looks for logs due for an fsync. kbroker looks every second; here "
               "it only serves as the fallback for log.flush.interval.ms."),
        _k("log.flush.offset.checkpoint.interval.ms", "int", "60000", minimum=0,
           doc="How often, in ms, Kafka writes the recovery-point checkpoint of the logs. Accepted but not read: "
               "kbroker writes it every 60 s (this key's default)."),
        _k("log.cleanup.policy", "list", "delete", list_choices=("compact", "delete"), read_only=False,
           doc="What happens to old segments: delete (by retention.ms and retention.bytes), compact (keep the "
               "latest record of each key), or both. The default of cleanup.policy."),
        _k("log.cleaner.enable", "boolean", "true",
           doc="Whether Kafka runs the log cleaner that compacts topics with cleanup.policy=compact. Accepted but "
               "not read: kbroker always compacts such topics."),
        _k("log.cleaner.delete.retention.ms", "long", "86400000", minimum=0, read_only=False,
           doc="How long, in ms, a tombstone (a record with a null value) stays in a compacted log after the "
               "segment holding it was cleaned; the default of delete.retention.ms."),
        _k("log.cleaner.min.compaction.lag.ms", "long", "0", minimum=0, read_only=False,
           doc="The least time, in ms, a record stays in the log before it may be compacted away; the default of "
               "min.compaction.lag.ms."),
        _k("log.cleaner.max.compaction.lag.ms", "long", str(LONG_MAX), minimum=1, read_only=False,
           doc="The longest time, in ms, a record may stay uncompacted; a log with older uncleaned records is "
               "compacted whatever its dirty ratio. The default of max.compaction.lag.ms."),
        _k("log.cleaner.min.cleanable.ratio", "double", "0.5", minimum=0, maximum=1, read_only=False,
           doc="The share (0 to 1) of a log that must be uncleaned before it is compacted; the default of "
               "min.cleanable.dirty.ratio."),
        _k("log.cleaner.backoff.ms", "long", "15000", minimum=0,
           doc="How long, in ms, Kafka's cleaner sleeps when no log needs cleaning. Accepted but not read: "
               "kbroker considers compaction in its maintenance round every second."),
        _k("log.cleaner.threads", "int", "1", minimum=0, applied=False,
           doc="The number of Kafka's log cleaner threads. Accepted for compatibility, no effect: kbroker "
               "compacts in its single maintenance thread."),
        _k("log.segment.delete.delay.ms", "long", "60000", minimum=0, read_only=False,
           doc="How long, in ms, Kafka keeps a deleted segment's files before removing them; the default of "
               "file.delete.delay.ms. kbroker does not read it: it removes the files at once, and readers holding "
               "them open keep reading."),
        _k("log.preallocate", "boolean", "false", read_only=False, applied=False,
           doc="Whether Kafka reserves a new segment's full size on disk when it creates it; the default of "
               "preallocate. Accepted for compatibility, no effect: kbroker grows segment files as it writes."),
        _k("log.message.timestamp.type", "string", "CreateTime", choices=_TIMESTAMP_TYPES, read_only=False,
           doc="CreateTime keeps the timestamps producers set; LogAppendTime replaces them with the broker's time "
               "of append. The default of message.timestamp.type."),
        _k("log.message.timestamp.before.max.ms", "long", str(LONG_MAX), minimum=0, read_only=False,
           doc="How far in the past, in ms, a CreateTime record timestamp may be before the batch is refused with "
               "INVALID_TIMESTAMP; the default of message.timestamp.before.max.ms."),
        _k("log.message.timestamp.after.max.ms", "long", "3600000", minimum=0, read_only=False,
           doc="How far in the future, in ms, a CreateTime record timestamp may be before the batch is refused "
               "with INVALID_TIMESTAMP; the default of message.timestamp.after.max.ms."),
        _k("compression.type", "string", "producer", choices=_COMPRESSION, read_only=False,
           doc="The codec batches are stored with: producer keeps what the producer sent; uncompressed, gzip, "
               "snappy, lz4 or zstd make the broker recompress other batches. The default of the topic key of the "
               "same name."),
        _k("compression.gzip.level", "int", "-1", check=_gzip_level, read_only=False,
           doc="The gzip level used when the broker compresses (1 to 9, or -1 for the codec's default); the "
               "default of the topic key of the same name."),
        _k("compression.lz4.level", "int", "9", minimum=1, maximum=17, read_only=False,
           doc="The lz4 level used when the broker compresses (1 to 17); the default of the topic key of the same "
               "name."),
        _k("compression.zstd.level", "int", "3", minimum=-131072, maximum=22, read_only=False,
           doc="The zstd level used when the broker compresses (-131072 to 22); the default of the topic key of "
               "the same name."),
        _k("min.insync.replicas", "int", "1", minimum=1, read_only=False,
           doc="How many in-sync replicas a partition needs for a produce with acks=all to succeed (else "
               "NOT_ENOUGH_REPLICAS); the default of the topic key of the same name."),
        _k("unclean.leader.election.enable", "boolean", "false", read_only=False,
           doc="Whether a replica outside the ISR may be made leader when no in-sync replica is left, at the cost "
               "of losing records; the default of the topic key of the same name."),
        _k("socket.request.max.bytes", "int", "104857600", minimum=1,
           doc="The largest request, in bytes, a client may send; a connection announcing a larger one is closed."),
        # Kafka's SocketServer (Acceptor): the receive buffer is set on the listening socket before
        # it binds (accepted sockets inherit it, so the window scale offered in the SYN-ACK fits it),
        # the send buffer on each accepted socket; -1 leaves the OS its default (Linux autotuning).
        # Read-only, and broker-wide: Kafka has no listener.name.<l>. override of them.
        _k("socket.send.buffer.bytes", "int", "102400", check=buffer_size,
           doc="The SO_SNDBUF size, in bytes, set on every accepted connection of every listener (-1: the "
               "operating system's default, which Linux tunes itself). Linux reports twice the value set."),
        _k("socket.receive.buffer.bytes", "int", "102400", check=buffer_size,
           doc="The SO_RCVBUF size, in bytes, set on every listener's socket before it binds (accepted "
               "connections inherit it) and on the connections to the controller quorum and to other brokers "
               "for transaction markers and verification (-1: the operating system's default)."),
        _k("socket.listen.backlog.size", "int", "50", minimum=1,
           doc="The most connections waiting to be accepted on a listener's socket (the listen backlog); Linux "
               "also caps it at net.core.somaxconn."),
        # Kafka's ServerConfigs / ReplicationConfigs: the timeouts of the broker's own clients (its
        # NetworkClients to the other nodes); no validator in Kafka beyond the type
        _k("request.timeout.ms", "int", "30000",
           doc="How long, in ms, this node's connections to other brokers (the replica fetcher, transaction "
               "markers and verification) wait for a response before they close the connection and retry."),
        _k("socket.connection.setup.timeout.ms", "long", "10000",
           doc="How long, in ms, this node's connections to the other nodes (replica fetcher, Raft client, "
               "controller channels) may take to connect (TCP, TLS, SASL) before the attempt is abandoned; it "
               "doubles, with 20% jitter, after each consecutive failed attempt, up to "
               "socket.connection.setup.timeout.max.ms."),
        _k("socket.connection.setup.timeout.max.ms", "long", "30000",
           doc="The most, in ms, the connection setup timeout grows to over consecutive failed attempts."),
        _k("controller.socket.timeout.ms", "int", "30000",
           doc="How long, in ms, a request on a broker-to-controller channel (registration, heartbeats, "
               "forwarding, AlterPartition) waits for its response before the connection is closed and the "
               "request retried."),
        _k("connections.max.idle.ms", "long", "600000",
           doc="A connection with no request in flight that has sent nothing for this long, in ms, is closed."),
        # Kafka's SocketServer.ReconfigurableConfigs: dynamic broker configs
        _k("max.connections", "int", str(INT_MAX), minimum=0, read_only=False,
           doc="The most connections the broker accepts at once (per listener when set as "
               "listener.name.<listener>.max.connections); further ones wait until one closes. A dynamic setting."),
        _k("max.connections.per.ip", "int", str(INT_MAX), minimum=0, read_only=False,
           doc="The most connections accepted from one IP address; further ones are closed. May be 0 only when "
               "max.connections.per.ip.overrides is set. A dynamic setting."),
        _k("max.connections.per.ip.overrides", "string", "", read_only=False,
           doc="Per-host exceptions to max.connections.per.ip, as host:count or ip:count entries separated by "
               "commas. A dynamic setting."),
        _k("max.connection.creation.rate", "int", str(INT_MAX), minimum=0, read_only=False,
           doc="The most new connections per second the broker (or a listener, as "
               "listener.name.<listener>.max.connection.creation.rate) accepts; faster ones are delayed. A "
               "dynamic setting."),
        # Kafka's default is -1 (unbounded); see kbroker/server/limits.py.
        _k("queued.max.request.bytes", "long", "104857600",
           doc="The request bytes held in memory broker-wide before the broker stops reading more from the "
               "network. kbroker's default is 100 MiB (or socket.request.max.bytes if that is larger) where "
               "Kafka's is -1, unbounded; -1 restores Kafka's."),
        _k("kbroker.request.receive.timeout.ms", "long", "60000", minimum=0,
           doc="kbroker's own: a request must arrive in full within this many ms of its first byte or the "
               "connection is closed, so a client sending a byte at a time cannot hold a buffer for ever; 0 "
               "disables the limit."),
        _k("num.network.threads", "int", "3", minimum=1, applied=False,
           doc="The number of Kafka's network threads. Accepted for compatibility, no effect: kbroker has no "
               "network thread pool to size."),
        _k("num.io.threads", "int", "8", minimum=1, applied=False,
           doc="The number of Kafka's request handler threads. Accepted for compatibility, no effect: kbroker has "
               "no request handler thread pool to size."),
        _k("num.recovery.threads.per.data.dir", "int", "2", minimum=1,
           doc="Threads per log directory that open the partition logs at start-up, and recover them after an "
               "unclean shutdown."),  # log_manager.py: the load at start-up
        _k("num.replica.fetchers", "int", "1", minimum=1,
           doc="The number of fetchers a follower runs per source broker to replicate from it; partitions are "
               "spread over them."),
        _k("queued.max.requests", "int", "500", minimum=1,
           doc="How many received requests may wait unanswered broker-wide; at this limit connections with a "
               "request in flight are not read further."),
        # client quotas (kbroker/security/quotas.py)
        _k("quota.window.num", "int", "11", minimum=1,
           doc="How many samples client quotas (produce, fetch, request time) keep to measure a rate."),
        _k("quota.window.size.seconds", "int", "1", minimum=1,
           doc="The length, in seconds, of each sample of the client quotas."),
        _k("controller.quota.window.num", "int", "11", minimum=1,
           doc="How many samples the controller mutation quota (topic and partition creations and deletions) "
               "keeps to measure a rate."),
        _k("controller.quota.window.size.seconds", "int", "1", minimum=1,
           doc="The length, in seconds, of each sample of the controller mutation quota."),
        _k("replication.quota.window.num", "int", "11", minimum=1,
           doc="How many samples the replication throttles keep to measure a rate."),
        _k("replication.quota.window.size.seconds", "int", "1", minimum=1,
           doc="The length, in seconds, of each sample of the replication throttles."),
        *COORDINATOR_KEYS,
        _k("max.incremental.fetch.session.cache.slots", "int", "1000", minimum=0,
           doc="The most incremental fetch sessions (KIP-227) the broker keeps; 0 turns them off."),
        _k("fetch.max.bytes", "int", "57671680", minimum=1024,
           doc="The most bytes the broker returns to one Fetch or ShareFetch request, whatever the client asks "
               "for (at least 1024)."),
        _k("max.request.partition.size.limit", "int", "2000", minimum=1,
           doc="The most partitions one DescribeTopicPartitions response returns; the rest come with a cursor."),
        _k("replica.lag.time.max.ms", "long", "30000",
           doc="A follower that has not caught up with the leader's log end for this long, in ms, is removed from "
               "the ISR."),
        _k("replica.fetch.max.bytes", "int", "1048576", minimum=0,
           doc="The most bytes a follower asks for per partition in one fetch (a larger first batch is still "
               "returned whole)."),
        _k("replica.fetch.min.bytes", "int", "1",
           doc="The least bytes a follower's fetch waits for before the leader answers it."),
        _k("replica.fetch.wait.max.ms", "int", "500",
           doc="How long, in ms, the leader may hold a follower's fetch waiting for replica.fetch.min.bytes."),
        _k("replica.fetch.backoff.ms", "int", "1000", minimum=0,
           doc="How long, in ms, a follower waits after a failed fetch before it fetches again."),
        _k("replica.fetch.response.max.bytes", "int", "10485760", minimum=0,
           doc="The most bytes a follower asks for in one whole fetch response."),
        _k("replica.socket.timeout.ms", "int", "30000",
           doc="The longest, in ms, a follower waits for its connection to the leader it replicates from to be "
               "ready (an attempt is abandoned sooner after socket.connection.setup.timeout.ms); its fetches are "
               "bounded by request.timeout.ms."),
        _k("replica.socket.receive.buffer.bytes", "int", "65536", check=buffer_size,
           doc="The SO_RCVBUF size, in bytes, of a follower's connection to the leader it replicates from, set "
               "before it connects (-1: the operating system's default)."),
        _k("replica.high.watermark.checkpoint.interval.ms", "long", "5000", minimum=1,
           doc="How often, in ms, each log directory's high watermarks are written to its checkpoint file."),
        # KIP-392 (fetch from the closest replica): the selectors kbroker has, by Kafka's class names.
        _k("replica.selector.class", "string", None,
           choices=("org.apache.kafka.common.replica.RackAwareReplicaSelector",
                    "org.apache.kafka.common.replica.LeaderSelector"),
           doc="The replica a consumer with a rack (client.rack) is told to fetch from (KIP-392): unset or "
               "LeaderSelector means the leader, RackAwareReplicaSelector a replica in the consumer's rack. "
               "kbroker has these two."),
        # The broker's own HTTP listener (kbroker.metrics): /metrics; off unless set.
        _k("kbroker.http.listeners", "list", "",
           doc="kbroker's own: the addresses (host:port or http://host:port) of the broker's HTTP listener, which "
               "serves Prometheus metrics at /metrics and the web console; empty turns it off."),
        # The web console on that listener (kbroker.console); false: /metrics alone.
        _k("kbroker.console.enable", "boolean", "true",
           doc="kbroker's own: whether the HTTP listener also serves the web console; false serves /metrics "
               "alone."),
        # kbroker's test controls (kbroker.control): off unless set.
        _k("kbroker.control.listeners", "list", "",
           doc="kbroker's own: the address of the test-control HTTP endpoint (fault injection, pause, manual "
               "clock, trace); empty turns it off."),
        _k("kbroker.control.allow.remote", "boolean", "false",
           doc="kbroker's own: whether the test-control endpoint answers peers other than loopback (they get 403 "
               "otherwise)."),
        _k("kbroker.clock", "string", "real", choices=("real", "manual"),
           doc="kbroker's own: real, or manual for tests, where the broker's time moves only when the "
               "test-control endpoint advances it (group, transaction and retention timers run on it)."),
        # Delayed delivery (kbroker/delayed.py, docs/delayed-delivery.md).
        _k("kbroker.delayed.enable", "boolean", "true",
           doc="kbroker's own: whether produce honours the delayed-delivery headers; false leaves them ordinary "
               "headers."),
        _k("kbroker.delayed.max.delay.ms", "long", "604800000", minimum=0,
           doc="kbroker's own: the longest delivery delay accepted, in ms (default 7 days)."),
        _k("kbroker.delayed.topic.num.partitions", "int", "10", minimum=1,
           doc="kbroker's own: the number of partitions of __kbroker_delayed, where delayed records wait, fixed "
               "when it is created."),
        _k("kbroker.delayed.topic.replication.factor", "short", "3", minimum=1,
           doc="kbroker's own: the replication factor of __kbroker_delayed in a KRaft cluster (1 on the single "
               "node)."),
        _k("kbroker.delayed.topic.min.isr", "short", "2", minimum=1,
           doc="kbroker's own: the min.insync.replicas of __kbroker_delayed in a KRaft cluster (1 on the single "
               "node)."),
        _k("kbroker.trace.file", "string", None,
           doc="kbroker's own: a file the broker writes a trace of every request to, one JSON object a line, from "
               "start-up (kbroker --trace FILE sets it)."),
        _k("kbroker.trace.apis", "list", "",
           doc="kbroker's own: the API names the request trace is limited to; empty traces all."),
        _k("kbroker.trace.client.ids", "list", "",
           doc="kbroker's own: the client ids the request trace is limited to; empty traces all."),
        _k("kbroker.trace.topics", "list", "",
           doc="kbroker's own: the topics the request trace is limited to; empty traces all."),
        # Segment files kept open at once (kbroker/log/fd_budget.py); -1: half the open file limit.
        _k("kbroker.log.max.open.files", "int", "-1", minimum=-1,
           doc="kbroker's own: how many segment files may be open at once; idle ones are closed and reopened on "
               "use. -1 means half the open-file limit."),
        *SECURITY_KEYS,
        _k("zookeeper.connect", "string", None, applied=False,
           doc="The ZooKeeper connection string of pre-KRaft Kafka (ZooKeeper mode is gone in Kafka 4). Accepted "
               "with a warning so older files start, no effect: the controller is built in."),
        _k("zookeeper.connection.timeout.ms", "int", None, applied=False,
           doc="The ZooKeeper connection timeout of pre-KRaft Kafka. Accepted for compatibility, no effect."),
        _k("zookeeper.session.timeout.ms", "int", "18000", applied=False,
           doc="The ZooKeeper session timeout of pre-KRaft Kafka. Accepted for compatibility, no effect."),
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
               "How long Kafka keeps a deleted segment's files before removing them. kbroker does not read "
               "it: the files go at once, and readers holding them open keep reading."),
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
        _topic("preallocate", "log.preallocate", "Whether Kafka reserves a new segment's full size on disk when it "
               "creates it. Accepted for compatibility, no effect: kbroker grows segment files as it writes."),
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
