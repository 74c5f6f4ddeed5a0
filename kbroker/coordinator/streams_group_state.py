"""KIP-1071 streams groups: the group state a heartbeat changes (see ``streams_group``).

The records written to ``__consumer_offsets`` and their replay, the topology's configuration against
the metadata image (Kafka's ``InternalTopicManager``), the target assignment (``streams_assignor``),
the reconciliation of a member towards its target (revocation of active tasks first), member
removal, the session, revocation and initial-delay timers, and the checks other APIs ask for.
"""

from __future__ import annotations

import hashlib
import logging
from functools import partial

from kbroker.coordinator.assignment_sets import copy_parts, grant, intersect, minus
from kbroker.coordinator.group_members import STATIC_LEAVE_EPOCH, MemberGroupManager, Record
from kbroker.coordinator.share_group_config import effective
from kbroker.coordinator.streams_assignor import AssignorMember, Tasks, assign
from kbroker.coordinator.streams_group_model import (
    CURRENT_ASSIGNMENT,
    GROUP_METADATA,
    INCORRECTLY_PARTITIONED_TOPICS,
    KIND,
    MEMBER_METADATA,
    MISSING_INTERNAL_TOPICS,
    MISSING_SOURCE_TOPICS,
    STABLE,
    TARGET_MEMBER,
    TOPOLOGY,
    UNRELEASED,
    UNREVOKED,
    StreamsGroup,
    StreamsMember,
    Subtopology,
    _tasks_from,
    _to_ids,
)
from kbroker.coordinator.timer_keys import GroupTimerKey
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.coordinator import (
    StreamsGroupCurrentMemberAssignmentValue,
    StreamsGroupMemberMetadataValue,
    StreamsGroupMetadataValue,
    StreamsGroupTargetAssignmentMemberValue,
    StreamsGroupTopologyValue,
)
from kbroker_protocol.messages.coordinator.streams_group_current_member_assignment_value import (
    TaskIds as CurrentTaskIds,
)
from kbroker_protocol.messages.streams_group_heartbeat import StreamsGroupHeartbeatRequest
from kbroker_protocol.primitives import Message

log = logging.getLogger("kbroker.coordinator.streams_group")  # the logger of the module before the split


class StreamsGroupState(MemberGroupManager[StreamsGroup, StreamsMember]):
    kind = KIND

    def heartbeat_interval_ms(self, group_id: str) -> int:
        """The group's ``streams.heartbeat.interval.ms`` (Kafka's streamsGroupHeartbeatIntervalMs)."""
        return self._group_int(group_id, "streams.heartbeat.interval.ms")

    # -- records ------------------------------------------------------------------------------------------

    def _group_record(self, g: StreamsGroup) -> Record:
        V = StreamsGroupMetadataValue
        return self._record(GROUP_METADATA, V(
            epoch=g.group_epoch, metadata_hash=g.metadata_hash, validated_topology_epoch=g.validated_topology_epoch,
            last_assignment_configs=[V.LastAssignmentConfig(key=k, value=v)
                                     for k, v in sorted(g.last_assignment_configs.items())]), g.group_id)

    def assignment_configs(self, group_id: str) -> dict[str, str]:
        """The configs the group's assignor takes now (Kafka's streamsGroupAssignmentConfigs), each the
        group's override else the broker default: ``num.standby.replicas`` and, when not empty,
        ``rack.aware.assignment.tags`` (recorded as Kafka does; kbroker's assignor does not use them). A
        heartbeat that finds them changed since the group's last epoch bump bumps the group epoch."""
        standby = min(self._group_int(group_id, "streams.num.standby.replicas"),
                      self._config["group.streams.max.standby.replicas"])
        configs = {"num.standby.replicas": str(standby)}
        tags: list[str] = effective(self.broker, group_id, "streams.rack.aware.assignment.tags")
        if tags:
            configs["rack.aware.assignment.tags"] = ",".join(tags)
        return configs

    def _member_record(self, g: StreamsGroup, m: StreamsMember) -> Record:
        V = StreamsGroupMemberMetadataValue
        return self._record(MEMBER_METADATA, V(
            instance_id=m.instance_id, rack_id=m.rack_id, client_id=m.client_id, client_host=m.client_host,
            rebalance_timeout_ms=m.rebalance_timeout_ms, topology_epoch=m.topology_epoch, process_id=m.process_id,
            user_endpoint=None if m.user_endpoint is None else V.Endpoint(host=m.user_endpoint[0],
                                                                          port=m.user_endpoint[1]),
            client_tags=[V.KeyValue(key=k, value=v) for k, v in sorted(m.client_tags.items())]), g.group_id, m.member_id)

    def _target_member_record(self, g: StreamsGroup, mid: str) -> Record:
        V = StreamsGroupTargetAssignmentMemberValue
        active, standby, warmup = g.target.get(mid, ({}, {}, {}))
        T = V.TaskIds
        return self._record(TARGET_MEMBER, V(active_tasks=_to_ids(active, T), standby_tasks=_to_ids(standby, T),
                                             warmup_tasks=_to_ids(warmup, T)), g.group_id, mid)

    def _current_record(self, g: StreamsGroup, m: StreamsMember) -> Record:
        V = StreamsGroupCurrentMemberAssignmentValue
        T = V.TaskIds

        def with_epochs(tasks: dict[str, dict[int, int]]) -> list[CurrentTaskIds]:
            return [T(subtopology_id=s, partitions=sorted(tasks[s]), assignment_epochs=[tasks[s][p] for p in sorted(tasks[s])])
                    for s in sorted(tasks) if tasks[s]]

        pending = {s: {p: m.pending_epochs.get((s, p), m.member_epoch) for p in ps} for s, ps in m.pending_active.items()}
        return self._record(CURRENT_ASSIGNMENT, V(
            member_epoch=m.member_epoch, previous_member_epoch=m.previous_member_epoch, state=m.state,
            active_tasks=with_epochs(m.active), standby_tasks=_to_ids(m.standby, T),
            warmup_tasks=_to_ids(m.warmup, T), active_tasks_pending_revocation=with_epochs(pending),
            standby_tasks_pending_revocation=[], warmup_tasks_pending_revocation=[]), g.group_id, m.member_id)

    def _topology_record(self, g: StreamsGroup) -> Record:
        assert g.topology is not None
        return self._record(TOPOLOGY, g.topology, g.group_id)

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

    # -- assignment and reconciliation -------------------------------------------------------------------------

    def _compute_target(self, g: StreamsGroup) -> list[Record]:
        counts = self._task_counts(g)
        # Kafka computes a target with the configs of the group's last epoch bump (lastAssignmentConfigs);
        # a group replayed from records without them takes the current ones.
        configs = g.last_assignment_configs or self.assignment_configs(g.group_id)
        standby = int(configs["num.standby.replicas"])
        members = {}
        for mid, m in g.members.items():
            current = g.target.get(mid)
            members[mid] = AssignorMember(process_id=m.process_id or mid,
                                          active=copy_parts(current[0]) if current else m.active_tasks(),
                                          standby=copy_parts(current[1]) if current else copy_parts(m.standby),
                                          task_offsets={(st, p): o for st, p, o in m.task_offsets})
        stateful = {c.subtopology_id for c in (g.topology.subtopologies if g.topology else [])
                    if c.state_changelog_topics}
        result = assign(members, counts, standby, stateful)
        g.target = {mid: (a, s, {}) for mid, (a, s) in result.items()}
        records = self._new_target(g, sorted(g.members))
        log.info("streams group %s: epoch %d target assignment: %s", g.group_id, g.group_epoch,
                 {mid: {s: sorted(ps) for s, ps in a.items()} for mid, (a, _s, _w) in g.target.items()})
        return records

    def _reconcile(self, g: StreamsGroup, m: StreamsMember, r: StreamsGroupHeartbeatRequest,
                   delayed: bool = False) -> None:
        """Move the member toward its target. While the initial rebalance delay holds the assignment back,
        the target is empty at the current assignment epoch, as Kafka's maybeUpdateStreamsTargetAssignment
        does: the first member leaves the joining state with epoch 1 and no tasks."""
        if m.member_epoch == STATIC_LEAVE_EPOCH:
            return
        empty: tuple[Tasks, Tasks, Tasks] = ({}, {}, {})
        target_active, target_standby, target_warmup = empty if delayed else g.target.get(m.member_id, empty)
        target_epoch = g.assignment_epoch
        owned = _tasks_from(r.active_tasks) if r.active_tasks is not None else None
        if m.pending_active:
            if owned is None or intersect(owned, m.pending_active):
                return  # still revoking
            m.pending_active, m.pending_epochs = {}, {}
            self.timer.cancel(self._revoke_key(g, m.member_id))
        current = m.active_tasks()
        if (m.member_epoch == target_epoch and m.state == STABLE and current == copy_parts(target_active)
                and copy_parts(m.standby) == copy_parts(target_standby)):
            return
        revoke = minus(current, target_active)
        if revoke:
            m.pending_epochs = {(s, p): e for s, ps in m.active.items() for p, e in ps.items()
                                if p in revoke.get(s, set())}
            m.active = {s: {p: e for p, e in ps.items() if p not in revoke.get(s, set())} for s, ps in m.active.items()}
            m.active = {s: ps for s, ps in m.active.items() if ps}
            m.pending_active = revoke
            m.standby = intersect(m.standby, target_standby)
            m.warmup = intersect(m.warmup, target_warmup)
            m.state = UNREVOKED
            self._schedule_revocation(g, m, max(m.rebalance_timeout_ms, 0),
                                      partial(self._on_revoke_timeout, g.group_id, m.member_id))
            return
        new_epoch = target_epoch
        granted, complete = grant(target_active, g.active_owner, m, held=m.active)
        for s, ps in granted.items():
            for p in sorted(ps):
                m.active.setdefault(s, {}).setdefault(p, new_epoch)
        # A task is never standby where it runs as active.
        m.standby = minus(copy_parts(target_standby), m.active_tasks())
        m.warmup = minus(copy_parts(target_warmup), m.active_tasks())
        m.bump_epoch(new_epoch)
        m.state = STABLE if complete else UNRELEASED

    # -- removal and timers ---------------------------------------------------------------------------------

    def remove_member(self, g: StreamsGroup, member_id: str) -> None:
        """Fence a member: tombstones, a bumped group epoch and a new target for the others."""
        if member_id not in g.members:
            return
        records = self._drop_member(g, member_id)
        records.append(self._group_record(g))
        if g.members and not g.assignment_delayed:
            records.extend(self._compute_target(g))
        else:
            g.assignment_epoch = g.group_epoch
            records.append(self._target_metadata_record(g))
        if not g.members:
            g.empty_since_ms = self.timer.now_ms()
            g.shutdown_requested_by = None
        self._append(g.group_id, records)
        log.info("streams group %s: member %s removed, epoch %d", g.group_id, member_id, g.group_epoch)

    @staticmethod
    def _delay_key(g: StreamsGroup) -> GroupTimerKey:
        return GroupTimerKey("streams-initial-delay", g.group_id)

    def _schedule_session(self, g: StreamsGroup, m: StreamsMember) -> None:
        self.timer.schedule(self._session_key(g, m.member_id),
                            self._group_int(g.group_id, "streams.session.timeout.ms"),
                            partial(self._on_session_timeout, g.group_id, m.member_id))

    def _live(self, group_id: str, member_id: str) -> StreamsGroup | None:
        g = self.coordinator.groups.get(group_id)
        if not isinstance(g, StreamsGroup) or member_id not in g.members or not self.coordinator.loaded:
            return None
        return g

    def _on_session_timeout(self, group_id: str, member_id: str) -> None:
        g = self._live(group_id, member_id)
        if g is not None:
            log.info("streams group %s: member %s session timed out", group_id, member_id)
            self._timer_write(group_id, self._session_key(g, member_id),
                              partial(self._on_session_timeout, group_id, member_id),
                              partial(self.remove_member, g, member_id), [member_id])

    def _on_revoke_timeout(self, group_id: str, member_id: str) -> None:
        g = self._live(group_id, member_id)
        if g is not None and g.members[member_id].pending_active:
            log.info("streams group %s: member %s did not revoke its tasks in time", group_id, member_id)
            self._timer_write(group_id, self._revoke_key(g, member_id),
                              partial(self._on_revoke_timeout, group_id, member_id),
                              partial(self.remove_member, g, member_id), [member_id])

    def _on_delay_expired(self, group_id: str) -> None:
        g = self.coordinator.groups.get(group_id)
        if not isinstance(g, StreamsGroup) or not self.coordinator.loaded:
            return
        self._timer_write(group_id, self._delay_key(g), partial(self._on_delay_expired, group_id),
                          partial(self._end_delay, g))

    def _end_delay(self, g: StreamsGroup) -> None:
        g.assignment_delayed = False
        if g.members and g.group_epoch > g.assignment_epoch:
            self._append(g.group_id, self._compute_target(g))

    # -- replay (the skeleton is MemberGroupManager.replay) ----------------------------------------------------

    def apply(self, kind: int, key: bytes, value: bytes | None) -> None:
        if kind in KIND.types:
            self.replay(kind, key, value)

    def _replay_group_metadata(self, g: StreamsGroup, v: Message) -> None:
        assert isinstance(v, StreamsGroupMetadataValue)  # (the kind's value class of the record type)
        g.group_epoch, g.metadata_hash, g.validated_topology_epoch = v.epoch, v.metadata_hash, v.validated_topology_epoch
        g.last_assignment_configs = {c.key: c.value for c in v.last_assignment_configs or []}

    def _replay_group_record(self, g: StreamsGroup, kind: int, value: Message | None) -> bool:
        if kind != TOPOLOGY:
            return False
        assert value is None or isinstance(value, StreamsGroupTopologyValue)
        g.topology = value
        return True

    def _replay_member_metadata(self, m: StreamsMember, v: Message) -> None:
        assert isinstance(v, StreamsGroupMemberMetadataValue)
        m.instance_id, m.rack_id, m.client_id, m.client_host = v.instance_id, v.rack_id, v.client_id, v.client_host
        m.rebalance_timeout_ms, m.topology_epoch, m.process_id = v.rebalance_timeout_ms, v.topology_epoch, v.process_id
        m.user_endpoint = None if v.user_endpoint is None else (v.user_endpoint.host, v.user_endpoint.port)
        m.client_tags = {kv.key: kv.value for kv in v.client_tags}

    def _replay_target(self, v: Message) -> tuple[Tasks, Tasks, Tasks]:
        assert isinstance(v, StreamsGroupTargetAssignmentMemberValue)
        return _tasks_from(v.active_tasks), _tasks_from(v.standby_tasks), _tasks_from(v.warmup_tasks)

    def _replay_current(self, m: StreamsMember, v: Message) -> None:
        assert isinstance(v, StreamsGroupCurrentMemberAssignmentValue)
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

    def _partial(self, g: StreamsGroup, member_id: str) -> bool:
        return not g.members[member_id].process_id and member_id not in g.target

    def _loaded(self, g: StreamsGroup) -> None:
        self._configure(g)

    # -- used by the coordinator -----------------------------------------------------------------------------

    def is_subscribed_to(self, g: StreamsGroup, topic: str) -> bool:
        return bool(g.members) and topic in g.source_topics()
    def mark_dead(self, g: StreamsGroup) -> None:
        super().mark_dead(g)
        self.timer.cancel(self._delay_key(g))

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
