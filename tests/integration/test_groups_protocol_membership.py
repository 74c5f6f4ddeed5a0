"""The group coordinator's membership at the protocol level: FindCoordinator, JoinGroup, SyncGroup and
Heartbeat with requests built with the generated codec, timeouts, and static membership (KIP-345)."""

from __future__ import annotations

import pytest
from waiting import wait_until
from wire import Wire, find_coordinator

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.find_coordinator import FindCoordinatorRequest
from kbroker_protocol.messages.heartbeat import HeartbeatRequest
from kbroker_protocol.messages.leave_group import LeaveGroupRequest
from kbroker_protocol.messages.sync_group import SyncGroupRequest
from tests.integration.groups_protocol_broker import (  # noqa: F401 (fixtures)
    GROUP_CONFIG,
    fetch_v5,
    gbroker_fixture,
    group_fixture,
    group_of,
    topic_fixture,
    wire_fixture,
)
from tests.integration.groups_protocol_helpers import (
    commit_errors,
    commit_request,
    join_member,
    join_request,
    sync_request,
)

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
