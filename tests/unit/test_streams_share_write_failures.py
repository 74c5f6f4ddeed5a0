"""A KIP-1071 streams group (or KIP-932 share group) operation whose records cannot be appended leaves the group as it was,
timers included (Kafka's coordinator runtime reverts to the failed batch's base offset): the
heartbeat answers the append error as Kafka normalises it, and a timer's write (a session's
expiry) runs again after Kafka's timer retry backoff."""

from __future__ import annotations

from typing import Any

from test_group_write_failures import FailingCoordinator, state

from kbroker.coordinator.streams_group import StreamsGroupManager
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.streams_group_heartbeat import StreamsGroupHeartbeatRequest, TopicInfo

Topology = StreamsGroupHeartbeatRequest.Topology
STREAMS_CONFIG = {
    "group.streams.acceptable.recovery.lag": 10000, "group.streams.heartbeat.interval.ms": 5000,
    "group.streams.initial.rebalance.delay.ms": 0, "group.streams.max.size": 100,
    "group.streams.max.standby.replicas": 2, "group.streams.num.standby.replicas": 0,
    "group.streams.session.timeout.ms": 45000, "group.streams.task.offset.interval.ms": 60000,
}


def make() -> tuple[FailingCoordinator, StreamsGroupManager]:
    coordinator = FailingCoordinator()
    coordinator.broker.config.update(STREAMS_CONFIG)
    coordinator.broker.image.add("words", 2)
    return coordinator, StreamsGroupManager(coordinator)


def heartbeat(manager: StreamsGroupManager, member_id: str, epoch: int) -> Any:
    joining = epoch == 0
    topology = Topology(epoch=0, subtopologies=[Topology.Subtopology(
        subtopology_id="0", source_topics=["words"], state_changelog_topics=[TopicInfo(name="app-c", partitions=0)])])
    response, _topics = manager.heartbeat(StreamsGroupHeartbeatRequest(
        group_id="app", member_id=member_id, member_epoch=epoch, rebalance_timeout_ms=30000 if joining else -1,
        topology=topology if joining else None, active_tasks=[] if joining else None,
        standby_tasks=[] if joining else None, warmup_tasks=[] if joining else None,
        process_id=member_id if joining else None), "client", "/h")
    return response


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
