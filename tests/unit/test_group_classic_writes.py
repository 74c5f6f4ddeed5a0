"""Classic groups and their coordinator writes (issue 17): what waits for the GroupMetadata record
to be replicated and what a failed write rolls back, as Kafka's GroupMetadataManager append
callbacks. The state machine runs on a fake clock with a fake ``persist`` whose writes stay
pending until the test completes them (replicated) or fails them."""

from __future__ import annotations

import pytest

from kbroker.coordinator.coordinator_writes import response_error
from kbroker.coordinator.group_classic import GroupState
from kbroker_protocol.errors import ErrorCode
from tests.unit.group_fakes import Harness


def _two_members_completing(h: Harness) -> tuple[str, str]:
    """A group of two members in CompletingRebalance (generation 1); returns (leader, follower)."""
    first = h.join(client_id="a")
    second = h.join(client_id="b")
    h.timer.advance(5000)  # the initial delay, extended while members arrive, up to the rebalance timeout
    [a], [b] = first, second
    assert a.generation_id == b.generation_id == 1
    assert h.group().state == GroupState.COMPLETING_REBALANCE
    return (a.member_id, b.member_id) if a.leader == a.member_id else (b.member_id, a.member_id)


def test_sync_answers_and_group_is_stable_only_once_the_assignment_is_replicated():
    h = Harness(delay=100)
    leader, follower = _two_members_completing(h)
    h.write_result = None  # writes stay pending (being replicated)
    waiting_follower = h.sync(follower, 1)
    waiting_leader = h.sync(leader, 1, [(leader, b"L"), (follower, b"F")])
    assert waiting_leader == [] and waiting_follower == []
    assert h.assignments[-1] == {leader: b"L", follower: b"F"}
    # Nothing of the new assignment is visible before the record is replicated.
    assert h.group().state == GroupState.COMPLETING_REBALANCE
    assert all(m.assignment == b"" for m in h.group().members.values())
    h.complete_writes(ErrorCode.NONE)
    assert h.group().state == GroupState.STABLE
    assert bytes(waiting_leader[0].assignment) == b"L" and bytes(waiting_follower[0].assignment) == b"F"
    assert waiting_leader[0].error_code == waiting_follower[0].error_code == ErrorCode.NONE


@pytest.mark.parametrize("failure, answered", [
    (ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.COORDINATOR_NOT_AVAILABLE),
    (ErrorCode.NOT_COORDINATOR, ErrorCode.NOT_COORDINATOR),
])
def test_failed_assignment_write_voids_it_answers_the_error_and_rebalances(failure, answered):
    h = Harness(delay=100)
    leader, follower = _two_members_completing(h)
    h.write_result = None
    waiting_follower = h.sync(follower, 1)
    waiting_leader = h.sync(leader, 1, [(leader, b"L"), (follower, b"F")])
    h.complete_writes(failure)
    assert waiting_leader[0].error_code == answered and waiting_follower[0].error_code == answered
    assert bytes(waiting_leader[0].assignment) == b""
    group = h.group()
    assert group.state == GroupState.PREPARING_REBALANCE and group.generation == 1
    assert all(m.assignment == b"" for m in group.members.values())
    # The members rejoin and the next generation completes once its record is replicated.
    h.write_result = ErrorCode.NONE
    rejoin_a, rejoin_b = h.join(member_id=leader), h.join(member_id=follower)
    assert rejoin_a[0].generation_id == rejoin_b[0].generation_id == 2
    [synced] = h.sync(leader, 2, [(leader, b"L2"), (follower, b"F2")])
    assert synced.error_code == ErrorCode.NONE and bytes(synced.assignment) == b"L2"
    assert h.group().state == GroupState.STABLE


def test_failed_local_append_fails_the_sync_at_once():
    h = Harness(delay=100)
    leader, follower = _two_members_completing(h)
    h.write_result = ErrorCode.NOT_COORDINATOR  # the append itself failed (leadership moved)
    [answer] = h.sync(leader, 1, [(leader, b"L"), (follower, b"F")])
    assert answer.error_code == ErrorCode.NOT_COORDINATOR
    assert h.group().state == GroupState.PREPARING_REBALANCE


def test_write_completing_after_the_group_moved_on_changes_nothing():
    h = Harness(delay=100)
    leader, follower = _two_members_completing(h)
    h.write_result = None
    waiting_leader = h.sync(leader, 1, [(leader, b"L"), (follower, b"F")])
    h.write_result = ErrorCode.NONE
    newcomer = h.join(client_id="c")  # a new member: rebalance, the pending assignment is void
    assert waiting_leader[0].error_code == ErrorCode.REBALANCE_IN_PROGRESS
    assert h.group().state == GroupState.PREPARING_REBALANCE
    h.pending[0](ErrorCode.NONE)  # the old generation's record is replicated late
    assert h.group().state == GroupState.PREPARING_REBALANCE
    assert all(m.assignment == b"" for m in h.group().members.values())
    assert newcomer == []


def test_static_replacement_answers_once_replicated_and_reverts_on_failure():
    h = Harness()
    [joined] = h.join(instance="i1")
    old = joined.member_id
    h.sync(old, 1, [(old, b"mine")], instance="i1")
    h.write_result = None
    answer = h.join(instance="i1")
    assert answer == []  # waits for the record naming the new member id
    new_id = next(iter(h.group().members))
    assert new_id != old and h.assignments[-1] == {new_id: b"mine"}
    h.complete_writes(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    [failed] = answer
    assert failed.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE and failed.member_id == ""
    assert failed.generation_id == 1 and failed.leader == old
    assert list(h.group().members) == [old] and h.group().static_members == {"i1": old}
    assert h.heartbeat(old, 1, instance="i1") == ErrorCode.NONE
    # Retried with the write succeeding: the replacement stands.
    answer = h.join(instance="i1")
    h.complete_writes(ErrorCode.NONE)
    [ok] = answer
    assert ok.error_code == ErrorCode.NONE and ok.member_id != old and ok.skip_assignment
    assert h.heartbeat(old, 1, instance="i1") == ErrorCode.FENCED_INSTANCE_ID


def test_empty_generation_write_failure_is_only_logged(caplog):
    h = Harness()
    member = h.stable_single()
    h.write_result = ErrorCode.COORDINATOR_NOT_AVAILABLE
    h.timer.advance(10_000)  # the session expires: the group becomes empty
    assert h.group().state == GroupState.EMPTY and member not in h.group().members
    assert h.persisted[-1] == ("Empty", 2, [])
    assert "writing the empty generation 2 failed: COORDINATOR_NOT_AVAILABLE" in caplog.text


@pytest.mark.parametrize("append_error, answered", [
    (ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.COORDINATOR_NOT_AVAILABLE),
    (ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND, ErrorCode.COORDINATOR_NOT_AVAILABLE),
    (ErrorCode.REQUEST_TIMED_OUT, ErrorCode.COORDINATOR_NOT_AVAILABLE),
    (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.COORDINATOR_NOT_AVAILABLE),
    (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.NOT_COORDINATOR),
    (ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.NOT_COORDINATOR),
    (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.UNKNOWN_SERVER_ERROR),
    (ErrorCode.RECORD_LIST_TOO_LARGE, ErrorCode.UNKNOWN_SERVER_ERROR),
    (ErrorCode.NOT_COORDINATOR, ErrorCode.NOT_COORDINATOR),
])
def test_write_errors_map_as_kafka(append_error, answered):
    assert response_error(append_error) == answered


class _Creations:
    """The manager's ``create`` (the new group's empty record): appended and pending, or failed
    at once (the append itself) with ``append_error``."""

    def __init__(self) -> None:
        self.append_error: ErrorCode | None = None
        self.pending: list = []
        self.groups: list[str] = []

    def __call__(self, group, done) -> None:
        self.groups.append(group.group_id)
        if self.append_error is not None:
            done(self.append_error)
        else:
            self.pending.append(done)


def test_the_join_that_creates_a_group_writes_its_record_once():
    h = Harness(delay=100)
    creations = h.manager.create = _Creations()
    first = h.join(client_id="a")
    assert creations.groups == ["g"] and first == []  # waiting for the initial delay
    h.join(client_id="b")  # the group exists: no record
    assert creations.groups == ["g"]
    creations.pending.pop()(ErrorCode.NONE)
    h.timer.advance(5000)
    assert first[0].error_code == ErrorCode.NONE and h.group().generation == 1


def test_a_group_whose_record_cannot_be_appended_is_removed_and_the_join_answered_the_error():
    h = Harness(delay=100)
    creations = h.manager.create = _Creations()
    creations.append_error = ErrorCode.NOT_COORDINATOR
    out = h.join(client_id="a")
    assert [r.error_code for r in out] == [ErrorCode.NOT_COORDINATOR] and out[0].member_id == ""
    assert "g" not in h.groups
    h.timer.advance(60000)  # nothing of the group left to run
    assert out == [out[0]] and "g" not in h.groups
    # v4+: MEMBER_ID_REQUIRED was answered already; the group goes all the same
    out = h.join(client_id="a", require_known=True)
    assert [r.error_code for r in out] == [ErrorCode.MEMBER_ID_REQUIRED] and "g" not in h.groups


def test_a_group_whose_record_is_not_replicated_stays_and_the_join_is_answered_the_error():
    h = Harness(delay=100)
    creations = h.manager.create = _Creations()
    out = h.join(client_id="a")
    creations.pending.pop()(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    assert [r.error_code for r in out] == [ErrorCode.COORDINATOR_NOT_AVAILABLE]
    assert h.group().state == GroupState.PREPARING_REBALANCE  # (its record is in the log)
    h.timer.advance(5000)
    assert len(out) == 1  # answered once
