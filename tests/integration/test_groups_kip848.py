"""KIP-848 consumer groups: librdkafka with ``group.protocol=consumer``, and ConsumerGroupHeartbeat /
ConsumerGroupDescribe at the protocol level (epochs, revocation, fencing, conflicts with classic
groups, offsets by member epoch, regex subscriptions, restart)."""

from __future__ import annotations

import struct
import threading
import uuid

import pytest
from waiting import wait_until
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_describe import ConsumerGroupDescribeRequest
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest, TopicPartitions
from kbroker_protocol.messages.data.consumer_protocol_assignment import ConsumerProtocolAssignment
from kbroker_protocol.messages.data.consumer_protocol_subscription import ConsumerProtocolSubscription
from kbroker_protocol.messages.describe_groups import DescribeGroupsRequest
from kbroker_protocol.messages.heartbeat import HeartbeatRequest
from kbroker_protocol.messages.leave_group import LeaveGroupRequest
from kbroker_protocol.messages.list_groups import ListGroupsRequest
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest
from tests.integration.groups_clients_helpers import ConfluentMember, balanced, produce
from tests.integration.groups_protocol_helpers import (
    commit_errors,
    commit_request,
    create_topic,
    join_member,
    join_request,
    sync_request,
)

CONFIG = {
    "group.min.session.timeout.ms": "500",
    "group.initial.rebalance.delay.ms": "0",
    "group.consumer.heartbeat.interval.ms": "300",
    "group.consumer.session.timeout.ms": "6000",
}


@pytest.fixture(scope="module")
def kbroker848():
    with BrokerThread(config=CONFIG) as b:
        yield b


@pytest.fixture
def wire(kbroker848):
    w = Wire(kbroker848.bootstrap_servers)
    yield w
    w.close()


def topic_id(broker, name):
    return broker.call(lambda: broker.broker.image.topic(name).topic_id)


def hb(wire, group, member_id, epoch, *, topics=None, regex=None, owned=None, assignor=None, instance=None,
       version=1, rebalance_timeout=30000):
    return wire.call(ConsumerGroupHeartbeatRequest(
        group_id=group, member_id=member_id, member_epoch=epoch, instance_id=instance,
        rebalance_timeout_ms=rebalance_timeout if epoch == 0 else -1, subscribed_topic_names=topics,
        subscribed_topic_regex=regex, server_assignor=assignor,
        topic_partitions=owned if owned is not None or epoch != 0 else []), version)


def owned_of(response_or_parts):
    return [TopicPartitions(topic_id=t.topic_id, partitions=list(t.partitions)) for t in response_or_parts]


def parts(response):
    assert response.assignment is not None
    return sorted((t.topic_id, p) for t in response.assignment.topic_partitions for p in t.partitions)


# -- librdkafka -------------------------------------------------------------------------------------------


def consumer_protocol_member(bootstrap, topic, group, sink, lock, name):
    m = ConfluentMember(bootstrap, [topic], group, sink, lock, name=name, **{"group.protocol": "consumer"})
    for key in ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"):
        m.config.pop(key)  # broker-side settings under KIP-848
    return m


def test_librdkafka_consumer_protocol_group_grows_and_shrinks(kbroker848):
    bootstrap = kbroker848.bootstrap_servers
    topic, group = f"k848-{uuid.uuid4().hex[:8]}", f"k848-{uuid.uuid4().hex[:8]}"
    create_topic(kbroker848, topic, 6)
    everything = {(topic, p) for p in range(6)}
    sink: list = []
    lock = threading.Lock()
    produced: list[bytes] = []

    def committed():
        def read():
            offsets = kbroker848.broker.group_coordinator.offsets.group_offsets(group)
            return {p: om.offset for (t, p), om in offsets.items() if t == topic}
        return kbroker848.call(read)

    def phase(n, members):
        wait_until(lambda: balanced(members, everything), message=f"{len(members)} members sharing 6 partitions")
        values = [f"{n}-{i}".encode() for i in range(30)]
        produced.extend(values)
        produce(bootstrap, topic, values, 6)
        ends = kbroker848.call(lambda: {p: kbroker848.broker.partition(topic, p).log_end_offset for p in range(6)})
        wait_until(lambda: committed() == ends, message=f"phase {n} committed")

    a = consumer_protocol_member(bootstrap, topic, group, sink, lock, "a")
    b = consumer_protocol_member(bootstrap, topic, group, sink, lock, "b")
    a.start()
    try:
        phase(1, [a])
        b.start()
        phase(2, [a, b])
        w = Wire(bootstrap)
        try:
            described = w.call(ConsumerGroupDescribeRequest(group_ids=[group]), 0).groups[0]
        finally:
            w.close()
        assert described.error_code == 0 and described.assignor_name == "uniform"
        assert described.group_state == "Stable" and len(described.members) == 2
        assert all(m.member_epoch == described.assignment_epoch for m in described.members)
        assert sorted(len(m.assignment.topic_partitions[0].partitions) for m in described.members) == [3, 3]
        a.stop()
        phase(3, [b])
    finally:
        for m in (a, b):
            if m.is_alive():
                m.stop()
    consumed = sorted((t, p, o) for _n, t, p, o, _v in sink)
    assert len(consumed) == len(set(consumed)) == len(produced) == 90


def test_classic_clients_join_a_consumer_protocol_group(kbroker848):
    """Kafka 4.x mixed groups: kafka-python and librdkafka classic consumers join a group created by a
    librdkafka group.protocol=consumer member; the broker assigns all of them."""
    from tests.integration.groups_clients_helpers import KafkaPythonMember

    bootstrap = kbroker848.bootstrap_servers
    topic, group = f"mixed-{uuid.uuid4().hex[:8]}", f"mixed-{uuid.uuid4().hex[:8]}"
    create_topic(kbroker848, topic, 6)
    everything = {(topic, p) for p in range(6)}
    sink: list = []
    lock = threading.Lock()
    new = consumer_protocol_member(bootstrap, topic, group, sink, lock, "new")
    classic_kp = KafkaPythonMember(bootstrap, [topic], group, sink, lock)
    classic_rd = ConfluentMember(bootstrap, [topic], group, sink, lock, name="classic-rd")
    members = [new, classic_kp, classic_rd]
    try:
        new.start()
        wait_until(lambda: new.assignment == everything, message="consumer-protocol member owns everything")
        classic_kp.start()
        classic_rd.start()
        wait_until(lambda: balanced(members, everything) and all(len(m.assignment) == 2 for m in members),
                   message="three members, two partitions each")
        values = [f"v{i}".encode() for i in range(60)]
        produce(bootstrap, topic, values, 6)
        wait_until(lambda: len(sink) >= 60, message="all consumed")
        described = Wire(bootstrap)
        try:
            group_view = described.call(ConsumerGroupDescribeRequest(group_ids=[group]), 1).groups[0]
        finally:
            described.close()
        assert sorted(m.member_type for m in group_view.members) == [0, 0, 1]
        classic_kp.stop()
        wait_until(lambda: balanced([new, classic_rd], everything), message="two members after a classic one left")
    finally:
        for m in members:
            if m.is_alive():
                m.stop()
    consumed = [(t, p, o) for _n, t, p, o, _v in sink]
    assert len(consumed) == len(set(consumed)) == 60
    assert {n for n, *_rest in sink} == {"new", "kafka-python", "classic-rd"}


def test_live_classic_group_is_upgraded_when_a_consumer_protocol_member_joins(kbroker848):
    """A Stable classic group of two kafka-python consumers is upgraded online when a librdkafka
    group.protocol=consumer member joins: the classic members keep their generation as member
    epoch, then share the partitions with the new member; every record is consumed once."""
    from tests.integration.groups_clients_helpers import KafkaPythonMember, stop_all

    bootstrap = kbroker848.bootstrap_servers
    topic, group = f"up-{uuid.uuid4().hex[:8]}", f"up-{uuid.uuid4().hex[:8]}"
    create_topic(kbroker848, topic, 6)
    everything = {(topic, p) for p in range(6)}
    sink: list = []
    lock = threading.Lock()
    first = KafkaPythonMember(bootstrap, [topic], group, sink, lock, name="kp1")
    second = KafkaPythonMember(bootstrap, [topic], group, sink, lock, name="kp2")
    new = consumer_protocol_member(bootstrap, topic, group, sink, lock, "new")
    members = [first, second, new]

    def kind():
        return kbroker848.call(lambda: type(kbroker848.broker.group_coordinator.groups.get(group)).__name__)

    def settled():
        def read():
            b = kbroker848.broker
            offsets = b.group_coordinator.offsets.group_offsets(group)
            return {p: om.offset for (t, p), om in offsets.items()} == {
                p: b.partition(topic, p).log_end_offset for p in range(6)}
        return kbroker848.call(read)

    try:
        first.start()
        wait_until(lambda: first.assignment == everything, message="first classic member")
        second.start()
        wait_until(lambda: balanced([first, second], everything), message="classic group of two")
        produce(bootstrap, topic, [f"a{i}".encode() for i in range(30)], 6)
        wait_until(lambda: settled(), message="first batch committed")
        assert kind() == "ClassicGroup"
        new.start()
        wait_until(lambda: balanced(members, everything) and all(len(m.assignment) == 2 for m in members),
                   message="upgraded group of three")
        assert kind() == "ConsumerGroup"
        produce(bootstrap, topic, [f"b{i}".encode() for i in range(30)], 6)
        wait_until(lambda: settled(), message="second batch committed")
    finally:
        stop_all(members)
    consumed = [(t, p, o) for _n, t, p, o, _v in sink]
    assert len(consumed) == len(set(consumed)) == 60


# -- the protocol, step by step ---------------------------------------------------------------------------


def test_join_revoke_then_release(kbroker848, wire):
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    create_topic(kbroker848, topic, 4)
    tid = topic_id(kbroker848, topic)
    a, b = "member-a", "member-b"
    first = hb(wire, group, a, 0, topics=[topic])
    assert (first.error_code, first.member_id, first.member_epoch) == (0, a, 1)
    assert parts(first) == [(tid, p) for p in range(4)]
    assert first.heartbeat_interval_ms == 300
    # b joins: epoch 2; b gets nothing until a releases what moves to b.
    second = hb(wire, group, b, 0, topics=[topic])
    assert second.member_epoch == 2 and parts(second) == []
    # a is told to keep only its target half, at its old epoch (revocation pending).
    revoking = hb(wire, group, a, 1, owned=owned_of(first.assignment.topic_partitions))
    assert revoking.member_epoch == 1 and len(parts(revoking)) == 2
    still = hb(wire, group, b, 2)
    assert still.member_epoch == 2 and still.assignment is None
    # a acknowledges by reporting only what it kept: it moves to epoch 2, and b gets the rest.
    done = hb(wire, group, a, 1, owned=owned_of(revoking.assignment.topic_partitions))
    assert done.member_epoch == 2
    released = hb(wire, group, b, 2, owned=[])
    assert sorted(parts(released) + parts(revoking)) == [(tid, p) for p in range(4)]
    described = wire.call(ConsumerGroupDescribeRequest(group_ids=[group]), 1).groups[0]
    assert (described.group_state, described.group_epoch, described.assignment_epoch) == ("Stable", 2, 2)
    # Fencing and unknown members.
    assert hb(wire, group, a, 7).error_code == ErrorCode.FENCED_MEMBER_EPOCH
    assert hb(wire, group, "ghost", 2).error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert hb(wire, "no-such-group", a, 2).error_code == ErrorCode.GROUP_ID_NOT_FOUND
    assert hb(wire, group, "", 0, topics=[topic]).error_code == ErrorCode.INVALID_REQUEST
    no_subscription = hb(wire, group, "c", 0)
    assert (no_subscription.error_code, no_subscription.error_message) == (
        ErrorCode.INVALID_REQUEST, "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.")
    # A join must send TopicPartitions, empty: Kafka refuses the null the field defaults to.
    null_owned = wire.call(ConsumerGroupHeartbeatRequest(group_id=group, member_id="c", member_epoch=0,
                                                         rebalance_timeout_ms=30000, subscribed_topic_names=[topic],
                                                         topic_partitions=None), 1)
    assert (null_owned.error_code, null_owned.error_message) == (
        ErrorCode.INVALID_REQUEST, "TopicPartitions must be empty when (re-)joining.")
    assert hb(wire, group, "c", 0, topics=[topic], assignor="sticky").error_code == ErrorCode.UNSUPPORTED_ASSIGNOR
    # Leaving: the remaining member gets everything at the next epoch.
    left = hb(wire, group, b, -1)
    assert (left.error_code, left.member_epoch) == (0, -1)
    after = hb(wire, group, a, 2, owned=owned_of(revoking.assignment.topic_partitions))
    assert after.member_epoch == 3 and parts(after) == [(tid, p) for p in range(4)]


def test_v0_generates_member_id_and_range_assignor(kbroker848, wire):
    t1, t2 = f"r1-{uuid.uuid4().hex[:6]}", f"r2-{uuid.uuid4().hex[:6]}"
    create_topic(kbroker848, t1, 2)
    create_topic(kbroker848, t2, 2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    first = hb(wire, group, "", 0, topics=[t1, t2], assignor="range", version=0)
    assert first.error_code == 0 and first.member_id
    second = hb(wire, group, "", 0, topics=[t1, t2], assignor="range", version=0)
    ack = hb(wire, group, first.member_id, 1, owned=owned_of(first.assignment.topic_partitions), version=0)
    hb(wire, group, first.member_id, 1, owned=owned_of(ack.assignment.topic_partitions), version=0)
    got = hb(wire, group, second.member_id, 2, owned=[], version=0)
    ids = {topic_id(kbroker848, t1): t1, topic_id(kbroker848, t2): t2}
    mine = sorted((ids[t], p) for t, p in parts(got))
    assert mine in ([(t1, 0), (t2, 0)], [(t1, 1), (t2, 1)])  # range: the same index of both topics


def resolved(broker, group, regex):
    """The group's resolution of ``regex`` once its refresh (asynchronous, as Kafka's) has run."""
    def get():
        g = broker.broker.group_coordinator.groups.get(group)
        found = None if g is None else g.resolved_regexes.get(regex)
        return None if found is None else set(found.topics)

    return wait_until(lambda: broker.call(get), message=f"the resolution of {regex}")


@pytest.fixture(scope="module")
def manual848():
    with BrokerThread(config=CONFIG, clock="manual") as b:
        yield b


def test_regex_subscription_follows_new_topics(manual848):
    """Kafka's asynchronous, batched refresh: the member subscribing to a new expression gets
    nothing at first (epoch 1); the refresh runs after the heartbeat and bumps the group epoch;
    the next heartbeat gets the partitions. A topic created later is resolved by a heartbeat at
    least 10 s (of the broker's manual clock) after the last refresh."""
    b = manual848
    wire = Wire(b.bootstrap_servers)
    try:
        prefix = f"rx{uuid.uuid4().hex[:6]}"
        create_topic(b, f"{prefix}-a", 1)
        create_topic(b, f"other{prefix}", 1)
        group = f"g-{uuid.uuid4().hex[:8]}"
        regex = f"{prefix}-.*"
        first = hb(wire, group, "m", 0, regex=regex)
        assert (first.member_epoch, parts(first)) == (1, [])
        assert resolved(b, group, regex) == {f"{prefix}-a"}
        second = hb(wire, group, "m", 1, owned=[])
        assert (second.member_epoch, parts(second)) == (2, [(topic_id(b, f"{prefix}-a"), 0)])
        owned = owned_of(second.assignment.topic_partitions)
        create_topic(b, f"{prefix}-b", 2)
        for _ in range(2):  # (heartbeats within the session timeout, 6 s)
            b.advance(5_000)  # not more than 10 s since the last refresh: not resolved again
            same = hb(wire, group, "m", 2, owned=owned)
            assert (same.error_code, same.member_epoch, same.assignment) == (ErrorCode.NONE, 2, None)
        assert resolved(b, group, regex) == {f"{prefix}-a"}
        b.advance(1)
        asked = hb(wire, group, "m", 2, owned=owned)  # this heartbeat asks for the refresh
        assert asked.member_epoch == 2
        wait_until(lambda: resolved(b, group, regex) == {f"{prefix}-a", f"{prefix}-b"}, message="the new topic resolved")
        later = hb(wire, group, "m", 2, owned=owned)
        assert later.member_epoch == 3 and len(parts(later)) == 3
        bad = hb(wire, f"g-{uuid.uuid4().hex[:8]}", "m", 0, regex="(unclosed")
        assert bad.error_code == ErrorCode.INVALID_REGULAR_EXPRESSION
    finally:
        wire.close()


def test_a_confluent_consumer_with_a_pattern_gets_a_new_topic_after_the_refresh_interval(manual848):
    """librdkafka (group.protocol=consumer) subscribed to ``^prefix-.*``: the coordinator resolves the
    expression asynchronously, so the member is assigned the first topic after the refresh; a
    topic created later is not resolved by heartbeats within 10 s of the last refresh (the
    broker's manual clock stands still), and is assigned once a heartbeat comes after them."""
    from confluent_kafka import Consumer

    b = manual848
    prefix = f"pat{uuid.uuid4().hex[:6]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    create_topic(b, f"{prefix}-a", 2)
    heartbeats = [0]

    def count_heartbeats():
        manager = b.broker.group_coordinator.consumer
        original = manager.heartbeat

        def counted(request, *args, **kwargs):
            if request.group_id == group:
                heartbeats[0] += 1
            return original(request, *args, **kwargs)

        manager.heartbeat = counted

    b.call(count_heartbeats)
    regex = f"(^{prefix}-.*)"  # (how librdkafka sends its subscription's patterns)
    consumer = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": group, "group.protocol": "consumer",
                         "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 500,
                         "fetch.wait.max.ms": 0})  # (a long poll would wait for the manual clock)
    consumer.subscribe([f"^{prefix}-.*"])

    records: list = []

    def topics_assigned():
        msg = consumer.poll(0.1)
        if msg is not None and msg.error() is None:
            records.append((msg.topic(), msg.value()))
        return sorted({tp.topic for tp in consumer.assignment()})

    try:
        wait_until(lambda: topics_assigned() == [f"{prefix}-a"], message="the first topic assigned")
        assert resolved(b, group, regex) == {f"{prefix}-a"}
        create_topic(b, f"{prefix}-b", 1)
        produce(b.bootstrap_servers, f"{prefix}-b", [b"late"], 1)
        seen = b.call(lambda: heartbeats[0])
        wait_until(lambda: topics_assigned() is not None and b.call(lambda: heartbeats[0]) >= seen + 3,
                   message="three heartbeats after the topic was created")
        assert topics_assigned() == [f"{prefix}-a"]
        assert resolved(b, group, regex) == {f"{prefix}-a"}
        b.advance(10_001)  # (within the session timeout: the member stays)
        wait_until(lambda: topics_assigned() == [f"{prefix}-a", f"{prefix}-b"], message="the new topic assigned")

        wait_until(lambda: topics_assigned() and (f"{prefix}-b", b"late") in records,
                   message="the record of the new topic")
    finally:
        consumer.close()


def test_regex_subscription_resolves_internal_topics(kbroker848, wire):
    """Kafka resolves a regex over every topic in the metadata image, internal ones included."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    # A first group call makes sure __consumer_offsets exists (it may be created lazily).
    hb(wire, group, "warm", 0, topics=[])
    offsets = kbroker848.call(lambda: kbroker848.broker.image.topic("__consumer_offsets"))
    assert offsets is not None
    regex_group = f"g-{uuid.uuid4().hex[:8]}"
    got = hb(wire, regex_group, "m", 0, regex="__consumer_offs.*")
    assert got.error_code == 0
    assert resolved(kbroker848, regex_group, "__consumer_offs.*") == {"__consumer_offsets"}
    again = hb(wire, regex_group, "m", got.member_epoch, owned=[])
    offsets_id = topic_id(kbroker848, "__consumer_offsets")
    assert parts(again) == [(offsets_id, p) for p in range(len(offsets.partitions))]


def test_conflicts_with_classic_groups(kbroker848, wire):
    topic = f"t-{uuid.uuid4().hex[:8]}"
    create_topic(kbroker848, topic, 1)
    classic = f"classic-{uuid.uuid4().hex[:6]}"
    joined = join_member(wire, classic)
    assert joined.error_code == 0
    refused = hb(wire, classic, "m", 0, topics=[topic])
    assert refused.error_code == ErrorCode.GROUP_ID_NOT_FOUND
    described = wire.call(ConsumerGroupDescribeRequest(group_ids=[classic]), 0).groups[0]
    assert described.error_code == ErrorCode.GROUP_ID_NOT_FOUND

    consumer = f"consumer-{uuid.uuid4().hex[:6]}"
    hb(wire, consumer, "m", 0, topics=[topic])
    refused_join = join_member(wire, consumer, protocol_type="connect")
    assert refused_join.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    refused_join = join_member(wire, consumer)  # metadata that is not a consumer subscription
    assert refused_join.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    listed = wire.call(ListGroupsRequest(types_filter=["consumer"]), 5).groups
    assert [(g.group_id, g.group_type, g.protocol_type) for g in listed if g.group_id == consumer] == [
        (consumer, "consumer", "consumer")]
    old_view = wire.call(DescribeGroupsRequest(groups=[consumer]), 5).groups[0]
    assert (old_view.protocol_type, old_view.protocol_data) == ("consumer", "uniform")
    assert [m.member_id for m in old_view.members] == ["m"]
    metadata = bytes(old_view.members[0].member_metadata)
    assert ConsumerProtocolSubscription.decode(metadata[2:], 0).topics == [topic]
    assignment = ConsumerProtocolAssignment.decode(bytes(old_view.members[0].member_assignment)[2:], 0)
    assert [(t.topic, list(t.partitions)) for t in assignment.assigned_partitions] == [(topic, [0])]
    # Once empty, either kind can take the id over; offsets stay with the id.
    wire.call(commit_request(consumer, -1, "", topic, {0: 5}), 9)
    assert hb(wire, consumer, "m", -1).error_code == 0
    wire.call(commit_request(consumer, -1, "", topic, {0: 6}), 9)
    converted = join_member(wire, consumer)
    assert converted.error_code == 0
    resp = wire.call(OffsetFetchRequest(group_id=consumer, topics=[
        OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0])]), 5)
    assert resp.topics[0].partitions[0].committed_offset == 6


def test_classic_member_hosted_by_consumer_group_at_protocol_level(kbroker848, wire):
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    create_topic(kbroker848, topic, 4)
    first = hb(wire, group, "new-protocol", 0, topics=[topic])
    subscription = struct.pack(">h", 0) + ConsumerProtocolSubscription(topics=[topic]).encode(0)
    joined = join_member(wire, group, protocols=[("range", subscription)])
    assert joined.error_code == 0 and joined.leader == "" and joined.members == []
    assert joined.generation_id == 2 and joined.protocol_name == "range"
    me = joined.member_id
    synced = wire.call(sync_request(group, 2, me), 5)
    assert synced.error_code == 0
    # The partitions still owned by the KIP-848 member are not handed out yet.
    assert ConsumerProtocolAssignment.decode(bytes(synced.assignment)[2:], 0).assigned_partitions == []
    stale = wire.call(HeartbeatRequest(group_id=group, generation_id=1, member_id=me), 4)
    assert stale.error_code == ErrorCode.ILLEGAL_GENERATION
    revoke = hb(wire, group, "new-protocol", 1, owned=owned_of(first.assignment.topic_partitions))
    hb(wire, group, "new-protocol", 1, owned=owned_of(revoke.assignment.topic_partitions))
    # Released partitions: the classic member is told to rejoin, and then gets them.
    wait_until(lambda: wire.call(HeartbeatRequest(group_id=group, generation_id=2, member_id=me), 4).error_code
               == ErrorCode.REBALANCE_IN_PROGRESS, message="rejoin request")
    again = wire.call(join_request(group, member_id=me, protocols=[("range", subscription)]), 5)
    assignment = ConsumerProtocolAssignment.decode(
        bytes(wire.call(sync_request(group, again.generation_id, me), 5).assignment)[2:], 0)
    mine = sorted(p for t in assignment.assigned_partitions for p in t.partitions)
    theirs = sorted(p for t in revoke.assignment.topic_partitions for p in t.partitions)
    assert len(mine) == 2 and sorted(mine + theirs) == [0, 1, 2, 3]
    assert wire.call(HeartbeatRequest(group_id=group, generation_id=again.generation_id, member_id=me), 4
                     ).error_code == 0
    assert commit_errors(wire.call(commit_request(group, again.generation_id, me, topic, {mine[0]: 9}), 2)) == {
        mine[0]: 0}
    described = wire.call(ConsumerGroupDescribeRequest(group_ids=[group]), 1).groups[0]
    assert sorted((m.member_id, m.member_type) for m in described.members) == sorted(
        [("new-protocol", 1), (me, 0)])
    left = wire.call(LeaveGroupRequest(group_id=group, members=[LeaveGroupRequest.MemberIdentity(member_id=me)]), 3)
    assert [m.error_code for m in left.members] == [0]


def test_offsets_are_checked_against_member_epochs(kbroker848, wire):
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    create_topic(kbroker848, topic, 1)
    joined = hb(wire, group, "m", 0, topics=[topic])
    epoch = joined.member_epoch
    assert commit_errors(wire.call(commit_request(group, epoch, "m", topic, {0: 3}), 9)) == {0: 0}
    assert commit_errors(wire.call(commit_request(group, epoch - 1, "m", topic, {0: 3}), 9)) == {
        0: ErrorCode.STALE_MEMBER_EPOCH}
    assert commit_errors(wire.call(commit_request(group, epoch + 1, "m", topic, {0: 3}), 9)) == {
        0: ErrorCode.FENCED_MEMBER_EPOCH}
    assert commit_errors(wire.call(commit_request(group, epoch, "ghost", topic, {0: 3}), 9)) == {
        0: ErrorCode.UNKNOWN_MEMBER_ID}
    assert commit_errors(wire.call(commit_request(group, epoch, "m", topic, {0: 3}), 8)) == {
        0: ErrorCode.UNSUPPORTED_VERSION}
    assert commit_errors(wire.call(commit_request(group, -1, "", topic, {0: 3}), 9)) == {
        0: ErrorCode.UNKNOWN_MEMBER_ID}  # the group has members

    G = OffsetFetchRequest.OffsetFetchRequestGroup
    topics = [G.OffsetFetchRequestTopics(name=topic, partition_indexes=[0])]
    ok = wire.call(OffsetFetchRequest(groups=[G(group_id=group, member_id="m", member_epoch=epoch, topics=topics)]), 9)
    assert ok.groups[0].error_code == 0 and ok.groups[0].topics[0].partitions[0].committed_offset == 3
    stale = wire.call(OffsetFetchRequest(groups=[G(group_id=group, member_id="m", member_epoch=0, topics=topics)]), 9)
    assert stale.groups[0].error_code == ErrorCode.STALE_MEMBER_EPOCH


def test_static_member_leaves_temporarily_and_comes_back(kbroker848, wire):
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    create_topic(kbroker848, topic, 2)
    first = hb(wire, group, "s1", 0, topics=[topic], instance="inst")
    taken = hb(wire, group, "s2", 0, topics=[topic], instance="inst")
    assert taken.error_code == ErrorCode.UNRELEASED_INSTANCE_ID
    assert hb(wire, group, "s1", -2, instance="inst").member_epoch == -2
    back = hb(wire, group, "s2", 0, topics=[topic], instance="inst")
    assert back.error_code == 0 and back.member_epoch == first.member_epoch
    assert parts(back) == parts(first)


def test_consumer_group_survives_restart(tmp_path):
    data_dir = str(tmp_path / "data")
    group = "kip848-restart"
    with BrokerThread(config=CONFIG, data_dir=data_dir) as b:
        create_topic(b, "events", 4)
        w = Wire(b.bootstrap_servers)
        a = hb(w, group, "a", 0, topics=["events"])
        hb(w, group, "b", 0, topics=["events"])
        kept = hb(w, group, "a", 1, owned=owned_of(a.assignment.topic_partitions))
        done = hb(w, group, "a", 1, owned=owned_of(kept.assignment.topic_partitions))
        got_b = hb(w, group, "b", 2, owned=[])
        w.call(commit_request(group, 2, "a", "events", {0: 42}), 9)
        w.close()
        assert done.member_epoch == 2
    with BrokerThread(config=CONFIG, data_dir=data_dir) as b:
        w = Wire(b.bootstrap_servers)
        try:
            described = w.call(ConsumerGroupDescribeRequest(group_ids=[group]), 1).groups[0]
            assert (described.error_code, described.group_epoch, described.assignment_epoch) == (0, 2, 2)
            assert sorted((m.member_id, m.member_epoch) for m in described.members) == [("a", 2), ("b", 2)]
            again = hb(w, group, "b", 2, owned=owned_of(got_b.assignment.topic_partitions))
            assert again.error_code == 0 and again.member_epoch == 2
            assert sorted(p for t in described.members for tp in t.assignment.topic_partitions
                          for p in tp.partitions) == [0, 1, 2, 3]
            fetched = w.call(OffsetFetchRequest(group_id=group, topics=[
                OffsetFetchRequest.OffsetFetchRequestTopic(name="events", partition_indexes=[0])]), 5)
            assert fetched.topics[0].partitions[0].committed_offset == 42
        finally:
            w.close()
