"""The classic group protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) as a state machine.

No sockets and no asyncio here: requests come in as method calls with a ``respond`` callback
(called at once or later, exactly once), time comes from a :class:`Timer` (keyed one-shot timers
and a clock), and durable state leaves through ``persist(group, assignment, done)``, which the
coordinator turns into a GroupMetadata record in ``__consumer_offsets``: ``done(error)`` is called
once the record is replicated (NONE) or its write failed (the error to answer, as Kafka's
``appendGroupMetadataErrorToResponseError``). As in Kafka's GroupMetadataManager, what depends on
the record waits for ``done``: the leader's SyncGroup makes the group Stable with its assignment
only then (a failure voids the assignment, answers the error and rebalances again), and a static
member replacing its old id is answered then (a failure restores the old id). Unit tests drive it
with a fake timer and a fake ``persist``.

States and transitions (Kafka's ``ClassicGroupState``)::

    Empty ──join──▶ PreparingRebalance ──all joined / rebalance timeout──▶ CompletingRebalance
      ▲                  ▲        │ (no members left)                          │ leader SyncGroup
      └──────────────────┼────────┘                                            ▼
                         └──── member joins / leaves / expires ◀──────────── Stable
    any state ──DeleteGroups/expiry of an empty group──▶ Dead

Rules taken from Kafka's group coordinator: the first member to join leads; the protocol is chosen
by vote among the protocols every member supports; JoinGroup v4+ without a member id gets
MEMBER_ID_REQUIRED with a generated id (KIP-394); a static member (``group.instance.id``, KIP-345)
that rejoins with an unknown member id replaces its old id (the old one is fenced with
FENCED_INSTANCE_ID) and, in a Stable group whose protocol does not change, gets the current
generation back without a rebalance (the leader with SkipAssignment, KIP-814); the first rebalance of
an empty group waits ``group.initial.rebalance.delay.ms`` and extends it while new members arrive;
members that miss the rebalance timeout are dropped (dynamic ones only), members that never send
SyncGroup within it are dropped and a new rebalance starts; a member is expired after its session
timeout without heartbeat unless it is waiting in a JoinGroup or SyncGroup.

The protocol is in three modules, each a layer of :class:`ClassicGroupManager`:
:mod:`~kbroker.coordinator.group_classic_rebalance` (state, timers, rebalances, removals),
:mod:`~kbroker.coordinator.group_classic_join` (JoinGroup, static member replacement) and this one
(SyncGroup, Heartbeat, LeaveGroup).
"""

from __future__ import annotations

import logging

from kbroker.coordinator.group_classic_join import ClassicJoin
from kbroker.coordinator.group_classic_model import (
    ClassicConfig,
    ClassicGroup,
    ClassicMember,
    GroupState,
    SyncCallback,
    Timer,
    _sync_error,
)
from kbroker.coordinator.timer_keys import GroupTimerKey
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.heartbeat import HeartbeatResponse
from kbroker_protocol.messages.leave_group import LeaveGroupResponse
from kbroker_protocol.messages.sync_group import SyncGroupResponse

log = logging.getLogger(__name__)


# The model's names, imported from here by the coordinator and the tests.
__all__ = ["ClassicConfig", "ClassicGroup", "ClassicGroupManager", "ClassicMember", "GroupState", "Timer"]


class ClassicGroupManager(ClassicJoin):
    """Runs the classic protocol over the groups in ``groups`` (shared with the coordinator, which
    also keeps KIP-848 groups there: anything that is not a :class:`ClassicGroup` is foreign)."""

    # -- SyncGroup -----------------------------------------------------------------------------------------

    def sync(self, *, group_id: str, member_id: str, generation: int, group_instance_id: str | None,
             protocol_type: str | None, protocol_name: str | None, assignments: list[tuple[str, bytes]],
             respond: SyncCallback) -> None:
        if not group_id:
            return respond(_sync_error(ErrorCode.INVALID_GROUP_ID))
        group = self._classic(group_id)
        if group is None:
            return respond(_sync_error(ErrorCode.UNKNOWN_MEMBER_ID))
        if group.is_in(GroupState.DEAD):
            return respond(_sync_error(ErrorCode.COORDINATOR_NOT_AVAILABLE))
        if group.is_static_member_fenced(group_instance_id, member_id):
            return respond(_sync_error(ErrorCode.FENCED_INSTANCE_ID))
        member = group.members.get(member_id)
        if member is None:
            return respond(_sync_error(ErrorCode.UNKNOWN_MEMBER_ID))
        if generation != group.generation:
            return respond(_sync_error(ErrorCode.ILLEGAL_GENERATION))
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
                protocol_name is not None and protocol_name != group.protocol_name):
            return respond(_sync_error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
        if group.is_in(GroupState.EMPTY):
            return respond(_sync_error(ErrorCode.UNKNOWN_MEMBER_ID))
        if group.is_in(GroupState.PREPARING_REBALANCE):
            return respond(_sync_error(ErrorCode.REBALANCE_IN_PROGRESS))
        group.pending_sync.discard(member_id)
        self._schedule_heartbeat(group, member)
        if group.is_in(GroupState.STABLE):
            return respond(self._sync_response(group, member))
        # CompletingRebalance: wait for the leader's assignment.
        self._respond_sync(member, _sync_error(ErrorCode.REBALANCE_IN_PROGRESS))
        member.sync_callback = respond
        if not group.pending_sync:
            self.timer.cancel(GroupTimerKey("sync", group.group_id))
        if member_id == group.leader_id:
            given = {mid: bytes(data) for mid, data in assignments}
            assignment = {m.member_id: given.get(m.member_id, b"") for m in group.members.values()}
            self.persist(group, assignment,
                         lambda code: self._on_assignment_written(group, generation, member_id, assignment, code))

    def _on_assignment_written(self, group: ClassicGroup, generation: int, leader_id: str,
                               assignment: dict[str, bytes], code: ErrorCode) -> None:
        """The leader's assignment is replicated (or its write failed): Kafka's SyncGroup append
        callback. Only if the group is still completing that generation (a member may have joined
        meanwhile): Stable with the assignment, or the assignment voided, the error answered to the
        members waiting in SyncGroup and a new rebalance."""
        if not group.is_in(GroupState.COMPLETING_REBALANCE) or group.generation != generation \
                or self.groups.get(group.group_id) is not group:
            return
        if code != ErrorCode.NONE:
            log.warning("group %s: storing the assignment of generation %d failed: %s", group.group_id,
                        generation, code.name)
            for m in group.members.values():
                m.assignment = b""
                self._respond_sync(m, _sync_error(code))
            self._rebalance_or_complete_join(
                group, f"error {code.name} when storing the group assignment during SyncGroup (member: {leader_id})")
            return
        for m in group.members.values():
            m.assignment = assignment.get(m.member_id, b"")
        self._transition(group, GroupState.STABLE)
        for m in group.members.values():
            if m.awaiting_sync:
                self._respond_sync(m, self._sync_response(group, m))

    @staticmethod
    def _sync_response(group: ClassicGroup, member: ClassicMember) -> SyncGroupResponse:
        return SyncGroupResponse(error_code=ErrorCode.NONE, protocol_type=group.protocol_type,
                                 protocol_name=group.protocol_name, assignment=member.assignment)

    # -- Heartbeat -----------------------------------------------------------------------------------------

    def heartbeat(self, *, group_id: str, member_id: str, generation: int,
                  group_instance_id: str | None) -> HeartbeatResponse:
        def error(code: ErrorCode) -> HeartbeatResponse:
            return HeartbeatResponse(error_code=code)

        if not group_id:
            return error(ErrorCode.INVALID_GROUP_ID)
        group = self._classic(group_id)
        if group is None:
            return error(ErrorCode.UNKNOWN_MEMBER_ID)
        if group.is_in(GroupState.DEAD):
            return error(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if group.is_static_member_fenced(group_instance_id, member_id):
            return error(ErrorCode.FENCED_INSTANCE_ID)
        member = group.members.get(member_id)
        if member is None:
            return error(ErrorCode.UNKNOWN_MEMBER_ID)
        if generation != group.generation:
            return error(ErrorCode.ILLEGAL_GENERATION)
        self._schedule_heartbeat(group, member)
        if group.is_in(GroupState.PREPARING_REBALANCE):
            return error(ErrorCode.REBALANCE_IN_PROGRESS)
        return error(ErrorCode.NONE)

    def touch(self, group: ClassicGroup, member_id: str) -> None:
        """A request that proves the member alive (an offset commit) counts as a heartbeat."""
        member = group.members.get(member_id)
        if member is not None and not member.awaiting_join:
            self._schedule_heartbeat(group, member)

    # -- LeaveGroup -----------------------------------------------------------------------------------------

    def leave(self, group_id: str, members: list[tuple[str, str | None]]) -> LeaveGroupResponse:
        """``members``: (member id, group instance id). The response has one entry per member and
        the top-level error; v0-2 callers fold a single member's error into the top level."""
        if not group_id:
            return LeaveGroupResponse(error_code=ErrorCode.INVALID_GROUP_ID, members=[])
        group = self._classic(group_id)
        if group is None:
            return LeaveGroupResponse(error_code=ErrorCode.NONE, members=[
                LeaveGroupResponse.MemberResponse(member_id=mid, group_instance_id=iid,
                                                  error_code=ErrorCode.UNKNOWN_MEMBER_ID)
                for mid, iid in members])
        if group.is_in(GroupState.DEAD):
            return LeaveGroupResponse(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE, members=[])
        out = []
        for member_id, instance_id in members:
            code = self._leave_one(group, member_id, instance_id)
            out.append(LeaveGroupResponse.MemberResponse(member_id=member_id, group_instance_id=instance_id,
                                                         error_code=code))
        return LeaveGroupResponse(error_code=ErrorCode.NONE, members=out)

    def _leave_one(self, group: ClassicGroup, member_id: str, instance_id: str | None) -> ErrorCode:
        if instance_id is not None:
            known = group.static_members.get(instance_id)
            if known is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if member_id and known != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
            member_id = known
        elif member_id in group.pending_members:
            group.pending_members.discard(member_id)
            self._cancel_heartbeat(group, member_id)
            self._maybe_complete_join(group)
            return ErrorCode.NONE
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        self._remove_member(group, member, ErrorCode.UNKNOWN_MEMBER_ID)
        return ErrorCode.NONE
