"""Broker keys of the coordinators (Kafka's GroupCoordinatorConfig, ShareGroupConfig,
ShareCoordinatorConfig, TransactionLogConfig, TransactionStateManagerConfig and the producer-id
expiration of ProducerStateManagerConfig): consumer, streams and share groups, the offsets and
transaction state topics, share-group state and dead-letter queues. Part of ``BROKER_KEYS``
(:mod:`kbroker.config.keys`), declared as the other keys are (:class:`~kbroker.config.values.ConfigKey`).
"""

from __future__ import annotations

from kbroker.config.values import INT_MAX, ConfigKey, _k, _one_of_ignoring_case

COORDINATOR_KEYS: list[ConfigKey] = [
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
]
