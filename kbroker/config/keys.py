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
    _k("ssl.keystore.type", "string", "JKS",
       doc="The format of the key store of SSL and SASL_SSL listeners. kbroker reads PEM only and refuses JKS "
           "(Kafka's default) and PKCS12 at start-up: set PEM."),
    _k("ssl.keystore.location", "string", None,
       doc="The file holding the listener's private key and certificate chain (PEM), used when they are not given "
           "inline in ssl.keystore.key and ssl.keystore.certificate.chain."),
    _k("ssl.keystore.password", "password", None, sensitive=True,
       doc="The password of a JKS or PKCS12 key store file. kbroker reads PEM stores, with which Kafka refuses "
           "this key (use ssl.key.password for an encrypted key)."),
    _k("ssl.key.password", "password", None, sensitive=True,
       doc="The password of the encrypted private key in the key store; unset for an unencrypted key."),
    _k("ssl.keystore.key", "password", None, sensitive=True,
       doc="The listener's private key inline, in PEM, as an alternative to ssl.keystore.location."),
    _k("ssl.keystore.certificate.chain", "password", None, sensitive=True,
       doc="The listener's certificate chain inline, in PEM, given with ssl.keystore.key."),
    _k("ssl.truststore.type", "string", "JKS",
       doc="The format of the trust store holding the certificates peers are checked against. kbroker reads PEM "
           "only and refuses JKS (Kafka's default) and PKCS12: set PEM."),
    _k("ssl.truststore.location", "string", None,
       doc="The file of trusted CA certificates (PEM) used to check the certificates of clients and of other "
           "brokers."),
    _k("ssl.truststore.password", "password", None, sensitive=True,
       doc="The password of a JKS or PKCS12 trust store file. kbroker reads PEM stores, with which Kafka refuses "
           "this key."),
    _k("ssl.truststore.certificates", "password", None, sensitive=True,
       doc="Trusted CA certificates inline, in PEM, as an alternative to ssl.truststore.location."),
    _k("ssl.client.auth", "string", "none", choices=("required", "requested", "none"),
       doc="Whether SSL listeners ask clients for a certificate: required (the handshake fails without one), "
           "requested (checked if sent), or none."),
    _k("ssl.principal.mapping.rules", "string", "DEFAULT",
       doc="Rules that turn a client certificate's subject name into the principal ACLs are checked against, "
           "first match wins; DEFAULT keeps the whole subject."),
    _k("ssl.enabled.protocols", "list", "TLSv1.2,TLSv1.3",
       doc="The TLS versions a listener accepts (and the inter-broker client offers): TLSv1.2 and/or TLSv1.3."),
    _k("ssl.protocol", "string", "TLSv1.3",
       doc="The protocol Kafka asks Java's SSLContext for. Accepted but not read: kbroker negotiates the versions "
           "listed in ssl.enabled.protocols."),
    _k("ssl.cipher.suites", "list", "",
       doc="The cipher suites TLS 1.2 may use, by IANA or OpenSSL names; empty means the TLS library's defaults. "
           "Listing only TLS 1.3 suites limits a listener to TLS 1.3."),
    _k("ssl.endpoint.identification.algorithm", "string", "https",
       doc="https makes a TLS client (here, a broker connecting to another node) check that the server's "
           "certificate matches its host name; empty turns the check off."),
    _k("ssl.keymanager.algorithm", "string", "SunX509", applied=False,
       doc="The Java key manager algorithm of Kafka's SSL engine. Accepted for compatibility, no effect: kbroker "
           "uses Python's ssl module."),
    _k("ssl.trustmanager.algorithm", "string", "PKIX", applied=False,
       doc="The Java trust manager algorithm of Kafka's SSL engine. Accepted for compatibility, no effect: "
           "kbroker uses Python's ssl module."),
    _k("ssl.secure.random.implementation", "string", None, applied=False,
       doc="The Java SecureRandom implementation of Kafka's SSL engine. Accepted for compatibility, no effect: "
           "kbroker uses Python's ssl module."),
    _k("sasl.enabled.mechanisms", "list", "GSSAPI",
       doc="The SASL mechanisms SASL listeners offer. kbroker has PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and "
           "OAUTHBEARER; GSSAPI (Kafka's default) is refused at start-up, so set this on a SASL listener."),
    _k("sasl.jaas.config", "password", None, sensitive=True,
       doc="The JAAS login configuration of a SASL mechanism, usually given per listener and mechanism "
           "(listener.name.<listener>.<mechanism>.sasl.jaas.config): the PLAIN users, and the credentials the "
           "broker logs in to other nodes with."),
    # the inter-node clients' security (kbroker/security/client.py, issue 17)
    _k("sasl.mechanism.inter.broker.protocol", "string", "GSSAPI",
       doc="The SASL mechanism brokers use to log in to each other on a SASL inter-broker listener."),
    _k("sasl.mechanism.controller.protocol", "string", "GSSAPI",
       doc="The SASL mechanism nodes use to log in to the controllers on a SASL controller listener."),
    _k("security.inter.broker.protocol", "string", "PLAINTEXT",
       choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
       doc="The security protocol of the inter-broker listener, naming it by protocol instead of "
           "inter.broker.listener.name; only one of the two may be set."),
    _k("sasl.server.max.receive.size", "int", "524288",
       doc="The largest SASL authentication message, in bytes, the broker accepts before a client has "
           "authenticated."),
    _k("connections.max.reauth.ms", "long", "0",
       doc="The longest a SASL session lasts before the client must re-authenticate (KIP-368), in ms; 0 means "
           "never. Can be set per listener and mechanism."),
    _k("connection.failed.authentication.delay.ms", "int", "100", minimum=0,
       doc="How long, in ms, the answer to a failed authentication is held back before the connection is closed, "
           "to slow down password guessing."),
    _k("authorizer.class.name", "string", "",
       doc="The authorizer checking requests against ACLs; empty means none (everything is allowed). kbroker "
           "accepts Kafka's StandardAuthorizer, org.apache.kafka.metadata.authorizer.StandardAuthorizer, and "
           "refuses other classes."),
    _k("super.users", "string", None,
       doc="Principals allowed everything whatever the ACLs, separated by semicolons (User:admin;User:ops)."),
    _k("allow.everyone.if.no.acl.found", "boolean", "false",
       doc="Whether a request on a resource that no ACL matches is allowed (true) or denied (false, the default)."),
    # OAUTHBEARER (Kafka's SaslConfigs): the validator a listener's
    # listener.name.<l>.oauthbearer.sasl.server.callback.handler.class names, and its settings.
    _k("sasl.server.callback.handler.class", "class", None,
       doc="The class that checks SASL credentials, set per listener and mechanism. For OAUTHBEARER kbroker has "
           "Kafka's unsecured validator (the default) and the JWKS-based OAuthBearerValidatorCallbackHandler; "
           "other classes are refused."),
    _k("sasl.oauthbearer.jwks.endpoint.url", "string", None,
       doc="The URL of the identity provider's JSON Web Key Set, whose keys check the signatures of OAUTHBEARER "
           "tokens. It must also be listed in kbroker.sasl.oauthbearer.allowed.urls."),
    _k("sasl.oauthbearer.jwks.endpoint.refresh.ms", "long", "3600000",
       doc="How often, in ms, the JSON Web Key Set is fetched again."),
    _k("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", "long", "100",
       doc="The least time, in ms, between two attempts to fetch the JSON Web Key Set after a failure."),
    _k("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", "long", "10000",
       doc="The cap on Kafka's growing back-off between attempts to fetch the JSON Web Key Set. Accepted but not "
           "read: kbroker retries after sasl.oauthbearer.jwks.endpoint.retry.backoff.ms."),
    _k("sasl.oauthbearer.expected.audience", "list", "",
       doc="The audiences an OAUTHBEARER token's aud claim must include one of; required by the JWKS validator "
           "unless sasl.oauthbearer.allow.unverified.audience is true."),
    _k("sasl.oauthbearer.expected.issuer", "string", None,
       doc="The value an OAUTHBEARER token's iss claim must have; required by the JWKS validator unless "
           "sasl.oauthbearer.allow.unverified.issuer is true."),
    _k("sasl.oauthbearer.allow.unverified.audience", "boolean", "false",
       doc="Lets the JWKS validator accept tokens without checking their audience when no expected audience is "
           "set."),
    _k("sasl.oauthbearer.allow.unverified.issuer", "boolean", "false",
       doc="Lets the JWKS validator accept tokens without checking their issuer when no expected issuer is set."),
    _k("sasl.oauthbearer.sub.claim.name", "string", "sub",
       doc="The token claim that names the principal of an OAUTHBEARER login."),
    _k("sasl.oauthbearer.scope.claim.name", "string", "scope",
       doc="The token claim that holds the token's scopes."),
    _k("sasl.oauthbearer.clock.skew.seconds", "int", "30",
       doc="How many seconds of difference between the broker's clock and the identity provider's are tolerated "
           "when checking a token's times."),
    # Kafka's JVM property org.apache.kafka.sasl.oauthbearer.allowed.urls: the JWKS URLs a broker may
    # read (none by default, as Kafka 4.x)
    _k("kbroker.sasl.oauthbearer.allowed.urls", "list", "",
       doc="kbroker's own, in place of Kafka's JVM property org.apache.kafka.sasl.oauthbearer.allowed.urls: the "
           "JWKS URLs the broker may read; none by default."),
    # Delegation tokens (Kafka's DelegationTokenManagerConfigs): enabled by the secret key.
    _k("delegation.token.secret.key", "password", None, sensitive=True,
       doc="The secret every node of the cluster shares to sign and check delegation tokens; without it "
           "delegation tokens are disabled (DELEGATION_TOKEN_AUTH_DISABLED)."),
    _k("delegation.token.max.lifetime.ms", "long", "604800000", minimum=1,
       doc="The longest, in ms, a delegation token can live, however often it is renewed."),
    _k("delegation.token.expiry.time.ms", "long", "86400000", minimum=1,
       doc="How long, in ms, a delegation token stays valid after it is created or renewed."),
    _k("delegation.token.expiry.check.interval.ms", "long", "3600000", minimum=1,
       doc="How often, in ms, expired delegation tokens are removed."),
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
        _k("controller.quorum.voters", "list", "", check=lambda k, v, r: parse_quorum_voters(v),
           doc="The static set of KRaft voters as id@host:port entries. Either this or "
               "controller.quorum.bootstrap.servers must be given with process.roles."),
        _k("controller.quorum.bootstrap.servers", "list", "", check=lambda k, v, r: parse_bootstrap_servers(v),
           doc="host:port addresses of controllers used to discover the KRaft quorum (a dynamic quorum, KIP-853) "
               "when controller.quorum.voters is empty."),
        # Kafka's QuorumConfig (raft timeouts) and KRaftConfigs (broker lease), with Kafka's defaults.
        _k("controller.quorum.election.timeout.ms", "int", "1000", minimum=0,
           doc="How long, in ms, a voter waits without hearing from a leader before it starts an election."),
        _k("controller.quorum.fetch.timeout.ms", "int", "2000", minimum=0,
           doc="How long, in ms, a follower of the metadata quorum may go without a successful fetch from the "
               "leader before it considers the leader gone and becomes a candidate."),
        _k("controller.quorum.election.backoff.max.ms", "int", "1000", minimum=0,
           doc="The upper bound, in ms, of the randomised back-off before a candidate starts a new election, so "
               "voters do not keep splitting the vote."),
        _k("controller.quorum.append.linger.ms", "int", "25", minimum=0,
           doc="How long, in ms, the quorum leader waits to gather more metadata records into one batch before "
               "writing it to the log."),
        _k("controller.quorum.request.timeout.ms", "int", "2000", minimum=0,
           doc="How long, in ms, a quorum request such as Vote or Fetch waits for an answer before it is "
               "retried or given up."),
        _k("controller.quorum.retry.backoff.ms", "int", "20", minimum=0,
           doc="The pause, in ms, before a failed quorum request is sent again."),
        _k("controller.quorum.fetch.snapshot.max.bytes", "int", "1048576", minimum=1,
           doc="The most snapshot bytes a node asks for in one FetchSnapshot request while catching up on the "
               "metadata log."),
        _k("broker.heartbeat.interval.ms", "int", "2000",
           doc="How often, in ms, a broker sends a heartbeat to the active controller to keep its lease; should "
               "be at most half of broker.session.timeout.ms."),
        _k("initial.broker.registration.timeout.ms", "int", "60000",
           doc="How long, in ms, a starting broker tries to register with the controller before it gives up and "
               "stops."),
        _k("broker.session.timeout.ms", "int", "9000",
           doc="How long, in ms, the controller waits for a broker's heartbeat before it fences the broker and "
               "moves leadership away from it. Read by controllers."),
        _k("log.dir.failure.timeout.ms", "long", "30000", minimum=1,
           doc="How long, in ms, a broker keeps trying to report a failed log directory to the controller; if it "
               "cannot within this time, the broker shuts down."),
        _k("metadata.log.max.snapshot.interval.ms", "long", "3600000", minimum=0,
           doc="The longest time, in ms, between two snapshots of the metadata log while new records have been "
               "committed; 0 turns time-based snapshots off."),
        _k("metadata.log.max.record.bytes.between.snapshots", "long", "20971520", minimum=1,
           doc="How many bytes of new metadata records may accumulate before a new snapshot of the metadata log "
               "is taken."),
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
        _k("socket.send.buffer.bytes", "int", "102400",
           doc="The SO_SNDBUF size Kafka asks for on its sockets (-1: the OS default). Accepted but not read: "
               "kbroker leaves socket buffers at the operating system's defaults."),
        _k("socket.receive.buffer.bytes", "int", "102400",
           doc="The SO_RCVBUF size Kafka asks for on its sockets (-1: the OS default). Accepted but not read: "
               "kbroker leaves socket buffers at the operating system's defaults."),
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
        _k("group.initial.rebalance.delay.ms", "int", "3000", minimum=0,
           doc="How long, in ms, the coordinator waits for more members to join an empty classic group before the "
               "first rebalance, to avoid a rebalance per joining member."),
        _k("group.min.session.timeout.ms", "int", "6000",
           doc="The smallest session timeout a classic group member may ask for; a JoinGroup below it fails with "
               "INVALID_SESSION_TIMEOUT."),
        _k("group.max.session.timeout.ms", "int", "1800000",
           doc="The largest session timeout a classic group member may ask for; a JoinGroup above it fails with "
               "INVALID_SESSION_TIMEOUT."),
        _k("group.max.size", "int", str(INT_MAX), minimum=1,
           doc="The most members a classic group may have; further members are refused with "
               "GROUP_MAX_SIZE_REACHED."),
        _k("group.coordinator.rebalance.protocols", "list", "classic,consumer,streams",
           list_choices=("classic", "consumer", "share", "streams"), nonempty=True,
           doc="The group protocols served besides classic: a consumer or streams heartbeat is refused with "
               "UNSUPPORTED_VERSION unless its protocol is listed (and its feature version enabled). Deprecated "
               "in Kafka 4.3 in favour of the feature versions."),
        _k("group.consumer.session.timeout.ms", "int", "45000", minimum=1,
           doc="How long, in ms, a consumer-protocol group member may go without a heartbeat before it is removed "
               "from the group. A group's consumer.session.timeout.ms override takes its place for that "
               "group."),
        _k("group.consumer.min.session.timeout.ms", "int", "45000", minimum=1,
           doc="The lowest value a group's consumer.session.timeout.ms override may take. kbroker checks a "
               "group's override against it."),
        _k("group.consumer.max.session.timeout.ms", "int", "60000", minimum=1,
           doc="The highest value a group's consumer.session.timeout.ms override may take. kbroker checks a "
               "group's override against it."),
        _k("group.consumer.heartbeat.interval.ms", "int", "5000", minimum=1,
           doc="How often, in ms, consumer-protocol members are told to heartbeat. A group's "
               "consumer.heartbeat.interval.ms override takes its place for that group."),
        _k("group.consumer.min.heartbeat.interval.ms", "int", "5000", minimum=1,
           doc="The lowest value a group's consumer.heartbeat.interval.ms override may take. kbroker checks a "
               "group's override against it."),
        _k("group.consumer.max.heartbeat.interval.ms", "int", "15000", minimum=1,
           doc="The highest value a group's consumer.heartbeat.interval.ms override may take. kbroker checks a "
               "group's override against it."),
        _k("group.consumer.assignment.interval.ms", "int", "1000", minimum=0, applied=False,
           doc="The least time, in ms, between two target assignment updates of a consumer group. Accepted for "
               "compatibility, no effect: kbroker updates the assignment whenever the group changes."),
        _k("group.consumer.min.assignment.interval.ms", "int", "0", minimum=0, applied=False,
           doc="The lowest value a group's consumer.assignment.interval.ms override may take. Accepted, no effect "
               "(see group.consumer.assignment.interval.ms)."),
        _k("group.consumer.max.assignment.interval.ms", "int", "15000", minimum=0, applied=False,
           doc="The highest value a group's consumer.assignment.interval.ms override may take. Accepted, no "
               "effect (see group.consumer.assignment.interval.ms)."),
        _k("group.consumer.assignors", "list", "uniform,range", nonempty=True,
           doc="The server-side assignors of consumer groups, by name; the first is used unless a member asks for "
               "another. kbroker has uniform and range; other names are skipped."),
        # Kafka's ConsumerGroupMigrationPolicy: which way a group may move between the classic
        # and the consumer protocol while it has members.
        _k("group.consumer.migration.policy", "string", "bidirectional",
           check=_one_of_ignoring_case("disabled", "upgrade", "downgrade", "bidirectional"),
           doc="Which way a non-empty group may switch between the classic and the consumer protocol: upgrade, "
               "downgrade, bidirectional or disabled. Empty groups may always switch."),
        # an internal key of Kafka's (defineInternal): DescribeConfigs lists it only once set
        _k("group.consumer.regex.refresh.interval.ms", "int", "600000", minimum=10000,
           doc="How often, in ms, the coordinator re-evaluates the topic regexes consumer-protocol groups "
               "subscribe with, to pick up new topics. An internal key of Kafka's: listed only when set."),
        # Streams groups (KIP-1071), Kafka 4.4's defaults.
        _k("group.streams.session.timeout.ms", "int", "45000", minimum=1,
           doc="How long, in ms, a streams group member may go without a heartbeat before it is removed. A "
               "group's streams.session.timeout.ms override takes its place for that group."),
        _k("group.streams.min.session.timeout.ms", "int", "45000", minimum=1,
           doc="The lowest value a group's streams.session.timeout.ms override may take. kbroker checks a group's "
               "override against it."),
        _k("group.streams.max.session.timeout.ms", "int", "60000", minimum=1,
           doc="The highest value a group's streams.session.timeout.ms override may take. kbroker checks a "
               "group's override against it."),
        _k("group.streams.heartbeat.interval.ms", "int", "5000", minimum=1,
           doc="How often, in ms, streams group members are told to heartbeat. A group's "
               "streams.heartbeat.interval.ms override takes its place for that group."),
        _k("group.streams.min.heartbeat.interval.ms", "int", "5000", minimum=1,
           doc="The lowest value a group's streams.heartbeat.interval.ms override may take. kbroker checks a "
               "group's override against it."),
        _k("group.streams.max.heartbeat.interval.ms", "int", "15000", minimum=1,
           doc="The highest value a group's streams.heartbeat.interval.ms override may take. kbroker checks a "
               "group's override against it."),
        _k("group.streams.max.size", "int", str(INT_MAX), minimum=1,
           doc="The most members a streams group may have."),
        _k("group.streams.num.standby.replicas", "int", "0", minimum=0,
           doc="How many standby replicas of each stateful task a streams group gets (at most "
               "group.streams.max.standby.replicas). A group's "
               "streams.num.standby.replicas override takes its place for that group."),
        _k("group.streams.max.standby.replicas", "int", "2", minimum=0,
           doc="The highest number of standby replicas per task: it bounds a group's streams.num.standby.replicas "
               "override and caps group.streams.num.standby.replicas."),
        _k("group.streams.initial.rebalance.delay.ms", "int", "3000", minimum=0,
           doc="How long, in ms, the first assignment of an empty streams group is delayed so that more members "
               "can join first. A group's streams.initial.rebalance.delay.ms override takes its place "
               "for that group."),
        _k("group.streams.task.offset.interval.ms", "int", "60000", minimum=1,
           doc="How often, in ms, streams clients are told to report their tasks' changelog offsets to the "
               "coordinator. A group's streams.task.offset.interval.ms override takes its place for that group."),
        _k("group.streams.acceptable.recovery.lag", "long", "10000", minimum=0,
           doc="How far behind (in offsets) a client's state may be and still count as caught up for an active "
               "task; sent to the clients. A group's streams.acceptable.recovery.lag override takes its place for "
               "that group."),
        _k("group.streams.num.warmup.replicas", "int", "2", minimum=0, applied=False,
           doc="How many warm-up replicas Kafka's streams assignor may place while it moves tasks. Accepted for "
               "compatibility, no effect: kbroker's assignor places none."),
        _k("group.streams.max.warmup.replicas", "int", "20", minimum=0, applied=False,
           doc="The highest value a group's warm-up replica count may take. Accepted, no effect (see "
               "group.streams.num.warmup.replicas)."),
        _k("group.streams.min.task.offset.interval.ms", "int", "15000", minimum=1,
           doc="The lowest value the streams task offset interval may take: start-up fails when "
               "group.streams.task.offset.interval.ms is below it, and a group's streams.task.offset.interval.ms "
               "override is checked against it."),
        _k("group.streams.assignment.interval.ms", "int", "1000", minimum=0, applied=False,
           doc="The least time, in ms, between two assignment updates of a streams group. Accepted for "
               "compatibility, no effect: kbroker updates the assignment whenever the group changes."),
        _k("group.streams.min.assignment.interval.ms", "int", "0", minimum=0, applied=False,
           doc="The lowest value a group's streams.assignment.interval.ms override may take. Accepted, no effect."),
        _k("group.streams.max.assignment.interval.ms", "int", "15000", minimum=0, applied=False,
           doc="The highest value a group's streams.assignment.interval.ms override may take. Accepted, no "
               "effect."),
        _k("group.streams.assignors", "list", "sticky", nonempty=True,
           doc="The task assignors of streams groups, by name; the first is the default and a group may pick "
               "another with streams.assignor.name. kbroker has sticky."),
        _k("group.streams.rack.aware.assignment.tags", "list", "", applied=False,
           doc="The client tags Kafka's streams assignor spreads standby replicas over. Accepted for "
               "compatibility, no effect on placement: kbroker's assignor does not use them (a change makes "
               "streams groups compute a new assignment at their next heartbeat, as Kafka's do)."),
        # KIP-932 share groups (Kafka's GroupCoordinatorConfig/ShareGroupConfig defaults and ranges).
        _k("group.share.max.size", "int", "200", minimum=1, maximum=1000,
           doc="The most members a share group may have (1 to 1000)."),
        _k("group.share.session.timeout.ms", "int", "45000", minimum=1,
           doc="How long, in ms, a share group member may go without a heartbeat before it is removed; a group "
               "may override it with share.session.timeout.ms."),
        _k("group.share.min.session.timeout.ms", "int", "45000", minimum=1,
           doc="The lowest value a group's share.session.timeout.ms override may take."),
        _k("group.share.max.session.timeout.ms", "int", "60000", minimum=1,
           doc="The highest value a group's share.session.timeout.ms override may take."),
        _k("group.share.heartbeat.interval.ms", "int", "5000", minimum=1,
           doc="How often, in ms, share group members are told to heartbeat; a group may override it with "
               "share.heartbeat.interval.ms."),
        _k("group.share.min.heartbeat.interval.ms", "int", "5000", minimum=1,
           doc="The lowest value a group's share.heartbeat.interval.ms override may take."),
        _k("group.share.max.heartbeat.interval.ms", "int", "15000", minimum=1,
           doc="The highest value a group's share.heartbeat.interval.ms override may take."),
        _k("group.share.assignors", "list", "simple", list_choices=("simple",), nonempty=True,
           doc="The assignor of share groups; Kafka allows one entry and has only simple, which kbroker's share "
               "groups always use."),
        _k("group.share.assignment.interval.ms", "int", "1000", minimum=0, applied=False,
           doc="The least time, in ms, between two assignment updates of a share group. Accepted for "
               "compatibility, no effect: kbroker updates the assignment whenever the group changes."),
        _k("group.share.min.assignment.interval.ms", "int", "0", minimum=0, applied=False,
           doc="The lowest value a group's share.assignment.interval.ms override may take. Accepted, no effect."),
        _k("group.share.max.assignment.interval.ms", "int", "15000", minimum=0, applied=False,
           doc="The highest value a group's share.assignment.interval.ms override may take. Accepted, no effect."),
        _k("group.share.record.lock.duration.ms", "int", "30000", minimum=1000, maximum=3600000,
           doc="How long, in ms, a record handed to a share consumer stays locked to it before it is released for "
               "redelivery; a group may override it with share.record.lock.duration.ms."),
        _k("group.share.min.record.lock.duration.ms", "int", "15000", minimum=1000, maximum=30000,
           doc="The lowest value a group's share.record.lock.duration.ms override may take."),
        _k("group.share.max.record.lock.duration.ms", "int", "60000", minimum=30000, maximum=3600000,
           doc="The highest value a group's share.record.lock.duration.ms override may take."),
        _k("group.share.delivery.count.limit", "int", "5", minimum=2, maximum=10,
           doc="How many times a record may be delivered to share consumers before it is archived as "
               "undeliverable (or sent to the group's dead-letter queue); a group may override it with "
               "share.delivery.count.limit."),
        _k("group.share.min.delivery.count.limit", "int", "2", minimum=2, maximum=5,
           doc="The lowest value a group's share.delivery.count.limit override may take."),
        _k("group.share.max.delivery.count.limit", "int", "10", minimum=5, maximum=25,
           doc="The highest value a group's share.delivery.count.limit override may take."),
        _k("group.share.partition.max.record.locks", "int", "2000", minimum=100, maximum=10000,
           doc="The most records of one partition that may be locked to share consumers at once; a group may "
               "override it with share.partition.max.record.locks."),
        _k("group.share.min.partition.max.record.locks", "int", "100", minimum=100, maximum=2000,
           doc="The lowest value a group's share.partition.max.record.locks override may take."),
        _k("group.share.max.partition.max.record.locks", "int", "4000", minimum=2000, maximum=10000,
           doc="The highest value a group's share.partition.max.record.locks override may take."),
        _k("group.share.max.share.sessions", "int", "2000", minimum=1,
           doc="The most share sessions (ShareFetch sessions of share consumers) a broker keeps at once."),
        _k("share.coordinator.state.topic.num.partitions", "int", "50", minimum=1,
           doc="The number of partitions of __share_group_state, the internal topic of share group state, fixed "
               "when it is created."),
        _k("share.coordinator.state.topic.replication.factor", "short", "3", minimum=1,
           doc="The replication factor __share_group_state is created with (1 on kbroker's single node)."),
        _k("share.coordinator.state.topic.min.isr", "short", "2", minimum=1,
           doc="The min.insync.replicas of __share_group_state (1 on kbroker's single node)."),
        _k("share.coordinator.state.topic.segment.bytes", "int", "104857600", minimum=1,
           doc="The segment.bytes of __share_group_state."),
        _k("share.coordinator.state.topic.prune.interval.ms", "int", "300000", minimum=1,
           doc="How often, in ms, the share coordinator moves the log start of __share_group_state past records "
               "no longer needed."),
        # KIP-1191 dead-letter queues of share groups.
        _k("errors.deadletterqueue.auto.create.topics.enable", "boolean", "false",
           doc="Whether a share group's dead-letter queue topic (KIP-1191) is created when it does not exist yet."),
        _k("errors.deadletterqueue.topic.name.prefix", "string", "dlq.",
           doc="The prefix a share group's dead-letter queue topic name must have; empty allows any name."),
        _k("offsets.topic.num.partitions", "int", "50", minimum=1,
           doc="The number of partitions of __consumer_offsets, fixed when it is created; groups are spread over "
               "them by group id."),
        _k("offsets.topic.replication.factor", "short", "3", minimum=1,
           doc="The replication factor __consumer_offsets is created with; creating it fails while fewer brokers "
               "are registered (1 on kbroker's single node)."),
        _k("offsets.topic.segment.bytes", "int", "104857600", minimum=1,
           doc="The segment.bytes of __consumer_offsets, kept small so compaction and loading stay quick."),
        _k("offsets.retention.minutes", "int", "10080", minimum=1,
           doc="How long, in minutes, committed offsets are kept after the group has become empty (or, for a "
               "standalone consumer, after the last commit) before they expire."),
        _k("offsets.retention.check.interval.ms", "long", "600000", minimum=1,
           doc="How often, in ms, the coordinator looks for expired offsets."),
        _k("offsets.commit.timeout.ms", "int", "5000", minimum=1,
           doc="How long, in ms, a write of the group coordinator (an offset commit) may wait for the replicas of "
               "__consumer_offsets before it fails."),
        _k("offset.metadata.max.bytes", "int", "4096",
           doc="The largest metadata string a committed offset may carry; a larger one fails with "
               "OFFSET_METADATA_TOO_LARGE."),
        _k("transaction.state.log.num.partitions", "int", "50", minimum=1,
           doc="The number of partitions of __transaction_state, fixed when it is created."),
        _k("transaction.state.log.replication.factor", "short", "3", minimum=1,
           doc="The replication factor __transaction_state is created with; creating it fails while fewer brokers "
               "are registered (1 on kbroker's single node)."),
        _k("transaction.state.log.min.isr", "int", "2", minimum=1,
           doc="The min.insync.replicas of __transaction_state (1 on kbroker's single node)."),
        _k("transaction.state.log.segment.bytes", "int", "104857600", minimum=1,
           doc="The segment.bytes of __transaction_state."),
        _k("transaction.max.timeout.ms", "int", "900000", minimum=1,
           doc="The longest transaction timeout a producer may ask for; InitProducerId with a longer one fails "
               "with INVALID_TRANSACTION_TIMEOUT."),
        _k("transactional.id.expiration.ms", "int", "604800000", minimum=1,
           doc="How long, in ms, a transactional id with no ongoing transaction may go without use before the "
               "coordinator forgets it."),
        _k("transaction.abort.timed.out.transaction.cleanup.interval.ms", "int", "10000", minimum=1,
           doc="How often, in ms, the coordinator aborts transactions that have passed their timeout."),
        _k("transaction.remove.expired.transaction.cleanup.interval.ms", "int", "3600000", minimum=1,
           doc="How often, in ms, the coordinator removes transactional ids idle for longer than "
               "transactional.id.expiration.ms."),
        _k("producer.id.expiration.ms", "int", "86400000", minimum=1,
           doc="How long, in ms, a partition keeps a producer id's state (for idempotence) after that producer's "
               "last write to it."),
        _k("producer.id.expiration.check.interval.ms", "int", "600000", minimum=1,
           doc="How often, in ms, expired producer ids are removed from the partitions."),
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
           doc="The network timeout, in ms, of a follower's connection to the leader it replicates from."),
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
        *_SECURITY_KEYS,
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


