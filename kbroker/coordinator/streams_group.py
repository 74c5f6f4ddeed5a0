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
- the target assignment comes from the sticky task assignor (``streams_assignor``), with the
  group's ``streams.num.standby.replicas`` standbys (its override, else the broker's
  ``group.streams.num.standby.replicas``; a heartbeat that finds the assignment configs changed
  since the last epoch bump bumps the epoch, as Kafka's ``lastAssignmentConfigs``); it is delayed by
  the group's ``streams.initial.rebalance.delay.ms`` when the first member joins an empty group
  (ASSIGNMENT_DELAYED status meanwhile);
- the heartbeat interval, task offset interval and acceptable recovery lag each response carries and
  the session timeout each heartbeat re-arms are the group's (override, else the broker's);
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

import logging
from functools import partial

from kbroker.coordinator.assignment_sets import copy_parts, minus, union
from kbroker.coordinator.coordinator_writes import response_error
from kbroker.coordinator.group_classic import ClassicGroup, GroupState
from kbroker.coordinator.group_members import LEAVE_EPOCH, STATIC_LEAVE_EPOCH, Record
from kbroker.coordinator.streams_assignor import Tasks
from kbroker.coordinator.streams_group_model import (
    ASSIGNMENT_DELAYED,
    MISSING_INTERNAL_TOPICS,
    SHUTDOWN_APPLICATION,
    STABLE,
    STALE_TOPOLOGY,
    STREAMS_RECORD_TYPES,
    StreamsGroup,
    StreamsGroupError,
    StreamsMember,
    _same_topology,
    _tasks_from,
    _to_ids,
    topology_record,
)
from kbroker.coordinator.streams_group_state import StreamsGroupState
from kbroker.replication.produce_batch import ProduceError
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.streams_group_heartbeat import (
    Endpoint,
    Status,
    StreamsGroupHeartbeatRequest,
    StreamsGroupHeartbeatResponse,
    TopicPartition,
)
from kbroker_protocol.messages.streams_group_heartbeat import TaskIds as T  # noqa: N812

__all__ = ["MISSING_INTERNAL_TOPICS", "STREAMS_RECORD_TYPES", "StreamsGroup", "StreamsGroupError",
           "StreamsGroupManager", "StreamsMember"]

log = logging.getLogger(__name__)

_ABANDON = " The member must abandon all its partitions and rejoin."


class StreamsGroupManager(StreamsGroupState):
    """The streams groups of a group coordinator: StreamsGroupHeartbeat here, the state in
    ``streams_group_state``, the records in ``streams_group_model``."""

    def heartbeat(self, r: StreamsGroupHeartbeatRequest, client_id: str, client_host: str
                  ) -> tuple[StreamsGroupHeartbeatResponse, dict[str, tuple[int, int, dict[str, str]]]]:
        """The response and the internal topics to create (Kafka's ``creatableTopics``). A heartbeat
        whose records cannot be appended changes nothing (``_all_or_nothing``)."""
        try:
            with self._all_or_nothing(r.group_id, [r.member_id], r.instance_id):
                return self._heartbeat(r, client_id, client_host)
        except StreamsGroupError as exc:
            return StreamsGroupHeartbeatResponse(error_code=exc.code, error_message=exc.message), {}
        except ProduceError as exc:
            code = response_error(exc.code)
            return StreamsGroupHeartbeatResponse(error_code=code, error_message=default_message(code)), {}

    @staticmethod
    def validate(r: StreamsGroupHeartbeatRequest) -> None:
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
        group = self.coordinator.groups.get(group_id)
        if group is not None and not isinstance(group, StreamsGroup):
            empty_classic = isinstance(group, ClassicGroup) and not group.members and group.is_in(GroupState.EMPTY)
            if create and empty_classic:
                self._drop_empty_classic(group_id)
        return self._existing_or_new(group_id, create, "streams")

    @staticmethod
    def _static_of(group: StreamsGroup, r: StreamsGroupHeartbeatRequest, instance_id: str) -> StreamsMember:
        """The member of the request's instance id (``instance_id``): UNKNOWN_MEMBER_ID without one,
        FENCED_INSTANCE_ID when it has another member id."""
        static = group.static_member(instance_id)
        if static is None:
            raise StreamsGroupError(ErrorCode.UNKNOWN_MEMBER_ID, f"Instance id {instance_id} is unknown.")
        if static.member_id != r.member_id:
            raise StreamsGroupError(ErrorCode.FENCED_INSTANCE_ID,
                                    f"Static member {r.member_id} with instance id {instance_id} was fenced by "
                                    f"member {static.member_id}.")
        return static

    def _check_member_epoch(self, m: StreamsMember, r: StreamsGroupHeartbeatRequest) -> None:
        def owned_ok() -> bool:
            return (r.active_tasks is not None
                    and not minus(_tasks_from(r.active_tasks), m.active_tasks())
                    and not minus(_tasks_from(r.standby_tasks), m.standby)
                    and not minus(_tasks_from(r.warmup_tasks), m.warmup))

        if r.member_epoch != 0:
            self._check_epoch("streams", r.member_epoch, m, owned_ok, _ABANDON)

    def _heartbeat(self, r: StreamsGroupHeartbeatRequest, client_id: str, client_host: str
                   ) -> tuple[StreamsGroupHeartbeatResponse, dict[str, tuple[int, int, dict[str, str]]]]:
        if not self.coordinator.loaded:
            raise StreamsGroupError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
        self.validate(r)
        if r.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(r), {}
        joining = r.member_epoch == 0
        group = self._group_for(r.group_id, create=joining)
        was_empty = not group.members
        records: list[Record] = []
        status: list[Status] = []
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
                self._static_of(group, r, r.instance_id)
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
            self._check_member_epoch(member, r)
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
        # The group's assignment configs (streams.num.standby.replicas) changed since the last bump: a new
        # target, as Kafka's streamsGroupHeartbeat does.
        assignment_configs = self.assignment_configs(group.group_id)
        if assignment_configs != group.last_assignment_configs:
            if not bump:
                log.info("streams group %s: member %s: assignment configurations changed to %s", group.group_id,
                         member.member_id, assignment_configs)
            bump = True
        if bump:
            group.last_assignment_configs = assignment_configs
            self._next_group_epoch(group, records)
            log.info("streams group %s: epoch %d", group.group_id, group.group_epoch)
        # Initial rebalance delay (the group's streams.initial.rebalance.delay.ms), for the first member of an
        # empty group.
        initial_delay = self._group_int(group.group_id, "streams.initial.rebalance.delay.ms")
        if was_empty and joining and initial_delay > 0 and not group.assignment_delayed:
            group.assignment_delayed = True
            self.timer.schedule(self._delay_key(group), initial_delay, partial(self._on_delay_expired, group.group_id))
        # 4. The target assignment.
        if group.group_epoch > group.assignment_epoch:
            if group.assignment_delayed:
                status.append(StreamsGroupHeartbeatResponse.Status(
                    status_code=ASSIGNMENT_DELAYED, status_detail="Assignment delayed due to the configured initial "
                                                                  "rebalance delay."))
            else:
                records.extend(self._compute_target(group))
        # 5. Reconcile.
        previous = (member.member_epoch, member.active_tasks(), copy_parts(member.standby), copy_parts(member.warmup))
        before_state = (member.state, copy_parts(member.pending_active))
        self._reconcile(group, member, r, delayed=group.assignment_delayed and group.group_epoch > group.assignment_epoch)
        changed = previous != (member.member_epoch, member.active_tasks(), copy_parts(member.standby), copy_parts(member.warmup))
        if changed or joining or before_state != (member.state, copy_parts(member.pending_active)):
            records.append(self._current_record(group, member))
        if r.shutdown_application and group.shutdown_requested_by is None:
            log.info("streams group %s: member %s requested the shutdown of the application", group.group_id,
                     member.member_id)
            group.shutdown_requested_by = member.member_id
        self._append(group.group_id, records)
        self._schedule_session(group, member)
        recovery_lag = self._group_int(group.group_id, "streams.acceptable.recovery.lag")
        resp = StreamsGroupHeartbeatResponse(
            error_code=ErrorCode.NONE, member_id=member.member_id, member_epoch=member.member_epoch,
            heartbeat_interval_ms=self.heartbeat_interval_ms(group.group_id),
            acceptable_recovery_lag_legacy=min(recovery_lag, 2**31 - 1), acceptable_recovery_lag=recovery_lag,
            task_offset_interval_ms=self._group_int(group.group_id, "streams.task.offset.interval.ms"))
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

    def _check_tasks(self, g: StreamsGroup, r: StreamsGroupHeartbeatRequest) -> None:
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

    def _endpoints(self, g: StreamsGroup) -> list[StreamsGroupHeartbeatResponse.EndpointToPartitions]:
        """Which partitions each member's user endpoint serves (interactive queries)."""
        E = StreamsGroupHeartbeatResponse.EndpointToPartitions
        out = []
        configured = g.configured or {}
        for m in sorted(g.members.values(), key=lambda x: x.member_id):
            if m.user_endpoint is None:
                continue

            def parts(tasks: Tasks) -> list[TopicPartition]:
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
                         standby_partitions=parts(union(m.standby, m.warmup))))
        return out

    def _replace_static(self, g: StreamsGroup, previous: StreamsMember, member_id: str,
                        records: list[Record]) -> StreamsMember:
        old = previous.member_id
        self._take_over_static(g, previous, member_id, records)
        if old in g.target:
            g.target[member_id] = g.target.pop(old)
            records.append(self._target_member_record(g, member_id))
        records.append(self._current_record(g, previous))
        return previous

    # -- leaving ----------------------------------------------------------------------------------------------

    def _leave(self, r: StreamsGroupHeartbeatRequest) -> StreamsGroupHeartbeatResponse:
        group = self._group_for(r.group_id, create=False)
        member = group.members.get(r.member_id)
        if r.instance_id is not None:
            member = self._static_of(group, r, r.instance_id)
        if member is None:
            raise StreamsGroupError(ErrorCode.UNKNOWN_MEMBER_ID,
                                    f"Member {r.member_id} is not a member of group {group.group_id}.")
        if r.shutdown_application and group.shutdown_requested_by is None:
            group.shutdown_requested_by = member.member_id
        if r.member_epoch == STATIC_LEAVE_EPOCH:
            # The static member keeps its tasks until it comes back or its session times out.
            member.leave_temporarily()
            self._append(group.group_id, [self._current_record(group, member)])
            self._schedule_session(group, member)
            return StreamsGroupHeartbeatResponse(error_code=ErrorCode.NONE, member_id=member.member_id,
                                                 member_epoch=STATIC_LEAVE_EPOCH,
                                                 heartbeat_interval_ms=0)
        self.remove_member(group, member.member_id)
        return StreamsGroupHeartbeatResponse(error_code=ErrorCode.NONE, member_id=r.member_id,
                                             member_epoch=LEAVE_EPOCH, heartbeat_interval_ms=0)

