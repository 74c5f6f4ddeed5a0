"""KIP-932 share groups: membership by ShareGroupHeartbeat, as Kafka 4.4's group coordinator keeps it.

Model (Kafka's ``ShareGroup``): a *group epoch* bumped whenever membership, subscriptions or the
subscribed topics' metadata (partition counts) change; a *target assignment* computed by the simple
assignor (``share_assignor``) for an *assignment epoch*; each member's *member epoch* and assigned
partitions. Share groups have no revocation: partitions may be shared by several members, so a
heartbeat moves the member straight to the target assignment and epoch.

Epochs in requests: 0 joins (SubscribedTopicNames required), -1 leaves; any other value must be
the member's epoch or its previous one (the answer with the new epoch may have been lost), else
FENCED_MEMBER_EPOCH; an unknown member UNKNOWN_MEMBER_ID; a group id used by another kind of group
GROUP_ID_NOT_FOUND ("Group x is not a share group."). A member whose heartbeats stop for
``group.share.session.timeout.ms`` is removed. ``group.share.max.size`` members at most
(GROUP_MAX_SIZE_REACHED). The group is Empty without members, else Stable.

Durability: Kafka's records (ShareGroupMemberMetadata 10, ShareGroupMetadata 11,
ShareGroupTargetAssignmentMetadata 12, ShareGroupTargetAssignmentMember 13,
ShareGroupCurrentMemberAssignment 14, ShareGroupStatePartitionMetadata 15) are written to the
group's ``__consumer_offsets`` partition before the response and replayed at start-up.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from kbroker.coordinator.assignment_sets import copy_parts
from kbroker.coordinator.coordinator_writes import response_error
from kbroker.coordinator.group_members import (
    LEAVE_EPOCH,
    GroupError,
    GroupHost,
    GroupKind,
    GroupMember,
    MemberGroup,
    MemberGroupManager,
    Record,
)
from kbroker.coordinator.share_assignor import assign
from kbroker.coordinator.share_group_config import effective
from kbroker.replication.produce_batch import ProduceError
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.coordinator import (
    ShareGroupCurrentMemberAssignmentKey,
    ShareGroupCurrentMemberAssignmentValue,
    ShareGroupMemberMetadataKey,
    ShareGroupMemberMetadataValue,
    ShareGroupMetadataKey,
    ShareGroupMetadataValue,
    ShareGroupStatePartitionMetadataKey,
    ShareGroupStatePartitionMetadataValue,
    ShareGroupTargetAssignmentMemberKey,
    ShareGroupTargetAssignmentMemberValue,
    ShareGroupTargetAssignmentMetadataKey,
    ShareGroupTargetAssignmentMetadataValue,
)
from kbroker_protocol.messages.share_group_heartbeat import (
    ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse,
)
from kbroker_protocol.primitives import Message

log = logging.getLogger(__name__)

MEMBER_METADATA, GROUP_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT, STATE_PARTITION = (
    10, 11, 12, 13, 14, 15)
SHARE_RECORD_TYPES = {
    MEMBER_METADATA: (ShareGroupMemberMetadataKey, ShareGroupMemberMetadataValue),
    GROUP_METADATA: (ShareGroupMetadataKey, ShareGroupMetadataValue),
    TARGET_METADATA: (ShareGroupTargetAssignmentMetadataKey, ShareGroupTargetAssignmentMetadataValue),
    TARGET_MEMBER: (ShareGroupTargetAssignmentMemberKey, ShareGroupTargetAssignmentMemberValue),
    CURRENT_ASSIGNMENT: (ShareGroupCurrentMemberAssignmentKey, ShareGroupCurrentMemberAssignmentValue),
    STATE_PARTITION: (ShareGroupStatePartitionMetadataKey, ShareGroupStatePartitionMetadataValue),
}
PROTOCOL_TYPE = "share"
STABLE_MEMBER_STATE = 0  # MemberState.STABLE

Parts = dict[uuid.UUID, set[int]]


@dataclass
class ShareMember(GroupMember):
    subscribed_topic_names: list[str] = field(default_factory=list)
    assigned: Parts = field(default_factory=dict)


@dataclass
class ShareGroup(MemberGroup[ShareMember, Parts]):
    empty_since_ms: int = 0
    metadata_hash: int = 0
    initialized: dict[uuid.UUID, set[int]] = field(default_factory=dict)

    def state_name(self) -> str:
        return "Stable" if self.members else "Empty"

    def subscribed_topics(self) -> set[str]:
        out: set[str] = set()
        for m in self.members.values():
            out.update(m.subscribed_topic_names)
        return out


class ShareGroupError(GroupError):
    """A ShareGroupHeartbeat (or share group lookup) error."""

KIND = GroupKind(GROUP_METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT,
                 SHARE_RECORD_TYPES, ShareGroupError, ShareGroup, ShareMember, session_timer="share-session",
                 group_tombstones=(STATE_PARTITION, TARGET_METADATA, GROUP_METADATA))


class _TopicPartitions(Protocol):
    topic_id: uuid.UUID
    partitions: list[int]


_M = TypeVar("_M", bound=Message)


_copy = copy_parts
_ABANDON = " The member must abandon all its partitions and rejoin."


class ShareGroupManager(MemberGroupManager[ShareGroup, ShareMember]):
    """Share groups of a :class:`~kbroker.coordinator.group_coordinator.GroupCoordinator`; they share
    its ``groups`` id space and ``__consumer_offsets`` partitions."""

    kind = KIND

    def __init__(self, coordinator: GroupHost) -> None:
        super().__init__(coordinator)
        # Called with (group id, member id) when a member leaves or is removed (share sessions and
        # acquired records of that member are released by the share fetch manager).
        self.on_member_removed: list[Callable[[str, str], None]] = []
        # Called with the group id when a share group is deleted (its share state goes too).
        self.on_group_deleted: list[Callable[[str], None]] = []

    # -- topics ---------------------------------------------------------------------------------------------

    def _topic_id(self, name: str) -> uuid.UUID | None:
        topic = self.broker.image.topic(name)
        return topic.topic_id if topic is not None else None

    def _topic_name(self, topic_id: uuid.UUID) -> str | None:
        topic = self.broker.image.topic_by_id(topic_id)
        return topic.name if topic is not None else None

    def _metadata(self, topics: set[str]) -> dict[uuid.UUID, tuple[str, int]]:
        out: dict[uuid.UUID, tuple[str, int]] = {}
        for name in sorted(topics):
            topic = self.broker.image.topic(name)
            if topic is not None and topic.partitions:
                out[topic.topic_id] = (name, len(topic.partitions))
        return out

    @staticmethod
    def _metadata_hash(meta: dict[uuid.UUID, tuple[str, int]]) -> int:
        h = hashlib.sha256()
        for tid, (name, count) in sorted(meta.items(), key=lambda kv: kv[1][0]):
            h.update(f"{name}\0{tid}\0{count}\0".encode())
        return int.from_bytes(h.digest()[:8], "big", signed=True)

    # -- heartbeat ------------------------------------------------------------------------------------------

    def heartbeat(self, request: ShareGroupHeartbeatRequest, client_id: str, client_host: str) -> ShareGroupHeartbeatResponse:
        """A heartbeat whose records cannot be appended changes nothing (``_all_or_nothing``)."""
        try:
            self._validate(request)
            with self._all_or_nothing(request.group_id, [request.member_id]):
                if request.member_epoch == LEAVE_EPOCH:
                    return self._leave(request.group_id, request.member_id)
                return self._heartbeat(request, client_id, client_host)
        except ShareGroupError as e:
            return ShareGroupHeartbeatResponse(error_code=e.code, error_message=e.message, member_id=None,
                                               member_epoch=0, heartbeat_interval_ms=0, assignment=None)
        except ProduceError as exc:
            code = response_error(exc.code)
            return ShareGroupHeartbeatResponse(error_code=code, error_message=default_message(code), member_id=None,
                                               member_epoch=0, heartbeat_interval_ms=0, assignment=None)

    @staticmethod
    def _validate(r: ShareGroupHeartbeatRequest) -> None:
        """Kafka's ``throwIfShareGroupHeartbeatRequestIsInvalid``."""
        if not r.member_id:
            raise ShareGroupError(ErrorCode.INVALID_REQUEST, "MemberId can't be empty.")
        if not r.group_id:
            raise ShareGroupError(ErrorCode.INVALID_REQUEST, "GroupId can't be empty.")
        if r.rack_id is not None and not r.rack_id:
            raise ShareGroupError(ErrorCode.INVALID_REQUEST, "RackId can't be empty.")
        if r.member_epoch == 0:
            if not r.subscribed_topic_names:
                raise ShareGroupError(ErrorCode.INVALID_REQUEST, "SubscribedTopicNames must be set in first request.")
        elif r.member_epoch < -1:
            raise ShareGroupError(ErrorCode.INVALID_REQUEST, "MemberEpoch is invalid.")

    def _group(self, group_id: str, create: bool) -> ShareGroup:
        # As Kafka: no conversion between group types, even of an empty group.
        return self._existing_or_new(group_id, create, "share", f"Share group {group_id} not found.")

    def _heartbeat(self, r: ShareGroupHeartbeatRequest, client_id: str, client_host: str) -> ShareGroupHeartbeatResponse:
        epoch = r.member_epoch
        group = self._group(r.group_id, create=epoch == 0)
        max_size = self._config["group.share.max.size"]
        if len(group.members) >= max_size and r.member_id not in group.members:
            raise ShareGroupError(ErrorCode.GROUP_MAX_SIZE_REACHED,
                                  f"The share group has reached its maximum capacity of {max_size} members.")
        member = group.members.get(r.member_id)
        if member is None:
            if epoch != 0:
                raise ShareGroupError(ErrorCode.UNKNOWN_MEMBER_ID,
                                      f"Member {r.member_id} is not a member of group {r.group_id}.")
            member = ShareMember(r.member_id)
            log.info("share group %s: member %s joins", r.group_id, r.member_id)
        elif epoch != 0:
            self._check_epoch("share", epoch, member, lambda: True, _ABANDON,
                              f", and it does not match the previous member epoch ({member.previous_member_epoch})")
        old_assigned = _copy(member.assigned)
        records: list[Record] = []
        is_new = r.member_id not in group.members
        updated = ShareMember(
            member_id=member.member_id, member_epoch=member.member_epoch,
            previous_member_epoch=member.previous_member_epoch,
            rack_id=r.rack_id if r.rack_id is not None else member.rack_id,
            client_id=client_id, client_host=client_host,
            subscribed_topic_names=(sorted(set(r.subscribed_topic_names)) if r.subscribed_topic_names is not None
                                    else list(member.subscribed_topic_names)),
            assigned=_copy(member.assigned),
        )
        bump = False
        if is_new or (updated.rack_id, updated.client_id, updated.client_host, updated.subscribed_topic_names) != (
                member.rack_id, member.client_id, member.client_host, member.subscribed_topic_names):
            records.append(self._member_record(group, updated))
            bump = is_new or updated.subscribed_topic_names != member.subscribed_topic_names
        group.members[updated.member_id] = updated
        meta = self._metadata(group.subscribed_topics())
        metadata_hash = self._metadata_hash(meta)
        if metadata_hash != group.metadata_hash:
            bump = True
        if bump:
            group.metadata_hash = metadata_hash
            self._next_group_epoch(group, records)
            log.info("share group %s: epoch %d", group.group_id, group.group_epoch)
        if group.group_epoch > group.assignment_epoch:
            records.extend(self._compute_target(group, meta))
        # Share groups reconcile at once: no partition has to be revoked first.
        target = group.target.get(updated.member_id, {})
        if updated.member_epoch != group.assignment_epoch or updated.assigned != target:
            updated.previous_member_epoch = updated.member_epoch
            updated.member_epoch = group.assignment_epoch
            updated.assigned = _copy(target)
            records.append(self._current_record(group, updated))
        records.extend(self._initialize_partitions(group, meta))
        self._append(group.group_id, records)
        self._schedule_session(group, updated)
        assignment = None
        if epoch == 0 or r.subscribed_topic_names is not None or updated.assigned != old_assigned:
            assignment = ShareGroupHeartbeatResponse.Assignment(topic_partitions=self._to_ids(
                updated.assigned, ShareGroupHeartbeatResponse.Assignment.TopicPartitions))
        return ShareGroupHeartbeatResponse(
            error_code=ErrorCode.NONE, error_message=None, member_id=updated.member_id,
            member_epoch=updated.member_epoch,
            heartbeat_interval_ms=effective(self.broker, group.group_id, "share.heartbeat.interval.ms"),
            assignment=assignment)

    def _leave(self, group_id: str, member_id: str) -> ShareGroupHeartbeatResponse:
        group = self._group(group_id, create=False)
        if member_id not in group.members:
            raise ShareGroupError(ErrorCode.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of group {group_id}.")
        log.info("share group %s: member %s leaves", group_id, member_id)
        self.remove_member(group, member_id)
        return ShareGroupHeartbeatResponse(error_code=ErrorCode.NONE, error_message=None, member_id=member_id,
                                           member_epoch=-1, heartbeat_interval_ms=0, assignment=None)

    def remove_member(self, group: ShareGroup, member_id: str) -> None:
        if member_id not in group.members:
            return
        records = self._drop_member(group, member_id)
        records.append(self._group_record(group))
        if group.members:
            records.extend(self._compute_target(group, self._metadata(group.subscribed_topics())))
        else:
            group.empty_since_ms = self.timer.now_ms()
            group.assignment_epoch = group.group_epoch
            records.append(self._target_metadata_record(group))
        self._append(group.group_id, records)
        self._once_appended(group.group_id, lambda: self._member_removed(group.group_id, member_id))

    def _member_removed(self, group_id: str, member_id: str) -> None:
        for fn in self.on_member_removed:
            try:
                fn(group_id, member_id)
            except Exception:
                log.exception("share group %s: member-removed hook failed", group_id)

    # -- assignment -------------------------------------------------------------------------------------------

    def _compute_target(self, group: ShareGroup, meta: dict[uuid.UUID, tuple[str, int]]
                        ) -> list[Record]:
        subs: dict[str, set[uuid.UUID]] = {}
        name_to_id = {name: tid for tid, (name, _count) in meta.items()}
        for mid, m in group.members.items():
            subs[mid] = {name_to_id[t] for t in m.subscribed_topic_names if t in name_to_id}
        partitions = {tid: count for tid, (_name, count) in meta.items()}
        target = assign(sorted(group.members), subs, partitions, {mid: group.target.get(mid, {}) for mid in group.members})
        changed = []
        for mid in sorted(group.members):
            parts = target.get(mid, {})
            if parts != group.target.get(mid):
                group.target[mid] = _copy(parts)
                changed.append(mid)
        return self._new_target(group, changed)

    def _initialize_partitions(self, group: ShareGroup, meta: dict[uuid.UUID, tuple[str, int]]
                               ) -> list[Record]:
        """The ShareGroupStatePartitionMetadata record: the subscribed partitions whose share state
        exists (initialized lazily by the share partitions on first fetch, from
        ``share.auto.offset.reset``)."""
        wanted = {tid: set(range(count)) for tid, (_n, count) in meta.items()}
        if wanted == group.initialized:
            return []
        group.initialized = wanted
        return [self._state_partition_record(group)]

    # -- sessions ---------------------------------------------------------------------------------------------

    def _schedule_session(self, group: ShareGroup, member: ShareMember) -> None:
        member_id = member.member_id
        self.timer.schedule(self._session_key(group, member_id),
                            effective(self.broker, group.group_id, "share.session.timeout.ms"),
                            lambda: self._on_session_expired(group, member_id))

    def _on_session_expired(self, group: ShareGroup, member_id: str) -> None:
        if self.coordinator.groups.get(group.group_id) is group and member_id in group.members:
            log.info("share group %s: member %s session expired", group.group_id, member_id)
            self._timer_write(group.group_id, self._session_key(group, member_id),
                              lambda: self._on_session_expired(group, member_id),
                              lambda: self.remove_member(group, member_id), [member_id])

    # -- records ----------------------------------------------------------------------------------------------

    @staticmethod
    def _to_ids(parts: Parts, cls: Callable[..., _M]) -> list[_M]:
        return [cls(topic_id=tid, partitions=sorted(ps)) for tid, ps in sorted(parts.items(), key=lambda kv: str(kv[0]))
                if ps]

    @staticmethod
    def _from_ids(items: Sequence[_TopicPartitions] | None) -> Parts:
        return {i.topic_id: set(i.partitions) for i in items or [] if i.partitions}

    def _group_record(self, group: ShareGroup) -> Record:
        return self._record(GROUP_METADATA, ShareGroupMetadataValue(epoch=group.group_epoch,
                                                                    metadata_hash=group.metadata_hash), group.group_id)

    def _member_record(self, group: ShareGroup, m: ShareMember) -> Record:
        value = ShareGroupMemberMetadataValue(rack_id=m.rack_id, client_id=m.client_id, client_host=m.client_host,
                                              subscribed_topic_names=list(m.subscribed_topic_names))
        return self._record(MEMBER_METADATA, value, group.group_id, m.member_id)

    def _target_member_record(self, group: ShareGroup, member_id: str) -> Record:
        value = ShareGroupTargetAssignmentMemberValue(topic_partitions=self._to_ids(
            group.target.get(member_id, {}), ShareGroupTargetAssignmentMemberValue.TopicPartition))
        return self._record(TARGET_MEMBER, value, group.group_id, member_id)

    def _current_record(self, group: ShareGroup, m: ShareMember) -> Record:
        value = ShareGroupCurrentMemberAssignmentValue(
            member_epoch=m.member_epoch, previous_member_epoch=m.previous_member_epoch, state=STABLE_MEMBER_STATE,
            assigned_partitions=self._to_ids(m.assigned, ShareGroupCurrentMemberAssignmentValue.TopicPartitions))
        return self._record(CURRENT_ASSIGNMENT, value, group.group_id, m.member_id)

    def _state_partition_record(self, group: ShareGroup) -> Record:
        V = ShareGroupStatePartitionMetadataValue
        info = []
        for tid, ps in sorted(group.initialized.items(), key=lambda kv: str(kv[0])):
            info.append(V.TopicPartitionsInfo(topic_id=tid, topic_name=self._topic_name(tid) or "",
                                              partitions=sorted(ps)))
        return self._record(STATE_PARTITION, V(initializing_topics=[], initialized_topics=info, deleting_topics=[]),
                            group.group_id)

    # -- replay (the skeleton is MemberGroupManager.replay) -----------------------------------------------------

    def apply(self, kind: int, key: bytes, value: bytes | None) -> None:
        """Replay of a share group record at start-up."""
        self.replay(kind, key, value)

    def _new_group(self, group_id: str) -> ShareGroup:
        return ShareGroup(group_id, empty_since_ms=self.timer.now_ms())

    def _replay_group_metadata(self, group: ShareGroup, value: Message) -> None:
        assert isinstance(value, ShareGroupMetadataValue)  # (the kind's value class of the record type)
        group.group_epoch, group.metadata_hash = value.epoch, value.metadata_hash

    def _replay_group_record(self, group: ShareGroup, kind: int, value: Message | None) -> bool:
        if kind != STATE_PARTITION:
            return False
        assert value is None or isinstance(value, ShareGroupStatePartitionMetadataValue)
        group.initialized = {} if value is None else {t.topic_id: set(t.partitions) for t in value.initialized_topics}
        return True

    def _replay_member_metadata(self, member: ShareMember, v: Message) -> None:
        assert isinstance(v, ShareGroupMemberMetadataValue)
        member.rack_id, member.client_id, member.client_host = v.rack_id, v.client_id, v.client_host
        member.subscribed_topic_names = list(v.subscribed_topic_names)

    def _replay_target(self, value: Message) -> Parts:
        assert isinstance(value, ShareGroupTargetAssignmentMemberValue)
        return self._from_ids(value.topic_partitions)

    def _replay_current(self, member: ShareMember, v: Message) -> None:
        assert isinstance(v, ShareGroupCurrentMemberAssignmentValue)
        member.member_epoch, member.previous_member_epoch = v.member_epoch, v.previous_member_epoch
        member.assigned = self._from_ids(v.assigned_partitions)

    def on_loaded(self, group: ShareGroup) -> None:
        """After replay every member gets a session timeout to come back (as Kafka schedules)."""
        for member in list(group.members.values()):
            self._schedule_session(group, member)

    # -- for the other APIs ------------------------------------------------------------------------------------

    def share_group(self, group_id: str, *, create: bool = False) -> ShareGroup:
        """The share group ``group_id`` (created empty and persisted when ``create``); raises
        ShareGroupError GROUP_ID_NOT_FOUND for a missing group or one of another type, and
        ProduceError (no group created) when its record cannot be appended."""
        existed = isinstance(self.coordinator.groups.get(group_id), ShareGroup)
        with self._all_or_nothing(group_id):
            group = self._group(group_id, create=create)
            if not existed:
                self._append(group_id, [self._group_record(group)])
        return group

    def mark_dead(self, group: ShareGroup) -> None:
        """Cancel the members' timers; the members stay (the deletion hooks still read them)."""
        for mid in list(group.members):
            self._cancel_member_timers(group, mid)

    def member_assigned(self, group_id: str, member_id: str, topic_id: uuid.UUID, partition: int) -> bool:
        group = self.coordinator.groups.get(group_id)
        if not isinstance(group, ShareGroup):
            return False
        member = group.members.get(member_id)
        return member is not None and partition in member.assigned.get(topic_id, ())
