"""Broker-to-broker requests on a secured inter-broker listener. A transaction whose
partitions are led by all three nodes of a cluster whose INTERNAL (inter-broker) listener is
SASL_PLAINTEXT (PLAIN). The partition leaders other than the transaction coordinator verify the
transaction with the coordinator (AddPartitionsToTxn, kbroker/replication/txn_verification.py) and
the coordinator writes its markers to them (WriteTxnMarkers, kbroker/coordinator/txn_marker_channel.py),
both over the INTERNAL listener with its SASL login, as Kafka's AddPartitionsToTxnManager and
TransactionMarkerChannelManager use the inter-broker listener's security config. The commit
completes and a read_committed consumer sees every record. Delayed records whose target moved to
another leader reach it over the same listener, and so do a share partition's state requests to
its share coordinator on another broker."""

from __future__ import annotations

from pathlib import Path

import confluent_kafka
import pytest
from cluster_fixture import FAST_SESSIONS, Cluster
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from share_wire import ShareClient, heartbeat
from waiting import wait_until
from wire import produce

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition_reassignments import AlterPartitionReassignmentsRequest as A
from kbroker_protocol.messages.create_topics import CreateTopicsRequest
from tests.cluster.delayed_helpers import _high, _leader
from tests.cluster.internode_helpers import make_node_certs, secure
from tests.cluster.quorum_helpers import create_topic
from tests.cluster.share_helpers import TOPIC as SHARE_TOPIC
from tests.cluster.share_helpers import _consume, _coordinator, _full_isr_leader, _kafka_uuid

TOPIC = "spread"


@pytest.fixture
def certs(tmp_path: Path) -> tuple[Path, Path]:
    return make_node_certs(tmp_path / "certs")


def _create_spread_topic(cluster: Cluster) -> None:
    """Three partitions of one replica, partition i led by node i + 1."""
    C = CreateTopicsRequest
    topic = C.CreatableTopic(name=TOPIC, num_partitions=-1, replication_factor=-1, configs=[], assignments=[
        C.CreatableTopic.CreatableReplicaAssignment(partition_index=i, broker_ids=[i + 1]) for i in range(3)])

    def created() -> bool:
        w = cluster.wire(1)
        try:
            resp = w.call(C(topics=[topic], timeout_ms=10000), 7)
        finally:
            w.sock.close()
        return resp.topics[0].error_code in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS)

    wait_until(created, 60, 0.1, f"creation of {TOPIC}", cluster.logs)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})

    def every_leader_known() -> bool:
        md = admin.list_topics(TOPIC, timeout=10).topics[TOPIC]
        return md.error is None and sorted((p.id, p.leader) for p in md.partitions.values()) == \
            [(0, 1), (1, 2), (2, 3)]

    wait_until(every_leader_known, 60, 0.1, f"{TOPIC}'s leaders 1, 2 and 3", cluster.logs)


def test_a_transaction_across_brokers_commits_over_a_sasl_inter_broker_listener(tmp_path, certs):
    c = Cluster(tmp_path / "cluster", 3, {**FAST_SESSIONS, "transaction.state.log.replication.factor": "3",
                                          "transaction.state.log.min.isr": "2"})
    secure(c, certs, "SASL_PLAINTEXT")
    try:
        c.start()
        _create_spread_topic(c)
        producer = confluent_kafka.Producer({"bootstrap.servers": c.bootstrap(), "transactional.id": "spread-tx",
                                             "acks": "all"})
        producer.init_transactions(60)
        producer.begin_transaction()
        sent = {(p, f"r{p}-{i}".encode()) for p in range(3) for i in range(5)}
        for p, value in sorted(sent):
            producer.produce(TOPIC, value=value, partition=p)
        assert producer.flush(60) == 0
        producer.commit_transaction(60)

        consumer = confluent_kafka.Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "spread-g",
                                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                             "isolation.level": "read_committed"})
        consumer.subscribe([TOPIC])
        got: set[tuple[int, bytes]] = set()
        try:
            def read() -> bool:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    got.add((msg.partition(), msg.value()))
                return got == sent
            wait_until(read, 60, 0, "read_committed seeing the committed records of every partition",
                       lambda: f"{sorted(got)}\n{c.logs()}")
        finally:
            consumer.close()
        logs = "\n".join(c.layout.log_path(n).read_text(errors="replace") for n in c.node_ids)
        assert "failed authentication" not in logs
    finally:
        c.kill_all()


def test_delayed_records_reach_a_target_led_elsewhere_over_a_sasl_inter_broker_listener(tmp_path, certs):
    """Delayed delivery (docs/delayed-delivery.md) over the secured INTERNAL listener: records held
    by node 1's scheduler whose target partition then moves to node 2 are produced to node 2 by
    node 1 (kbroker/delayed_scheduler.py) with the inter-broker SASL login."""
    c = Cluster(tmp_path / "cluster", 3, FAST_SESSIONS)
    secure(c, certs, "SASL_PLAINTEXT")
    try:
        c.start()
        admin = AdminClient({"bootstrap.servers": c.bootstrap()})
        admin.create_topics([NewTopic("moving", num_partitions=1, replica_assignment=[[1, 2, 3]])])["moving"] \
            .result(60)
        wait_until(lambda: _leader(admin, "moving") == 1, 60, 0.1, "node 1 leading moving-0", c.logs)
        producer = Producer({"bootstrap.servers": c.bootstrap(), "acks": "all", "linger.ms": 0})
        for i in range(10):  # due after the move below (room for a loaded machine)
            producer.produce("moving", b"m%d" % i, partition=0, headers=[("kbroker-deliver-after-ms", b"10000")])
        assert producer.flush(60) == 0
        w = c.wire(2)
        try:
            resp = w.call(A(timeout_ms=10000, topics=[A.ReassignableTopic(name="moving", partitions=[
                A.ReassignableTopic.ReassignablePartition(partition_index=0, replicas=[2, 3])])]), 0)
        finally:
            w.close()
        assert resp.error_code == 0 and resp.responses[0].partitions[0].error_code == 0
        wait_until(lambda: _leader(admin, "moving") == 2, 60, 0.1, "node 2 leading moving-0", c.logs)
        wait_until(lambda: _high(c, [2, 3], "moving") >= 0, 60, 0.1, "node 2 answering for moving-0", c.logs)
        assert _high(c, [2, 3], "moving") == 0  # moved before any record was due: node 1 delivers remotely
        wait_until(lambda: _high(c, [2, 3], "moving") >= 10, 60, 0.1, "the 10 records delivered to node 2",
                   c.logs)
        assert _high(c, [2, 3], "moving") == 10
    finally:
        c.kill_all()


def test_share_group_state_on_another_broker_over_a_sasl_inter_broker_listener(tmp_path, certs):
    """A share partition whose share coordinator is another broker: its leader initializes, reads
    and writes the state there (kbroker/coordinator/share_persister.py) over the secured INTERNAL
    listener; the acknowledgement of a delivered record is written and answered without error."""
    c = Cluster(tmp_path / "cluster", 3, FAST_SESSIONS)
    secure(c, certs, "SASL_PLAINTEXT")
    try:
        c.start()
        nodes = c.node_ids
        wait_until(lambda: create_topic(c, nodes[0], SHARE_TOPIC) in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS),
                   30, 0.1, "topic creation", c.logs)
        tid, leader = wait_until(lambda: _full_isr_leader(c, nodes[0]), 60, 0.05, "a leader with a full ISR", c.logs)
        group = group_node = None
        for i in range(60):  # a group whose share coordinator (of this partition) is not the leader
            g = f"queue-group-{i}"
            share_node = wait_until(lambda g=g: _coordinator(c, leader, 2, f"{g}:{_kafka_uuid(tid)}:0"), 30, 0.1,
                                    "a share coordinator", c.logs)
            if share_node != leader:
                group = g
                group_node = wait_until(lambda g=g: _coordinator(c, leader, 0, g), 30, 0.1, "a group coordinator",
                                        c.logs)
                break
        assert group is not None and group_node is not None
        gw = c.wire(group_node)
        client = ShareClient(c.wire(leader), group)
        hb = wait_until(lambda: (r := heartbeat(gw, group, client.member, 0, [SHARE_TOPIC])).error_code not in (
            ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS) and r, 30, 0.1,
            "a share group join", c.logs)
        assert hb.error_code == ErrorCode.NONE, hb
        # the first fetch initializes the share partition at the share coordinator (persister retries
        # a failure to reach it: COORDINATOR_NOT_AVAILABLE is the partition's error then)
        first = wait_until(lambda: (r := client.fetch(tid, max_wait_ms=0)).error_code == ErrorCode.NONE and all(
            p.error_code == ErrorCode.NONE for t in r.responses for p in t.partitions) and r, 60, 0.1,
            "the share partition initialized at the share coordinator", c.logs)
        assert first
        w = c.wire(leader)
        for _ in range(5):
            produce(w, SHARE_TOPIC, 0, 1)
        w.close()
        delivered: dict[int, int] = {}
        _consume([client], tid, 5, delivered, [])  # each acknowledgement written there (asserted in it)
        assert sorted(delivered) == list(range(5))
        client.wire.close()
        gw.close()
    finally:
        c.kill_all()
