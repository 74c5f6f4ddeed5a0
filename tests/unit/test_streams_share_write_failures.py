"""A KIP-1071 streams group (or KIP-932 share group) operation whose records cannot be appended leaves the group as it was,
timers included (Kafka's coordinator runtime reverts to the failed batch's base offset): the
heartbeat answers the append error as Kafka normalises it, and a timer's write (a session's
expiry) runs again after Kafka's timer retry backoff."""

from __future__ import annotations

from typing import Any

import pytest

from kbroker_protocol.errors import ErrorCode
from tests.unit.group_write_failure_helpers import FailingCoordinator, state
from tests.unit.streams_write_failure_helpers import heartbeat, make


def test_failed_streams_heartbeats_and_expiries_change_nothing() -> None:
    coordinator, manager = make()
    a = heartbeat(manager, "a", 0)
    assert a.error_code == ErrorCode.NONE
    coordinator.timer.advance(1000)
    before = state(coordinator)
    coordinator.error = ErrorCode.NOT_LEADER_OR_FOLLOWER
    refused = heartbeat(manager, "b", 0)  # a new member: a new epoch and target
    assert refused.error_code == ErrorCode.NOT_COORDINATOR
    assert state(coordinator) == before
    coordinator.error = ErrorCode.REQUEST_TIMED_OUT
    assert heartbeat(manager, "a", -1).error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE  # leaving
    assert state(coordinator) == before
    coordinator.timer.advance(45000)  # a's session expires; its removal cannot be written
    assert set(coordinator.groups["app"].members) == {"a"}
    coordinator.error = None
    coordinator.timer.advance(500)
    assert coordinator.groups["app"].members == {}


def test_failed_share_heartbeats_and_expiries_change_nothing() -> None:
    """The same for a KIP-932 share group; a member's removal releases its records (the
    member-removed hooks) only once its records are appended."""
    from kbroker.coordinator.share_group import ShareGroupManager
    from kbroker_protocol.messages.share_group_heartbeat import ShareGroupHeartbeatRequest

    coordinator = FailingCoordinator()
    coordinator.broker.config.update({"group.share.max.size": 100, "group.share.heartbeat.interval.ms": 5000,
                                      "group.share.session.timeout.ms": 45000})
    coordinator.broker.image.add("t", 2)
    manager = ShareGroupManager(coordinator)
    removed: list[tuple[str, str]] = []
    manager.on_member_removed.append(lambda group_id, member_id: removed.append((group_id, member_id)))

    def heartbeat(member_id: str, epoch: int) -> Any:
        return manager.heartbeat(ShareGroupHeartbeatRequest(
            group_id="s", member_id=member_id, member_epoch=epoch,
            subscribed_topic_names=["t"] if epoch == 0 else None), "client", "/h")

    assert heartbeat("a", 0).error_code == ErrorCode.NONE
    coordinator.timer.advance(1000)
    before = state(coordinator)
    coordinator.error = ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert heartbeat("b", 0).error_code == ErrorCode.NOT_COORDINATOR
    assert state(coordinator) == before
    assert heartbeat("a", -1).error_code == ErrorCode.NOT_COORDINATOR
    assert state(coordinator) == before and removed == []
    coordinator.timer.advance(45000)  # a's session expires; its removal cannot be written
    assert set(coordinator.groups["s"].members) == {"a"} and removed == []
    coordinator.error = None
    coordinator.timer.advance(500)
    assert coordinator.groups["s"].members == {} and removed == [("s", "a")]


def test_a_share_group_created_for_an_admin_request_is_not_kept_when_its_record_fails() -> None:
    from kbroker.coordinator.share_group import ShareGroupManager
    from kbroker.replication.produce_batch import ProduceError

    coordinator = FailingCoordinator()
    manager = ShareGroupManager(coordinator)
    coordinator.error = ErrorCode.NOT_LEADER_OR_FOLLOWER
    with pytest.raises(ProduceError):
        manager.share_group("s", create=True)
    assert coordinator.groups == {}
    coordinator.error = None
    assert manager.share_group("s", create=True) is coordinator.groups["s"]
