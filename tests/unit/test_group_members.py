"""The shared core of the modern group kinds (kbroker/coordinator/group_members.py), without a
broker: the assignment algebra, member epochs, timers on a fake clock, records and their replay,
member-epoch fencing and static member take-over."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import group_fakes
import pytest
from group_fakes import FakeTopic

from kbroker.coordinator.assignment_sets import copy_parts, grant, intersect, minus, same, union
from kbroker.coordinator.group_consumer import ConsumerGroupManager
from kbroker.coordinator.group_consumer_model import KIND as CONSUMER_KIND
from kbroker.coordinator.group_consumer_model import ConsumerGroup, ConsumerMember
from kbroker.coordinator.group_members import (
    STATIC_LEAVE_EPOCH,
    GroupError,
    GroupKind,
    GroupMember,
    MemberGroup,
    MemberGroupManager,
    decode_record,
)
from kbroker.coordinator.timer_keys import GroupTimerKey
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest, TopicPartitions
from kbroker_protocol.messages.coordinator import (
    ConsumerGroupMetadataValue,
    ConsumerGroupTargetAssignmentMetadataValue,
)


def FakeCoordinator() -> group_fakes.FakeCoordinator:  # noqa: N802 - the shared fake, its clock at 1000
    return group_fakes.FakeCoordinator(now=1000)


# -- a toy kind on the consumer group record types -------------------------------------------------------


class ToyError(GroupError):
    pass


@dataclass(eq=False)
class ToyGroup(MemberGroup[GroupMember, dict[str, set[int]]]):
    pass


TOY = GroupKind(3, 5, 6, 7, 8, CONSUMER_KIND.types, ToyError, ToyGroup, GroupMember, session_timer="toy-session",
                revoke_timer="toy-revoke", group_tombstones=(6, 3))


class ToyManager(MemberGroupManager[ToyGroup, GroupMember]):
    kind = TOY

    def _group_record(self, group):
        return self._record(3, ConsumerGroupMetadataValue(epoch=group.group_epoch, metadata_hash=0), group.group_id)

    def _replay_member_metadata(self, member, v):
        member.client_id = v.client_id

    def _replay_target(self, v):
        return {"t": {p for tp in v.topic_partitions for p in tp.partitions}}

    def _replay_current(self, member, v):
        member.member_epoch, member.previous_member_epoch = v.member_epoch, v.previous_member_epoch


@pytest.fixture
def toy() -> ToyManager:
    return ToyManager(FakeCoordinator())


# -- the assignment algebra -------------------------------------------------------------------------------


def test_algebra_leaves_out_empty_entries():
    a = {"x": {0, 1, 2}, "y": {0}, "z": set()}
    b = {"x": {1}, "y": {0}}
    assert copy_parts(a) == {"x": {0, 1, 2}, "y": {0}}
    assert minus(a, b) == {"x": {0, 2}}
    assert intersect(a, b) == {"x": {1}, "y": {0}}
    assert union({"x": {0}}, {"x": {3}, "w": {1}, "v": set()}) == {"x": {0, 3}, "w": {1}}
    assert same({"x": {1}, "y": set()}, {"x": [1]})
    assert not same({"x": {1}}, {"x": {1, 2}})
    copied = copy_parts(a)
    copied["x"].add(9)
    assert a["x"] == {0, 1, 2}  # a copy, not a view


def test_grant_gives_free_and_own_partitions_and_flags_the_others():
    me, other = object(), object()
    owners = {("t", 1): other, ("t", 2): me}
    granted, complete = grant({"t": {0, 1, 2}}, lambda t, p: owners.get((t, p)), me)
    assert granted == {"t": {0, 2}}
    assert not complete
    granted, complete = grant({"t": {0, 2}}, lambda t, p: owners.get((t, p)), me)
    assert granted == {"t": {0, 2}} and complete


def test_grant_with_held_partitions_does_not_ask_the_owner():
    me, other = object(), object()
    granted, complete = grant({"s": {0, 1}}, lambda s, p: other, me, held={"s": {0: 5}})
    assert granted == {"s": {0}}
    assert not complete


# -- members and groups -------------------------------------------------------------------------------------


def test_bump_epoch_remembers_the_previous_one_only_on_change():
    m = GroupMember("m", member_epoch=3, previous_member_epoch=2)
    m.bump_epoch(3)
    assert (m.member_epoch, m.previous_member_epoch) == (3, 2)
    m.bump_epoch(5)
    assert (m.member_epoch, m.previous_member_epoch) == (5, 3)
    m.leave_temporarily()
    assert (m.member_epoch, m.previous_member_epoch) == (STATIC_LEAVE_EPOCH, 5)


def test_static_member_by_instance_id():
    g = ToyGroup("g")
    g.members["a"] = GroupMember("a", instance_id="i1")
    g.members["b"] = GroupMember("b")
    assert g.static_member("i1") is g.members["a"]
    assert g.static_member("i2") is None


# -- timers, records, replay ------------------------------------------------------------------------------------


def test_timer_keys_and_cancel_on_the_fake_clock(toy):
    g = toy._create_group("g")
    m = g.members["m"] = GroupMember("m")
    fired: list[str] = []
    toy.timer.schedule(toy._session_key(g, "m"), 100, lambda: fired.append("session"))
    toy._schedule_revocation(g, m, 50, lambda: fired.append("revoke"))
    assert set(toy.timer.timers) == {GroupTimerKey("toy-session", "g", "m"), GroupTimerKey("toy-revoke", "g", "m")}
    toy.timer.advance(60)
    assert fired == ["revoke"]
    toy._cancel_member_timers(g, "m")
    toy.timer.advance(1000)
    assert fired == ["revoke"]


def test_create_group_starts_empty_at_the_clock(toy):
    g = toy._create_group("g")
    assert toy.coordinator.groups["g"] is g
    assert (g.group_epoch, g.assignment_epoch, g.empty_since_ms) == (0, 0, 1000)
    assert toy.is_empty(g) and toy.empty_since(g) == 1000


def test_existing_or_new_errors(toy):
    with pytest.raises(ToyError) as e:
        toy._existing_or_new("g", False, "toy")
    assert (e.value.code, e.value.message) == (ErrorCode.GROUP_ID_NOT_FOUND, "Group g not found.")
    with pytest.raises(ToyError) as e:
        toy._existing_or_new("g", False, "toy", "Toy group g not found.")
    assert e.value.message == "Toy group g not found."
    toy.coordinator.groups["other"] = object()
    with pytest.raises(ToyError) as e:
        toy._existing_or_new("other", True, "toy")
    assert (e.value.code, e.value.message) == (ErrorCode.GROUP_ID_NOT_FOUND, "Group other is not a toy group.")
    created = toy._existing_or_new("g", True, "toy")
    assert toy._existing_or_new("g", False, "toy") is created


def test_records_round_trip_through_replay(toy):
    g = toy._create_group("g")
    g.members["m"] = GroupMember("m", member_epoch=4)
    records = []
    toy._next_group_epoch(g, records)
    g.assignment_epoch = 1
    records.append(toy._target_metadata_record(g))
    # Target metadata carries the clock's time as assignment timestamp.
    k, v = decode_record(TOY.types, 6, *records[-1])
    assert isinstance(v, ConsumerGroupTargetAssignmentMetadataValue)
    assert (k.group_id, v.assignment_epoch, v.assignment_timestamp) == ("g", 1, 1000)
    fresh = ToyManager(FakeCoordinator())
    for key, value in records:
        fresh.replay(int.from_bytes(key[:2], "big"), key, value)
    replayed = fresh.coordinator.groups["g"]
    assert isinstance(replayed, ToyGroup)
    assert (replayed.group_epoch, replayed.assignment_epoch) == (1, 1)


def test_tombstones_delete_members_then_the_group_on_replay(toy):
    live = toy._create_group("g")
    live.members["a"] = GroupMember("a")
    fresh = ToyManager(FakeCoordinator())
    g = fresh._create_group("g")
    g.members["a"] = GroupMember("a")
    g.target["a"] = {"t": {0}}
    tombstones = toy.tombstones(live)
    assert [v for _k, v in tombstones] == [None] * 5
    assert [int.from_bytes(k[:2], "big") for k, _v in tombstones] == [8, 7, 5, 6, 3]
    for key, value in tombstones[:3]:
        fresh.replay(int.from_bytes(key[:2], "big"), key, value)
    assert g.members == {} and g.target == {}
    for key, value in tombstones[3:]:
        fresh.replay(int.from_bytes(key[:2], "big"), key, value)
    assert "g" not in fresh.coordinator.groups


def test_a_tombstone_for_an_unknown_group_creates_nothing(toy):
    key, value = toy._member_tombstones(ToyGroup("g"), "m")[0]
    toy.replay(8, key, value)
    assert toy.coordinator.groups == {}


def test_fencing_messages_and_previous_epoch_rescue(toy):
    m = GroupMember("m", member_epoch=5, previous_member_epoch=4)
    toy._check_epoch("toy", 5, m, lambda: False)
    toy._check_epoch("toy", 4, m, lambda: True)  # the answer with epoch 5 may have been lost
    with pytest.raises(ToyError) as e:
        toy._check_epoch("toy", 4, m, lambda: False)
    assert e.value.code == ErrorCode.FENCED_MEMBER_EPOCH
    assert e.value.message == ("The toy group member has a smaller member epoch (4) than the one known by the group "
                               "coordinator (5).")
    with pytest.raises(ToyError) as e:
        toy._check_epoch("toy", 6, m, lambda: True, " Rejoin.", ", detail")
    assert e.value.message == ("The toy group member has a greater member epoch (6) than the one known by the group "
                               "coordinator (5). Rejoin.")
    with pytest.raises(ToyError) as e:
        toy._check_epoch("toy", 3, m, lambda: True, " Rejoin.", ", detail")
    assert e.value.message.endswith("coordinator (5), detail. Rejoin.")


def test_static_take_over_moves_the_member_and_restores_its_epoch(toy):
    g = toy._create_group("g")
    old = g.members["old"] = GroupMember("old", member_epoch=STATIC_LEAVE_EPOCH, previous_member_epoch=7,
                                         instance_id="i")
    toy.timer.schedule(toy._session_key(g, "old"), 100, lambda: None)
    records: list = []
    taken = toy._take_over_static(g, old, "new", records)
    assert taken is old and g.members == {"new": old}
    assert (old.member_id, old.member_epoch) == ("new", 7)
    assert toy.timer.timers == {}
    assert [int.from_bytes(k[:2], "big") for k, v in records if v is None] == [8, 7, 5]


def test_validate_fetch(toy):
    g = toy._create_group("g")
    g.members["m"] = GroupMember("m", member_epoch=3)
    assert toy.validate_fetch(g, None, -1) == ErrorCode.NONE
    assert toy.validate_fetch(g, "x", 3) == ErrorCode.UNKNOWN_MEMBER_ID
    assert toy.validate_fetch(g, "m", 2) == ErrorCode.STALE_MEMBER_EPOCH
    assert toy.validate_fetch(g, "m", 3) == ErrorCode.NONE


def test_mark_dead_cancels_member_timers_and_clears_members(toy):
    g = toy._create_group("g")
    g.members["m"] = GroupMember("m")
    toy.timer.schedule(toy._session_key(g, "m"), 10, lambda: None)
    toy.timer.schedule(toy._revoke_key(g, "m"), 10, lambda: None)
    toy.mark_dead(g)
    assert toy.timer.timers == {} and g.members == {}


# -- through a real kind: a consumer group's records replay into the same state ------------------------------------


def test_consumer_group_state_survives_replay():
    coordinator = FakeCoordinator()
    coordinator.broker.image.topics["t"] = FakeTopic("t", uuid.uuid4(), dict.fromkeys(range(4)))
    manager = ConsumerGroupManager(coordinator)
    for mid in ("a", "b"):
        r = manager.heartbeat(ConsumerGroupHeartbeatRequest(
            group_id="g", member_id=mid, member_epoch=0, rebalance_timeout_ms=1000, subscribed_topic_names=["t"],
            topic_partitions=[]), 1, "c", "/h")
        assert r.error_code == ErrorCode.NONE
    # a gives up what b is to get, then both converge.
    live = coordinator.groups["g"]
    a = live.members["a"]
    owned = [TopicPartitions(topic_id=coordinator.broker.image.topics["t"].topic_id, partitions=sorted(a.assigned["t"]))]
    manager.heartbeat(ConsumerGroupHeartbeatRequest(group_id="g", member_id="a", member_epoch=a.member_epoch,
                                                    topic_partitions=owned), 1, "c", "/h")
    assert GroupTimerKey("cg-session", "g", "a") in coordinator.timer.timers
    fresh = FakeCoordinator()
    fresh.broker = coordinator.broker
    replayer = ConsumerGroupManager(fresh)
    for key, value in coordinator.records:
        replayer.apply(int.from_bytes(key[:2], "big"), key, value, replay=True)
    replayed = fresh.groups["g"]
    assert isinstance(replayed, ConsumerGroup)
    assert (replayed.group_epoch, replayed.assignment_epoch) == (live.group_epoch, live.assignment_epoch)
    assert replayed.target == live.target
    for mid, m in live.members.items():
        r = replayed.members[mid]
        assert isinstance(r, ConsumerMember)
        assert (r.member_epoch, r.previous_member_epoch, r.state, r.assigned, r.pending_revocation) == (
            m.member_epoch, m.previous_member_epoch, m.state, m.assigned, m.pending_revocation)
    # The session timeout on the fake clock removes a member that stops heartbeating.
    coordinator.timer.advance(10000)
    assert live.members == {}


def test_consumer_group_max_size_for_heartbeat_and_classic_join():
    from kbroker_protocol.messages.data.consumer_protocol_subscription import ConsumerProtocolSubscription

    coordinator = FakeCoordinator()
    coordinator.broker.config["group.max.size"] = 1
    coordinator.broker.config.update({"group.min.session.timeout.ms": 6000, "group.max.session.timeout.ms": 60000})
    coordinator.broker.image.topics["t"] = FakeTopic("t", uuid.uuid4(), dict.fromkeys(range(2)))
    manager = ConsumerGroupManager(coordinator)

    def join(mid: str) -> ErrorCode:
        return manager.heartbeat(ConsumerGroupHeartbeatRequest(
            group_id="g", member_id=mid, member_epoch=0, rebalance_timeout_ms=1000, subscribed_topic_names=["t"],
            topic_partitions=[]), 1, "c", "/h").error_code

    assert join("a") == ErrorCode.NONE
    assert join("b") == ErrorCode.GROUP_MAX_SIZE_REACHED
    group = coordinator.groups["g"]
    assert set(group.members) == {"a"}
    metadata = b"\x00\x00" + ConsumerProtocolSubscription(topics=["t"]).encode(0)
    response = manager.classic_join(group, member_id="c1", group_instance_id=None, protocol_type="consumer",
                                    protocols=[("range", metadata)], session_timeout_ms=10000,
                                    rebalance_timeout_ms=10000, client_id="c", client_host="/h",
                                    require_known_member_id=False)
    assert response.error_code == ErrorCode.GROUP_MAX_SIZE_REACHED
    assert set(group.members) == {"a"}
