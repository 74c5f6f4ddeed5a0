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
included, as Kafka's ``GroupMetadataManager.refreshRegularExpressions`` does, resolved per group
and filtered by the DESCRIBE authorization of the heartbeat's principal (``group_regex``). Kafka uses RE2/J,
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
TargetAssignmentMember, CurrentMemberAssignment, RegularExpression; record types 3, 5, 6, 7, 8, 16)
are written to ``__consumer_offsets`` before the response and replayed at start-up.
"""

from __future__ import annotations

import logging
import re
import uuid

from kbroker.coordinator.assignment_sets import copy_parts, minus, same
from kbroker.coordinator.coordinator_writes import response_error
from kbroker.coordinator.group_classic import ClassicGroup, GroupState
from kbroker.coordinator.group_consumer_classic import ConsumerClassicHosting
from kbroker.coordinator.group_consumer_model import STABLE, ConsumerGroup, ConsumerGroupError, ConsumerMember
from kbroker.coordinator.group_members import LEAVE_EPOCH, STATIC_LEAVE_EPOCH, Record
from kbroker.coordinator.group_regex import Requester
from kbroker.replication.produce_batch import ProduceError
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.consumer_group_heartbeat import (
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
)
from kbroker_protocol.messages.consumer_group_heartbeat import TopicPartitions as HeartbeatTopicPartitions

__all__ = ["ConsumerGroup", "ConsumerGroupError", "ConsumerGroupManager", "ConsumerMember"]

log = logging.getLogger(__name__)


class ConsumerGroupManager(ConsumerClassicHosting):
    """The KIP-848 groups of a group coordinator: ConsumerGroupHeartbeat here; the state in
    ``group_consumer_state``, classic members in ``group_consumer_classic``."""

    # -- heartbeat ------------------------------------------------------------------------------------------

    def heartbeat(self, request: ConsumerGroupHeartbeatRequest, version: int, client_id: str, client_host: str,
                  requester: Requester | None = None) -> ConsumerGroupHeartbeatResponse:
        """``requester``: the principal regular expressions are resolved for (``group_regex``). A
        heartbeat whose records cannot be appended changes nothing (``_all_or_nothing``)."""
        try:
            with self._all_or_nothing(request.group_id, [request.member_id], request.instance_id):
                return self._heartbeat(request, version, client_id, client_host, requester)
        except ConsumerGroupError as exc:
            return ConsumerGroupHeartbeatResponse(error_code=exc.code, error_message=exc.message, member_id=None,
                                                  member_epoch=0, heartbeat_interval_ms=0, assignment=None)
        except ProduceError as exc:
            code = response_error(exc.code)
            log.info("consumer group %s: heartbeat of member %s not written: %s", request.group_id,
                     request.member_id, exc.code.name)
            return ConsumerGroupHeartbeatResponse(error_code=code, error_message=default_message(code), member_id=None,
                                                  member_epoch=0, heartbeat_interval_ms=0, assignment=None)

    def _validate(self, r: ConsumerGroupHeartbeatRequest, version: int) -> None:
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
        group = self.coordinator.groups.get(group_id)
        if isinstance(group, ClassicGroup):
            if create and group.members and self._can_upgrade(group):
                return self._upgrade(group)
            if group.members or not group.is_in(GroupState.EMPTY) or not create:
                raise ConsumerGroupError(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
            self._drop_empty_classic(group_id)
        return self._existing_or_new(group_id, create, "consumer")

    def _heartbeat(self, r: ConsumerGroupHeartbeatRequest, version: int, client_id: str, client_host: str,
                   requester: Requester | None) -> ConsumerGroupHeartbeatResponse:
        if not self.coordinator.loaded:
            raise ConsumerGroupError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
        self._validate(r, version)
        regex = r.subscribed_topic_regex if version >= 1 else None
        if r.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(r)
        group = self._group_for(r.group_id, create=r.member_epoch == 0)
        records: list[Record] = []
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
                # A new member's subscribed topic names bump the group epoch below (Kafka: a new
                # member subscribed by a regular expression alone does not). A new group's first
                # member does (kbroker's epochs start at 0, Kafka 4.4's at 1: its first member gets
                # epoch 1 either way).
                member = self._new_joiner(group, member_id)
                bump = group.group_epoch == 0
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
                        and not minus(owned, member.assigned)):
                    raise self._fenced("consumer", r.member_epoch, member)
        # Update what the member tells about itself; null fields mean "unchanged".
        changed = False
        for attr, value in (("instance_id", r.instance_id), ("rack_id", r.rack_id),
                            ("server_assignor", r.server_assignor)):
            if value is not None and getattr(member, attr) != value:
                setattr(member, attr, value)
                changed = True
        if r.rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = r.rebalance_timeout_ms
        subscription_changed = new_regex = False
        if r.subscribed_topic_names is not None and sorted(r.subscribed_topic_names) != sorted(
                member.subscribed_topic_names):
            member.subscribed_topic_names = list(r.subscribed_topic_names)
            changed = bump = subscription_changed = True
        if regex is not None and (regex or None) != member.subscribed_topic_regex:
            # Kafka's maybeUpdateRegularExpressions: an expression nobody in the group subscribed to
            # is resolved asynchronously, and the group epoch moves when that completes; one the
            # group has resolved already bumps it now, as does dropping an expression.
            old_regex, new = member.subscribed_topic_regex, regex or None
            others = any(m.subscribed_topic_regex == new for m in group.members.values()) if new else False
            member.subscribed_topic_regex = new
            changed = subscription_changed = True
            if new is None:
                bump = bump or old_regex is not None
            elif not others:
                new_regex = True
            elif new in group.resolved_regexes:
                bump = True
        member.client_id, member.client_host = client_id, client_host
        if changed or r.member_epoch == 0:
            records.append(self._member_record(group, member))
        self._maybe_refresh_regexes(group, requester, new_regex)
        self._advance_epochs(group, bump, records)
        before = (member.member_epoch, copy_parts(member.assigned))
        owned = self._from_ids(r.topic_partitions) if r.topic_partitions is not None else None
        self._reconcile(group, member, owned, subscription_changed)
        after = (member.member_epoch, copy_parts(member.assigned))
        if after != before or r.member_epoch == 0 or changed:
            records.append(self._current_record(group, member))
        self._append(group.group_id, records)
        self._schedule_session(group, member)
        send_assignment = after != before or r.member_epoch == 0 or (owned is not None and not same(owned, member.assigned))
        assignment = None
        if send_assignment:
            assignment = ConsumerGroupHeartbeatResponse.Assignment(
                topic_partitions=self._to_ids(member.assigned, HeartbeatTopicPartitions))
        return ConsumerGroupHeartbeatResponse(
            error_code=ErrorCode.NONE, error_message=None, member_id=member.member_id,
            member_epoch=member.member_epoch,
            heartbeat_interval_ms=self._group_int(group.group_id, "consumer.heartbeat.interval.ms"),
            assignment=assignment)

    # -- leaving and expiry ----------------------------------------------------------------------------------

    def _leave(self, r: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse:
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
            member.leave_temporarily()
            self._append(group.group_id, [self._current_record(group, member)])
        else:
            self.remove_member(group, member.member_id)
        return ConsumerGroupHeartbeatResponse(error_code=ErrorCode.NONE, member_id=r.member_id,
                                              member_epoch=r.member_epoch, heartbeat_interval_ms=0, assignment=None)

