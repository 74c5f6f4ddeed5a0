"""KIP-1071 streams groups: the group and member records, the record types and the topology
record (see ``streams_group``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, TypeVar

from kbroker.coordinator.assignment_sets import copy_parts
from kbroker.coordinator.group_members import GroupError, GroupKind, GroupMember, MemberGroup
from kbroker.coordinator.streams_assignor import Tasks
from kbroker_protocol.messages.coordinator import (
    StreamsGroupCurrentMemberAssignmentKey,
    StreamsGroupCurrentMemberAssignmentValue,
    StreamsGroupMemberMetadataKey,
    StreamsGroupMemberMetadataValue,
    StreamsGroupMetadataKey,
    StreamsGroupMetadataValue,
    StreamsGroupTargetAssignmentMemberKey,
    StreamsGroupTargetAssignmentMemberValue,
    StreamsGroupTargetAssignmentMetadataKey,
    StreamsGroupTargetAssignmentMetadataValue,
    StreamsGroupTopologyKey,
    StreamsGroupTopologyValue,
)
from kbroker_protocol.messages.coordinator.streams_group_topology_value import TopicConfig, TopicInfo
from kbroker_protocol.messages.streams_group_heartbeat import StreamsGroupHeartbeatRequest
from kbroker_protocol.messages.streams_group_heartbeat import TopicInfo as RequestTopicInfo
from kbroker_protocol.primitives import Message

# Kafka's streams MemberState values.
STABLE, UNREVOKED, UNRELEASED = 1, 2, 3

# StreamsGroupHeartbeatResponse.Status codes.
STALE_TOPOLOGY, MISSING_SOURCE_TOPICS, INCORRECTLY_PARTITIONED_TOPICS = 0, 1, 2
MISSING_INTERNAL_TOPICS, SHUTDOWN_APPLICATION, ASSIGNMENT_DELAYED = 3, 4, 5

GROUP_METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT, TOPOLOGY = 17, 19, 20, 21, 22, 23
RECORD_TYPES = {
    GROUP_METADATA: (StreamsGroupMetadataKey, StreamsGroupMetadataValue),
    MEMBER_METADATA: (StreamsGroupMemberMetadataKey, StreamsGroupMemberMetadataValue),
    TARGET_METADATA: (StreamsGroupTargetAssignmentMetadataKey, StreamsGroupTargetAssignmentMetadataValue),
    TARGET_MEMBER: (StreamsGroupTargetAssignmentMemberKey, StreamsGroupTargetAssignmentMemberValue),
    CURRENT_ASSIGNMENT: (StreamsGroupCurrentMemberAssignmentKey, StreamsGroupCurrentMemberAssignmentValue),
    TOPOLOGY: (StreamsGroupTopologyKey, StreamsGroupTopologyValue),
}
STREAMS_RECORD_TYPES = frozenset(RECORD_TYPES) | {18}  # 18: the removed PartitionMetadata record, ignored


class StreamsGroupError(GroupError):
    """A StreamsGroupHeartbeat error."""


class _TaskIds(Protocol):
    subtopology_id: str
    partitions: list[int]


def _tasks_from(items: Sequence[_TaskIds] | None) -> Tasks:
    out: Tasks = {}
    for item in items or []:
        out.setdefault(item.subtopology_id, set()).update(item.partitions)
    return copy_parts(out)


_M = TypeVar("_M", bound=Message)


def _to_ids(tasks: Tasks, cls: Callable[..., _M]) -> list[_M]:
    return [cls(subtopology_id=s, partitions=sorted(tasks[s])) for s in sorted(tasks) if tasks[s]]


@dataclass(eq=False)
class StreamsMember(GroupMember):
    rebalance_timeout_ms: int = -1
    topology_epoch: int = 0
    process_id: str = ""
    user_endpoint: tuple[str, int] | None = None
    client_tags: dict[str, str] = field(default_factory=dict)
    state: int = STABLE
    active: dict[str, dict[int, int]] = field(default_factory=dict)  # subtopology -> {partition: assignment epoch}
    standby: Tasks = field(default_factory=dict)
    warmup: Tasks = field(default_factory=dict)
    pending_active: Tasks = field(default_factory=dict)  # active tasks pending revocation
    pending_epochs: dict[tuple[str, int], int] = field(default_factory=dict)  # their assignment epochs
    task_offsets: list[tuple[str, int, int]] = field(default_factory=list)
    task_end_offsets: list[tuple[str, int, int]] = field(default_factory=list)

    def active_tasks(self) -> Tasks:
        return {s: set(ps) for s, ps in self.active.items() if ps}


@dataclass
class Subtopology:
    """A configured subtopology: its number of tasks and the topics behind them."""
    tasks: int
    source_topics: list[str]
    repartition_source: dict[str, int]  # name -> partitions
    changelogs: dict[str, int]


@dataclass(eq=False)
class StreamsGroup(MemberGroup[StreamsMember, tuple[Tasks, Tasks, Tasks]]):  # target: active, standby, warmup
    # Kafka 4.4 (KAFKA-20268) starts a streams group at group epoch 1 and target assignment epoch 1, so the
    # first join bumps the group to epoch 2 and a member held back by the initial rebalance delay sits at 1.
    group_epoch: int = 1
    assignment_epoch: int = 1
    metadata_hash: int = 0
    validated_topology_epoch: int = -1
    topology: StreamsGroupTopologyValue | None = None
    assignment_delayed: bool = False
    shutdown_requested_by: str | None = None
    endpoint_epoch: int = 0
    # The assignor's configs at the last group epoch bump (Kafka's lastAssignmentConfigs, persisted in the
    # StreamsGroupMetadata record): num.standby.replicas.
    last_assignment_configs: dict[str, str] = field(default_factory=dict)
    # Derived from the topology and the metadata image (not persisted).
    configured: dict[str, Subtopology] | None = None
    configuration_error: tuple[int, str] | None = None
    to_create: dict[str, tuple[int, int, dict[str, str]]] = field(default_factory=dict)

    type_name: ClassVar[str] = "streams"

    def state_name(self) -> str:
        if not self.members:
            return "Empty"
        if self.topology is None or self.topology.epoch != self.validated_topology_epoch:
            return "NotReady"
        if self.group_epoch > self.assignment_epoch:
            return "Assigning"
        for m in self.members.values():
            if m.member_epoch != self.assignment_epoch or m.state != STABLE:
                return "Reconciling"
        return "Stable"

    def active_owner(self, subtopology: str, partition: int) -> StreamsMember | None:
        for m in self.members.values():
            if partition in m.active.get(subtopology, {}) or partition in m.pending_active.get(subtopology, ()):
                return m
        return None

    def source_topics(self) -> set[str]:
        out: set[str] = set()
        for s in (self.topology.subtopologies if self.topology is not None else []):
            out.update(s.source_topics)
            out.update(t.name for t in s.repartition_source_topics)
        return out


def topology_record(request_topology: StreamsGroupHeartbeatRequest.Topology) -> StreamsGroupTopologyValue:
    """Kafka's ``convertToStreamsGroupTopologyRecord``."""
    V = StreamsGroupTopologyValue
    S = V.Subtopology

    def info(t: RequestTopicInfo) -> TopicInfo:
        return TopicInfo(name=t.name, partitions=t.partitions, replication_factor=t.replication_factor,
                         topic_configs=[TopicConfig(key=c.key, value=c.value) for c in t.topic_configs or []])

    return V(epoch=request_topology.epoch, subtopologies=[
        S(subtopology_id=s.subtopology_id, source_topics=list(s.source_topics),
          source_topic_regex=list(s.source_topic_regex or []),
          state_changelog_topics=[info(t) for t in s.state_changelog_topics],
          repartition_sink_topics=list(s.repartition_sink_topics),
          repartition_source_topics=[info(t) for t in s.repartition_source_topics],
          copartition_groups=[S.CopartitionGroup(source_topics=list(g.source_topics),
                                                 source_topic_regex=list(g.source_topic_regex),
                                                 repartition_source_topics=list(g.repartition_source_topics))
                              for g in s.copartition_groups])
        for s in request_topology.subtopologies
    ])


def _same_topology(a: StreamsGroupTopologyValue, b: StreamsGroupTopologyValue) -> bool:
    return a.encode(0) == b.encode(0)


KIND = GroupKind(GROUP_METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT, RECORD_TYPES,
                 StreamsGroupError, StreamsGroup, StreamsMember, session_timer="streams-session", revoke_timer="streams-revoke",
                 group_tombstones=(TARGET_METADATA, TOPOLOGY, GROUP_METADATA))
