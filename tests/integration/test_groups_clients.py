"""Consumer groups driven by real clients: kafka-python, aiokafka and confluent-kafka (librdkafka)
in one group, their assignment strategies, a killed member, a static member restarting."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest
from waiting import wait_until

from kbroker.testing import BrokerThread
from tests.integration.groups_clients_helpers import (
    ConfluentMember,
    KafkaPythonMember,
    Member,
    balanced,
    produce,
)

GROUP_CONFIG = {
    "group.min.session.timeout.ms": "500",
    "group.initial.rebalance.delay.ms": "0",
}


@pytest.fixture(scope="module")
def gbroker():
    with BrokerThread(config=GROUP_CONFIG) as b:
        yield b


def create_topic(broker, name: str, partitions: int) -> None:
    from kbroker.metadata.new_topic import NewTopic
    from kbroker.replication.topics import create_topic as create

    assert broker.call(lambda: create(broker.broker, NewTopic(name, partitions, 1))).error == 0


def group_snapshot(broker, group_id):
    """(state, generation, member count) of a classic group, read on the broker's loop."""
    def read():
        g = broker.broker.group_coordinator.groups.get(group_id)
        return None if g is None else (g.state.value, g.generation, len(g.members))
    return broker.call(read)


def committed(broker, group_id, topic):
    def read():
        offsets = broker.broker.group_coordinator.offsets.group_offsets(group_id)
        return {p: om.offset for (t, p), om in offsets.items() if t == topic}
    return broker.call(read)


def end_offsets(broker, topic, partitions):
    return broker.call(lambda: {p: broker.broker.partition(topic, p).log_end_offset for p in range(partitions)})


# -- members: one thread each, consuming, recording and committing after every batch ----------------------


class AiokafkaMember(Member):
    def __init__(self, bootstrap, topics, group, sink, lock, name="aiokafka"):
        super().__init__(name, sink, lock)
        self.bootstrap, self.topics, self.group = bootstrap, topics, group

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by stop()
            self.error = exc

    async def _main(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

        consumer = AIOKafkaConsumer(
            *self.topics, bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", client_id=self.member_name, session_timeout_ms=6000,
            heartbeat_interval_ms=300, partition_assignment_strategy=(RoundRobinPartitionAssignor,))
        await consumer.start()
        try:
            while not self.stopping.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                for records in batch.values():
                    for r in records:
                        self.record(r.topic, r.partition, r.offset, r.value)
                if batch:
                    await consumer.commit()
                self.assignment = frozenset((tp.topic, tp.partition) for tp in consumer.assignment())
        finally:
            await consumer.stop()


# -- the mixed group ------------------------------------------------------------------------------------


def test_mixed_clients_grow_and_shrink_each_record_once(gbroker):
    bootstrap = gbroker.bootstrap_servers
    topic, group = f"mix-{uuid.uuid4().hex[:8]}", f"mix-{uuid.uuid4().hex[:8]}"
    create_topic(gbroker, topic, 6)
    everything = {(topic, p) for p in range(6)}
    sink: list = []
    lock = threading.Lock()
    produced: list[bytes] = []

    def phase(n: int, members) -> None:
        wait_until(lambda: group_snapshot(gbroker, group) is not None
                   and group_snapshot(gbroker, group)[0] == "Stable"
                   and group_snapshot(gbroker, group)[2] == len(members) and balanced(members, everything),
                   message=f"a stable group of {len(members)} sharing the 6 partitions")
        values = [f"{n}-{i}".encode() for i in range(60)]
        produced.extend(values)
        produce(bootstrap, topic, values, 6)
        ends = end_offsets(gbroker, topic, 6)
        wait_until(lambda: committed(gbroker, group, topic) == ends, message=f"phase {n} consumed and committed")
        for m in members:
            assert m.error is None, m.error

    kp = KafkaPythonMember(bootstrap, [topic], group, sink, lock)
    kp.start()
    phase(1, [kp])
    ak = AiokafkaMember(bootstrap, [topic], group, sink, lock)
    ck = ConfluentMember(bootstrap, [topic], group, sink, lock)
    ak.start()
    ck.start()
    try:
        phase(2, [kp, ak, ck])
        generation = group_snapshot(gbroker, group)[1]
        ak.stop()  # leaves the group
        phase(3, [kp, ck])
        assert group_snapshot(gbroker, group)[1] > generation
    finally:
        for m in (kp, ak, ck):
            if m.is_alive():
                m.stop()
    consumed = sorted((t, p, o) for _n, t, p, o, _v in sink)
    assert len(consumed) == len(set(consumed)) == len(produced) == 180
    assert sorted(v for *_rest, v in sink) == sorted(produced)
    by_member = {n for n, *_rest in sink}
    assert by_member == {"kafka-python", "aiokafka", "confluent"}


# -- assignment strategies --------------------------------------------------------------------------------


def two_topics(gbroker):
    t1, t2 = f"s1-{uuid.uuid4().hex[:8]}", f"s2-{uuid.uuid4().hex[:8]}"
    create_topic(gbroker, t1, 3)
    create_topic(gbroker, t2, 3)
    return t1, t2


@pytest.mark.parametrize("client,strategy", [
    ("confluent", "range"), ("confluent", "roundrobin"), ("kafka-python", "range"), ("kafka-python", "roundrobin"),
])
def test_eager_strategies(gbroker, client, strategy):
    t1, t2 = two_topics(gbroker)
    group = f"{strategy}-{uuid.uuid4().hex[:8]}"
    everything = {(t, p) for t in (t1, t2) for p in range(3)}
    lock = threading.Lock()
    members = []
    for i in range(2):
        if client == "confluent" or i == 1:
            m = ConfluentMember(gbroker.bootstrap_servers, [t1, t2], group, [], lock, name=f"c{i}",
                                **{"partition.assignment.strategy": strategy})
        else:
            # kafka-python leads (it joins first) and so computes the assignment with its own
            # assignor; the follower is librdkafka with the same protocol name. (Two kafka-python
            # members occasionally stall client-side after a rebalance, a kafka-python 3.0 issue.)
            from kafka.coordinator.assignors.range import RangePartitionAssignor
            from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

            assignor = RangePartitionAssignor if strategy == "range" else RoundRobinPartitionAssignor
            m = KafkaPythonMember(gbroker.bootstrap_servers, [t1, t2], group, [], lock, name=f"k{i}",
                                  partition_assignment_strategy=[assignor])
        members.append(m)
    try:
        # One at a time, so the first member leads with the topics' metadata known.
        members[0].start()
        wait_until(lambda: members[0].assignment == everything, message="first member owns everything")
        members[1].start()
        wait_until(lambda: balanced(members, everything) and group_snapshot(gbroker, group)[0] == "Stable"
                   and group_snapshot(gbroker, group)[2] == 2,
                   message="two members sharing six partitions",
                   details=lambda: (group_snapshot(gbroker, group), [sorted(m.assignment) for m in members]))
        leader = gbroker.call(lambda: gbroker.broker.group_coordinator.groups[group].leader_id)
        assert leader.startswith(members[0].member_name)  # the first member computed the assignment
        by_index = [({p for t, p in m.assignment if t == t1}, {p for t, p in m.assignment if t == t2})
                    for m in members]
        sizes = sorted(len(m.assignment) for m in members)
        if strategy == "range":
            # Per topic, contiguous ranges: 2+1 of each topic, the same indexes in both topics.
            assert all(a == b for a, b in by_index) and sizes == [2, 4]
        else:
            # Round robin over the six sorted partitions: 3 each, interleaved across topics.
            assert sizes == [3, 3] and all(a != b for a, b in by_index)
    finally:
        for m in members:
            m.stop()


def test_cooperative_sticky_moves_only_what_it_must(gbroker):
    t1, t2 = two_topics(gbroker)
    group = f"coop-{uuid.uuid4().hex[:8]}"
    everything = {(t, p) for t in (t1, t2) for p in range(3)}
    lock = threading.Lock()
    config = {"partition.assignment.strategy": "cooperative-sticky"}
    first = ConfluentMember(gbroker.bootstrap_servers, [t1, t2], group, [], lock, name="first", **config)
    second = ConfluentMember(gbroker.bootstrap_servers, [t1, t2], group, [], lock, name="second", **config)
    try:
        first.start()
        wait_until(lambda: first.assignment == everything, message="first member owns everything")
        second.start()
        wait_until(lambda: balanced([first, second], everything) and group_snapshot(gbroker, group)[0] == "Stable",
                   message="cooperative rebalance to 3 + 3")
        # Incremental: the first member only ever gave up the three partitions that moved; it was
        # never asked to revoke everything.
        revoked = [p for event in first.revoke_events for p in event]
        assert sorted(revoked) == sorted(second.assignment)
        assert first.assignment <= everything and len(first.assignment) == 3
        assert group_snapshot(gbroker, group)[1] >= 3  # join, join of the second, follow-up rebalance
    finally:
        first.stop()
        second.stop()


# -- failures and restarts ------------------------------------------------------------------------------


KILLED_MEMBER = textwrap.dedent("""
    import sys
    from kafka import KafkaConsumer
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    bootstrap, topic, group = sys.argv[1:4]
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, session_timeout_ms=1500,
                      heartbeat_interval_ms=300, enable_auto_commit=False, client_id="doomed",
                      partition_assignment_strategy=[RoundRobinPartitionAssignor])
    announced = False
    while True:
        c.poll(2000)
        if c.assignment() and not announced:
            print("ASSIGNED", len(c.assignment()), flush=True)
            announced = True
""")


def test_killed_consumer_partitions_move_after_session_timeout(gbroker):
    topic, group = f"kill-{uuid.uuid4().hex[:8]}", f"kill-{uuid.uuid4().hex[:8]}"
    create_topic(gbroker, topic, 6)
    everything = {(topic, p) for p in range(6)}
    lock = threading.Lock()
    survivor = ConfluentMember(gbroker.bootstrap_servers, [topic], group, [], lock, name="survivor",
                               **{"session.timeout.ms": 1500})
    survivor.start()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, gbroker.bootstrap_servers, topic, group],
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        wait_until(lambda: survivor.assignment == everything, message="survivor alone first")
        line = proc.stdout.readline()
        assert line.startswith("ASSIGNED"), line
        wait_until(lambda: group_snapshot(gbroker, group)[2] == 2 and len(survivor.assignment) == 3
                   and group_snapshot(gbroker, group)[0] == "Stable", message="two members, 3 partitions each")
        generation = group_snapshot(gbroker, group)[1]
        proc.send_signal(signal.SIGKILL)  # no LeaveGroup: only the session timeout can notice
        proc.wait(10)
        wait_until(lambda: survivor.assignment == everything, message="partitions moved to the survivor")
        state, new_generation, members = group_snapshot(gbroker, group)
        assert members == 1 and new_generation > generation
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        survivor.stop()


def test_static_member_restart_gets_its_partitions_back_without_rebalance(gbroker):
    topic, group = f"static-{uuid.uuid4().hex[:8]}", f"static-{uuid.uuid4().hex[:8]}"
    create_topic(gbroker, topic, 6)
    everything = {(topic, p) for p in range(6)}
    lock = threading.Lock()

    def static(instance):
        return ConfluentMember(gbroker.bootstrap_servers, [topic], group, [], lock, name=instance,
                               **{"group.instance.id": instance, "session.timeout.ms": 30000})

    a, b = static("instance-a"), static("instance-b")
    a.start()
    b.start()
    try:
        wait_until(lambda: balanced([a, b], everything) and group_snapshot(gbroker, group)[0] == "Stable"
                   and group_snapshot(gbroker, group)[2] == 2, message="two static members")
        generation = group_snapshot(gbroker, group)[1]
        before_a, before_b = a.assignment, b.assignment
        b_assign_events = len(b.assign_events)
        a.stop()  # a static member does not send LeaveGroup on close
        assert group_snapshot(gbroker, group) == ("Stable", generation, 2)
        restarted = static("instance-a")
        restarted.start()
        wait_until(lambda: restarted.assignment, message="restarted static member assigned")
        assert restarted.assignment == before_a
        assert group_snapshot(gbroker, group) == ("Stable", generation, 2)
        assert b.assignment == before_b and len(b.assign_events) == b_assign_events
        restarted.stop()
    finally:
        for m in (a, b):
            if m.is_alive():
                m.stop()


# -- admin clients ----------------------------------------------------------------------------------------


def test_admin_clients_list_describe_offsets_and_delete(gbroker):
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KpTopicPartition

    topic, group, simple = (f"adm-{uuid.uuid4().hex[:8]}" for _ in range(3))
    create_topic(gbroker, topic, 3)
    member = ConfluentMember(gbroker.bootstrap_servers, [topic], group, [], threading.Lock())
    member.start()
    admin = AdminClient({"bootstrap.servers": gbroker.bootstrap_servers})
    kp_admin = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap_servers)
    try:
        wait_until(lambda: len(member.assignment) == 3, message="member assigned")
        wait_until(lambda: group_snapshot(gbroker, group)[0] == "Stable")
        listed = admin.list_consumer_groups().result()
        assert (group, ConsumerGroupState.STABLE) in [(g.group_id, g.state) for g in listed.valid]
        described = admin.describe_consumer_groups([group])[group].result()
        assert (described.state, described.partition_assignor) == (ConsumerGroupState.STABLE, "roundrobin")
        assert [sorted(p.partition for p in m.assignment.topic_partitions) for m in described.members] == [[0, 1, 2]]

        done = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(simple, [TopicPartition(topic, 0, 7)])])
        done[simple].result()
        offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(simple)])[simple].result()
        assert [(tp.topic, tp.partition, tp.offset) for tp in offsets.topic_partitions] == [(topic, 0, 7)]

        kp_described = kp_admin.describe_groups([group])[group]
        assert kp_described["group_state"] == "Stable" and kp_described["protocol_data"] == "roundrobin"
        assert kp_described["members"][0]["member_assignment"]["assigned_partitions"] == [
            {"topic": topic, "partitions": [0, 1, 2]}]
        refused = kp_admin.delete_group_offsets(group, [KpTopicPartition(topic, 0)])
        assert [e.__name__ for e in refused.values()] == ["GroupSubscribedToTopicError"]
        admin.delete_consumer_groups([simple])[simple].result()
        assert simple not in {g.group_id for g in admin.list_consumer_groups().result().valid}
        member.stop()
        assert kp_admin.delete_groups([group]) == {group: "OK"}
    finally:
        if member.is_alive():
            member.stop()
        kp_admin.close()


def test_group_and_offsets_survive_broker_restart_under_a_live_consumer(tmp_path):
    """A consumer keeps its membership and position across a broker restart on the same port: the
    group is reloaded Stable from __consumer_offsets, so its heartbeats are accepted and no record
    is consumed twice."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = dict(GROUP_CONFIG, listeners=f"PLAINTEXT://127.0.0.1:{port}")
    data_dir = str(tmp_path / "data")
    topic, group = "restart-topic", "restart-live"
    sink: list = []
    lock = threading.Lock()
    first = BrokerThread(config=config, data_dir=data_dir).start()
    member = None
    try:
        create_topic(first, topic, 3)
        bootstrap = first.bootstrap_servers
        member = ConfluentMember(bootstrap, [topic], group, sink, lock, **{"session.timeout.ms": 30000})
        member.start()
        wait_until(lambda: len(member.assignment) == 3, message="assigned")
        produce(bootstrap, topic, [f"before-{i}".encode() for i in range(30)], 3)
        ends = end_offsets(first, topic, 3)
        wait_until(lambda: committed(first, group, topic) == ends, message="first half committed")
        generation = group_snapshot(first, group)[1]
        first.stop()
        second = BrokerThread(config=config, data_dir=data_dir).start()
        try:
            assert group_snapshot(second, group) == ("Stable", generation, 1)
            produce(bootstrap, topic, [f"after-{i}".encode() for i in range(30)], 3)
            ends = end_offsets(second, topic, 3)
            wait_until(lambda: committed(second, group, topic) == ends, message="second half committed")
            assert group_snapshot(second, group) == ("Stable", generation, 1)
            member.stop()
        finally:
            second.stop()
    finally:
        if member is not None and member.is_alive():
            member.stop()
        first.stop()
    values = sorted(v for *_rest, v in sink)
    assert values == sorted([f"before-{i}".encode() for i in range(30)] + [f"after-{i}".encode() for i in range(30)])
