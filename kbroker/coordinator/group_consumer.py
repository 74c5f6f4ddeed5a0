"""KIP-848 consumer groups: ConsumerGroupHeartbeat with server-side assignment.

Model (Kafka's ``ConsumerGroup``): the group has a *group epoch* bumped whenever membership,
subscriptions or the subscribed topics' partition counts change; a *target assignment* computed by
the assignor (``group_assignors``: ``uniform`` or ``range``) for an *assignment epoch*; and each
member has a *member epoch* and a current assignment that converges to its target one heartbeat at
a time:

- a member that owns partitions its target no longer has must revoke them first: it keeps its
  epoch and is told its assignment without them (state UNREVOKED_PARTITIONS) until a heartbeat shows
  it no longer owns them (or its rebalance timeout fences it);
- then it moves to the assignment epoch and gets the target partitions that no other member still
  owns (UNRELEASED_PARTITIONS until the rest are released), then STABLE.

Epochs in requests: 0 joins, -1 leaves, -2 leaves temporarily (a static member keeps its
assignment until its session times out, and a new member with the same instance id takes it over).
A request with an epoch other than the member's current one (or its previous one, when it owns
nothing it should not) gets FENCED_MEMBER_EPOCH; an unknown member UNKNOWN_MEMBER_ID.

Regular expressions (v1) are Python ``re`` patterns matched with ``fullmatch`` against every topic
name in the metadata image, internal topics (``__consumer_offsets``, ``__transaction_state``)
included, as Kafka's ``GroupMetadataManager.refreshRegularExpressions`` does. Kafka uses RE2/J,
whose syntax is a subset of Python's for the usual patterns (``orders-.*``, alternations, classes);
backreferences and lookarounds are accepted here and rejected there.

Interplay with classic groups (Kafka 4.x, without online migration of a live group):
- a classic consumer (JoinGroup with protocol type ``consumer`` and a ConsumerProtocolSubscription)
  joining a consumer group that has members becomes a *classic member hosted by the group*: the
  broker assigns it like any member; JoinGroup answers at once (generation = member epoch, no
  leader), SyncGroup returns its assignment, and Heartbeat answers REBALANCE_IN_PROGRESS when it
  must give partitions up or can take released ones, so it converges over join rounds (an eager
  client revokes everything before rejoining; a cooperative one reports what it still owns);
- a ConsumerGroupHeartbeat to a Stable classic group of consumers upgrades it online (Kafka's
  default ``bidirectional`` migration policy, upgrade direction): its members become hosted classic
  members keeping their assignments and generation (as member epoch), then the new member's join
  rebalances them as above. Other non-empty classic groups get GROUP_ID_NOT_FOUND ("not a consumer
  group"). An empty classic group is converted, and an empty consumer group becomes classic on
  JoinGroup (no online downgrade of a consumer group with members). Committed offsets stay with
  the group id throughout.

Durability: Kafka's records (ConsumerGroupMetadata, MemberMetadata, TargetAssignmentMetadata,
TargetAssignmentMember, CurrentMemberAssignment; record types 3, 5, 6, 7, 8) are written to
``__consumer_offsets`` before the response and replayed at start-up.
"""

from __future__ import annotations

import logging
import re
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

from kbroker.coordinator.group_assignors import ASSIGNORS, AssignmentMember
from kbroker.coordinator.timer_keys import GroupTimerKey
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatResponse
from kbroker_protocol.messages.consumer_group_heartbeat import TopicPartitions as HeartbeatTopicPartitions
from kbroker_protocol.messages.coordinator import (
    ConsumerGroupCurrentMemberAssignmentKey,
    ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupMemberMetadataKey,
    ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataKey,
    ConsumerGroupMetadataValue,
    ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupTargetAssignmentMemberValue,
    ConsumerGroupTargetAssignmentMetadataKey,
    ConsumerGroupTargetAssignmentMetadataValue,
)
from kbroker_protocol.messages.coordinator.consumer_group_current_member_assignment_value import (
    TopicPartitions,
)
from kbroker_protocol.messages.data.consumer_protocol_assignment import ConsumerProtocolAssignment
from kbroker_protocol.messages.data.consumer_protocol_subscription import ConsumerProtocolSubscription
from kbroker_protocol.messages.join_group import JoinGroupResponse
from kbroker_protocol.messages.sync_group import SyncGroupResponse

log = logging.getLogger(__name__)

_I16 = struct.Struct(">h")
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

STABLE, UNREVOKED, UNRELEASED = 0, 2, 1  # Kafka's MemberState values

GROUP_METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT = 3, 5, 6, 7, 8
_RECORD_TYPES = {
    GROUP_METADATA: (ConsumerGroupMetadataKey, ConsumerGroupMetadataValue),
    MEMBER_METADATA: (ConsumerGroupMemberMetadataKey, ConsumerGroupMemberMetadataValue),
    TARGET_METADATA: (ConsumerGroupTargetAssignmentMetadataKey, ConsumerGroupTargetAssignmentMetadataValue),
    TARGET_MEMBER: (ConsumerGroupTargetAssignmentMemberKey, ConsumerGroupTargetAssignmentMemberValue),
    CURRENT_ASSIGNMENT: (ConsumerGroupCurrentMemberAssignmentKey, ConsumerGroupCurrentMemberAssignmentValue),
}

Parts = dict[str, set[int]]  # topic name -> partitions


def _decode_classic_subscription(metadata: bytes) -> tuple[list[str], list[tuple[str, list[int]]], str | None]:
    """(topics, owned partitions, rack) of a classic consumer's JoinGroup metadata."""
    (version,) = _I16.unpack_from(metadata)
    sub = ConsumerProtocolSubscription.decode(memoryview(metadata)[2:], min(max(version, 0), 3))
    owned = [(tp.topic, list(tp.partitions)) for tp in (sub.owned_partitions or [])] if version >= 1 else []
    return list(sub.topics), owned, sub.rack_id if version >= 3 else None


def _decode_classic_assignment(data: bytes) -> Parts:
    """Partitions of a classic member's SyncGroup assignment (``ConsumerProtocolAssignment``)."""
    out: Parts = {}
    if not data:
        return out
    (version,) = _I16.unpack_from(data)
    value = ConsumerProtocolAssignment.decode(memoryview(data)[2:], min(max(version, 0), 3))
    for tp in value.assigned_partitions:
        out.setdefault(tp.topic, set()).update(tp.partitions)
    return out


def _copy(parts: Parts) -> Parts:
    return {t: set(ps) for t, ps in parts.items() if ps}


def _minus(a: Parts, b: Parts) -> Parts:
    return {t: ps - b.get(t, set()) for t, ps in a.items() if ps - b.get(t, set())}


def _intersect(a: Parts, b: Parts) -> Parts:
    return {t: ps & b.get(t, set()) for t, ps in a.items() if ps & b.get(t, set())}


def _same(a: Parts, b: Parts) -> bool:
    return _copy(a) == _copy(b)


@dataclass(eq=False)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: list[str] = field(default_factory=list)
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    rebalance_timeout_ms: int = 300000
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: int = STABLE
    assigned: Parts = field(default_factory=dict)
    pending_revocation: Parts = field(default_factory=dict)
    # A classic-protocol member hosted by the group (JoinGroup/SyncGroup/Heartbeat): its protocols
    # (name, subscription metadata) and session timeout.
    classic_protocols: list[tuple[str, bytes]] | None = None
    session_timeout_ms: int | None = None

    @property
    def is_classic(self) -> bool:
        return self.classic_protocols is not None


@dataclass(eq=False)
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    target: dict[str, Parts] = field(default_factory=dict)
    subscribed_partitions: dict[str, int] = field(default_factory=dict)
    empty_since_ms: int = -1

    type_name = "consumer"

    def state_name(self) -> str:
        if not self.members:
            return "Empty"
        if self.group_epoch != self.assignment_epoch:
            return "Assigning"
        if any(m.member_epoch != self.assignment_epoch or m.state != STABLE for m in self.members.values()):
            return "Reconciling"
        return "Stable"

    def static_member(self, instance_id: str) -> ConsumerMember | None:
        for m in self.members.values():
            if m.instance_id == instance_id:
                return m
        return None

    def owner(self, topic: str, partition: int) -> ConsumerMember | None:
        for m in self.members.values():
            if partition in m.assigned.get(topic, ()) or partition in m.pending_revocation.get(topic, ()):
                return m
        return None


class ConsumerGroupError(Exception):
    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


class ConsumerGroupManager:
    def __init__(self, coordinator: Any) -> None:
        self.coordinator = coordinator
        self.broker = coordinator.broker
        self.timer = coordinator.timer

    # -- configuration and topics ------------------------------------------------------------------------

    @property
    def _config(self) -> Any:
        return self.broker.config

    def assignor_names(self) -> list[str]:
        return [a for a in self._config["group.consumer.assignors"] if a in ASSIGNORS] or ["uniform"]

    def _topic_names(self) -> list[str]:
        # All topics, internal ones included: Kafka resolves regexes over the whole metadata image.
        return list(self.broker.image.topics)

    def subscribed_topics(self, member: ConsumerMember) -> set[str]:
        image = self.broker.image
        topics = {t for t in member.subscribed_topic_names if image.topic(t) is not None}
        if member.subscribed_topic_regex:
            try:
                pattern = re.compile(member.subscribed_topic_regex)
            except re.error:
                return topics
            topics |= {t for t in self._topic_names() if pattern.fullmatch(t)}
        return topics

    def _topic_id(self, name: str) -> uuid.UUID | None:
        t = self.broker.image.topic(name)
        return None if t is None else t.topic_id

    def _topic_name(self, topic_id: uuid.UUID) -> str | None:
        t = self.broker.image.topic_by_id(topic_id)
        return None if t is None else t.name

    def _to_ids(self, parts: Parts, cls: type) -> list[Any]:
        out = []
        for topic in sorted(parts):
            tid = self._topic_id(topic)
            if tid is not None and parts[topic]:
                out.append(cls(topic_id=tid, partitions=sorted(parts[topic])))
        return out

    def _from_ids(self, items: list[Any] | None) -> Parts:
        out: Parts = {}
        for item in items or []:
            name = self._topic_name(item.topic_id)
            if name is not None:
                out.setdefault(name, set()).update(item.partitions)
        return out

    # -- heartbeat ------------------------------------------------------------------------------------------

    def heartbeat(self, request: Any, version: int, client_id: str, client_host: str) -> ConsumerGroupHeartbeatResponse:
        try:
            return self._heartbeat(request, version, client_id, client_host)
        except ConsumerGroupError as exc:
            return ConsumerGroupHeartbeatResponse(error_code=exc.code, error_message=exc.message, member_id=None,
                                                  member_epoch=0, heartbeat_interval_ms=0, assignment=None)

    def _validate(self, r: Any, version: int) -> None:
        if not r.group_id:
            raise ConsumerGroupError(ErrorCode.INVALID_REQUEST, "GroupId can't be empty.")
        if r.instance_id is not None and r.instance_id == "":
            raise ConsumerGroupError(ErrorCode.INVALID_REQUEST, "InstanceId can't be empty.")
        if r.rack_id is not None and r.rack_id == "":
            raise ConsumerGroupError(ErrorCode.INVALID_REQUEST, "RackId can't be empty.")
        if version >= 1 and not r.member_id:
            raise ConsumerGroupError(ErrorCode.INVALID_REQUEST, "MemberId can't be empty.")
        if r.member_epoch == 0:
            if r.rebalance_timeout_ms == -1:
                raise ConsumerGroupError(ErrorCode.INVALID_REQUEST, "RebalanceTimeoutMs must be provided in first request.")
            # Kafka's check is null-or-non-empty: a join must send the field, and empty.
            if r.topic_partitions is None or r.topic_partitions:
                raise ConsumerGroupError(ErrorCode.INVALID_REQUEST, "TopicPartitions must be empty when (re-)joining.")
            regex = r.subscribed_topic_regex if version >= 1 else None
            if r.subscribed_topic_names is None and regex is None:
                raise ConsumerGroupError(ErrorCode.INVALID_REQUEST,
                                         "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when "
                                         "(re-)joining.")
        elif r.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            if not r.member_id:
                raise ConsumerGroupError(ErrorCode.INVALID_REQUEST, "MemberId can't be empty.")
            if r.member_epoch == STATIC_LEAVE_EPOCH and r.instance_id is None:
                raise ConsumerGroupError(ErrorCode.INVALID_REQUEST,
                                         "InstanceId can't be null when MemberEpoch is -2.")
        elif r.member_epoch < -2:
            raise ConsumerGroupError(ErrorCode.INVALID_REQUEST, f"MemberEpoch {r.member_epoch} is invalid.")
        elif not r.member_id:
            raise ConsumerGroupError(ErrorCode.INVALID_REQUEST, "MemberId can't be empty.")
        if r.server_assignor is not None and r.server_assignor not in self.assignor_names():
            raise ConsumerGroupError(ErrorCode.UNSUPPORTED_ASSIGNOR,
                                     f"ServerAssignor {r.server_assignor} is not supported.")
        regex = r.subscribed_topic_regex if version >= 1 else None
        if regex:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ConsumerGroupError(ErrorCode.INVALID_REGULAR_EXPRESSION, str(exc)) from None

    def _group_for(self, group_id: str, create: bool) -> ConsumerGroup:
        from kbroker.coordinator.group_classic import ClassicGroup, GroupState

        group = self.coordinator.groups.get(group_id)
        if isinstance(group, ClassicGroup):
            if create and group.members and self._can_upgrade(group):
                return self._upgrade(group)
            if group.members or not group.is_in(GroupState.EMPTY) or not create:
                raise ConsumerGroupError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
            # An empty classic group becomes a consumer group; its offsets stay.
            from kbroker.coordinator.group_records import encode_group_key

            if group.protocol_type:
                self.coordinator.append(group_id, [(encode_group_key(group_id), None)])
            self.coordinator.classic.mark_dead(group)
            del self.coordinator.groups[group_id]
            group = None
        if group is not None and not isinstance(group, ConsumerGroup):
            raise ConsumerGroupError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
        if group is None:
            if not create:
                raise ConsumerGroupError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found.")
            group = ConsumerGroup(group_id, empty_since_ms=self.timer.now_ms())
            self.coordinator.groups[group_id] = group
        return group

    def _can_upgrade(self, group: Any) -> bool:
        """Online upgrade (Kafka's ``group.consumer.migration.policy`` upgrade/bidirectional): a
        Stable classic group of consumers whose metadata and assignments decode."""
        from kbroker.coordinator.group_classic import GroupState

        if self._config.get("group.consumer.migration.policy", "bidirectional") not in ("bidirectional", "upgrade"):
            return False
        if not group.is_in(GroupState.STABLE) or group.protocol_type != "consumer":
            return False
        if len(group.members) >= self._config["group.max.size"]:
            return False
        try:
            for m in group.members.values():
                _decode_classic_subscription(m.metadata(group.protocol_name))
                _decode_classic_assignment(m.assignment)
        except Exception:
            return False
        return True

    def _upgrade(self, classic: Any) -> ConsumerGroup:
        """Turn a live classic group into a consumer group hosting its members as classic members:
        each keeps its assignment, with the generation as member epoch, so the clients' next
        heartbeats are valid and they are moved by the usual rejoin rounds."""
        gid = classic.group_id
        group = ConsumerGroup(gid, group_epoch=classic.generation, assignment_epoch=classic.generation)
        for m in classic.members.values():
            topics, _owned, rack = _decode_classic_subscription(m.metadata(classic.protocol_name))
            assigned = _decode_classic_assignment(m.assignment)
            group.members[m.member_id] = ConsumerMember(
                member_id=m.member_id, instance_id=m.group_instance_id, rack_id=rack, client_id=m.client_id,
                client_host=m.client_host, subscribed_topic_names=topics, rebalance_timeout_ms=m.rebalance_timeout_ms,
                member_epoch=classic.generation, previous_member_epoch=classic.generation, assigned=assigned,
                classic_protocols=[(n, bytes(meta)) for n, meta in m.protocols],
                session_timeout_ms=m.session_timeout_ms)
            group.target[m.member_id] = _copy(assigned)
        group.subscribed_partitions = self._subscription_metadata(group)
        from kbroker.coordinator.group_records import encode_group_key

        records: list[tuple[bytes, bytes | None]] = [(encode_group_key(gid), None), self._group_record(group)]
        for m in group.members.values():
            records.append(self._member_record(group, m))
            records.append(self._target_member_record(group, m.member_id))
            records.append(self._current_record(group, m))
        records.append(self._target_metadata_record(group))
        self.coordinator.append(gid, records)
        self.coordinator.classic.mark_dead(classic)
        self.coordinator.groups[gid] = group
        for m in group.members.values():
            self._schedule_session(group, m)
        log.info("classic group %s upgraded to a consumer group at epoch %d", gid, group.group_epoch)
        return group

    def _heartbeat(self, r: Any, version: int, client_id: str, client_host: str) -> ConsumerGroupHeartbeatResponse:
        if not self.coordinator.loaded:
            raise ConsumerGroupError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
        self._validate(r, version)
        regex = r.subscribed_topic_regex if version >= 1 else None
        if r.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(r)
        group = self._group_for(r.group_id, create=r.member_epoch == 0)
        records: list[tuple[bytes, bytes | None]] = []
        bump = False
        member_id = r.member_id or str(uuid.uuid4())
        if r.member_epoch == 0:
            member = group.members.get(member_id)
            replaced = False
            if r.instance_id is not None:
                previous = group.static_member(r.instance_id)
                if previous is not None and previous.member_id != member_id:
                    if previous.member_epoch != STATIC_LEAVE_EPOCH:
                        raise ConsumerGroupError(
                            ErrorCode.UNRELEASED_INSTANCE_ID,
                            f"Static member {previous.member_id} with instance id {r.instance_id} is not released.")
                    member = self._replace_static(group, previous, member_id, records)
                    replaced = True
            if member is None:
                if len(group.members) >= self._config["group.max.size"]:
                    raise ConsumerGroupError(ErrorCode.GROUP_MAX_SIZE_REACHED)
                member = ConsumerMember(member_id=member_id)
                group.members[member_id] = member
                bump = True
            elif member.member_epoch > 0 and not replaced:
                # Rejoining with a known id: it lost its assignment, start over.
                member.assigned, member.pending_revocation = {}, {}
                member.member_epoch, member.state = 0, STABLE
                bump = True
        else:
            member = group.members.get(member_id)
            if member is None:
                raise ConsumerGroupError(ErrorCode.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of the group.")
            if r.member_epoch != member.member_epoch:
                owned = self._from_ids(r.topic_partitions) if r.topic_partitions is not None else None
                if not (r.member_epoch == member.previous_member_epoch and owned is not None
                        and not _minus(owned, member.assigned)):
                    raise ConsumerGroupError(
                        ErrorCode.FENCED_MEMBER_EPOCH,
                        f"The consumer group member has a smaller member epoch ({r.member_epoch}) than the one known "
                        f"by the group coordinator ({member.member_epoch})."
                        if r.member_epoch < member.member_epoch else
                        f"The consumer group member has a greater member epoch ({r.member_epoch}) than the one known "
                        f"by the group coordinator ({member.member_epoch}).")
        # Update what the member tells about itself; null fields mean "unchanged".
        changed = False
        for attr, value in (("instance_id", r.instance_id), ("rack_id", r.rack_id),
                            ("server_assignor", r.server_assignor)):
            if value is not None and getattr(member, attr) != value:
                setattr(member, attr, value)
                changed = True
        if r.rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = r.rebalance_timeout_ms
        if r.subscribed_topic_names is not None and sorted(r.subscribed_topic_names) != sorted(
                member.subscribed_topic_names):
            member.subscribed_topic_names = list(r.subscribed_topic_names)
            changed = bump = True
        if regex is not None and (regex or None) != member.subscribed_topic_regex:
            member.subscribed_topic_regex = regex or None
            changed = bump = True
        member.client_id, member.client_host = client_id, client_host
        if changed or r.member_epoch == 0:
            records.append(self._member_record(group, member))
        # The subscribed topics' partition counts are part of the group's metadata.
        subscribed = self._subscription_metadata(group)
        if subscribed != group.subscribed_partitions:
            group.subscribed_partitions = subscribed
            bump = True
        if bump:
            group.group_epoch += 1
            records.append(self._group_record(group))
        if group.group_epoch > group.assignment_epoch:
            records.extend(self._compute_target(group))
        before = (member.member_epoch, _copy(member.assigned))
        owned = self._from_ids(r.topic_partitions) if r.topic_partitions is not None else None
        self._reconcile(group, member, owned)
        after = (member.member_epoch, _copy(member.assigned))
        if after != before or r.member_epoch == 0 or changed:
            records.append(self._current_record(group, member))
        self.coordinator.append(group.group_id, records)
        self._schedule_session(group, member)
        send_assignment = after != before or r.member_epoch == 0 or (owned is not None and not _same(owned, member.assigned))
        assignment = None
        if send_assignment:
            assignment = ConsumerGroupHeartbeatResponse.Assignment(
                topic_partitions=self._to_ids(member.assigned, HeartbeatTopicPartitions))
        return ConsumerGroupHeartbeatResponse(
            error_code=ErrorCode.NONE, error_message=None, member_id=member.member_id,
            member_epoch=member.member_epoch, heartbeat_interval_ms=self._config["group.consumer.heartbeat.interval.ms"],
            assignment=assignment)

    def _replace_static(self, group: ConsumerGroup, previous: ConsumerMember, member_id: str,
                        records: list) -> ConsumerMember:
        """A static member rejoining under a new member id takes over the old one's assignment
        and epoch."""
        old_id = previous.member_id
        records.extend(self._member_tombstones(group, old_id))
        del group.members[old_id]
        self.timer.cancel(self._session_key(group, old_id))
        self.timer.cancel(self._revoke_key(group, old_id))
        previous.member_id = member_id
        if previous.member_epoch == STATIC_LEAVE_EPOCH:
            previous.member_epoch = previous.previous_member_epoch
        group.members[member_id] = previous
        group.target[member_id] = group.target.pop(old_id, {})
        records.append(self._target_member_record(group, member_id))
        return previous

    def _subscription_metadata(self, group: ConsumerGroup) -> dict[str, int]:
        out: dict[str, int] = {}
        image = self.broker.image
        for m in group.members.values():
            for topic in self.subscribed_topics(m):
                t = image.topic(topic)
                if t is not None:
                    out[topic] = len(t.partitions)
        return out

    def _compute_target(self, group: ConsumerGroup) -> list[tuple[bytes, bytes | None]]:
        names = self.assignor_names()
        chosen = names[0]
        for m in group.members.values():  # the most common requested assignor, as Kafka does
            if m.server_assignor in names:
                chosen = m.server_assignor
                break
        members = {mid: AssignmentMember(self.subscribed_topics(m), _copy(group.target.get(mid, m.assigned)))
                   for mid, m in group.members.items()}
        target = ASSIGNORS[chosen](members, dict(group.subscribed_partitions))
        group.target = {mid: _copy(parts) for mid, parts in target.items()}
        group.assignment_epoch = group.group_epoch
        log.info("consumer group %s: epoch %d target assignment by %s: %s", group.group_id, group.group_epoch,
                 chosen, {m: {t: sorted(ps) for t, ps in parts.items()} for m, parts in group.target.items()})
        records = [self._target_member_record(group, mid) for mid in group.members]
        records.append(self._target_metadata_record(group))
        return records

    def _reconcile(self, group: ConsumerGroup, member: ConsumerMember, owned: Parts | None) -> None:
        target = group.target.get(member.member_id, {})
        if member.pending_revocation:
            if owned is None or _intersect(owned, member.pending_revocation):
                return  # still revoking
            member.pending_revocation = {}
            self.timer.cancel(self._revoke_key(group, member.member_id))
        if member.member_epoch == group.assignment_epoch and member.state == STABLE and _same(member.assigned, target):
            return
        revoke = _minus(member.assigned, target)
        if revoke:
            member.assigned = _intersect(member.assigned, target)
            member.pending_revocation = revoke
            member.state = UNREVOKED
            key = self._revoke_key(group, member.member_id)
            mid = member.member_id
            self.timer.schedule(key, member.rebalance_timeout_ms, lambda: self._on_revocation_timeout(group, mid))
            return
        granted: Parts = {}
        complete = True
        for topic, parts in target.items():
            for p in parts:
                holder = group.owner(topic, p)
                if holder is None or holder is member:
                    granted.setdefault(topic, set()).add(p)
                else:
                    complete = False
        if member.member_epoch != group.assignment_epoch:
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = group.assignment_epoch
        member.assigned = granted
        member.state = STABLE if complete else UNRELEASED

    # -- leaving and expiry ----------------------------------------------------------------------------------

    def _leave(self, r: Any) -> ConsumerGroupHeartbeatResponse:
        group = self.coordinator.groups.get(r.group_id)
        if not isinstance(group, ConsumerGroup):
            raise ConsumerGroupError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {r.group_id} not found.")
        member = group.members.get(r.member_id)
        if member is None and r.instance_id is not None:
            member = group.static_member(r.instance_id)
            if member is not None and member.member_id != r.member_id:
                raise ConsumerGroupError(ErrorCode.FENCED_INSTANCE_ID)
        if member is None:
            raise ConsumerGroupError(ErrorCode.UNKNOWN_MEMBER_ID)
        if r.member_epoch == STATIC_LEAVE_EPOCH:
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = STATIC_LEAVE_EPOCH
            self.coordinator.append(group.group_id, [self._current_record(group, member)])
        else:
            self.remove_member(group, member.member_id)
        return ConsumerGroupHeartbeatResponse(error_code=ErrorCode.NONE, member_id=r.member_id,
                                              member_epoch=r.member_epoch, heartbeat_interval_ms=0, assignment=None)

    def remove_member(self, group: ConsumerGroup, member_id: str) -> None:
        if member_id not in group.members:
            return
        del group.members[member_id]
        group.target.pop(member_id, None)
        self.timer.cancel(self._session_key(group, member_id))
        self.timer.cancel(self._revoke_key(group, member_id))
        group.group_epoch += 1
        if not group.members:
            group.empty_since_ms = self.timer.now_ms()
        group.subscribed_partitions = self._subscription_metadata(group)
        records = self._member_tombstones(group, member_id) + [self._group_record(group)]
        if not group.members:
            group.target = {}
            group.assignment_epoch = group.group_epoch
            records.append(self._target_metadata_record(group))
        self.coordinator.append(group.group_id, records)
        log.info("consumer group %s: member %s removed (epoch %d)", group.group_id, member_id, group.group_epoch)

    @staticmethod
    def _session_key(group: ConsumerGroup, member_id: str) -> GroupTimerKey:
        return GroupTimerKey("cg-session", group.group_id, member_id)

    @staticmethod
    def _revoke_key(group: ConsumerGroup, member_id: str) -> GroupTimerKey:
        return GroupTimerKey("cg-revoke", group.group_id, member_id)

    def _schedule_session(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        mid = member.member_id
        timeout = member.session_timeout_ms if member.is_classic and member.session_timeout_ms \
            else self._config["group.consumer.session.timeout.ms"]
        self.timer.schedule(self._session_key(group, mid), timeout, lambda: self._on_session_expired(group, mid))

    def _on_session_expired(self, group: ConsumerGroup, member_id: str) -> None:
        if self.coordinator.groups.get(group.group_id) is group:
            self.remove_member(group, member_id)

    def _on_revocation_timeout(self, group: ConsumerGroup, member_id: str) -> None:
        member = group.members.get(member_id)
        if member is not None and member.pending_revocation and self.coordinator.groups.get(group.group_id) is group:
            log.info("consumer group %s: member %s did not revoke in time", group.group_id, member_id)
            self.remove_member(group, member_id)

    # -- records ---------------------------------------------------------------------------------------------

    @staticmethod
    def _key(kind: int, key: Any) -> bytes:
        return _I16.pack(kind) + key.encode(0)

    @staticmethod
    def _value(value: Any) -> bytes:
        return _I16.pack(0) + value.encode(0)

    def _group_record(self, group: ConsumerGroup) -> tuple[bytes, bytes]:
        return (self._key(GROUP_METADATA, ConsumerGroupMetadataKey(group_id=group.group_id)),
                self._value(ConsumerGroupMetadataValue(epoch=group.group_epoch, metadata_hash=0)))

    def _member_record(self, group: ConsumerGroup, m: ConsumerMember) -> tuple[bytes, bytes]:
        value = ConsumerGroupMemberMetadataValue(
            instance_id=m.instance_id, rack_id=m.rack_id, client_id=m.client_id, client_host=m.client_host,
            subscribed_topic_names=list(m.subscribed_topic_names), subscribed_topic_regex=m.subscribed_topic_regex,
            rebalance_timeout_ms=m.rebalance_timeout_ms, server_assignor=m.server_assignor)
        if m.is_classic:
            C = ConsumerGroupMemberMetadataValue.ClassicMemberMetadata
            value.classic_member_metadata = C(session_timeout_ms=m.session_timeout_ms or 0, supported_protocols=[
                C.ClassicProtocol(name=n, metadata=meta) for n, meta in m.classic_protocols or []])
        return (self._key(MEMBER_METADATA, ConsumerGroupMemberMetadataKey(group_id=group.group_id,
                                                                          member_id=m.member_id)), self._value(value))

    def _target_member_record(self, group: ConsumerGroup, member_id: str) -> tuple[bytes, bytes]:
        value = ConsumerGroupTargetAssignmentMemberValue(topic_partitions=self._to_ids(
            group.target.get(member_id, {}), ConsumerGroupTargetAssignmentMemberValue.TopicPartition))
        return (self._key(TARGET_MEMBER, ConsumerGroupTargetAssignmentMemberKey(group_id=group.group_id,
                                                                                member_id=member_id)),
                self._value(value))

    def _target_metadata_record(self, group: ConsumerGroup) -> tuple[bytes, bytes]:
        return (self._key(TARGET_METADATA, ConsumerGroupTargetAssignmentMetadataKey(group_id=group.group_id)),
                self._value(ConsumerGroupTargetAssignmentMetadataValue(
                    assignment_epoch=group.assignment_epoch, assignment_timestamp=self.timer.now_ms())))

    def _current_record(self, group: ConsumerGroup, m: ConsumerMember) -> tuple[bytes, bytes]:
        value = ConsumerGroupCurrentMemberAssignmentValue(
            member_epoch=m.member_epoch, previous_member_epoch=m.previous_member_epoch, state=m.state,
            assigned_partitions=self._to_ids(m.assigned, TopicPartitions),
            partitions_pending_revocation=self._to_ids(m.pending_revocation, TopicPartitions))
        return (self._key(CURRENT_ASSIGNMENT, ConsumerGroupCurrentMemberAssignmentKey(
            group_id=group.group_id, member_id=m.member_id)), self._value(value))

    def _member_tombstones(self, group: ConsumerGroup, member_id: str) -> list[tuple[bytes, None]]:
        gid = group.group_id
        return [
            (self._key(CURRENT_ASSIGNMENT, ConsumerGroupCurrentMemberAssignmentKey(group_id=gid, member_id=member_id)),
             None),
            (self._key(TARGET_MEMBER, ConsumerGroupTargetAssignmentMemberKey(group_id=gid, member_id=member_id)), None),
            (self._key(MEMBER_METADATA, ConsumerGroupMemberMetadataKey(group_id=gid, member_id=member_id)), None),
        ]

    def tombstones(self, group: ConsumerGroup) -> list[tuple[bytes, None]]:
        out: list[tuple[bytes, None]] = []
        for mid in list(group.members):
            out.extend(self._member_tombstones(group, mid))
        out.append((self._key(TARGET_METADATA, ConsumerGroupTargetAssignmentMetadataKey(group_id=group.group_id)),
                    None))
        out.append((self._key(GROUP_METADATA, ConsumerGroupMetadataKey(group_id=group.group_id)), None))
        return out

    def apply(self, kind: int, key: bytes, value: bytes | None, *, replay: bool) -> None:
        """Replay of a consumer group record (live writes already changed the state)."""
        if not replay or kind not in _RECORD_TYPES:
            return
        key_cls, value_cls = _RECORD_TYPES[kind]
        k = key_cls.decode(memoryview(key)[2:], 0)
        v = None
        if value is not None:
            (version,) = _I16.unpack_from(value)
            v = value_cls.decode(memoryview(value)[2:], min(version, value_cls.MAX_VERSION))
        groups = self.coordinator.groups
        group = groups.get(k.group_id)
        if kind == GROUP_METADATA:
            if v is None:
                if isinstance(group, ConsumerGroup):
                    del groups[k.group_id]
                return
            if not isinstance(group, ConsumerGroup):
                group = groups[k.group_id] = ConsumerGroup(k.group_id)
            group.group_epoch = v.epoch
            return
        if not isinstance(group, ConsumerGroup):
            if v is None:
                return
            group = groups[k.group_id] = ConsumerGroup(k.group_id)
        if kind == TARGET_METADATA:
            if v is not None:
                group.assignment_epoch = v.assignment_epoch
            return
        mid = k.member_id
        if v is None:
            if kind == MEMBER_METADATA:
                group.members.pop(mid, None)
            elif kind == TARGET_MEMBER:
                group.target.pop(mid, None)
            return
        member = group.members.get(mid)
        if member is None:
            member = group.members[mid] = ConsumerMember(member_id=mid)
        if kind == MEMBER_METADATA:
            member.instance_id, member.rack_id = v.instance_id, v.rack_id
            member.client_id, member.client_host = v.client_id, v.client_host
            member.subscribed_topic_names = list(v.subscribed_topic_names)
            member.subscribed_topic_regex = v.subscribed_topic_regex or None
            member.rebalance_timeout_ms, member.server_assignor = v.rebalance_timeout_ms, v.server_assignor
            if v.classic_member_metadata is not None:
                member.session_timeout_ms = v.classic_member_metadata.session_timeout_ms
                member.classic_protocols = [(p.name, bytes(p.metadata))
                                            for p in v.classic_member_metadata.supported_protocols]
        elif kind == TARGET_MEMBER:
            group.target[mid] = self._from_ids(v.topic_partitions)
        elif kind == CURRENT_ASSIGNMENT:
            member.member_epoch, member.previous_member_epoch, member.state = (
                v.member_epoch, v.previous_member_epoch, v.state)
            member.assigned = self._from_ids(v.assigned_partitions)
            member.pending_revocation = self._from_ids(v.partitions_pending_revocation)

    def on_loaded(self, group: ConsumerGroup) -> None:
        for mid in list(group.members):
            if mid not in group.target and not group.members[mid].subscribed_topic_names \
                    and group.members[mid].subscribed_topic_regex is None:
                del group.members[mid]  # partial member without metadata
        group.subscribed_partitions = self._subscription_metadata(group)
        if not group.members:
            group.empty_since_ms = self.timer.now_ms()
        for m in group.members.values():
            self._schedule_session(group, m)

    # -- classic members hosted by a consumer group (Kafka 4.x mixed groups) ------------------------------

    def classic_join(self, group: ConsumerGroup, *, member_id: str, group_instance_id: str | None,
                     protocol_type: str, protocols: list[tuple[str, bytes]], session_timeout_ms: int,
                     rebalance_timeout_ms: int, client_id: str, client_host: str,
                     require_known_member_id: bool) -> JoinGroupResponse:
        """JoinGroup of a classic consumer to a consumer group: the broker assigns (no leader), the
        response comes at once with the member epoch as generation, and SyncGroup returns the
        member's assignment. A member that must give partitions up or can take more is told
        REBALANCE_IN_PROGRESS by its next heartbeat, and converges over join rounds."""
        def error(code: ErrorCode, mid: str = member_id) -> JoinGroupResponse:
            return JoinGroupResponse(error_code=code, generation_id=-1, protocol_name=None, leader="", member_id=mid,
                                     members=[])

        if not (self._config["group.min.session.timeout.ms"] <= session_timeout_ms
                <= self._config["group.max.session.timeout.ms"]):
            return error(ErrorCode.INVALID_SESSION_TIMEOUT)
        if rebalance_timeout_ms < 0:
            rebalance_timeout_ms = session_timeout_ms
        if protocol_type != "consumer" or not protocols:
            return error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        classic_names = [{n for n, _ in m.classic_protocols} for m in group.members.values() if m.is_classic]
        if classic_names and not any(all(n in names for names in classic_names) for n, _ in protocols):
            return error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        try:
            topics, owned_list, rack = _decode_classic_subscription(protocols[0][1])
        except Exception:
            return error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        unknown = member_id == ""
        if unknown:
            member_id = str(uuid.uuid4())
        records: list[tuple[bytes, bytes | None]] = []
        member = group.members.get(member_id)
        if group_instance_id is not None:
            previous = group.static_member(group_instance_id)
            if previous is not None and previous.member_id != member_id:
                if not unknown:
                    return error(ErrorCode.FENCED_INSTANCE_ID)
                member = self._replace_static(group, previous, member_id, records)
        elif require_known_member_id and unknown:
            return error(ErrorCode.MEMBER_ID_REQUIRED, member_id)
        bump = False
        if member is None:
            if len(group.members) >= self._config["group.max.size"]:
                return error(ErrorCode.GROUP_MAX_SIZE_REACHED)
            member = ConsumerMember(member_id=member_id)
            group.members[member_id] = member
            bump = True
        if sorted(topics) != sorted(member.subscribed_topic_names) or member.subscribed_topic_regex is not None:
            member.subscribed_topic_names, member.subscribed_topic_regex = list(topics), None
            bump = True
        member.instance_id = group_instance_id
        member.rack_id = rack or member.rack_id
        member.client_id, member.client_host = client_id, client_host
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        member.classic_protocols = [(n, bytes(meta)) for n, meta in protocols]
        records.append(self._member_record(group, member))
        subscribed = self._subscription_metadata(group)
        if subscribed != group.subscribed_partitions:
            group.subscribed_partitions = subscribed
            bump = True
        if bump:
            group.group_epoch += 1
            records.append(self._group_record(group))
        if group.group_epoch > group.assignment_epoch:
            records.extend(self._compute_target(group))
        owned: Parts = {}
        for topic, parts in owned_list:
            owned.setdefault(topic, set()).update(parts)
        if not owned_list:
            # An eager client revoked everything before joining.
            member.pending_revocation = {}
            member.assigned = {}
        self._reconcile(group, member, owned)
        records.append(self._current_record(group, member))
        self.coordinator.append(group.group_id, records)
        self._schedule_session(group, member)
        return JoinGroupResponse(error_code=ErrorCode.NONE, generation_id=member.member_epoch,
                                 protocol_type="consumer", protocol_name=protocols[0][0], leader="",
                                 skip_assignment=False, member_id=member_id, members=[])

    def _classic_member(self, group: ConsumerGroup, member_id: str, instance_id: str | None,
                        generation: int) -> tuple[ErrorCode, ConsumerMember | None]:
        if instance_id is not None:
            static = group.static_member(instance_id)
            if static is not None and static.member_id != member_id:
                return ErrorCode.FENCED_INSTANCE_ID, None
        member = group.members.get(member_id)
        if member is None or not member.is_classic:
            return ErrorCode.UNKNOWN_MEMBER_ID, None
        if generation != member.member_epoch:
            return ErrorCode.ILLEGAL_GENERATION, None
        return ErrorCode.NONE, member

    def classic_sync(self, group: ConsumerGroup, *, member_id: str, generation: int, group_instance_id: str | None,
                     protocol_type: str | None, protocol_name: str | None) -> SyncGroupResponse:
        code, member = self._classic_member(group, member_id, group_instance_id, generation)
        if member is None:
            return SyncGroupResponse(error_code=code, assignment=b"")
        name = member.classic_protocols[0][0] if member.classic_protocols else None
        if (protocol_type is not None and protocol_type != "consumer") or (
                protocol_name is not None and protocol_name != name):
            return SyncGroupResponse(error_code=ErrorCode.INCONSISTENT_GROUP_PROTOCOL, assignment=b"")
        self._schedule_session(group, member)
        T = ConsumerProtocolAssignment.TopicPartition
        body = ConsumerProtocolAssignment(assigned_partitions=[
            T(topic=t, partitions=sorted(ps)) for t, ps in sorted(member.assigned.items()) if ps]).encode(0)
        return SyncGroupResponse(error_code=ErrorCode.NONE, protocol_type="consumer", protocol_name=name,
                                 assignment=_I16.pack(0) + body)

    def classic_heartbeat(self, group: ConsumerGroup, *, member_id: str, generation: int,
                          group_instance_id: str | None) -> ErrorCode:
        code, member = self._classic_member(group, member_id, group_instance_id, generation)
        if member is None:
            return code
        self._schedule_session(group, member)
        subscribed = self._subscription_metadata(group)
        if subscribed != group.subscribed_partitions:
            group.subscribed_partitions = subscribed
            group.group_epoch += 1
            self.coordinator.append(group.group_id, [self._group_record(group)])
        if group.group_epoch > group.assignment_epoch:
            self.coordinator.append(group.group_id, self._compute_target(group))
        target = group.target.get(member_id, {})
        if member.pending_revocation or member.member_epoch != group.assignment_epoch:
            return ErrorCode.REBALANCE_IN_PROGRESS
        if not _same(member.assigned, target):
            missing = _minus(target, member.assigned)
            if _minus(member.assigned, target) or any(
                    group.owner(t, p) is None for t, ps in missing.items() for p in ps):
                return ErrorCode.REBALANCE_IN_PROGRESS  # something to give up, or released partitions to take
        return ErrorCode.NONE

    def classic_leave(self, group: ConsumerGroup, members: list[tuple[str, str | None]]) -> list[ErrorCode]:
        out = []
        for member_id, instance_id in members:
            member = group.members.get(member_id) if member_id else None
            if instance_id is not None:
                static = group.static_member(instance_id)
                if static is None:
                    out.append(ErrorCode.UNKNOWN_MEMBER_ID)
                    continue
                if member_id and static.member_id != member_id:
                    out.append(ErrorCode.FENCED_INSTANCE_ID)
                    continue
                member = static
            if member is None:
                out.append(ErrorCode.UNKNOWN_MEMBER_ID)
                continue
            self.remove_member(group, member.member_id)
            out.append(ErrorCode.NONE)
        return out

    # -- used by the coordinator -----------------------------------------------------------------------------

    def is_empty(self, group: ConsumerGroup) -> bool:
        return not group.members

    def empty_since(self, group: ConsumerGroup) -> int:
        return group.empty_since_ms

    def is_subscribed_to(self, group: ConsumerGroup, topic: str) -> bool:
        return any(topic in self.subscribed_topics(m) for m in group.members.values())

    def mark_dead(self, group: ConsumerGroup) -> None:
        for mid in list(group.members):
            self.timer.cancel(self._session_key(group, mid))
            self.timer.cancel(self._revoke_key(group, mid))
        group.members.clear()

    def validate_commit(self, group: ConsumerGroup, member_epoch: int, member_id: str, instance_id: str | None,
                        api_version: int) -> ErrorCode:
        if member_epoch < 0 and not group.members:
            return ErrorCode.NONE
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member.is_classic:
            return ErrorCode.NONE if member_epoch == member.member_epoch else ErrorCode.ILLEGAL_GENERATION
        if api_version < 9:
            return ErrorCode.UNSUPPORTED_VERSION
        if member_epoch > member.member_epoch:
            return ErrorCode.FENCED_MEMBER_EPOCH
        if member_epoch < member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def validate_fetch(self, group: ConsumerGroup, member_id: str | None, member_epoch: int) -> ErrorCode:
        if member_epoch < 0 and member_id is None:
            return ErrorCode.NONE
        member = group.members.get(member_id or "")
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE
