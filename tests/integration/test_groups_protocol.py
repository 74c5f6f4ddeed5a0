"""The group coordinator at the protocol level: requests built with the generated codec over raw
sockets, so every error code a client library would hide can be checked."""

from __future__ import annotations

import itertools
import struct
import uuid

import pytest
from waiting import wait_until
from wire import Wire, find_coordinator

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.delete_groups import DeleteGroupsRequest
from kbroker_protocol.messages.describe_groups import DescribeGroupsRequest
from kbroker_protocol.messages.find_coordinator import FindCoordinatorRequest
from kbroker_protocol.messages.heartbeat import HeartbeatRequest
from kbroker_protocol.messages.leave_group import LeaveGroupRequest
from kbroker_protocol.messages.list_groups import ListGroupsRequest
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest
from kbroker_protocol.messages.offset_delete import OffsetDeleteRequest
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest
from kbroker_protocol.messages.sync_group import SyncGroupRequest
from tests.integration.groups_protocol_helpers import (
    commit_errors,
    commit_request,
    create_topic,
    join_member,
    join_request,
    sync_request,
)

GROUP_CONFIG = {
    "group.min.session.timeout.ms": "500",
    "group.max.session.timeout.ms": "60000",
    "group.initial.rebalance.delay.ms": "0",
}

_ids = itertools.count(1)


def fetch_v5(wire, group, topic, partitions):
    resp = wire.call(OffsetFetchRequest(group_id=group, topics=[
        OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=partitions)]), 5)
    assert resp.error_code == ErrorCode.NONE
    return {p.partition_index: (p.committed_offset, p.metadata, p.error_code) for t in resp.topics
            for p in t.partitions}


def group_of(broker, group_id):
    return broker.call(lambda: broker.broker.group_coordinator.groups.get(group_id))


@pytest.fixture(scope="module")
def gbroker():
    with BrokerThread(config=GROUP_CONFIG) as b:
        yield b


@pytest.fixture
def wire(gbroker):
    w = Wire(gbroker.bootstrap_servers)
    yield w
    w.close()


@pytest.fixture
def group() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic(gbroker) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    create_topic(gbroker, name, 4)
    return name


# -- FindCoordinator ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(0, 7))
def test_find_coordinator_every_version(gbroker, wire, version):
    port = int(gbroker.bootstrap_servers.rsplit(":", 1)[1])
    for key_type in (0, 1):  # as in Kafka, the first lookup of each type creates its internal topic
        assert find_coordinator(wire, key_type, ["warm-up"], 1).error_code == ErrorCode.NONE
    if version < 4:
        resp = wire.call(FindCoordinatorRequest(key="some-group", key_type=0), version)
        assert (resp.error_code, resp.node_id, resp.port) == (ErrorCode.NONE, 1, port)
        if version >= 1:
            resp = wire.call(FindCoordinatorRequest(key="txn-id", key_type=1), version)
            assert (resp.error_code, resp.node_id) == (ErrorCode.NONE, 1)
            resp = wire.call(FindCoordinatorRequest(key="x", key_type=7), version)
            assert resp.error_code == ErrorCode.INVALID_REQUEST
        return
    resp = wire.call(FindCoordinatorRequest(key_type=0, coordinator_keys=["a", "b", ""]), version)
    got = [(c.key, c.error_code, c.node_id) for c in resp.coordinators]
    assert got == [("a", 0, 1), ("b", 0, 1), ("", 0, 1)]  # keys are not validated, as in Kafka
    resp = wire.call(FindCoordinatorRequest(key_type=1, coordinator_keys=["t1"]), version)
    assert [(c.key, c.error_code, c.port) for c in resp.coordinators] == [("t1", 0, port)]
    # Share coordinator keys (v6+): group:topicId:partition, a malformed one is INVALID_REQUEST; the
    # first lookup asks for __share_group_state (COORDINATOR_NOT_AVAILABLE until it exists; retried).
    share = wire.call(FindCoordinatorRequest(key_type=2, coordinator_keys=["g:x:0"]), version)
    assert [c.error_code for c in share.coordinators] == [ErrorCode.INVALID_REQUEST]
    if version >= 6:
        key = "g:AAAAAAAAAAAAAAAAAAAAAQ:0"
        found = find_coordinator(wire, 2, [key], version).coordinators[0]
        assert (found.error_code, found.node_id, found.port) == (ErrorCode.NONE, 1, port)


# -- JoinGroup / SyncGroup / Heartbeat ---------------------------------------------------------------------


def test_member_id_required_then_leader_then_stale_generation_commit(gbroker, wire, group, topic):
    first = wire.call(join_request(group), 5)
    assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED
    assert first.member_id.startswith("wire-")
    joined = wire.call(join_request(group, member_id=first.member_id), 5)
    assert joined.error_code == ErrorCode.NONE
    assert (joined.generation_id, joined.leader, joined.member_id) == (1, first.member_id, first.member_id)
    assert joined.protocol_name == "range"
    assert [(m.member_id, bytes(m.metadata)) for m in joined.members] == [(first.member_id, b"meta-range")]
    me = joined.member_id
    synced = wire.call(sync_request(group, 1, me, [(me, b"assignment-1")]), 5)
    assert (synced.error_code, bytes(synced.assignment), synced.protocol_name) == (0, b"assignment-1", "range")
    assert wire.call(HeartbeatRequest(group_id=group, generation_id=1, member_id=me), 4).error_code == 0

    ok = wire.call(commit_request(group, 1, me, topic, {0: 10, 1: 11}), 8)
    assert commit_errors(ok) == {0: 0, 1: 0}
    stale = wire.call(commit_request(group, 0, me, topic, {0: 99}), 8)
    assert commit_errors(stale) == {0: ErrorCode.ILLEGAL_GENERATION}
    ahead = wire.call(commit_request(group, 2, me, topic, {0: 99}), 2)
    assert commit_errors(ahead) == {0: ErrorCode.ILLEGAL_GENERATION}
    stranger = wire.call(commit_request(group, 1, "not-a-member", topic, {0: 99}), 8)
    assert commit_errors(stranger) == {0: ErrorCode.UNKNOWN_MEMBER_ID}
    outsider = wire.call(commit_request(group, -1, "", topic, {0: 99}), 8)
    assert commit_errors(outsider) == {0: ErrorCode.UNKNOWN_MEMBER_ID}  # group is not empty
    assert fetch_v5(wire, group, topic, [0, 1, 2]) == {0: (10, "m", 0), 1: (11, "m", 0), 2: (-1, "", 0)}

    # A second member starts a rebalance: the first learns it from its heartbeat, rejoins, and
    # both get generation 2; commits of generation 1 are now stale.
    other = Wire(gbroker.bootstrap_servers)
    try:
        required = other.call(join_request(group), 5)
        other.send(join_request(group, member_id=required.member_id), 5)
        assert wait_until(lambda: wire.call(HeartbeatRequest(group_id=group, generation_id=1, member_id=me), 4)
                          .error_code == ErrorCode.REBALANCE_IN_PROGRESS, message="rebalance seen by heartbeat")
        rejoined = wire.call(join_request(group, member_id=me), 5)
        second = other.receive()
        assert rejoined.generation_id == second.generation_id == 2
        assert rejoined.leader == me and len(rejoined.members) == 2 and second.members == []
        other.send(sync_request(group, 2, second.member_id), 5)
        synced = wire.call(sync_request(group, 2, me, [(me, b"a"), (second.member_id, b"b")]), 5)
        assert bytes(synced.assignment) == b"a"
        assert bytes(other.receive().assignment) == b"b"
        stale = wire.call(commit_request(group, 1, me, topic, {0: 50}), 8)
        assert commit_errors(stale) == {0: ErrorCode.ILLEGAL_GENERATION}
        stale_hb = wire.call(HeartbeatRequest(group_id=group, generation_id=1, member_id=me), 4)
        assert stale_hb.error_code == ErrorCode.ILLEGAL_GENERATION
    finally:
        other.close()


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_join_before_v4_needs_no_member_id_round_trip(wire, group, version):
    resp = wire.call(join_request(group), version)
    assert resp.error_code == ErrorCode.NONE and resp.generation_id == 1 and resp.member_id
    assert resp.protocol_name == "range"


@pytest.mark.parametrize("version", [6, 7, 8, 9])
def test_join_flexible_versions(wire, group, version):
    resp = join_member(wire, group, version)
    assert resp.error_code == ErrorCode.NONE and resp.leader == resp.member_id
    if version >= 7:
        assert resp.protocol_type == "consumer"
    synced = wire.call(sync_request(group, resp.generation_id, resp.member_id, [(resp.member_id, b"x")]),
                       min(version - 4, 5))
    assert bytes(synced.assignment) == b"x"


def test_join_validation_errors(gbroker, wire, group):
    assert wire.call(join_request(group, session=100), 5).error_code == ErrorCode.INVALID_SESSION_TIMEOUT
    assert wire.call(join_request(group, session=10**6), 5).error_code == ErrorCode.INVALID_SESSION_TIMEOUT
    assert wire.call(join_request("", session=1000), 5).error_code == ErrorCode.INVALID_GROUP_ID
    assert wire.call(join_request(group, member_id="ghost"), 5).error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert group_of(gbroker, group) is None
    joined = join_member(wire, group)
    assert joined.error_code == ErrorCode.NONE
    other = wire.call(join_request(group, protocol_type="connect"), 3)
    assert other.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    disjoint = wire.call(join_request(group, protocols=[("sticky", b"")]), 3)
    assert disjoint.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    bad_sync = wire.call(SyncGroupRequest(group_id=group, generation_id=1, member_id=joined.member_id,
                                          protocol_type="consumer", protocol_name="roundrobin", assignments=[]), 5)
    assert bad_sync.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert wire.call(sync_request(group, 7, joined.member_id), 5).error_code == ErrorCode.ILLEGAL_GENERATION
    assert wire.call(sync_request(group, 1, "ghost"), 5).error_code == ErrorCode.UNKNOWN_MEMBER_ID
    hb = wire.call(HeartbeatRequest(group_id="no-such-group", generation_id=1, member_id="x"), 4)
    assert hb.error_code == ErrorCode.UNKNOWN_MEMBER_ID


def test_protocol_chosen_by_vote_among_common_protocols(gbroker, group):
    a, b = Wire(gbroker.bootstrap_servers), Wire(gbroker.bootstrap_servers)
    try:
        a.send(join_request(group, protocols=[("range", b"1"), ("roundrobin", b"2"), ("sticky", b"3")]), 3)
        first = a.receive()
        assert first.protocol_name == "range"
        b.send(join_request(group, protocols=[("sticky", b"4"), ("roundrobin", b"5")]), 3)
        wait_until(lambda: group_of(gbroker, group).state.value == "PreparingRebalance")
        a.send(join_request(group, member_id=first.member_id, protocols=[("roundrobin", b"2"), ("sticky", b"3")]), 3)
        ra, rb = a.receive(), b.receive()
        # Candidates {roundrobin, sticky}: one vote each, the earliest vote (the leader's) wins.
        assert ra.protocol_name == rb.protocol_name == "roundrobin"
        assert sorted(bytes(m.metadata) for m in ra.members) == [b"2", b"5"]
    finally:
        a.close()
        b.close()


def test_session_timeout_expires_silent_member(gbroker, wire, group):
    joined = join_member(wire, group, session=600)
    wire.call(sync_request(group, 1, joined.member_id, [(joined.member_id, b"x")]), 3)
    wait_until(lambda: group_of(gbroker, group).state.value == "Empty", message="member expired")
    hb = wire.call(HeartbeatRequest(group_id=group, generation_id=1, member_id=joined.member_id), 3)
    assert hb.error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert group_of(gbroker, group).generation == 2


def test_rebalance_timeout_drops_members_that_do_not_rejoin(gbroker, group):
    a, b = Wire(gbroker.bootstrap_servers), Wire(gbroker.bootstrap_servers)
    try:
        first = join_member(a, group, session=30000, rebalance=800)
        a.call(sync_request(group, 1, first.member_id, [(first.member_id, b"x")]), 3)
        # b joins; a never rejoins, so after a's rebalance timeout (800 ms) b is alone.
        second = join_member(b, group, session=30000, rebalance=800)
        assert second.error_code == ErrorCode.NONE and second.generation_id == 2
        assert second.leader == second.member_id and [m.member_id for m in second.members] == [second.member_id]
        hb = a.call(HeartbeatRequest(group_id=group, generation_id=1, member_id=first.member_id), 3)
        assert hb.error_code == ErrorCode.UNKNOWN_MEMBER_ID
    finally:
        a.close()
        b.close()


def test_member_that_never_syncs_is_removed_and_group_rebalances(gbroker, group):
    a, b = Wire(gbroker.bootstrap_servers), Wire(gbroker.bootstrap_servers)
    try:
        first = join_member(a, group, session=30000, rebalance=800)
        a.call(sync_request(group, 1, first.member_id, [(first.member_id, b"x")]), 3)
        b.send(join_request(group, session=30000, rebalance=800), 3)
        rejoin = a.call(join_request(group, member_id=first.member_id, session=30000, rebalance=800), 3)
        joined_b = b.receive()
        assert rejoin.generation_id == joined_b.generation_id == 2
        a.call(sync_request(group, 2, first.member_id, [(first.member_id, b"a"), (joined_b.member_id, b"b")]), 3)
        # b never sends SyncGroup: after the rebalance timeout it is removed and a must rejoin.
        wait_until(lambda: a.call(HeartbeatRequest(group_id=group, generation_id=2, member_id=first.member_id), 3)
                   .error_code == ErrorCode.REBALANCE_IN_PROGRESS, message="rebalance after missing sync")
        again = a.call(join_request(group, member_id=first.member_id, session=30000, rebalance=800), 3)
        assert again.generation_id == 3 and [m.member_id for m in again.members] == [first.member_id]
    finally:
        a.close()
        b.close()


# -- static membership (KIP-345) --------------------------------------------------------------------------


def test_static_member_rejoin_fences_old_id_without_rebalance(gbroker, wire, group, topic):
    joined = join_member(wire, group, instance="inst-1")
    assert joined.member_id.startswith("inst-1-")
    old = joined.member_id
    wire.call(sync_request(group, 1, old, [(old, b"mine")], instance="inst-1"), 5)
    # Restart: same instance id, no member id. Same generation, same assignment, new member id.
    again = wire.call(join_request(group, instance="inst-1"), 9)
    assert again.error_code == ErrorCode.NONE
    assert again.generation_id == 1 and again.member_id != old
    assert again.leader == again.member_id and again.skip_assignment is True
    synced = wire.call(sync_request(group, 1, again.member_id, instance="inst-1"), 5)
    assert bytes(synced.assignment) == b"mine"
    assert group_of(gbroker, group).generation == 1
    fenced = wire.call(HeartbeatRequest(group_id=group, generation_id=1, member_id=old, group_instance_id="inst-1"), 4)
    assert fenced.error_code == ErrorCode.FENCED_INSTANCE_ID
    fenced_commit = wire.call(commit_request(group, 1, old, topic, {0: 1}, instance="inst-1"), 8)
    assert commit_errors(fenced_commit) == {0: ErrorCode.FENCED_INSTANCE_ID}
    fenced_join = wire.call(join_request(group, member_id=old, instance="inst-1"), 5)
    assert fenced_join.error_code == ErrorCode.FENCED_INSTANCE_ID
    M = LeaveGroupRequest.MemberIdentity
    leave = wire.call(LeaveGroupRequest(group_id=group, members=[
        M(member_id=old, group_instance_id="inst-1"), M(member_id="", group_instance_id="nobody")]), 3)
    assert [m.error_code for m in leave.members] == [ErrorCode.FENCED_INSTANCE_ID, ErrorCode.UNKNOWN_MEMBER_ID]
    leave = wire.call(LeaveGroupRequest(group_id=group, members=[M(member_id="", group_instance_id="inst-1")]), 5)
    assert leave.error_code == 0 and [m.error_code for m in leave.members] == [0]
    wait_until(lambda: group_of(gbroker, group).state.value == "Empty")


def test_leave_group_of_several_members_and_old_versions(gbroker, group):
    wires = [Wire(gbroker.bootstrap_servers) for _ in range(3)]
    try:
        first = join_member(wires[0], group)
        wires[0].call(sync_request(group, 1, first.member_id, [(first.member_id, b"")]), 3)
        for w in wires[1:]:
            w.send(join_request(group), 3)
        wait_until(lambda: len(group_of(gbroker, group).members) == 3)
        wires[0].call(join_request(group, member_id=first.member_id), 5)
        others = [w.receive() for w in wires[1:]]
        assert {r.generation_id for r in others} == {2}
        M = LeaveGroupRequest.MemberIdentity
        resp = wires[0].call(LeaveGroupRequest(group_id=group, members=[
            M(member_id=others[0].member_id), M(member_id=others[1].member_id), M(member_id="ghost")]), 4)
        assert [m.error_code for m in resp.members] == [0, 0, ErrorCode.UNKNOWN_MEMBER_ID]
        old = wires[0].call(LeaveGroupRequest(group_id=group, member_id="ghost"), 0)
        assert old.error_code == ErrorCode.UNKNOWN_MEMBER_ID
        old = wires[0].call(LeaveGroupRequest(group_id=group, member_id=first.member_id), 1)
        assert old.error_code == ErrorCode.NONE
        wait_until(lambda: group_of(gbroker, group).state.value == "Empty")
    finally:
        for w in wires:
            w.close()


# -- offsets ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(2, 11))
def test_simple_commit_and_fetch_every_version(gbroker, wire, group, topic, version):
    req = commit_request(group, -1, "", topic, {0: 5, 3: 7})
    if version >= 10:
        topic_id = gbroker.call(lambda: gbroker.broker.image.topic(topic).topic_id)
        req.topics[0].topic_id = topic_id
        req.topics[0].name = ""
    resp = wire.call(req, version)
    assert commit_errors(resp) == {0: 0, 3: 0}
    for fetch_version in range(1, 11):
        if fetch_version < 8:
            resp = wire.call(OffsetFetchRequest(group_id=group, topics=[
                OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0, 1, 3])]), fetch_version)
            parts = {p.partition_index: p.committed_offset for t in resp.topics for p in t.partitions}
        else:
            G = OffsetFetchRequest.OffsetFetchRequestGroup
            topic_req = G.OffsetFetchRequestTopics(name=topic, partition_indexes=[0, 1, 3])
            if fetch_version >= 10:
                topic_req.topic_id = gbroker.call(lambda: gbroker.broker.image.topic(topic).topic_id)
            resp = wire.call(OffsetFetchRequest(groups=[G(group_id=group, topics=[topic_req]),
                                                        G(group_id=group + "-none", topics=None)]), fetch_version)
            assert [g.group_id for g in resp.groups] == [group, group + "-none"]
            assert resp.groups[1].topics == []
            parts = {p.partition_index: p.committed_offset for t in resp.groups[0].topics for p in t.partitions}
        assert parts == {0: 5, 1: -1, 3: 7}, fetch_version


def test_commit_errors_per_partition(gbroker, wire, group, topic):
    T = OffsetCommitRequest.OffsetCommitRequestTopic
    P = T.OffsetCommitRequestPartition
    big = "x" * 5000  # offset.metadata.max.bytes defaults to 4096
    resp = wire.call(OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=-1, member_id="", topics=[
        T(name=topic, partitions=[P(partition_index=0, committed_offset=1, committed_metadata=big),
                                  P(partition_index=1, committed_offset=2, committed_metadata=None),
                                  P(partition_index=9, committed_offset=3)]),
        T(name="no-such-topic", partitions=[P(partition_index=0, committed_offset=4)])]), 8)
    errors = [(t.name, p.partition_index, p.error_code) for t in resp.topics for p in t.partitions]
    assert errors == [(topic, 0, ErrorCode.OFFSET_METADATA_TOO_LARGE), (topic, 1, 0),
                      (topic, 9, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                      ("no-such-topic", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    assert fetch_v5(wire, group, topic, [0, 1]) == {0: (-1, "", 0), 1: (2, "", 0)}
    unknown_group = wire.call(commit_request(group + "-x", 3, "m", topic, {0: 1}), 9)
    assert commit_errors(unknown_group) == {0: ErrorCode.GROUP_ID_NOT_FOUND}
    unknown_group = wire.call(commit_request(group + "-x", 3, "m", topic, {0: 1}), 8)
    assert commit_errors(unknown_group) == {0: ErrorCode.ILLEGAL_GENERATION}
    all_offsets = wire.call(OffsetFetchRequest(group_id=group, topics=None), 7)
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in all_offsets.topics] == [(topic, [1])]


def test_commit_during_completing_rebalance_is_rebalance_in_progress(gbroker, wire, group, topic):
    joined = join_member(wire, group)
    resp = wire.call(commit_request(group, 1, joined.member_id, topic, {0: 1}), 8)
    assert commit_errors(resp) == {0: ErrorCode.REBALANCE_IN_PROGRESS}


def test_require_stable_sees_pending_transactional_offsets(gbroker, wire, group, topic):
    coordinator = gbroker.broker.group_coordinator
    assert gbroker.call(coordinator.prepare_txn_offsets, group, 4242, 0, {(topic, 0): (77, -1, "tx")}) == 0
    assert gbroker.call(coordinator.has_pending_txn_offsets, group, topic, 0)

    def fetch(require_stable):
        resp = wire.call(OffsetFetchRequest(group_id=group, require_stable=require_stable, topics=[
            OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0, 1])]), 7)
        return {p.partition_index: (p.committed_offset, p.error_code) for t in resp.topics for p in t.partitions}

    assert fetch(True) == {0: (-1, ErrorCode.UNSTABLE_OFFSET_COMMIT), 1: (-1, 0)}
    assert fetch(False) == {0: (-1, 0), 1: (-1, 0)}
    gbroker.call(coordinator.complete_txn_offsets, 4242, group, True)
    assert fetch(True) == {0: (77, 0), 1: (-1, 0)}
    gbroker.call(coordinator.prepare_txn_offsets, group, 4243, 0, {(topic, 1): (5, -1, "")})
    gbroker.call(coordinator.complete_txn_offsets, 4243, group, False)
    assert fetch(True) == {0: (77, 0), 1: (-1, 0)}


# -- describe, list, delete -------------------------------------------------------------------------------


def test_describe_list_and_delete_groups(gbroker, wire, group, topic):
    joined = join_member(wire, group)
    me = joined.member_id
    wire.call(sync_request(group, 1, me, [(me, b"assigned")]), 3)
    for version in range(0, 7):
        resp = wire.call(DescribeGroupsRequest(groups=[group, "no-such-group"]), version)
        found, missing = resp.groups
        assert (found.error_code, found.group_state, found.protocol_type, found.protocol_data) == (
            0, "Stable", "consumer", "range")
        assert [(m.member_id, bytes(m.member_metadata), bytes(m.member_assignment)) for m in found.members] == [
            (me, b"meta-range", b"assigned")]
        assert found.members[0].client_host.startswith("/127.0.0.1")
        expected_missing = ErrorCode.GROUP_ID_NOT_FOUND if version >= 6 else ErrorCode.NONE
        assert (missing.error_code, missing.group_state) == (expected_missing, "Dead")
    listed = wire.call(ListGroupsRequest(), 0)
    assert any(g.group_id == group and g.protocol_type == "consumer" for g in listed.groups)
    stable = wire.call(ListGroupsRequest(states_filter=["stable"]), 4)
    assert group in {g.group_id for g in stable.groups}
    assert all(g.group_state == "Stable" for g in stable.groups)
    empty = wire.call(ListGroupsRequest(states_filter=["Empty"]), 4)
    assert group not in {g.group_id for g in empty.groups}
    typed = wire.call(ListGroupsRequest(types_filter=["classic"]), 5)
    assert any(g.group_id == group and g.group_type == "classic" for g in typed.groups)
    assert group not in {g.group_id for g in wire.call(ListGroupsRequest(types_filter=["consumer"]), 5).groups}

    wire.call(commit_request(group, 1, me, topic, {0: 3}), 8)
    resp = wire.call(DeleteGroupsRequest(groups_names=[group, "no-such-group", ""]), 2)
    assert [(r.group_id, r.error_code) for r in resp.results] == [
        (group, ErrorCode.NON_EMPTY_GROUP), ("no-such-group", ErrorCode.GROUP_ID_NOT_FOUND),
        ("", ErrorCode.INVALID_GROUP_ID)]
    wire.call(LeaveGroupRequest(group_id=group, member_id=me), 1)
    resp = wire.call(DeleteGroupsRequest(groups_names=[group]), 0)
    assert [(r.group_id, r.error_code) for r in resp.results] == [(group, 0)]
    assert fetch_v5(wire, group, topic, [0]) == {0: (-1, "", 0)}
    assert wire.call(DescribeGroupsRequest(groups=[group]), 6).groups[0].error_code == ErrorCode.GROUP_ID_NOT_FOUND


def test_offset_delete_rules(gbroker, wire, group, topic):
    from kbroker_protocol.messages.data.consumer_protocol_subscription import ConsumerProtocolSubscription

    T = OffsetDeleteRequest.OffsetDeleteRequestTopic
    P = T.OffsetDeleteRequestPartition

    def delete(group_id, topic_name, partitions):
        return wire.call(OffsetDeleteRequest(group_id=group_id, topics=[
            T(name=topic_name, partitions=[P(partition_index=p) for p in partitions])]), 0)

    assert delete("no-such-group", topic, [0]).error_code == ErrorCode.GROUP_ID_NOT_FOUND
    subscription = struct.pack(">h", 0) + ConsumerProtocolSubscription(topics=[topic]).encode(0)
    joined = join_member(wire, group, protocols=[("range", subscription)])
    me = joined.member_id
    wire.call(sync_request(group, 1, me, [(me, b"")]), 3)
    wire.call(commit_request(group, 1, me, topic, {0: 1, 1: 2}), 8)
    other = f"t-{uuid.uuid4().hex[:8]}"
    create_topic(gbroker, other, 1)
    wire.call(commit_request(group, 1, me, other, {0: 9}), 8)
    resp = delete(group, topic, [0])
    assert resp.error_code == 0
    assert [(p.partition_index, p.error_code) for t in resp.topics for p in t.partitions] == [
        (0, ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC)]
    resp = delete(group, other, [0])
    assert [(p.partition_index, p.error_code) for t in resp.topics for p in t.partitions] == [(0, 0)]
    assert fetch_v5(wire, group, other, [0]) == {0: (-1, "", 0)}
    assert fetch_v5(wire, group, topic, [0, 1]) == {0: (1, "m", 0), 1: (2, "m", 0)}


# -- persistence --------------------------------------------------------------------------------------------


def test_restart_keeps_offsets_stable_group_and_pending_transactions(tmp_path):
    data_dir = str(tmp_path / "data")
    config = dict(GROUP_CONFIG, **{"offsets.topic.num.partitions": "3"})
    group, simple = "restart-group", "restart-simple"
    with BrokerThread(config=config, data_dir=data_dir) as b:
        create_topic(b, "events", 4)
        w1, w2 = Wire(b.bootstrap_servers), Wire(b.bootstrap_servers)
        first = join_member(w1, group, instance="static-1", session=30000)
        w1.call(sync_request(group, 1, first.member_id, [(first.member_id, b"")], instance="static-1"), 3)
        w2.send(join_request(group, session=30000), 3)
        rejoin = w1.call(join_request(group, member_id=first.member_id, instance="static-1", session=30000), 5)
        second = w2.receive()
        assignments = [(first.member_id, b"p0,p1"), (second.member_id, b"p2,p3")]
        w2.send(sync_request(group, 2, second.member_id), 3)
        w1.call(sync_request(group, 2, first.member_id, assignments, instance="static-1"), 3)
        assert bytes(w2.receive().assignment) == b"p2,p3"
        assert rejoin.generation_id == 2
        w1.call(commit_request(group, 2, first.member_id, "events", {0: 100, 1: 101}), 8)
        w1.call(commit_request(simple, -1, "", "events", {3: 7}, metadata="simple"), 3)
        coordinator = b.broker.group_coordinator
        b.call(coordinator.prepare_txn_offsets, simple, 900, 1, {("events", 2): (55, 4, "tx")})
        b.call(coordinator.complete_txn_offsets, 900, simple, True)
        b.call(coordinator.prepare_txn_offsets, simple, 901, 1, {("events", 0): (66, 4, "open")})
        w1.close()
        w2.close()
    with BrokerThread(config=config, data_dir=data_dir) as b:
        w = Wire(b.bootstrap_servers)
        try:
            described = w.call(DescribeGroupsRequest(groups=[group]), 5).groups[0]
            assert (described.group_state, described.protocol_data) == ("Stable", "range")
            assert sorted((m.member_id, m.group_instance_id, bytes(m.member_assignment)) for m in described.members) \
                == sorted([(first.member_id, "static-1", b"p0,p1"), (second.member_id, None, b"p2,p3")])
            assert group_of(b, group).generation == 2
            for member_id, instance in ((first.member_id, "static-1"), (second.member_id, None)):
                hb = w.call(HeartbeatRequest(group_id=group, generation_id=2, member_id=member_id,
                                             group_instance_id=instance), 3)
                assert hb.error_code == ErrorCode.NONE
            synced = w.call(sync_request(group, 2, second.member_id), 3)
            assert bytes(synced.assignment) == b"p2,p3"
            assert fetch_v5(w, group, "events", [0, 1, 2]) == {0: (100, "m", 0), 1: (101, "m", 0), 2: (-1, "", 0)}
            assert fetch_v5(w, simple, "events", [0, 2, 3]) == {
                0: (-1, "", 0), 2: (55, "tx", 0), 3: (7, "simple", 0)}
            coordinator = b.broker.group_coordinator
            assert b.call(coordinator.has_pending_txn_offsets, simple, "events", 0)
            b.call(coordinator.complete_txn_offsets, 901, simple, True)
            assert fetch_v5(w, simple, "events", [0]) == {0: (66, "open", 0)}
            stale = w.call(commit_request(group, 1, first.member_id, "events", {0: 1}), 8)
            assert commit_errors(stale) == {0: ErrorCode.ILLEGAL_GENERATION}
        finally:
            w.close()


def test_consumer_offsets_records_are_kafka_formats(tmp_path):
    """What lands in __consumer_offsets decodes with Kafka's schemas, in the partition Kafka uses."""
    from kbroker_protocol.messages.coordinator import (
        GroupMetadataKey,
        GroupMetadataValue,
        OffsetCommitKey,
        OffsetCommitValue,
    )
    from kbroker_protocol.records import iter_records

    config = dict(GROUP_CONFIG, **{"offsets.topic.num.partitions": "7"})
    group = "format-check"
    with BrokerThread(config=config) as b:
        create_topic(b, "fmt", 1)
        w = Wire(b.bootstrap_servers)
        joined = join_member(w, group)
        w.call(sync_request(group, 1, joined.member_id, [(joined.member_id, b"A")]), 3)
        w.call(commit_request(group, 1, joined.member_id, "fmt", {0: 42}), 8)
        w.close()
        h = 0
        for ch in group:  # Java's String.hashCode over an ASCII id, then Utils.abs
            h = (31 * h + ord(ch)) & 0xFFFFFFFF
        h = h - (1 << 32) if h >= 1 << 31 else h
        index = abs(h) % 7
        log = b.broker.partition("__consumer_offsets", index).log

        def records():
            return [r for _h, data in log.iter_batches() for r in iter_records(data)]

        recs = b.call(records)
        kinds = [struct.unpack_from(">h", r.key)[0] for r in recs]
        assert kinds == [2, 2, 1]
        created_rec, group_rec, offset_rec = recs
        # the JoinGroup that created the group wrote it empty (Kafka's newEmptyGroupMetadataRecord)
        created = GroupMetadataValue.decode(created_rec.value[2:], struct.unpack_from(">h", created_rec.value)[0])
        assert GroupMetadataKey.decode(created_rec.key[2:], 0).group == group
        assert (created.protocol_type, created.generation, created.protocol, created.leader, created.members) == (
            "", 0, None, None, [])
        assert GroupMetadataKey.decode(group_rec.key[2:], 0).group == group
        version = struct.unpack_from(">h", group_rec.value)[0]
        gv = GroupMetadataValue.decode(group_rec.value[2:], version)
        assert (gv.protocol_type, gv.generation, gv.protocol, gv.leader) == ("consumer", 1, "range", joined.member_id)
        assert [(m.member_id, bytes(m.assignment)) for m in gv.members] == [(joined.member_id, b"A")]
        key = OffsetCommitKey.decode(offset_rec.key[2:], 0)
        assert (key.group, key.topic, key.partition) == (group, "fmt", 0)
        value = OffsetCommitValue.decode(offset_rec.value[2:], struct.unpack_from(">h", offset_rec.value)[0])
        assert (value.offset, value.metadata) == (42, "m")
        topic = b.broker.image.topic("__consumer_offsets")
        assert topic.configs.get("cleanup.policy") == "compact"


def test_offset_retention_by_the_periodic_check():
    """Offsets of empty groups, and of topics a live consumer group no longer subscribes to, expire;
    the check runs every offsets.retention.check.interval.ms (the clock is moved past retention)."""
    from kbroker_protocol.messages.data.consumer_protocol_subscription import ConsumerProtocolSubscription

    config = dict(GROUP_CONFIG, **{"offsets.retention.check.interval.ms": "100"})
    with BrokerThread(config=config) as b:
        create_topic(b, "kept", 1)
        create_topic(b, "dropped", 1)
        w = Wire(b.bootstrap_servers)
        try:
            # As clients do: the coordinator first (its lookup creates and loads __consumer_offsets;
            # group requests meanwhile answer COORDINATOR_LOAD_IN_PROGRESS).
            wait_until(lambda: w.call(FindCoordinatorRequest(key="simple", key_type=0), 1).error_code == 0,
                       message="group coordinator available")
            simple = w.call(commit_request("simple", -1, "", "kept", {0: 1}), 3)
            assert [p.error_code for t in simple.topics for p in t.partitions] == [0]
            subscription = struct.pack(">h", 0) + ConsumerProtocolSubscription(topics=["kept"]).encode(0)
            # v3: no MEMBER_ID_REQUIRED round trip, during which the group is Empty without offsets
            # and a retention check (every 100 ms here) deletes it, as Kafka's would
            joined = join_member(w, "live", version=3, protocols=[("range", subscription)], session=60000)
            me, gen = joined.member_id, joined.generation_id
            assert joined.error_code == 0
            assert w.call(sync_request("live", gen, me, [(me, b"")]), 3).error_code == 0
            for name, offset in (("kept", 5), ("dropped", 6)):
                committed = w.call(commit_request("live", gen, me, name, {0: offset}), 8)
                assert [p.error_code for t in committed.topics for p in t.partitions] == [0], name
            assert group_of(b, "live").state.value == "Stable"
            coordinator = b.broker.group_coordinator
            retention_ms = b.broker.config["offsets.retention.minutes"] * 60_000
            real_now = coordinator.timer.now_ms
            b.call(lambda: setattr(coordinator.timer, "now_ms", lambda: real_now() + retention_ms + 1000))
            wait_until(lambda: group_of(b, "simple") is None, message="simple group expired")
            assert fetch_v5(w, "simple", "kept", [0]) == {0: (-1, "", 0)}
            assert fetch_v5(w, "live", "dropped", [0]) == {0: (-1, "", 0)}
            assert fetch_v5(w, "live", "kept", [0]) == {0: (5, "m", 0)}
            hb = w.call(HeartbeatRequest(group_id="live", generation_id=gen, member_id=me), 3)
            assert hb.error_code == 0
        finally:
            w.close()


def test_pending_join_is_answered_when_the_broker_stops():
    """A JoinGroup waiting for a rebalance (here up to a 60 s rebalance timeout) does not hold up
    shutdown: it is answered NOT_COORDINATOR, as Kafka answers when a coordinator unloads."""
    b = BrokerThread(config=GROUP_CONFIG).start()
    w1, w2 = Wire(b.bootstrap_servers), Wire(b.bootstrap_servers)
    try:
        first = join_member(w1, "stopping", session=30000, rebalance=60000)
        w1.call(sync_request("stopping", 1, first.member_id, [(first.member_id, b"")]), 3)
        w2.send(join_request("stopping", session=30000, rebalance=60000), 3)
        wait_until(lambda: group_of(b, "stopping").state.value == "PreparingRebalance")
        b.stop()
        assert w2.receive().error_code == ErrorCode.NOT_COORDINATOR
    finally:
        w1.close()
        w2.close()
        b.stop()
