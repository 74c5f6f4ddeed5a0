"""The classic group state machine with a fake clock: no sockets, no event loop."""

from __future__ import annotations

import pytest

from kbroker.coordinator.group_classic import (
    ClassicGroup,
    GroupState,
)
from kbroker_protocol.errors import ErrorCode
from tests.unit.group_fakes import Harness


def test_transition_table():
    allowed = {
        ("Empty", "PreparingRebalance"), ("PreparingRebalance", "CompletingRebalance"),
        ("PreparingRebalance", "Empty"), ("CompletingRebalance", "Stable"),
        ("CompletingRebalance", "PreparingRebalance"), ("Stable", "PreparingRebalance"),
    } | {(s.value, "Dead") for s in GroupState}
    for src in GroupState:
        for dst in GroupState:
            group = ClassicGroup("g", state=src)
            if (src.value, dst.value) in allowed:
                group.transition(dst, 1)
                assert (group.state, group.previous_state) == (dst, src)
            elif not (src == dst == GroupState.EMPTY):
                with pytest.raises(AssertionError):
                    group.transition(dst, 1)


def test_initial_rebalance_delay_waits_and_extends_for_new_members():
    h = Harness(delay=3000)
    first = h.join(rebalance=10000)
    assert first == [] and h.group().state == GroupState.PREPARING_REBALANCE
    h.timer.advance(1000)
    second = h.join(rebalance=10000)
    h.timer.advance(1999)
    assert first == second == []
    h.timer.advance(1)  # 3000 ms: a member arrived meanwhile, so wait another delay
    assert first == second == []
    h.timer.advance(2999)
    assert first == second == []
    h.timer.advance(1)
    assert first[0].generation_id == second[0].generation_id == 1
    assert first[0].leader == first[0].member_id and len(first[0].members) == 2 and second[0].members == []
    assert h.group().state == GroupState.COMPLETING_REBALANCE


def test_member_id_required_and_pending_member_expiry():
    h = Harness()
    [resp] = h.join(require_known=True, session=2000)
    assert resp.error_code == ErrorCode.MEMBER_ID_REQUIRED and resp.member_id.startswith("c-")
    assert resp.member_id in h.group().pending_members
    h.timer.advance(2000)
    assert h.group().pending_members == set()
    [again] = h.join(member_id=resp.member_id, require_known=True)
    assert again.error_code == ErrorCode.UNKNOWN_MEMBER_ID


def test_session_expiry_empties_group_and_persists():
    h = Harness()
    me = h.stable_single()
    assert h.persisted[-1] == ("CompletingRebalance", 1, [me])  # the leader's assignment, before Stable
    h.timer.advance(9999)
    assert h.heartbeat(me, 1) == 0
    h.timer.advance(9999)
    assert h.group().state == GroupState.STABLE
    h.timer.advance(1)
    assert h.group().state == GroupState.EMPTY and h.group().generation == 2
    assert h.persisted[-1] == ("Empty", 2, [])
    assert h.heartbeat(me, 1) == ErrorCode.UNKNOWN_MEMBER_ID


def test_follower_rejoin_in_stable_returns_current_generation_but_leader_forces_rebalance():
    h = Harness()
    leader = h.stable_single()
    follower_join = h.join(client_id="f")
    assert h.group().state == GroupState.PREPARING_REBALANCE
    assert h.heartbeat(leader, 1) == ErrorCode.REBALANCE_IN_PROGRESS
    leader_join = h.join(member_id=leader)
    assert leader_join[0].generation_id == follower_join[0].generation_id == 2
    follower = follower_join[0].member_id
    pending = h.sync(follower, 2)
    assert pending == []
    h.sync(leader, 2, [(leader, b"L"), (follower, b"F")])
    assert bytes(pending[0].assignment) == b"F"
    [same] = h.join(member_id=follower)
    assert (same.error_code, same.generation_id, same.members) == (0, 2, [])
    assert h.group().state == GroupState.STABLE
    h.join(member_id=leader)
    assert h.group().state == GroupState.PREPARING_REBALANCE


def test_join_during_completing_rebalance_voids_pending_syncs():
    h = Harness()
    [a] = h.join()
    waiting = h.sync(a.member_id, 1) if a.leader != a.member_id else None
    assert waiting is None  # a leads
    b_join = h.join(client_id="b")  # group is CompletingRebalance: a new member restarts the rebalance
    assert h.group().state == GroupState.PREPARING_REBALANCE
    [late] = h.sync(a.member_id, 1, [(a.member_id, b"x")])
    assert late.error_code == ErrorCode.REBALANCE_IN_PROGRESS
    a_join = h.join(member_id=a.member_id)
    assert a_join[0].generation_id == b_join[0].generation_id == 2


def test_rebalance_timeout_drops_dynamic_members_that_did_not_rejoin():
    h = Harness()
    a = h.stable_single()
    b_join = h.join(client_id="b", rebalance=3000)
    h.timer.advance(4999)
    assert b_join == []
    h.timer.advance(1)  # the longest rebalance timeout (a's 5000 ms)
    assert b_join[0].generation_id == 2 and [m.member_id for m in b_join[0].members] == [b_join[0].member_id]
    assert a not in h.group().members


def test_static_member_replacement_without_rebalance_and_fencing():
    h = Harness()
    [joined] = h.join(instance="i1")
    old = joined.member_id
    h.sync(old, 1, [(old, b"mine")], instance="i1")
    persisted = len(h.persisted)
    [again] = h.join(instance="i1")
    assert again.generation_id == 1 and again.member_id != old and again.skip_assignment
    assert len(h.persisted) == persisted + 1 and h.persisted[-1][2] == [again.member_id]
    assert h.group().state == GroupState.STABLE
    assert h.heartbeat(old, 1, instance="i1") == ErrorCode.FENCED_INSTANCE_ID
    assert bytes(h.sync(again.member_id, 1, instance="i1")[0].assignment) == b"mine"


def test_static_member_replacement_is_undone_when_the_write_fails():
    h = Harness()
    [joined] = h.join(instance="i1")
    old = joined.member_id
    h.sync(old, 1, [(old, b"mine")], instance="i1")
    h.write_result = ErrorCode.NOT_COORDINATOR
    [again] = h.join(instance="i1")
    assert again.error_code == ErrorCode.NOT_COORDINATOR and again.member_id == ""
    assert list(h.group().members) == [old] and h.group().static_members == {"i1": old}
    assert h.heartbeat(old, 1, instance="i1") == 0


def test_static_member_awaiting_join_is_fenced_by_its_replacement():
    h = Harness()
    [joined] = h.join(instance="i1")
    static_id = joined.member_id
    h.sync(static_id, 1, [(static_id, b"")], instance="i1")
    d1 = h.join(client_id="d1")
    h.join(member_id=static_id, instance="i1")
    [d1_joined] = d1
    h.sync(d1_joined.member_id, 2)
    h.sync(static_id, 2, [], instance="i1")
    assert h.group().state == GroupState.STABLE
    h.join(client_id="d2")  # rebalance in progress, nobody rejoined yet
    stuck = h.join(member_id=static_id, instance="i1")
    assert stuck == []
    replacement = h.join(instance="i1")
    assert stuck[0].error_code == ErrorCode.FENCED_INSTANCE_ID
    assert replacement == []
    h.join(member_id=d1_joined.member_id)
    assert replacement[0].generation_id == 3 and replacement[0].member_id != static_id


def test_protocol_vote_and_inconsistent_protocols():
    h = Harness()
    a = h.join(protocols=[("range", b""), ("roundrobin", b"")])
    b = h.join(protocols=[("roundrobin", b""), ("range", b"")], client_id="b")
    c = h.join(protocols=[("roundrobin", b"")], client_id="c")
    h.timer.advance(0)
    a_id = a[0].member_id
    # With c in the group only roundrobin is common; a's rejoin completes the generation.
    for r in (a, b, c):
        assert r == [] or r[0].protocol_name == "range"  # the first generation (a alone) used range
    h.join(member_id=a_id, protocols=[("range", b""), ("roundrobin", b"")])
    assert h.group().protocol_name == "roundrobin"
    [bad] = h.join(protocols=[("sticky", b"")], client_id="d")
    assert bad.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL


def test_group_max_size():
    h = Harness(max_size=1)
    h.stable_single()
    [full] = h.join(client_id="x")
    assert full.error_code == ErrorCode.GROUP_MAX_SIZE_REACHED


def test_leave_of_last_member_empties_group():
    h = Harness()
    me = h.stable_single()
    resp = h.manager.leave("g", [(me, None), ("ghost", None)])
    assert [m.error_code for m in resp.members] == [0, ErrorCode.UNKNOWN_MEMBER_ID]
    assert h.group().state == GroupState.EMPTY and h.group().generation == 2
