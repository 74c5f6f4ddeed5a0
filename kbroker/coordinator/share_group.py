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
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kbroker.coordinator.share_assignor import assign
from kbroker.coordinator.share_group_config import effective
from kbroker.coordinator.timer_keys import GroupTimerKey
from kbroker_protocol.errors import ErrorCode
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
from kbroker_protocol.messages.share_group_heartbeat import ShareGroupHeartbeatResponse

log = logging.getLogger(__name__)

_I16 = struct.Struct(">h")

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
class ShareMember:
    member_id: str
    member_epoch: int = 0
    previous_member_epoch: int = -1
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: list[str] = field(default_factory=list)
    assigned: Parts = field(default_factory=dict)


@dataclass
class ShareGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    metadata_hash: int = 0
    members: dict[str, ShareMember] = field(default_factory=dict)
    target: dict[str, Parts] = field(default_factory=dict)
    initialized: dict[uuid.UUID, set[int]] = field(default_factory=dict)
    empty_since_ms: int = 0

    def state_name(self) -> str:
        return "Stable" if self.members else "Empty"

    def subscribed_topics(self) -> set[str]:
        out: set[str] = set()
        for m in self.members.values():
            out.update(m.subscribed_topic_names)
        return out


class ShareGroupError(Exception):
    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


def _copy(parts: Parts) -> Parts:
    return {t: set(ps) for t, ps in parts.items() if ps}


class ShareGroupManager:
    """Share groups of a :class:`~kbroker.coordinator.group_coordinator.GroupCoordinator`; they share
    its ``groups`` id space and ``__consumer_offsets`` partitions."""

    def __init__(self, coordinator: Any) -> None:
        self.coordinator = coordinator
        self.broker = coordinator.broker
        self.timer = coordinator.timer
        # Called with (group id, member id) when a member leaves or is removed (share sessions and
        # acquired records of that member are released by the share fetch manager).
        self.on_member_removed: list[Callable[[str, str], None]] = []
        # Called with the group id when a share group is deleted (its share state goes too).
        self.on_group_deleted: list[Callable[[str], None]] = []

    @property
    def _config(self) -> Any:
        return self.broker.config

    # -- topics ---------------------------------------------------------------------------------------------

    def _topic_id(self, name: str) -> uuid.UUID | None:
        topic = self.broker.image.topic(name)
        return topic.topic_id if topic is not None else None

    def _topic_name(self, topic_id: uuid.UUID) -> str | None:
        topic = self.broker.image.topic_by_id(topic_id)
        return topic.name if topic is not None else None

    def _metadata(self, topics: set[str]) -> dict[uuid.UUID, tuple[str, int]]:
        out = {}
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

    def heartbeat(self, request: Any, client_id: str, client_host: str) -> ShareGroupHeartbeatResponse:
        try:
            self._validate(request)
            if request.member_epoch == -1:
                return self._leave(request.group_id, request.member_id)
            return self._heartbeat(request, client_id, client_host)
        except ShareGroupError as e:
            return ShareGroupHeartbeatResponse(error_code=e.code, error_message=e.message, member_id=None,
                                               member_epoch=0, heartbeat_interval_ms=0, assignment=None)

    @staticmethod
    def _validate(r: Any) -> None:
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
        group = self.coordinator.groups.get(group_id)
        if group is None:
            if not create:
                raise ShareGroupError(ErrorCode.GROUP_ID_NOT_FOUND, f"Share group {group_id} not found.")
            group = ShareGroup(group_id, empty_since_ms=self.timer.now_ms())
            self.coordinator.groups[group_id] = group
            return group
        if not isinstance(group, ShareGroup):
            # As Kafka: no conversion between group types, even of an empty group.
            raise ShareGroupError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a share group.")
        return group

    def _heartbeat(self, r: Any, client_id: str, client_host: str) -> ShareGroupHeartbeatResponse:
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
            if epoch > member.member_epoch:
                raise ShareGroupError(ErrorCode.FENCED_MEMBER_EPOCH, (
                    f"The share group member has a greater member epoch ({epoch}) than the one known by the "
                    f"group coordinator ({member.member_epoch}). The member must abandon all its partitions "
                    "and rejoin."))
            if epoch < member.member_epoch and epoch != member.previous_member_epoch:
                raise ShareGroupError(ErrorCode.FENCED_MEMBER_EPOCH, (
                    f"The share group member has a smaller member epoch ({epoch}) than the one known by the "
                    f"group coordinator ({member.member_epoch}), and it does not match the previous member "
                    f"epoch ({member.previous_member_epoch}). The member must abandon all its partitions and "
                    "rejoin."))
        old_assigned = _copy(member.assigned)
        records: list[tuple[bytes, bytes | None]] = []
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
            group.group_epoch += 1
            group.metadata_hash = metadata_hash
            records.append(self._group_record(group))
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
        if records:
            self.coordinator.append(group.group_id, records)
        self._schedule_session(group, updated.member_id)
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
        self.timer.cancel(self._session_key(group, member_id))
        records = self._member_tombstones(group, member_id)
        del group.members[member_id]
        group.target.pop(member_id, None)
        group.group_epoch += 1
        records.append(self._group_record(group))
        if group.members:
            records.extend(self._compute_target(group, self._metadata(group.subscribed_topics())))
        else:
            group.empty_since_ms = self.timer.now_ms()
            group.assignment_epoch = group.group_epoch
            records.append(self._target_metadata_record(group))
        self.coordinator.append(group.group_id, records)
        for fn in self.on_member_removed:
            try:
                fn(group.group_id, member_id)
            except Exception:
                log.exception("share group %s: member-removed hook failed", group.group_id)

    # -- assignment -------------------------------------------------------------------------------------------

    def _compute_target(self, group: ShareGroup, meta: dict[uuid.UUID, tuple[str, int]]
                        ) -> list[tuple[bytes, bytes | None]]:
        subs: dict[str, set[uuid.UUID]] = {}
        name_to_id = {name: tid for tid, (name, _count) in meta.items()}
        for mid, m in group.members.items():
            subs[mid] = {name_to_id[t] for t in m.subscribed_topic_names if t in name_to_id}
        partitions = {tid: count for tid, (_name, count) in meta.items()}
        target = assign(sorted(group.members), subs, partitions, {mid: group.target.get(mid, {}) for mid in group.members})
        records: list[tuple[bytes, bytes | None]] = []
        for mid in sorted(group.members):
            parts = target.get(mid, {})
            if parts != group.target.get(mid):
                group.target[mid] = _copy(parts)
                records.append(self._target_member_record(group, mid))
        group.assignment_epoch = group.group_epoch
        records.append(self._target_metadata_record(group))
        return records

    def _initialize_partitions(self, group: ShareGroup, meta: dict[uuid.UUID, tuple[str, int]]
                               ) -> list[tuple[bytes, bytes | None]]:
        """The ShareGroupStatePartitionMetadata record: the subscribed partitions whose share state
        exists (initialized lazily by the share partitions on first fetch, from
        ``share.auto.offset.reset``)."""
        wanted = {tid: set(range(count)) for tid, (_n, count) in meta.items()}
        if wanted == group.initialized:
            return []
        group.initialized = wanted
        return [self._state_partition_record(group)]

    # -- sessions ---------------------------------------------------------------------------------------------

    @staticmethod
    def _session_key(group: ShareGroup, member_id: str) -> GroupTimerKey:
        return GroupTimerKey("share-session", group.group_id, member_id)

    def _schedule_session(self, group: ShareGroup, member_id: str) -> None:
        self.timer.schedule(self._session_key(group, member_id),
                            effective(self.broker, group.group_id, "share.session.timeout.ms"),
                            lambda: self._on_session_expired(group, member_id))

    def _on_session_expired(self, group: ShareGroup, member_id: str) -> None:
        if self.coordinator.groups.get(group.group_id) is group and member_id in group.members:
            log.info("share group %s: member %s session expired", group.group_id, member_id)
            self.remove_member(group, member_id)

    # -- records ----------------------------------------------------------------------------------------------

    @staticmethod
    def _key(kind: int, key: Any) -> bytes:
        return _I16.pack(kind) + key.encode(0)

    @staticmethod
    def _value(value: Any) -> bytes:
        return _I16.pack(0) + value.encode(0)

    @staticmethod
    def _to_ids(parts: Parts, cls: Any) -> list[Any]:
        return [cls(topic_id=tid, partitions=sorted(ps)) for tid, ps in sorted(parts.items(), key=lambda kv: str(kv[0]))
                if ps]

    @staticmethod
    def _from_ids(items: list[Any] | None) -> Parts:
        return {i.topic_id: set(i.partitions) for i in items or [] if i.partitions}

    def _group_record(self, group: ShareGroup) -> tuple[bytes, bytes]:
        return (self._key(GROUP_METADATA, ShareGroupMetadataKey(group_id=group.group_id)),
                self._value(ShareGroupMetadataValue(epoch=group.group_epoch, metadata_hash=group.metadata_hash)))

    def _member_record(self, group: ShareGroup, m: ShareMember) -> tuple[bytes, bytes]:
        value = ShareGroupMemberMetadataValue(rack_id=m.rack_id, client_id=m.client_id, client_host=m.client_host,
                                              subscribed_topic_names=list(m.subscribed_topic_names))
        return (self._key(MEMBER_METADATA, ShareGroupMemberMetadataKey(group_id=group.group_id, member_id=m.member_id)),
                self._value(value))

    def _target_member_record(self, group: ShareGroup, member_id: str) -> tuple[bytes, bytes]:
        value = ShareGroupTargetAssignmentMemberValue(topic_partitions=self._to_ids(
            group.target.get(member_id, {}), ShareGroupTargetAssignmentMemberValue.TopicPartition))
        return (self._key(TARGET_MEMBER, ShareGroupTargetAssignmentMemberKey(group_id=group.group_id,
                                                                             member_id=member_id)), self._value(value))

    def _target_metadata_record(self, group: ShareGroup) -> tuple[bytes, bytes]:
        return (self._key(TARGET_METADATA, ShareGroupTargetAssignmentMetadataKey(group_id=group.group_id)),
                self._value(ShareGroupTargetAssignmentMetadataValue(assignment_epoch=group.assignment_epoch,
                                                                    assignment_timestamp=self.timer.now_ms())))

    def _current_record(self, group: ShareGroup, m: ShareMember) -> tuple[bytes, bytes]:
        value = ShareGroupCurrentMemberAssignmentValue(
            member_epoch=m.member_epoch, previous_member_epoch=m.previous_member_epoch, state=STABLE_MEMBER_STATE,
            assigned_partitions=self._to_ids(m.assigned, ShareGroupCurrentMemberAssignmentValue.TopicPartitions))
        return (self._key(CURRENT_ASSIGNMENT, ShareGroupCurrentMemberAssignmentKey(group_id=group.group_id,
                                                                                   member_id=m.member_id)),
                self._value(value))

    def _state_partition_record(self, group: ShareGroup) -> tuple[bytes, bytes]:
        V = ShareGroupStatePartitionMetadataValue
        info = []
        for tid, ps in sorted(group.initialized.items(), key=lambda kv: str(kv[0])):
            info.append(V.TopicPartitionsInfo(topic_id=tid, topic_name=self._topic_name(tid) or "",
                                              partitions=sorted(ps)))
        return (self._key(STATE_PARTITION, ShareGroupStatePartitionMetadataKey(group_id=group.group_id)),
                self._value(V(initializing_topics=[], initialized_topics=info, deleting_topics=[])))

    def _member_tombstones(self, group: ShareGroup, member_id: str) -> list[tuple[bytes, bytes | None]]:
        gid = group.group_id
        return [
            (self._key(CURRENT_ASSIGNMENT, ShareGroupCurrentMemberAssignmentKey(group_id=gid, member_id=member_id)),
             None),
            (self._key(TARGET_MEMBER, ShareGroupTargetAssignmentMemberKey(group_id=gid, member_id=member_id)), None),
            (self._key(MEMBER_METADATA, ShareGroupMemberMetadataKey(group_id=gid, member_id=member_id)), None),
        ]

    def tombstones(self, group: ShareGroup) -> list[tuple[bytes, bytes | None]]:
        out: list[tuple[bytes, bytes | None]] = []
        for mid in list(group.members):
            out.extend(self._member_tombstones(group, mid))
        gid = group.group_id
        out.append((self._key(STATE_PARTITION, ShareGroupStatePartitionMetadataKey(group_id=gid)), None))
        out.append((self._key(TARGET_METADATA, ShareGroupTargetAssignmentMetadataKey(group_id=gid)), None))
        out.append((self._key(GROUP_METADATA, ShareGroupMetadataKey(group_id=gid)), None))
        return out

    def apply(self, kind: int, key: bytes, value: bytes | None) -> None:
        """Replay of a share group record at start-up."""
        key_cls, value_cls = SHARE_RECORD_TYPES[kind]
        k = key_cls.decode(memoryview(key)[2:], 0)
        v = None
        if value is not None:
            (version,) = _I16.unpack_from(value)
            v = value_cls.decode(memoryview(value)[2:], min(version, value_cls.MAX_VERSION))
        groups = self.coordinator.groups
        group = groups.get(k.group_id)
        if kind == GROUP_METADATA and v is None:
            if isinstance(group, ShareGroup):
                del groups[k.group_id]
            return
        if not isinstance(group, ShareGroup):
            if v is None:
                return
            group = groups[k.group_id] = ShareGroup(k.group_id, empty_since_ms=self.timer.now_ms())
        if kind == GROUP_METADATA:
            group.group_epoch, group.metadata_hash = v.epoch, v.metadata_hash
            return
        if kind == TARGET_METADATA:
            if v is not None:
                group.assignment_epoch = v.assignment_epoch
            return
        if kind == STATE_PARTITION:
            group.initialized = {} if v is None else {t.topic_id: set(t.partitions) for t in v.initialized_topics}
            return
        mid = k.member_id
        if v is None:
            if kind == MEMBER_METADATA:
                group.members.pop(mid, None)
            elif kind == TARGET_MEMBER:
                group.target.pop(mid, None)
            return
        member = group.members.setdefault(mid, ShareMember(mid))
        if kind == MEMBER_METADATA:
            member.rack_id, member.client_id, member.client_host = v.rack_id, v.client_id, v.client_host
            member.subscribed_topic_names = list(v.subscribed_topic_names)
        elif kind == TARGET_MEMBER:
            group.target[mid] = self._from_ids(v.topic_partitions)
        elif kind == CURRENT_ASSIGNMENT:
            member.member_epoch, member.previous_member_epoch = v.member_epoch, v.previous_member_epoch
            member.assigned = self._from_ids(v.assigned_partitions)

    def on_loaded(self, group: ShareGroup) -> None:
        """After replay every member gets a session timeout to come back (as Kafka schedules)."""
        for mid in list(group.members):
            self._schedule_session(group, mid)

    # -- for the other APIs ------------------------------------------------------------------------------------

    def share_group(self, group_id: str, *, create: bool = False) -> ShareGroup:
        """The share group ``group_id`` (created empty and persisted when ``create``); raises
        ShareGroupError GROUP_ID_NOT_FOUND for a missing group or one of another type."""
        existed = isinstance(self.coordinator.groups.get(group_id), ShareGroup)
        group = self._group(group_id, create=create)
        if not existed:
            self.coordinator.append(group_id, [self._group_record(group)])
        return group

    def is_empty(self, group: ShareGroup) -> bool:
        return not group.members

    def mark_dead(self, group: ShareGroup) -> None:
        for mid in list(group.members):
            self.timer.cancel(self._session_key(group, mid))

    def member_assigned(self, group_id: str, member_id: str, topic_id: uuid.UUID, partition: int) -> bool:
        group = self.coordinator.groups.get(group_id)
        if not isinstance(group, ShareGroup):
            return False
        member = group.members.get(member_id)
        return member is not None and partition in member.assigned.get(topic_id, ())
