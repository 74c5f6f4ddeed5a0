"""A cluster whose controller listener is SASL_PLAINTEXT (PLAIN) with Kafka's StandardAuthorizer: three
combined voters and a broker-only observer, all logging in to the controller listener as ``node``, a
super user, as Kafka requires of the principal the controllers and brokers use there (the Raft RPCs
need CLUSTER_ACTION before any ACL of the metadata log can be read). The quorum elects a leader, every
broker registers and is unfenced (BrokerRegistration, BrokerHeartbeat), the observer follows the
metadata log (Fetch), an RF=3 topic gets its full ISR (AlterPartition) and replicates what is
produced with acks=all. ``intruder``, another user of the same listener without CLUSTER_ACTION, is
refused those APIs by every voter (CLUSTER_AUTHORIZATION_FAILED), as Kafka's ControllerApis.

The client listener is PLAINTEXT, its ``User:ANONYMOUS`` a super user too (the test's own admin
requests and the replicas' fetches between brokers); the controller listener takes no anonymous
connection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import confluent_kafka
import pytest
from waiting import wait_until
from wire import Wire, plain_login

from kbroker.raft.wire import METADATA_TOPIC_ID
from kbroker.security import acls as A
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.cluster.cluster_fixture import FAST_SESSIONS, Cluster

E = ErrorCode
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
TOPIC = "guarded"
SECURED = {
    **FAST_SESSIONS,
    "replica.lag.time.max.ms": "2000",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
    "sasl.mechanism.controller.protocol": "PLAIN",
    "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
    "listener.name.controller.plain.sasl.jaas.config":
        f'{PLAIN} required username="node" password="node-secret" user_node="node-secret" '
        'user_intruder="intruder-secret";',
    "authorizer.class.name": A.STANDARD_AUTHORIZER,
    "super.users": "User:node;User:ANONYMOUS",
    "connection.failed.authentication.delay.ms": "0",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("secured-controllers") / "cluster", 3, SECURED, brokers=1)
    try:
        c.start()
        yield c
    finally:
        c.kill_all()


def _controller_call(c: Cluster, node_id: int, user: str, api_key: int, version: int, **fields: Any) -> Any:
    w = plain_login(c.layout.controller(node_id), user)
    try:
        return w.call(api_key, version, **fields)
    finally:
        w.close()


def _quorum(c: Cluster, node_id: int) -> Any:
    D = REQUESTS[55]
    resp = _controller_call(c, node_id, "node", 55, 2, topics=[D.TopicData(topic_name="__cluster_metadata", partitions=[
        D.TopicData.PartitionData(partition_index=0)])])
    [part] = [p for t in resp.topics for p in t.partitions]
    return part


def _metadata(c: Cluster, node_id: int) -> Any:
    w = Wire(c.bootstrap(node_id), timeout=10)
    try:
        return w.call(3, 12, topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    finally:
        w.close()


def _leader(c: Cluster) -> int | None:
    leaders = {_quorum(c, n).leader_id for n in c.layout.controllers}
    return leaders.pop() if len(leaders) == 1 and -1 not in leaders else None


def _isr(c: Cluster, node_id: int) -> list[int]:
    for t in _metadata(c, node_id).topics:
        if t.name == TOPIC and t.error_code == E.NONE and t.partitions:
            return sorted(t.partitions[0].isr_nodes)
    return []


def test_the_quorum_forms_and_the_brokers_register_over_the_authorized_listener(cluster: Cluster) -> None:
    c = cluster
    leader = wait_until(lambda: _leader(c), 30, 0.1, "one leader agreed by every voter", c.logs)
    assert leader in c.layout.controllers

    def caught_up() -> bool:
        part = _quorum(c, leader)
        ends = {v.replica_id: v.log_end_offset for v in [*part.current_voters, *part.observers]}
        return (sorted(v.replica_id for v in part.current_voters) == [1, 2, 3] and 4 in ends
                and min(ends.values()) >= part.high_watermark > 0)

    # the voters replicate the log, the broker-only node fetches it as an observer
    wait_until(caught_up, 30, 0.1, "every voter and the observer at the high watermark", c.logs)
    # every broker registered and unfenced (Metadata lists only unfenced brokers)
    wait_until(lambda: sorted(b.node_id for b in _metadata(c, 4).brokers) == c.layout.brokers, 30, 0.1,
               "the four brokers unfenced", c.logs)


def test_an_rf3_topic_gets_its_full_isr_and_replicates(cluster: Cluster) -> None:
    c = cluster
    wait_until(lambda: _leader(c), 30, 0.1, "a leader", c.logs)
    C = REQUESTS[19]

    def created() -> bool:
        w = Wire(c.bootstrap(1), timeout=10)
        try:
            r = w.call(19, 7, topics=[C.CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=3,
                                                      assignments=[], configs=[])],
                       timeout_ms=10000, validate_only=False)
        finally:
            w.close()
        return r.topics[0].error_code in (E.NONE, E.TOPIC_ALREADY_EXISTS)

    wait_until(created, 30, 0.2, f"creation of {TOPIC}", c.logs)
    wait_until(lambda: len(_isr(c, 1)) == 3, 30, 0.1, "the full ISR", c.logs)
    producer = confluent_kafka.Producer({"bootstrap.servers": c.bootstrap(), "acks": "all", "enable.idempotence": True})
    errors: list[str] = []
    for i in range(50):
        producer.produce(TOPIC, value=b"m%d" % i, on_delivery=lambda err, _m: errors.append(str(err)) if err else None)
    assert producer.flush(30) == 0
    assert errors == []
    consumer = confluent_kafka.Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "guarded-readers",
                                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([TOPIC])
    got: list[bytes] = []
    try:
        def read_all() -> bool:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
            return len(got) >= 50
        wait_until(read_all, 30, 0, "the consumer reading every record", c.logs)
    finally:
        consumer.close()
    assert got == [b"m%d" % i for i in range(50)]
    assert len(_isr(c, 1)) == 3


def test_a_user_without_cluster_action_is_refused_by_every_voter(cluster: Cluster) -> None:
    """``intruder`` logs in but may not fetch the metadata log, vote, heartbeat or reassign, at any
    voter, active controller or not (checked before anything else, as Kafka)."""
    c = cluster
    F = REQUESTS[1]
    V = REQUESTS[52]
    fetch = {"cluster_id": None, "replica_id": 9, "max_wait_ms": 0,
             "replica_state": F.ReplicaState(replica_id=9, replica_epoch=-1),
             "topics": [F.FetchTopic(topic="__cluster_metadata", topic_id=METADATA_TOPIC_ID, partitions=[
                 F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0,
                                             last_fetched_epoch=0, log_start_offset=0,
                                             partition_max_bytes=1 << 20)])]}
    vote = {"cluster_id": None, "voter_id": 1, "topics": [V.TopicData(topic_name="__cluster_metadata", partitions=[
        V.TopicData.PartitionData(partition_index=0, replica_epoch=1000, replica_id=9, last_offset_epoch=999,
                                  last_offset=1 << 40, pre_vote=False, replica_directory_id=uuid.uuid4(),
                                  voter_directory_id=uuid.UUID(int=0))])]}
    heartbeat = {"broker_id": 4, "broker_epoch": -1, "current_metadata_offset": 0, "want_fence": True,
                 "want_shut_down": True, "offline_log_dirs": [], "cordoned_log_dirs": []}
    for n in c.layout.controllers:
        refused = _controller_call(c, n, "intruder", 1, 18, **fetch)
        assert (refused.error_code, refused.responses) == (E.CLUSTER_AUTHORIZATION_FAILED, [])
        # a vote for a far newer epoch and log: served, it would depose the leader
        refused = _controller_call(c, n, "intruder", 52, 2, **vote)
        assert (refused.error_code, refused.topics) == (E.CLUSTER_AUTHORIZATION_FAILED, [])
        assert _controller_call(c, n, "intruder", 63, 2, **heartbeat).error_code == E.CLUSTER_AUTHORIZATION_FAILED
        # the reassignments (ALTER, DESCRIBE): refused before the controller is asked, so the voters
        # that are not the active controller refuse them too rather than answer NOT_CONTROLLER
        assert _controller_call(c, n, "intruder", 45, 0, timeout_ms=10000,
                                topics=[]).error_code == E.CLUSTER_AUTHORIZATION_FAILED
        assert _controller_call(c, n, "intruder", 46, 0, timeout_ms=10000,
                                topics=None).error_code == E.CLUSTER_AUTHORIZATION_FAILED
    # no voter moved to the intruder's epoch
    assert all(_quorum(c, n).leader_epoch < 1000 for n in c.layout.controllers)
