"""Replication end to end on three kbroker processes (combined mode): an RF=3 topic with
min.insync.replicas=2, an idempotent acks=all producer (confluent-kafka) across kill -9 of the
partition leader, a consumer reading every acknowledged record once and in order, the killed node
rejoining the ISR; and min.insync.replicas refusing acks=all writes with too few live replicas."""

from __future__ import annotations

import confluent_kafka
from cluster_fixture import FAST_SESSIONS, Cluster
from waiting import wait_until

from tests.cluster.quorum_helpers import metadata
from tests.cluster.replication_helpers import TOPIC, E, create_rf3_topic, partition_state


def full_isr_leader(cluster: Cluster, node: int, topic: str = TOPIC) -> int | None:
    p = partition_state(cluster, node, topic)
    if p is not None and p.leader_id >= 0 and sorted(p.isr_nodes) == cluster.node_ids:
        return p.leader_id
    return None


def test_leader_kill_loses_no_acknowledged_record_and_node_rejoins_isr(fast_cluster):
    cluster = fast_cluster
    nodes = cluster.node_ids
    create_rf3_topic(cluster, TOPIC)
    leader = wait_until(lambda: full_isr_leader(cluster, nodes[0]), 30, 0.05, "a leader with a full ISR",
                        cluster.logs)
    survivors = [n for n in nodes if n != leader]
    bootstrap = ",".join(cluster.bootstrap(n) for n in nodes)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                         "message.timeout.ms": 60000, "linger.ms": 5})
    acked: list[bytes] = []
    errors: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked.append(msg.value())

    sent = 0

    def produce_until(count: int) -> bool:
        nonlocal sent
        while sent < count:
            try:
                producer.produce(TOPIC, b"r%05d" % sent, partition=0, on_delivery=on_delivery)
            except BufferError:
                break
            sent += 1
        producer.poll(0.05)
        return len(acked) >= count - 20 and not errors

    # numbered records flow; the leader dies while they are in flight
    wait_until(lambda: produce_until(200), 60, 0, "the first acknowledged records")
    cluster.kill(leader)
    wait_until(lambda: produce_until(600), 120, 0, "records acknowledged after the leader's death",
               lambda: f"acked {len(acked)} errors {errors[:3]}\n{cluster.logs()}")
    assert producer.flush(60) == 0
    assert errors == []
    assert len(acked) == sent
    # the new leader and the smaller ISR are committed; survivors[0] applies them in its own time
    wait_until(lambda: (p := partition_state(cluster, survivors[0])) is not None and p.leader_id in survivors
               and leader not in p.isr_nodes, 30, 0.05, f"the new leader and ISR on node {survivors[0]}",
               lambda: partition_state(cluster, survivors[0]))

    # every acknowledged record exactly once and in order (one partition, idempotent producer)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": ",".join(cluster.bootstrap(n) for n in survivors),
                                         "group.id": "reader", "auto.offset.reset": "earliest",
                                         "enable.auto.commit": False})
    consumer.assign([confluent_kafka.TopicPartition(TOPIC, 0, 0)])
    got: list[bytes] = []

    def read_all() -> bool:
        m = consumer.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m.value())
        return len(got) >= len(acked)

    try:
        wait_until(read_all, 60, 0, "every acknowledged record", lambda: f"{len(got)} of {len(acked)}")
        # nothing beyond them: the log ends where they do (its high watermark, asked of the leader),
        # rather than a second of polling that finds nothing
        _low, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(TOPIC, 0), timeout=10)
    finally:
        consumer.close()
    assert got == [b"r%05d" % i for i in range(sent)]
    assert high == sent

    # the killed node restarts from its disk, catches up as a follower and rejoins the ISR
    cluster.start_node(leader)
    wait_until(lambda: full_isr_leader(cluster, survivors[0]), 60, 0.1, "the restarted node back in the ISR",
               cluster.logs)
    # it holds the whole log: as a follower it serves a consumer (Fetch v11+) up to its high watermark
    follower_reader = confluent_kafka.Consumer({"bootstrap.servers": cluster.bootstrap(leader), "group.id": "r2",
                                                "enable.auto.commit": False})
    try:
        low, high = follower_reader.get_watermark_offsets(confluent_kafka.TopicPartition(TOPIC, 0), timeout=10)
    finally:
        follower_reader.close()
    assert (low, high) == (0, sent)


def test_acks_all_refused_below_min_insync_replicas(tmp_path):
    """One controller, three brokers: with two brokers dead the controller shrinks the ISR to the
    leader and acks=all gets NOT_ENOUGH_REPLICAS; acks=1 still succeeds."""
    cluster = Cluster(tmp_path / "cluster", 1, FAST_SESSIONS, brokers=3, separate=True)
    try:
        cluster.start()
        brokers = cluster.layout.brokers
        create_rf3_topic(cluster, TOPIC)

        def leader_with_full_isr():
            p = partition_state(cluster, brokers[0])
            return p.leader_id if p is not None and p.leader_id >= 0 and sorted(p.isr_nodes) == brokers else None

        leader = wait_until(leader_with_full_isr, 30, 0.05, "a leader with a full ISR", cluster.logs)
        for b in brokers:
            if b != leader:
                cluster.kill(b)
        wait_until(lambda: (p := partition_state(cluster, leader)) is not None and list(p.isr_nodes) == [leader],
                   60, 0.1, "the ISR shrunk to the leader", cluster.logs)
        strict = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap(leader), "acks": "all",
                                           "message.timeout.ms": 5000, "retries": 0})
        outcome: list = []
        strict.produce(TOPIC, b"x", partition=0, on_delivery=lambda err, msg: outcome.append(err))
        strict.flush(30)
        assert len(outcome) == 1 and outcome[0] is not None
        assert outcome[0].code() == confluent_kafka.KafkaError.NOT_ENOUGH_REPLICAS
        relaxed = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap(leader), "acks": "1"})
        done: list = []
        relaxed.produce(TOPIC, b"y", partition=0, on_delivery=lambda err, msg: done.append(err))
        relaxed.flush(30)
        assert done == [None]
    finally:
        cluster.kill_all()


def find_coordinator(cluster: Cluster, node: int, key: str, key_type: int = 0) -> int | None:
    """The coordinator ``node`` names for the group (key_type 0) or transactional id (1) ``key``;
    None while it cannot tell."""
    try:
        w = cluster.wire(node)
    except OSError:
        return None
    try:
        resp = w.call(10, 4, key_type=key_type, coordinator_keys=[key])
    except OSError:
        return None
    finally:
        w.sock.close()
    c = resp.coordinators[0]
    return c.node_id if c.error_code == E.NONE else None


def test_consumer_group_survives_kill_of_its_coordinator(fast_cluster):
    """A group keeps consuming and committing across kill -9 of its coordinator's node: the new
    leader of its __consumer_offsets partition loads the group and its offsets."""
    cluster = fast_cluster
    nodes = cluster.node_ids
    create_rf3_topic(cluster, TOPIC)
    wait_until(lambda: full_isr_leader(cluster, nodes[0]), 30, 0.05, "a leader with a full ISR", cluster.logs)
    bootstrap = ",".join(cluster.bootstrap(n) for n in nodes)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(300):
        producer.produce(TOPIC, b"m%03d" % i, partition=0)
    assert producer.flush(60) == 0

    group = "survivors"

    def consumer():
        return confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                         "auto.offset.reset": "earliest", "enable.auto.commit": False})

    a = consumer()
    a.subscribe([TOPIC])
    seen: list[int] = []

    def consume_until(count: int):
        def step() -> bool:
            m = a.poll(0.2)
            if m is not None and m.error() is None:
                seen.append(m.offset())
                a.commit(message=m, asynchronous=False)
            return len(seen) >= count
        return step

    try:
        wait_until(consume_until(100), 60, 0, "the first 100 records consumed and committed")
        coordinator = wait_until(lambda: find_coordinator(cluster, nodes[0], group), 10, 0.05, "the coordinator")
        # the offsets topic follows its replication factor (3): every node holds the group's partition
        offsets_partitions = [p for t in metadata(cluster, nodes[0]).topics if t.name == "__consumer_offsets"
                              for p in t.partitions]
        assert len(offsets_partitions) == 50 and all(sorted(p.replica_nodes) == nodes for p in offsets_partitions)
        cluster.kill(coordinator)
        survivors = [n for n in nodes if n != coordinator]
        wait_until(consume_until(200), 120, 0, "consuming and committing after the coordinator's death",
                   cluster.logs)
        # survivors[0] names a survivor once it applied the new leader of the group's partition
        wait_until(lambda: find_coordinator(cluster, survivors[0], group) in survivors, 30, 0.05,
                   f"a surviving coordinator named by node {survivors[0]}",
                   lambda: find_coordinator(cluster, survivors[0], group))
    finally:
        a.close()
    assert seen[:200] == list(range(200))

    # the committed offsets survived the move: a new member resumes where the group left off
    b = consumer()
    try:
        committed = b.committed([confluent_kafka.TopicPartition(TOPIC, 0)], timeout=30)
        assert committed[0].offset == len(seen)
        b.subscribe([TOPIC])
        first = wait_until(lambda: (m := b.poll(0.2)) is not None and m.error() is None and m, 60, 0,
                           "a record for the new member")
        assert first.offset() == len(seen)
    finally:
        b.close()


def find_txn_coordinator(cluster: Cluster, node: int, transactional_id: str) -> int | None:
    return find_coordinator(cluster, node, transactional_id, key_type=1)


def test_transactions_with_remote_markers_across_a_coordinator_move(fast_cluster):
    """A transaction coordinator on another node than the data partition's leader writes its
    markers there (WriteTxnMarkers); a transaction open when the coordinator is killed is
    committed through the new coordinator; read_committed sees committed records only."""
    cluster = fast_cluster
    nodes = cluster.node_ids
    create_rf3_topic(cluster, TOPIC)
    data_leader = wait_until(lambda: full_isr_leader(cluster, nodes[0]), 30, 0.05, "a leader with a full ISR",
                             cluster.logs)
    wait_until(lambda: find_txn_coordinator(cluster, nodes[0], "probe"), 60, 0.1, "__transaction_state",
               cluster.logs)
    # a transactional id whose coordinator is not the data partition's leader
    tid, coordinator = next((t, c) for t in (f"tx-{i}" for i in range(200))
                            if (c := find_txn_coordinator(cluster, nodes[0], t)) not in (None, data_leader))
    bootstrap = ",".join(cluster.bootstrap(n) for n in nodes)
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                                         "transaction.timeout.ms": 60000})
    # a group whose coordinator is on a third node: the offsets commit with the transaction there
    wait_until(lambda: find_coordinator(cluster, nodes[0], "probe"), 60, 0.1, "__consumer_offsets", cluster.logs)
    group = next(g for g in (f"g-{i}" for i in range(200))
                 if find_coordinator(cluster, nodes[0], g) not in (None, coordinator))
    group_member = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                             "enable.auto.commit": False})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce(TOPIC, b"c1-%d" % i, partition=0)
    producer.send_offsets_to_transaction([confluent_kafka.TopicPartition(TOPIC, 0, 42)],
                                         group_member.consumer_group_metadata(), 30)
    producer.commit_transaction(30)
    try:
        wait_until(lambda: group_member.committed([confluent_kafka.TopicPartition(TOPIC, 0)], timeout=10)[0].offset
                   == 42, 30, 0.1, "the transaction's offset committed in the group", cluster.logs)
    finally:
        group_member.close()

    producer.begin_transaction()
    for i in range(10):
        producer.produce(TOPIC, b"a-%d" % i, partition=0)
    producer.abort_transaction(30)

    # a transaction open while its coordinator dies is committed through the next coordinator
    producer.begin_transaction()
    for i in range(10):
        producer.produce(TOPIC, b"c2-%d" % i, partition=0)
    assert producer.flush(30) == 0
    cluster.kill(coordinator)
    survivors = [n for n in nodes if n != coordinator]
    producer.commit_transaction(120)
    # survivors[0] names a survivor once it applied the new leader of the id's partition
    wait_until(lambda: find_txn_coordinator(cluster, survivors[0], tid) in survivors, 30, 0.05,
               f"a surviving coordinator named by node {survivors[0]}",
               lambda: find_txn_coordinator(cluster, survivors[0], tid))

    consumer = confluent_kafka.Consumer({"bootstrap.servers": ",".join(cluster.bootstrap(n) for n in survivors),
                                         "group.id": "committed-reader", "isolation.level": "read_committed",
                                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([confluent_kafka.TopicPartition(TOPIC, 0, 0)])
    got: list[bytes] = []

    def read() -> bool:
        m = consumer.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m.value())
        return len(got) >= 20

    try:
        wait_until(read, 60, 0, "the committed records", lambda: f"{got}\n{cluster.logs()}")
        got += [m.value() for m in consumer.consume(100, 1.0) if m.error() is None]
    finally:
        consumer.close()
    assert got == [b"c1-%d" % i for i in range(10)] + [b"c2-%d" % i for i in range(10)]
