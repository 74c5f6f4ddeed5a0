"""Streams groups (KIP-1071): StreamsGroupHeartbeat with broker-side task assignment.

Follows Kafka 4.4's ``GroupMetadataManager.streamsGroupHeartbeat`` and ``StreamsGroup``:

- the first member to join (epoch 0, which must carry the topology) initializes the group's
  topology (a StreamsGroupTopology record); later joiners with the same epoch are accepted, an
  older epoch gets the STALE_TOPOLOGY status, a different topology at the same or a newer epoch
  INVALID_REQUEST ("Topology updates are not supported yet."), as Kafka does;
- the topology is *configured* against the metadata image (Kafka's ``InternalTopicManager``):
  missing source topics give the MISSING_SOURCE_TOPICS status; repartition topics get the
  partitions asked for or the largest partition count of the subtopologies writing to them,
  changelog topics one partition per task; internal topics that do not exist are reported with
  MISSING_INTERNAL_TOPICS and created by the broker (Kafka's KafkaApis hands the coordinator's
  ``creatableTopics`` to the AutoTopicCreationManager); an existing internal topic with another
  partition count gives INCORRECTLY_PARTITIONED_TOPICS. Until the topology is configured the group
  is NotReady and no tasks are assigned;
- the group epoch is bumped when a member joins, leaves or changes, when the topology gets
  configured, or when the partition counts of its topics change (the metadata hash);
- the target assignment comes from the sticky task assignor (``streams_assignor``), with
  ``group.streams.num.standby.replicas`` standbys; it is delayed by
  ``group.streams.initial.rebalance.delay.ms`` when the first member joins an empty group
  (ASSIGNMENT_DELAYED status meanwhile);
- each member converges to its target as in Kafka's ``CurrentAssignmentBuilder``: active tasks it
  must give up are revoked first (UNREVOKED_TASKS, epoch kept) until a heartbeat shows it no longer
  owns them or its rebalance timeout fences it; then it moves to the assignment epoch and gets the
  target's active tasks no other member still owns (UNRELEASED_TASKS until they are released);
- epochs: 0 joins, -1 leaves, -2 leaves temporarily (a static member, ``InstanceId``, keeps its
  tasks until its session times out; a new member id with the same instance id takes them over,
  UNRELEASED_INSTANCE_ID while the old one is still active, FENCED_INSTANCE_ID for a member id that
  is not the instance's); FENCED_MEMBER_EPOCH / UNKNOWN_MEMBER_ID as Kafka;
- offsets: OffsetCommit needs v9+ and the member's epoch (STALE_MEMBER_EPOCH when newer, or older
  than the assignment epoch of one of its active tasks); OffsetFetch the member's epoch.

Durability: Kafka's records StreamsGroupMetadata (17), MemberMetadata (19),
TargetAssignmentMetadata (20), TargetAssignmentMember (21), CurrentMemberAssignment (22) and
Topology (23), version 0, written to ``__consumer_offsets`` before the response and replayed at
start-up.

Task offsets are kept per member, shown by StreamsGroupDescribe and rank standby candidates;
warm-up tasks are never assigned, as in Kafka 4.4 (its ``AssignmentRefiner`` inserts none yet).
The metadata hash is this broker's own hash of the topics' ids and partition counts (Kafka's is a
murmur hash of the same data), so a group moved between kbroker and Kafka rebalances once.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import dataclass, field
from typing import Any

from kbroker.coordinator.streams_assignor import AssignorMember, Tasks, assign
from kbroker.coordinator.timer_keys import GroupTimerKey
from kbroker_protocol.errors import ErrorCode
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
from kbroker_protocol.messages.streams_group_heartbeat import StreamsGroupHeartbeatResponse
from kbroker_protocol.messages.streams_group_heartbeat import TaskIds as T  # noqa: N812

log = logging.getLogger(__name__)

_I16 = struct.Struct(">h")
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

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


class StreamsGroupError(Exception):
    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


def _copy(t: Tasks) -> Tasks:
    return {s: set(ps) for s, ps in t.items() if ps}


def _minus(a: Tasks, b: Tasks) -> Tasks:
    return {s: ps - b.get(s, set()) for s, ps in a.items() if ps - b.get(s, set())}


def _intersect(a: Tasks, b: Tasks) -> Tasks:
    return {s: ps & b.get(s, set()) for s, ps in a.items() if ps & b.get(s, set())}


def _union(a: Tasks, b: Tasks) -> Tasks:
    out = _copy(a)
    for s, ps in b.items():
        if ps:
            out.setdefault(s, set()).update(ps)
    return out


def _tasks_from(items: list[Any] | None) -> Tasks:
    out: Tasks = {}
    for item in items or []:
        out.setdefault(item.subtopology_id, set()).update(item.partitions)
    return _copy(out)


def _to_ids(tasks: Tasks, cls: type) -> list[Any]:
    return [cls(subtopology_id=s, partitions=sorted(tasks[s])) for s in sorted(tasks) if tasks[s]]


@dataclass(eq=False)
class StreamsMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = -1
    topology_epoch: int = 0
    process_id: str = ""
    user_endpoint: tuple[str, int] | None = None
    client_tags: dict[str, str] = field(default_factory=dict)
    member_epoch: int = 0
    previous_member_epoch: int = -1
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
class StreamsGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    metadata_hash: int = 0
    validated_topology_epoch: int = -1
    topology: StreamsGroupTopologyValue | None = None
    members: dict[str, StreamsMember] = field(default_factory=dict)
    target: dict[str, tuple[Tasks, Tasks, Tasks]] = field(default_factory=dict)  # active, standby, warmup
    empty_since_ms: int = -1
    assignment_delayed: bool = False
    shutdown_requested_by: str | None = None
    endpoint_epoch: int = 0
    # Derived from the topology and the metadata image (not persisted).
    configured: dict[str, Subtopology] | None = None
    configuration_error: tuple[int, str] | None = None
    to_create: dict[str, tuple[int, int, dict[str, str]]] = field(default_factory=dict)

    type_name = "streams"

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

    def static_member(self, instance_id: str) -> StreamsMember | None:
        for m in self.members.values():
            if m.instance_id == instance_id:
                return m
        return None

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


def topology_record(request_topology: Any) -> StreamsGroupTopologyValue:
    """Kafka's ``convertToStreamsGroupTopologyRecord``."""
    V = StreamsGroupTopologyValue
    S = V.Subtopology

    def info(t: Any) -> Any:
        from kbroker_protocol.messages.coordinator.streams_group_topology_value import TopicConfig, TopicInfo

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


class StreamsGroupManager:
    def __init__(self, coordinator: Any) -> None:
        self.coordinator = coordinator
        self.broker = coordinator.broker
        self.timer = coordinator.timer

    @property
    def _config(self) -> Any:
        return self.broker.config

    def heartbeat_interval_ms(self) -> int:
        return self._config["group.streams.heartbeat.interval.ms"]

    # -- records ------------------------------------------------------------------------------------------

    @staticmethod
    def _key(kind: int, key: Any) -> bytes:
        return _I16.pack(kind) + key.encode(0)

    @staticmethod
    def _value(value: Any) -> bytes:
        return _I16.pack(0) + value.encode(0)

    def _group_record(self, g: StreamsGroup) -> tuple[bytes, bytes]:
        V = StreamsGroupMetadataValue
        return (self._key(GROUP_METADATA, StreamsGroupMetadataKey(group_id=g.group_id)),
                self._value(V(epoch=g.group_epoch, metadata_hash=g.metadata_hash,
                              validated_topology_epoch=g.validated_topology_epoch,
                              last_assignment_configs=[V.LastAssignmentConfig(key=k, value=v)
                                                       for k, v in sorted(self._assignment_configs().items())])))

    def _assignment_configs(self) -> dict[str, str]:
        return {"num.standby.replicas": str(self._config["group.streams.num.standby.replicas"])}

    def _member_record(self, g: StreamsGroup, m: StreamsMember) -> tuple[bytes, bytes]:
        V = StreamsGroupMemberMetadataValue
        return (self._key(MEMBER_METADATA, StreamsGroupMemberMetadataKey(group_id=g.group_id, member_id=m.member_id)),
                self._value(V(instance_id=m.instance_id, rack_id=m.rack_id, client_id=m.client_id,
                              client_host=m.client_host, rebalance_timeout_ms=m.rebalance_timeout_ms,
                              topology_epoch=m.topology_epoch, process_id=m.process_id,
                              user_endpoint=None if m.user_endpoint is None else V.Endpoint(
                                  host=m.user_endpoint[0], port=m.user_endpoint[1]),
                              client_tags=[V.KeyValue(key=k, value=v) for k, v in sorted(m.client_tags.items())])))

    def _target_member_record(self, g: StreamsGroup, mid: str) -> tuple[bytes, bytes]:
        V = StreamsGroupTargetAssignmentMemberValue
        active, standby, warmup = g.target.get(mid, ({}, {}, {}))
        T = V.TaskIds
        return (self._key(TARGET_MEMBER, StreamsGroupTargetAssignmentMemberKey(group_id=g.group_id, member_id=mid)),
                self._value(V(active_tasks=_to_ids(active, T), standby_tasks=_to_ids(standby, T),
                              warmup_tasks=_to_ids(warmup, T))))

    def _target_metadata_record(self, g: StreamsGroup) -> tuple[bytes, bytes]:
        return (self._key(TARGET_METADATA, StreamsGroupTargetAssignmentMetadataKey(group_id=g.group_id)),
                self._value(StreamsGroupTargetAssignmentMetadataValue(assignment_epoch=g.assignment_epoch,
                                                                      assignment_timestamp=self.timer.now_ms())))

    def _current_record(self, g: StreamsGroup, m: StreamsMember) -> tuple[bytes, bytes]:
        V = StreamsGroupCurrentMemberAssignmentValue
        T = V.TaskIds

        def with_epochs(tasks: dict[str, dict[int, int]]) -> list[Any]:
            return [T(subtopology_id=s, partitions=sorted(tasks[s]), assignment_epochs=[tasks[s][p] for p in sorted(tasks[s])])
                    for s in sorted(tasks) if tasks[s]]

        pending = {s: {p: m.pending_epochs.get((s, p), m.member_epoch) for p in ps} for s, ps in m.pending_active.items()}
        return (self._key(CURRENT_ASSIGNMENT,
                          StreamsGroupCurrentMemberAssignmentKey(group_id=g.group_id, member_id=m.member_id)),
                self._value(V(member_epoch=m.member_epoch, previous_member_epoch=m.previous_member_epoch, state=m.state,
                              active_tasks=with_epochs(m.active), standby_tasks=_to_ids(m.standby, T),
                              warmup_tasks=_to_ids(m.warmup, T), active_tasks_pending_revocation=with_epochs(pending),
                              standby_tasks_pending_revocation=[], warmup_tasks_pending_revocation=[])))

    def _topology_record(self, g: StreamsGroup) -> tuple[bytes, bytes]:
        assert g.topology is not None
        return (self._key(TOPOLOGY, StreamsGroupTopologyKey(group_id=g.group_id)), self._value(g.topology))

    def _member_tombstones(self, g: StreamsGroup, mid: str) -> list[tuple[bytes, None]]:
        gid = g.group_id
        return [
            (self._key(CURRENT_ASSIGNMENT, StreamsGroupCurrentMemberAssignmentKey(group_id=gid, member_id=mid)), None),
            (self._key(TARGET_MEMBER, StreamsGroupTargetAssignmentMemberKey(group_id=gid, member_id=mid)), None),
            (self._key(MEMBER_METADATA, StreamsGroupMemberMetadataKey(group_id=gid, member_id=mid)), None),
        ]

    def tombstones(self, g: StreamsGroup) -> list[tuple[bytes, None]]:
        out: list[tuple[bytes, None]] = []
        for mid in list(g.members):
            out.extend(self._member_tombstones(g, mid))
        gid = g.group_id
        out.append((self._key(TARGET_METADATA, StreamsGroupTargetAssignmentMetadataKey(group_id=gid)), None))
        out.append((self._key(TOPOLOGY, StreamsGroupTopologyKey(group_id=gid)), None))
        out.append((self._key(GROUP_METADATA, StreamsGroupMetadataKey(group_id=gid)), None))
        return out

    # -- topology configuration (Kafka's InternalTopicManager.configureTopics) --------------------------

    def _partitions(self, topic: str) -> int | None:
        t = self.broker.image.topic(topic)
        return None if t is None or not t.partitions else len(t.partitions)

    def _metadata_hash(self, g: StreamsGroup) -> int:
        if g.topology is None:
            return 0
        names: set[str] = set()
        for s in g.topology.subtopologies:
            names.update(s.source_topics)
            names.update(t.name for t in s.repartition_source_topics)
            names.update(t.name for t in s.state_changelog_topics)
        h = hashlib.sha256()
        for name in sorted(names):
            t = self.broker.image.topic(name)
            if t is not None:
                h.update(f"{name}\0{t.topic_id}\0{len(t.partitions)}\n".encode())
        return int.from_bytes(h.digest()[:8], "big", signed=True)

    def _configure(self, g: StreamsGroup) -> None:
        g.configured, g.configuration_error, g.to_create = None, None, {}
        if g.topology is None:
            return
        subs = g.topology.subtopologies
        missing = sorted({t for s in subs for t in s.source_topics if self._partitions(t) is None})
        if missing:
            g.configuration_error = (MISSING_SOURCE_TOPICS, f"Source topics {', '.join(missing)} are missing.")
            return
        # Repartition topics: the partitions asked for, else the largest task count of the
        # subtopologies writing to them, computed to a fixed point.
        repartition: dict[str, int] = {}
        for s in subs:
            for t in s.repartition_source_topics:
                if t.partitions > 0:
                    repartition[t.name] = t.partitions
        tasks: dict[str, int] = {}
        for _ in range(len(subs) + 1):
            progress = False
            for s in subs:
                counts = [self._partitions(t) or 0 for t in s.source_topics]
                counts += [repartition.get(t.name, 0) for t in s.repartition_source_topics]
                n = max(counts, default=0)
                if n and tasks.get(s.subtopology_id) != n:
                    tasks[s.subtopology_id] = n
                    progress = True
                for sink in s.repartition_sink_topics:
                    if n and sink not in repartition:
                        repartition[sink] = n
                        progress = True
                    elif n and repartition[sink] < n and not any(
                            t.name == sink and t.partitions > 0 for x in subs for t in x.repartition_source_topics):
                        repartition[sink] = n
                        progress = True
            if not progress:
                break
        undecided = sorted(t.name for s in subs for t in s.repartition_source_topics if t.name not in repartition)
        if undecided:
            g.configuration_error = (MISSING_SOURCE_TOPICS,
                                     f"Unable to determine the number of partitions of {', '.join(undecided)}.")
            return
        configured: dict[str, Subtopology] = {}
        wanted: dict[str, tuple[int, int, dict[str, str]]] = {}
        for s in subs:
            n = tasks.get(s.subtopology_id, 0)
            rs = {t.name: repartition[t.name] for t in s.repartition_source_topics}
            cl = {t.name: n for t in s.state_changelog_topics}
            configured[s.subtopology_id] = Subtopology(n, list(s.source_topics), rs, cl)
            for t in s.repartition_source_topics:
                wanted[t.name] = (repartition[t.name], t.replication_factor, {c.key: c.value for c in t.topic_configs})
            for t in s.state_changelog_topics:
                wanted[t.name] = (n, t.replication_factor, {c.key: c.value for c in t.topic_configs})
        to_create: dict[str, tuple[int, int, dict[str, str]]] = {}
        for name, spec in sorted(wanted.items()):
            have = self._partitions(name)
            if have is None:
                to_create[name] = spec
            elif have != spec[0]:
                g.configuration_error = (INCORRECTLY_PARTITIONED_TOPICS,
                                         f"Existing topic {name} has different number of partitions: expected "
                                         f"{spec[0]}, found {have}")
                return
        g.configured = configured
        if to_create:
            g.to_create = to_create
            g.configuration_error = (MISSING_INTERNAL_TOPICS, f"Internal topics are missing: {', '.join(sorted(to_create))}")

    def is_ready(self, g: StreamsGroup) -> bool:
        return g.configured is not None and g.configuration_error is None

    def _task_counts(self, g: StreamsGroup) -> dict[str, int]:
        if not self.is_ready(g):
            return {}
        assert g.configured is not None
        return {s: c.tasks for s, c in g.configured.items()}

    # -- heartbeat ------------------------------------------------------------------------------------------

    def heartbeat(self, r: Any, client_id: str, client_host: str
                  ) -> tuple[StreamsGroupHeartbeatResponse, dict[str, tuple[int, int, dict[str, str]]]]:
        """The response and the internal topics to create (Kafka's ``creatableTopics``)."""
        try:
            return self._heartbeat(r, client_id, client_host)
        except StreamsGroupError as exc:
            return StreamsGroupHeartbeatResponse(error_code=exc.code, error_message=exc.message), {}

    @staticmethod
    def validate(r: Any) -> None:
        """Kafka's ``throwIfStreamsGroupHeartbeatRequestIsInvalid`` and unsupported features."""
        def invalid(message: str) -> StreamsGroupError:
            return StreamsGroupError(ErrorCode.INVALID_REQUEST, message)

        if r.topology is not None and any(s.source_topic_regex for s in r.topology.subtopologies):
            raise invalid("Regular expressions for source topics are not supported yet.")
        if r.member_id == "":
            raise invalid("MemberId can't be empty.")
        if r.group_id == "":
            raise invalid("GroupId can't be empty.")
        if r.instance_id == "":
            raise invalid("InstanceId can't be empty.")
        if r.rack_id == "":
            raise invalid("RackId can't be empty.")
        if r.member_epoch == 0:
            if r.rebalance_timeout_ms == -1:
                raise invalid("RebalanceTimeoutMs must be provided in first request.")
            # Kafka's throwIfNotEmptyCollection: the lists must be given, and empty.
            if r.active_tasks is None or r.active_tasks:
                raise invalid("ActiveTasks must be empty when (re-)joining.")
            if r.standby_tasks is None or r.standby_tasks:
                raise invalid("StandbyTasks must be empty when (re-)joining.")
            if r.warmup_tasks is None or r.warmup_tasks:
                raise invalid("WarmupTasks must be empty when (re-)joining.")
            if r.topology is None:
                raise invalid("Topology must be non-null when (re-)joining.")
            for s in r.topology.subtopologies:
                for t in s.state_changelog_topics:
                    if t.partitions != 0:
                        raise StreamsGroupError(
                            ErrorCode.STREAMS_INVALID_TOPOLOGY,
                            f"Changelog topic {t.name} must have an undefined partition count, but it is set to "
                            f"{t.partitions}.")
        elif r.member_epoch == STATIC_LEAVE_EPOCH:
            if r.instance_id is None:
                raise invalid("InstanceId can't be null.")
        elif r.member_epoch < STATIC_LEAVE_EPOCH:
            raise invalid(f"MemberEpoch is {r.member_epoch}, but must be greater than or equal to -2.")
        if r.active_tasks is not None or r.standby_tasks is not None or r.warmup_tasks is not None:
            if r.active_tasks is None or r.standby_tasks is None or r.warmup_tasks is None:
                raise invalid("If one task-type is non-null, all must be non-null.")
        if r.member_epoch != 0 and r.topology is not None:
            raise invalid("Topology can only be provided when (re-)joining.")

    def _group_for(self, group_id: str, create: bool) -> StreamsGroup:
        from kbroker.coordinator.group_classic import ClassicGroup, GroupState

        group = self.coordinator.groups.get(group_id)
        if group is not None and not isinstance(group, StreamsGroup):
            empty_classic = isinstance(group, ClassicGroup) and not group.members and group.is_in(GroupState.EMPTY)
            if create and empty_classic:
                # An empty classic group (committed offsets only) becomes a streams group; its offsets stay.
                from kbroker.coordinator.group_records import encode_group_key

                if group.protocol_type:
                    self.coordinator.append(group_id, [(encode_group_key(group_id), None)])
                self.coordinator.classic.mark_dead(group)
                del self.coordinator.groups[group_id]
                group = None
            else:
                raise StreamsGroupError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a streams group.")
        if group is None:
            if not create:
                raise StreamsGroupError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found.")
            group = StreamsGroup(group_id, empty_since_ms=self.timer.now_ms())
            self.coordinator.groups[group_id] = group
        return group

    def _check_epoch(self, m: StreamsMember, r: Any) -> None:
        epoch = r.member_epoch
        if epoch == 0:
            return
        if epoch > m.member_epoch:
            raise StreamsGroupError(ErrorCode.FENCED_MEMBER_EPOCH,
                                    f"The streams group member has a greater member epoch ({epoch}) than the one known "
                                    f"by the group coordinator ({m.member_epoch}). The member must abandon all its "
                                    "partitions and rejoin.")
        if epoch < m.member_epoch:
            owned_ok = (r.active_tasks is not None
                        and not _minus(_tasks_from(r.active_tasks), m.active_tasks())
                        and not _minus(_tasks_from(r.standby_tasks), m.standby)
                        and not _minus(_tasks_from(r.warmup_tasks), m.warmup))
            if epoch != m.previous_member_epoch or not owned_ok:
                raise StreamsGroupError(ErrorCode.FENCED_MEMBER_EPOCH,
                                        f"The streams group member has a smaller member epoch ({epoch}) than the one "
                                        f"known by the group coordinator ({m.member_epoch}). The member must abandon "
                                        "all its partitions and rejoin.")

    def _heartbeat(self, r: Any, client_id: str, client_host: str
                   ) -> tuple[StreamsGroupHeartbeatResponse, dict[str, tuple[int, int, dict[str, str]]]]:
        if not self.coordinator.loaded:
            raise StreamsGroupError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
        self.validate(r)
        if r.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(r), {}
        joining = r.member_epoch == 0
        group = self._group_for(r.group_id, create=joining)
        was_empty = not group.members
        records: list[tuple[bytes, bytes | None]] = []
        status: list[Any] = []
        bump = False
        member = group.members.get(r.member_id)
        if r.instance_id is not None:
            static = group.static_member(r.instance_id)
            if joining:
                if static is not None and static.member_id != r.member_id:
                    if static.member_epoch != STATIC_LEAVE_EPOCH:
                        raise StreamsGroupError(
                            ErrorCode.UNRELEASED_INSTANCE_ID,
                            f"Static member {static.member_id} with instance id {r.instance_id} cannot be replaced "
                            "because it is still in the group.")
                    member = self._replace_static(group, static, r.member_id, records)
            else:
                if static is None:
                    raise StreamsGroupError(ErrorCode.UNKNOWN_MEMBER_ID, f"Instance id {r.instance_id} is unknown.")
                if static.member_id != r.member_id:
                    raise StreamsGroupError(ErrorCode.FENCED_INSTANCE_ID,
                                            f"Static member {r.member_id} with instance id {r.instance_id} was fenced "
                                            f"by member {static.member_id}.")
        if member is None:
            if not joining:
                raise StreamsGroupError(ErrorCode.UNKNOWN_MEMBER_ID,
                                        f"Member {r.member_id} is not a member of group {group.group_id}.")
            if len(group.members) >= self._config["group.streams.max.size"]:
                raise StreamsGroupError(ErrorCode.GROUP_MAX_SIZE_REACHED,
                                        "The streams group has reached its maximum capacity of "
                                        f"{self._config['group.streams.max.size']} members.")
            member = StreamsMember(member_id=r.member_id)
            group.members[r.member_id] = member
            bump = True
        else:
            self._check_epoch(member, r)
            if joining and member.member_epoch > 0:
                # Rejoining with a known id: it starts over.
                member.active, member.standby, member.warmup, member.pending_active = {}, {}, {}, {}
                member.pending_epochs = {}
                member.member_epoch, member.state = 0, STABLE
        # 1. The member's metadata.
        before = (member.instance_id, member.rack_id, member.rebalance_timeout_ms, member.topology_epoch,
                  member.process_id, member.user_endpoint, dict(member.client_tags), member.client_id, member.client_host)
        if r.instance_id is not None:
            member.instance_id = r.instance_id
        if r.rack_id is not None:
            member.rack_id = r.rack_id
        if r.rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = r.rebalance_timeout_ms
        if r.topology is not None:
            member.topology_epoch = r.topology.epoch
        if r.process_id is not None:
            member.process_id = r.process_id
        if r.user_endpoint is not None:
            member.user_endpoint = (r.user_endpoint.host, r.user_endpoint.port)
        if r.client_tags is not None:
            member.client_tags = {kv.key: kv.value for kv in r.client_tags}
        member.client_id, member.client_host = client_id, client_host
        if r.task_offsets is not None:
            member.task_offsets = [(t.subtopology_id, t.partition, t.offset) for t in r.task_offsets]
        if r.task_end_offsets is not None:
            member.task_end_offsets = [(t.subtopology_id, t.partition, t.offset) for t in r.task_end_offsets]
        after = (member.instance_id, member.rack_id, member.rebalance_timeout_ms, member.topology_epoch,
                 member.process_id, member.user_endpoint, dict(member.client_tags), member.client_id, member.client_host)
        if after != before or joining:
            records.append(self._member_record(group, member))
            if after[:7] != before[:7]:
                bump = True
        # 2. The topology.
        if r.topology is not None:
            proposed = topology_record(r.topology)
            if group.topology is None:
                log.info("streams group %s: member %s initialized the topology with epoch %d", group.group_id,
                         member.member_id, proposed.epoch)
                group.topology = proposed
                records.append(self._topology_record(group))
                group.configured = None
            elif group.topology.epoch > proposed.epoch:
                pass  # a stale member: the STALE_TOPOLOGY status below
            elif not _same_topology(group.topology, proposed):
                raise StreamsGroupError(ErrorCode.INVALID_REQUEST, "Topology updates are not supported yet.")
        if group.topology is not None and member.topology_epoch < group.topology.epoch:
            status.append(StreamsGroupHeartbeatResponse.Status(
                status_code=STALE_TOPOLOGY,
                status_detail=f"The member's topology epoch {member.topology_epoch} is behind the group's topology "
                              f"epoch {group.topology.epoch}."))
        # 3. Configure the topology against the current metadata.
        metadata_hash = self._metadata_hash(group)
        if metadata_hash != group.metadata_hash or group.configured is None and group.configuration_error is None \
                or not self.is_ready(group):
            if metadata_hash != group.metadata_hash:
                group.metadata_hash = metadata_hash
                bump = True
            self._configure(group)
        validated = group.topology.epoch if group.topology is not None and self.is_ready(group) else -1
        if self.is_ready(group):
            self._check_tasks(group, r)
        if validated != group.validated_topology_epoch:
            group.validated_topology_epoch = validated
            bump = True
        if bump:
            group.group_epoch += 1
            records.append(self._group_record(group))
            log.info("streams group %s: epoch %d", group.group_id, group.group_epoch)
        # Initial rebalance delay, for the first member of an empty group.
        if was_empty and joining and self._config["group.streams.initial.rebalance.delay.ms"] > 0 \
                and not group.assignment_delayed:
            group.assignment_delayed = True
            self.timer.schedule(self._delay_key(group), self._config["group.streams.initial.rebalance.delay.ms"],
                                lambda gid=group.group_id: self._on_delay_expired(gid))
        # 4. The target assignment.
        if group.group_epoch > group.assignment_epoch:
            if group.assignment_delayed:
                status.append(StreamsGroupHeartbeatResponse.Status(
                    status_code=ASSIGNMENT_DELAYED, status_detail="Assignment delayed due to the configured initial "
                                                                  "rebalance delay."))
            else:
                records.extend(self._compute_target(group))
        # 5. Reconcile.
        previous = (member.member_epoch, member.active_tasks(), _copy(member.standby), _copy(member.warmup))
        before_state = (member.state, _copy(member.pending_active))
        if not (group.assignment_delayed and group.group_epoch > group.assignment_epoch):
            self._reconcile(group, member, r)
        changed = previous != (member.member_epoch, member.active_tasks(), _copy(member.standby), _copy(member.warmup))
        if changed or joining or before_state != (member.state, _copy(member.pending_active)):
            records.append(self._current_record(group, member))
        if r.shutdown_application and group.shutdown_requested_by is None:
            log.info("streams group %s: member %s requested the shutdown of the application", group.group_id,
                     member.member_id)
            group.shutdown_requested_by = member.member_id
        self.coordinator.append(group.group_id, records)
        self._schedule_session(group, member)
        resp = StreamsGroupHeartbeatResponse(
            error_code=ErrorCode.NONE, member_id=member.member_id, member_epoch=member.member_epoch,
            heartbeat_interval_ms=self.heartbeat_interval_ms(),
            acceptable_recovery_lag_legacy=min(self._config["group.streams.acceptable.recovery.lag"], 2**31 - 1),
            acceptable_recovery_lag=self._config["group.streams.acceptable.recovery.lag"],
            task_offset_interval_ms=self._config["group.streams.task.offset.interval.ms"])
        if joining or changed:
            resp.active_tasks = _to_ids(member.active_tasks(), T)
            resp.standby_tasks = _to_ids(member.standby, T)
            resp.warmup_tasks = _to_ids(member.warmup, T)
            if member.user_endpoint is not None:
                group.endpoint_epoch += 1
        if group.endpoint_epoch != r.endpoint_information_epoch:
            resp.partitions_by_user_endpoint = self._endpoints(group)
        resp.endpoint_information_epoch = group.endpoint_epoch
        to_create: dict[str, tuple[int, int, dict[str, str]]] = {}
        if group.configuration_error is not None:
            code, detail = group.configuration_error
            status.append(StreamsGroupHeartbeatResponse.Status(status_code=code, status_detail=detail))
            to_create = dict(group.to_create)
        if group.shutdown_requested_by is not None:
            status.append(StreamsGroupHeartbeatResponse.Status(
                status_code=SHUTDOWN_APPLICATION,
                status_detail=f"Streams group member {group.shutdown_requested_by} encountered a fatal error and "
                              "requested a shutdown for the entire application."))
        resp.status = status
        return resp, to_create

    def _check_tasks(self, g: StreamsGroup, r: Any) -> None:
        counts = self._task_counts(g)
        for items in (r.active_tasks, r.standby_tasks, r.warmup_tasks):
            for t in items or []:
                if t.subtopology_id not in counts:
                    raise StreamsGroupError(ErrorCode.INVALID_REQUEST,
                                            f"Subtopology {t.subtopology_id} does not exist in the topology.")
                for p in t.partitions:
                    if p < 0 or p >= counts[t.subtopology_id]:
                        raise StreamsGroupError(ErrorCode.INVALID_REQUEST,
                                                f"Task {p} for subtopology {t.subtopology_id} is invalid. Number of "
                                                f"tasks for this subtopology: {counts[t.subtopology_id]}")

    def _endpoints(self, g: StreamsGroup) -> list[Any]:
        """Which partitions each member's user endpoint serves (interactive queries)."""
        E = StreamsGroupHeartbeatResponse.EndpointToPartitions
        from kbroker_protocol.messages.streams_group_heartbeat import Endpoint, TopicPartition

        out = []
        configured = g.configured or {}
        for m in sorted(g.members.values(), key=lambda x: x.member_id):
            if m.user_endpoint is None:
                continue

            def parts(tasks: Tasks) -> list[Any]:
                by_topic: dict[str, set[int]] = {}
                for s, ps in tasks.items():
                    sub = configured.get(s)
                    if sub is None:
                        continue
                    for topic in list(sub.source_topics) + list(sub.repartition_source) + list(sub.changelogs):
                        n = self._partitions(topic) or 0
                        by_topic.setdefault(topic, set()).update(p for p in ps if p < n)
                return [TopicPartition(topic=t, partitions=sorted(ps)) for t, ps in sorted(by_topic.items()) if ps]

            out.append(E(user_endpoint=Endpoint(host=m.user_endpoint[0], port=m.user_endpoint[1]),
                         active_partitions=parts(m.active_tasks()),
                         standby_partitions=parts(_union(m.standby, m.warmup))))
        return out

    def _replace_static(self, g: StreamsGroup, previous: StreamsMember, member_id: str, records: list) -> StreamsMember:
        old = previous.member_id
        records.extend(self._member_tombstones(g, old))
        del g.members[old]
        self.timer.cancel(self._session_key(g, old))
        self.timer.cancel(self._revoke_key(g, old))
        previous.member_id = member_id
        if previous.member_epoch == STATIC_LEAVE_EPOCH:
            previous.member_epoch = previous.previous_member_epoch
        g.members[member_id] = previous
        if old in g.target:
            g.target[member_id] = g.target.pop(old)
            records.append(self._target_member_record(g, member_id))
        records.append(self._current_record(g, previous))
        return previous

    def _compute_target(self, g: StreamsGroup) -> list[tuple[bytes, bytes | None]]:
        counts = self._task_counts(g)
        standby = min(self._config["group.streams.num.standby.replicas"],
                      self._config["group.streams.max.standby.replicas"])
        members = {}
        for mid, m in g.members.items():
            current = g.target.get(mid)
            members[mid] = AssignorMember(process_id=m.process_id or mid,
                                          active=_copy(current[0]) if current else m.active_tasks(),
                                          standby=_copy(current[1]) if current else _copy(m.standby),
                                          task_offsets={(st, p): o for st, p, o in m.task_offsets})
        stateful = {c.subtopology_id for c in (g.topology.subtopologies if g.topology else [])
                    if c.state_changelog_topics}
        result = assign(members, counts, standby, stateful)
        g.target = {mid: (a, s, {}) for mid, (a, s) in result.items()}
        g.assignment_epoch = g.group_epoch
        log.info("streams group %s: epoch %d target assignment: %s", g.group_id, g.group_epoch,
                 {mid: {s: sorted(ps) for s, ps in a.items()} for mid, (a, _s, _w) in g.target.items()})
        records = [self._target_member_record(g, mid) for mid in sorted(g.members)]
        records.append(self._target_metadata_record(g))
        return records

    def _reconcile(self, g: StreamsGroup, m: StreamsMember, r: Any) -> None:
        if m.member_epoch == STATIC_LEAVE_EPOCH:
            return
        target_active, target_standby, target_warmup = g.target.get(m.member_id, ({}, {}, {}))
        owned = _tasks_from(r.active_tasks) if r.active_tasks is not None else None
        if m.pending_active:
            if owned is None or _intersect(owned, m.pending_active):
                return  # still revoking
            m.pending_active, m.pending_epochs = {}, {}
            self.timer.cancel(self._revoke_key(g, m.member_id))
        current = m.active_tasks()
        if (m.member_epoch == g.assignment_epoch and m.state == STABLE and current == _copy(target_active)
                and _copy(m.standby) == _copy(target_standby)):
            return
        revoke = _minus(current, target_active)
        if revoke:
            m.pending_epochs = {(s, p): e for s, ps in m.active.items() for p, e in ps.items()
                                if p in revoke.get(s, set())}
            m.active = {s: {p: e for p, e in ps.items() if p not in revoke.get(s, set())} for s, ps in m.active.items()}
            m.active = {s: ps for s, ps in m.active.items() if ps}
            m.pending_active = revoke
            m.standby = _intersect(m.standby, target_standby)
            m.warmup = _intersect(m.warmup, target_warmup)
            m.state = UNREVOKED
            self.timer.schedule(self._revoke_key(g, m.member_id), max(m.rebalance_timeout_ms, 0),
                                lambda gid=g.group_id, mid=m.member_id: self._on_revoke_timeout(gid, mid))
            return
        new_epoch = g.assignment_epoch
        unreleased = False
        for s, ps in target_active.items():
            for p in sorted(ps):
                if p in m.active.get(s, {}):
                    continue
                other = g.active_owner(s, p)
                if other is not None and other is not m:
                    unreleased = True
                    continue
                m.active.setdefault(s, {})[p] = new_epoch
        # A task is never standby where it runs as active.
        m.standby = _minus(_copy(target_standby), m.active_tasks())
        m.warmup = _minus(_copy(target_warmup), m.active_tasks())
        if m.member_epoch != new_epoch:
            m.previous_member_epoch = m.member_epoch
            m.member_epoch = new_epoch
        m.state = UNRELEASED if unreleased else STABLE

    # -- leaving and timeouts -------------------------------------------------------------------------------

    def _leave(self, r: Any) -> StreamsGroupHeartbeatResponse:
        group = self._group_for(r.group_id, create=False)
        member = group.members.get(r.member_id)
        if r.instance_id is not None:
            static = group.static_member(r.instance_id)
            if static is None:
                raise StreamsGroupError(ErrorCode.UNKNOWN_MEMBER_ID, f"Instance id {r.instance_id} is unknown.")
            if static.member_id != r.member_id:
                raise StreamsGroupError(ErrorCode.FENCED_INSTANCE_ID,
                                        f"Static member {r.member_id} with instance id {r.instance_id} was fenced by "
                                        f"member {static.member_id}.")
            member = static
        if member is None:
            raise StreamsGroupError(ErrorCode.UNKNOWN_MEMBER_ID,
                                    f"Member {r.member_id} is not a member of group {group.group_id}.")
        if r.shutdown_application and group.shutdown_requested_by is None:
            group.shutdown_requested_by = member.member_id
        if r.member_epoch == STATIC_LEAVE_EPOCH:
            # The static member keeps its tasks until it comes back or its session times out.
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = STATIC_LEAVE_EPOCH
            self.coordinator.append(group.group_id, [self._current_record(group, member)])
            self._schedule_session(group, member)
            return StreamsGroupHeartbeatResponse(error_code=ErrorCode.NONE, member_id=member.member_id,
                                                 member_epoch=STATIC_LEAVE_EPOCH,
                                                 heartbeat_interval_ms=0)
        self.remove_member(group, member.member_id)
        return StreamsGroupHeartbeatResponse(error_code=ErrorCode.NONE, member_id=r.member_id,
                                             member_epoch=LEAVE_EPOCH, heartbeat_interval_ms=0)

    def remove_member(self, g: StreamsGroup, member_id: str) -> None:
        """Fence a member: tombstones, a bumped group epoch and a new target for the others."""
        if member_id not in g.members:
            return
        records: list[tuple[bytes, bytes | None]] = list(self._member_tombstones(g, member_id))
        del g.members[member_id]
        g.target.pop(member_id, None)
        self.timer.cancel(self._session_key(g, member_id))
        self.timer.cancel(self._revoke_key(g, member_id))
        g.group_epoch += 1
        records.append(self._group_record(g))
        if g.members and not g.assignment_delayed:
            records.extend(self._compute_target(g))
        else:
            g.assignment_epoch = g.group_epoch
            records.append(self._target_metadata_record(g))
        if not g.members:
            g.empty_since_ms = self.timer.now_ms()
            g.shutdown_requested_by = None
        self.coordinator.append(g.group_id, records)
        log.info("streams group %s: member %s removed, epoch %d", g.group_id, member_id, g.group_epoch)

    @staticmethod
    def _session_key(g: StreamsGroup, mid: str) -> GroupTimerKey:
        return GroupTimerKey("streams-session", g.group_id, mid)

    @staticmethod
    def _revoke_key(g: StreamsGroup, mid: str) -> GroupTimerKey:
        return GroupTimerKey("streams-revoke", g.group_id, mid)

    @staticmethod
    def _delay_key(g: StreamsGroup) -> GroupTimerKey:
        return GroupTimerKey("streams-initial-delay", g.group_id)

    def _schedule_session(self, g: StreamsGroup, m: StreamsMember) -> None:
        self.timer.schedule(self._session_key(g, m.member_id), self._config["group.streams.session.timeout.ms"],
                            lambda gid=g.group_id, mid=m.member_id: self._on_session_timeout(gid, mid))

    def _live(self, group_id: str, member_id: str) -> StreamsGroup | None:
        g = self.coordinator.groups.get(group_id)
        if not isinstance(g, StreamsGroup) or member_id not in g.members or not self.coordinator.loaded:
            return None
        return g

    def _on_session_timeout(self, group_id: str, member_id: str) -> None:
        g = self._live(group_id, member_id)
        if g is not None:
            log.info("streams group %s: member %s session timed out", group_id, member_id)
            self.remove_member(g, member_id)

    def _on_revoke_timeout(self, group_id: str, member_id: str) -> None:
        g = self._live(group_id, member_id)
        if g is not None and g.members[member_id].pending_active:
            log.info("streams group %s: member %s did not revoke its tasks in time", group_id, member_id)
            self.remove_member(g, member_id)

    def _on_delay_expired(self, group_id: str) -> None:
        g = self.coordinator.groups.get(group_id)
        if not isinstance(g, StreamsGroup) or not self.coordinator.loaded:
            return
        g.assignment_delayed = False
        if g.members and g.group_epoch > g.assignment_epoch:
            self.coordinator.append(group_id, self._compute_target(g))

    # -- replay ---------------------------------------------------------------------------------------------

    def apply(self, kind: int, key: bytes, value: bytes | None) -> None:
        if kind not in RECORD_TYPES:
            return
        key_cls, value_cls = RECORD_TYPES[kind]
        k = key_cls.decode(memoryview(key)[2:], 0)
        v = None
        if value is not None:
            (version,) = _I16.unpack_from(value)
            v = value_cls.decode(memoryview(value)[2:], min(version, value_cls.MAX_VERSION))
        groups = self.coordinator.groups
        g = groups.get(k.group_id)
        if kind == GROUP_METADATA and v is None:
            if isinstance(g, StreamsGroup):
                del groups[k.group_id]
            return
        if not isinstance(g, StreamsGroup):
            if v is None:
                return
            g = groups[k.group_id] = StreamsGroup(k.group_id)
        if kind == GROUP_METADATA:
            g.group_epoch, g.metadata_hash, g.validated_topology_epoch = v.epoch, v.metadata_hash, v.validated_topology_epoch
            return
        if kind == TOPOLOGY:
            g.topology = v
            return
        if kind == TARGET_METADATA:
            if v is not None:
                g.assignment_epoch = v.assignment_epoch
            return
        mid = k.member_id
        if v is None:
            if kind == MEMBER_METADATA:
                g.members.pop(mid, None)
            elif kind == TARGET_MEMBER:
                g.target.pop(mid, None)
            return
        m = g.members.get(mid)
        if m is None:
            m = g.members[mid] = StreamsMember(member_id=mid)
        if kind == MEMBER_METADATA:
            m.instance_id, m.rack_id, m.client_id, m.client_host = v.instance_id, v.rack_id, v.client_id, v.client_host
            m.rebalance_timeout_ms, m.topology_epoch, m.process_id = v.rebalance_timeout_ms, v.topology_epoch, v.process_id
            m.user_endpoint = None if v.user_endpoint is None else (v.user_endpoint.host, v.user_endpoint.port)
            m.client_tags = {kv.key: kv.value for kv in v.client_tags}
        elif kind == TARGET_MEMBER:
            g.target[mid] = (_tasks_from(v.active_tasks), _tasks_from(v.standby_tasks), _tasks_from(v.warmup_tasks))
        elif kind == CURRENT_ASSIGNMENT:
            m.member_epoch, m.previous_member_epoch, m.state = v.member_epoch, v.previous_member_epoch, v.state
            m.active = {}
            for t in v.active_tasks:
                epochs = t.assignment_epochs or [v.member_epoch] * len(t.partitions)
                m.active[t.subtopology_id] = dict(zip(t.partitions, epochs, strict=False))
            m.standby, m.warmup = _tasks_from(v.standby_tasks), _tasks_from(v.warmup_tasks)
            m.pending_active = _tasks_from(v.active_tasks_pending_revocation)
            m.pending_epochs = {(t.subtopology_id, p): e for t in v.active_tasks_pending_revocation
                                for p, e in zip(t.partitions, t.assignment_epochs or [v.member_epoch] * len(t.partitions),
                                                strict=False)}

    def on_loaded(self, g: StreamsGroup) -> None:
        for mid in list(g.members):
            if not g.members[mid].process_id and mid not in g.target:
                del g.members[mid]  # a partial member without metadata
        self._configure(g)
        if not g.members:
            g.empty_since_ms = self.timer.now_ms()
        for m in g.members.values():
            self._schedule_session(g, m)

    # -- used by the coordinator -----------------------------------------------------------------------------

    def is_empty(self, g: StreamsGroup) -> bool:
        return not g.members

    def empty_since(self, g: StreamsGroup) -> int:
        return g.empty_since_ms

    def is_subscribed_to(self, g: StreamsGroup, topic: str) -> bool:
        return bool(g.members) and topic in g.source_topics()

    def mark_dead(self, g: StreamsGroup) -> None:
        for mid in list(g.members):
            self.timer.cancel(self._session_key(g, mid))
            self.timer.cancel(self._revoke_key(g, mid))
        self.timer.cancel(self._delay_key(g))
        g.members.clear()

    def validate_commit(self, g: StreamsGroup, member_epoch: int, member_id: str, instance_id: str | None,
                        api_version: int, *, transactional: bool = False) -> ErrorCode:
        """Kafka's ``StreamsGroup.validateOffsetCommit`` (group level)."""
        if member_epoch < 0 and not g.members:
            return ErrorCode.NONE
        if transactional and member_epoch == -1 and member_id == "" and instance_id is None:
            return ErrorCode.NONE
        m = g.members.get(member_id)
        if m is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if not transactional and api_version < 9:
            return ErrorCode.UNSUPPORTED_VERSION
        if member_epoch == m.member_epoch:
            return ErrorCode.NONE
        if member_epoch > m.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        if g.topology is None:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE  # an older epoch: each partition is checked by partition_error

    def partition_error(self, g: StreamsGroup, member_id: str, member_epoch: int, topic: str,
                        partition: int) -> ErrorCode:
        """Kafka's assignment-epoch validator for a commit with an epoch older than the member's: the
        partition's task must be the member's (assigned or pending revocation) since that epoch."""
        m = g.members.get(member_id)
        if m is None or member_epoch < 0 or member_epoch >= m.member_epoch or g.topology is None:
            return ErrorCode.NONE
        sub = next((st.subtopology_id for st in g.topology.subtopologies
                    if topic in st.source_topics or any(t.name == topic for t in st.repartition_source_topics)), None)
        if sub is None:
            return ErrorCode.STALE_MEMBER_EPOCH
        epoch = m.active.get(sub, {}).get(partition, m.pending_epochs.get((sub, partition)))
        if epoch is None or member_epoch < epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def validate_fetch(self, g: StreamsGroup, member_id: str | None, member_epoch: int) -> ErrorCode:
        if member_id is None and member_epoch < 0:
            return ErrorCode.NONE
        m = g.members.get(member_id or "")
        if m is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != m.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE
