"""Streams group set-up and heartbeat shared by the streams write-failure unit tests (moved from test_streams_share_write_failures)."""

from __future__ import annotations

from typing import Any

from kbroker.coordinator.streams_group import StreamsGroupManager
from kbroker_protocol.messages.streams_group_heartbeat import StreamsGroupHeartbeatRequest, TopicInfo
from tests.unit.group_write_failure_helpers import FailingCoordinator

Topology = StreamsGroupHeartbeatRequest.Topology

STREAMS_CONFIG = {
    "group.streams.acceptable.recovery.lag": 10000, "group.streams.heartbeat.interval.ms": 5000,
    "group.streams.initial.rebalance.delay.ms": 0, "group.streams.max.size": 100,
    "group.streams.max.standby.replicas": 2, "group.streams.num.standby.replicas": 0,
    "group.streams.session.timeout.ms": 45000, "group.streams.task.offset.interval.ms": 60000,
    "group.streams.rack.aware.assignment.tags": [],
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
