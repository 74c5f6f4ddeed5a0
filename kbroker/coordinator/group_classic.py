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
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from kbroker.coordinator.group_classic_created import CreateGroup, answer_once, write_created
from kbroker.coordinator.group_classic_model import (
    NEW_MEMBER_JOIN_TIMEOUT_MS,
    ClassicConfig,
    ClassicGroup,
    ClassicMember,
    GroupState,
    JoinCallback,
    Persist,
    SyncCallback,
    Timer,
    _join_error,
    _sync_error,
)
from kbroker.coordinator.timer_keys import GroupTimerKey
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.heartbeat import HeartbeatResponse
from kbroker_protocol.messages.join_group import JoinGroupResponse
from kbroker_protocol.messages.leave_group import LeaveGroupResponse
from kbroker_protocol.messages.sync_group import SyncGroupResponse

log = logging.getLogger(__name__)


# The model's names, imported from here by the coordinator and the tests.
__all__ = ["ClassicConfig", "ClassicGroup", "ClassicGroupManager", "ClassicMember", "GroupState", "Timer"]


class ClassicGroupManager:
    """Runs the classic protocol over the groups in ``groups`` (shared with the coordinator, which
    also keeps KIP-848 groups there: anything that is not a :class:`ClassicGroup` is foreign)."""

    def __init__(self, groups: dict[str, Any], timer: Timer, config: ClassicConfig,
                 persist: Persist) -> None:
        self.groups = groups
        self.timer = timer
        self.config = config
        self.persist = persist
        # Set by the coordinator: removes an empty group of another type, True if it did.
        self.convert_foreign: Callable[[Any], bool] | None = None
        # Set by the coordinator: writes the empty record of a group a JoinGroup created
        # (group_classic_created); None: nothing written (the unit tests' groups)
        self.create: CreateGroup | None = None

    # -- helpers ---------------------------------------------------------------------------------------

    def _classic(self, group_id: str) -> ClassicGroup | None:
        group = self.groups.get(group_id)
        return group if isinstance(group, ClassicGroup) else None

    def get_or_create(self, group_id: str) -> ClassicGroup:
        group = self._classic(group_id)
        if group is None:
            group = ClassicGroup(group_id, state_timestamp_ms=self.timer.now_ms())
            self.groups[group_id] = group
        return group

    def _transition(self, group: ClassicGroup, state: GroupState) -> None:
        log.debug("group %s: %s -> %s (generation %d)", group.group_id, group.state.value, state.value,
                  group.generation)
        group.transition(state, self.timer.now_ms())

    @staticmethod
    def _hb_key(group: ClassicGroup, member_id: str) -> GroupTimerKey:
        return GroupTimerKey("hb", group.group_id, member_id)

    def _schedule_heartbeat(self, group: ClassicGroup, member: ClassicMember, timeout_ms: int | None = None) -> None:
        member_id = member.member_id
        self.timer.schedule(self._hb_key(group, member_id),
                            member.session_timeout_ms if timeout_ms is None else timeout_ms,
                            lambda: self._on_session_expired(group, member_id))

    def _cancel_heartbeat(self, group: ClassicGroup, member_id: str) -> None:
        self.timer.cancel(self._hb_key(group, member_id))

    def _respond_join(self, member: ClassicMember, response: JoinGroupResponse) -> None:
        callback, member.join_callback = member.join_callback, None
        if callback is not None:
            callback(response)

    def _respond_sync(self, member: ClassicMember, response: SyncGroupResponse) -> None:
        callback, member.sync_callback = member.sync_callback, None
        if callback is not None:
            callback(response)

    def _current_join_response(self, group: ClassicGroup, member: ClassicMember, *,
                               with_members: bool, skip_assignment: bool = False) -> JoinGroupResponse:
        return JoinGroupResponse(
            error_code=ErrorCode.NONE, generation_id=group.generation, protocol_type=group.protocol_type,
            protocol_name=group.protocol_name, leader=group.leader_id or "", skip_assignment=skip_assignment,
            member_id=member.member_id, members=group.member_list() if with_members else [])

    # -- JoinGroup ------------------------------------------------------------------------------------

    def join(self, *, group_id: str, member_id: str, group_instance_id: str | None, protocol_type: str,
             protocols: list[tuple[str, bytes]], session_timeout_ms: int, rebalance_timeout_ms: int,
             client_id: str, client_host: str, require_known_member_id: bool, respond: JoinCallback) -> None:
        if not group_id:
            return respond(_join_error(ErrorCode.INVALID_GROUP_ID, member_id))
        if not (self.config.min_session_timeout_ms <= session_timeout_ms <= self.config.max_session_timeout_ms):
            return respond(_join_error(ErrorCode.INVALID_SESSION_TIMEOUT, member_id))
        if rebalance_timeout_ms < 0:  # JoinGroup v0 has no rebalance timeout: it is the session timeout
            rebalance_timeout_ms = session_timeout_ms
        unknown = member_id == ""
        existing = self.groups.get(group_id)
        if existing is not None and not isinstance(existing, ClassicGroup):
            # A KIP-848 group of this id: an empty one becomes classic, classic members may not
            # join one that has members.
            if self.convert_foreign is None or not self.convert_foreign(existing):
                return respond(_join_error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id))
            existing = None
        if existing is None and not unknown:
            return respond(_join_error(ErrorCode.UNKNOWN_MEMBER_ID, member_id))
        names = [name for name, _ in protocols]
        if existing is None and not (protocol_type and names):
            return respond(_join_error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id))
        group = self.get_or_create(group_id)
        if group.is_in(GroupState.DEAD):
            return respond(_join_error(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id))
        if not group.supports_protocols(protocol_type, names):
            return respond(_join_error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id))
        create = self.create if existing is None else None
        if create is not None:
            respond = answer_once(respond)
        args = dict(group_instance_id=group_instance_id, protocol_type=protocol_type, protocols=protocols,
                    session_timeout_ms=session_timeout_ms, rebalance_timeout_ms=rebalance_timeout_ms,
                    client_id=client_id, client_host=client_host)
        if unknown:
            self._join_new_member(group, require_known_member_id, respond, **args)
        else:
            self._join_existing_member(group, member_id, respond, **args)
        if create is not None:
            write_created(create, group, respond, self._forget_created)

    def _join_new_member(self, group: ClassicGroup, require_known_member_id: bool, respond: JoinCallback,
                         **args: Any) -> None:
        instance_id = args["group_instance_id"]
        if instance_id is not None:
            new_id = f"{instance_id}-{uuid.uuid4()}"
            old_id = group.static_members.get(instance_id)
            if old_id is not None and old_id in group.members:
                return self._replace_static_member(group, old_id, new_id, respond, **args)
            if len(group.members) >= self.config.max_size:
                return respond(_join_error(ErrorCode.GROUP_MAX_SIZE_REACHED))
            return self._add_member_and_rebalance(group, new_id, respond, **args)
        new_id = f"{args['client_id']}-{uuid.uuid4()}"
        if len(group.members) + len(group.pending_members) >= self.config.max_size:
            return respond(_join_error(ErrorCode.GROUP_MAX_SIZE_REACHED))
        if require_known_member_id:
            group.pending_members.add(new_id)
            self.timer.schedule(self._hb_key(group, new_id), args["session_timeout_ms"],
                                lambda: self._on_session_expired(group, new_id))
            return respond(_join_error(ErrorCode.MEMBER_ID_REQUIRED, new_id))
        self._add_member_and_rebalance(group, new_id, respond, **args)

    def _join_existing_member(self, group: ClassicGroup, member_id: str, respond: JoinCallback,
                              **args: Any) -> None:
        instance_id = args["group_instance_id"]
        if member_id in group.pending_members:
            group.pending_members.discard(member_id)
            return self._add_member_and_rebalance(group, member_id, respond, **args)
        if group.is_static_member_fenced(instance_id, member_id):
            return respond(_join_error(ErrorCode.FENCED_INSTANCE_ID, member_id))
        member = group.members.get(member_id)
        if member is None or (instance_id is None and member.group_instance_id is not None):
            return respond(_join_error(ErrorCode.UNKNOWN_MEMBER_ID, member_id))
        protocols = args["protocols"]
        if group.is_in(GroupState.PREPARING_REBALANCE):
            return self._update_member_and_rebalance(group, member, respond, **args)
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            if member.matches(protocols):
                # It missed the JoinGroup response: hand it the current generation again.
                return respond(self._current_join_response(group, member, with_members=member_id == group.leader_id))
            return self._update_member_and_rebalance(group, member, respond, **args)
        if group.is_in(GroupState.STABLE):
            if member_id == group.leader_id or not member.matches(protocols):
                # A leader's JoinGroup forces a rebalance (e.g. topic metadata changed).
                return self._update_member_and_rebalance(group, member, respond, **args)
            self._schedule_heartbeat(group, member)
            return respond(self._current_join_response(group, member, with_members=False))
        respond(_join_error(ErrorCode.UNKNOWN_MEMBER_ID, member_id))

    def _add_member_and_rebalance(self, group: ClassicGroup, member_id: str, respond: JoinCallback,
                                  **args: Any) -> None:
        member = ClassicMember(member_id=member_id, is_new=True, join_callback=respond, **args)
        group.add(member)
        if group.is_in(GroupState.PREPARING_REBALANCE) and group.previous_state == GroupState.EMPTY:
            group.new_member_added = True
        # A new member that never completes its join is dropped after this (Kafka: 5 minutes).
        self._schedule_heartbeat(group, member, NEW_MEMBER_JOIN_TIMEOUT_MS)
        self._rebalance_or_complete_join(group, f"member {member_id} joined")

    def _update_member_and_rebalance(self, group: ClassicGroup, member: ClassicMember, respond: JoinCallback,
                                     **args: Any) -> None:
        self._respond_join(member, _join_error(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id))
        member.protocols = args["protocols"]
        member.rebalance_timeout_ms = args["rebalance_timeout_ms"]
        member.session_timeout_ms = args["session_timeout_ms"]
        member.client_id = args["client_id"]
        member.client_host = args["client_host"]
        member.join_callback = respond
        self._schedule_heartbeat(group, member)
        self._rebalance_or_complete_join(group, f"member {member.member_id} rejoined")

    def _replace_static_member(self, group: ClassicGroup, old_id: str, new_id: str, respond: JoinCallback,
                               **args: Any) -> None:
        old = group.members[old_id]
        instance_id = old.group_instance_id
        assert instance_id is not None  # (only a static member is replaced)
        self._respond_join(old, _join_error(ErrorCode.FENCED_INSTANCE_ID, old_id))
        self._respond_sync(old, _sync_error(ErrorCode.FENCED_INSTANCE_ID))
        self._cancel_heartbeat(group, old_id)
        was_leader = group.leader_id == old_id
        saved = (old.member_id, old.protocols, old.rebalance_timeout_ms, old.session_timeout_ms, old.client_id,
                 old.client_host)
        # Re-key the member, keeping its place, assignment and pending-sync status.
        group.members = {(new_id if k == old_id else k): v for k, v in group.members.items()}
        old.member_id = new_id
        group.static_members[instance_id] = new_id
        if old_id in group.pending_sync:
            group.pending_sync.discard(old_id)
            group.pending_sync.add(new_id)
        if was_leader:
            group.leader_id = new_id
        member = old
        member.protocols = args["protocols"]
        member.rebalance_timeout_ms = args["rebalance_timeout_ms"]
        member.session_timeout_ms = args["session_timeout_ms"]
        member.client_id = args["client_id"]
        member.client_host = args["client_host"]
        member.join_callback = respond
        self._schedule_heartbeat(group, member)
        if group.is_in(GroupState.STABLE):
            if group.protocol_name in member.protocol_names() and group.select_protocol() == group.protocol_name:
                leader_before = old_id if was_leader else group.leader_id

                def written(code: ErrorCode) -> None:
                    if code == ErrorCode.NONE:
                        is_leader = group.leader_id == member.member_id
                        self._respond_join(member, self._current_join_response(
                            group, member, with_members=is_leader, skip_assignment=is_leader))
                        return
                    log.warning("group %s: storing static member %s (instance %s) failed: %s; back to %s",
                                group.group_id, new_id, instance_id, code.name, old_id)
                    if group.members.get(new_id) is member:
                        # Undo the replacement: the member keeps its old id and the new one fails.
                        group.members = {(old_id if k == new_id else k): v for k, v in group.members.items()}
                        (member.member_id, member.protocols, member.rebalance_timeout_ms,
                         member.session_timeout_ms, member.client_id, member.client_host) = saved
                        group.static_members[instance_id] = old_id
                        if group.leader_id == new_id:
                            group.leader_id = old_id
                        if new_id in group.pending_sync:
                            group.pending_sync.discard(new_id)
                            group.pending_sync.add(old_id)
                        self._cancel_heartbeat(group, new_id)
                    callback, member.join_callback = member.join_callback, None
                    if group.members.get(old_id) is member:
                        self._schedule_heartbeat(group, member)
                    if callback is not None:
                        callback(JoinGroupResponse(
                            error_code=code, generation_id=group.generation, protocol_type=group.protocol_type,
                            protocol_name=group.protocol_name, leader=leader_before or "", skip_assignment=False,
                            member_id="", members=[]))

                self.persist(group, {m.member_id: m.assignment for m in group.members.values()}, written)
                return
            return self._prepare_rebalance(group, f"static member {new_id} joined with a different protocol")
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            return self._prepare_rebalance(group, f"static member {new_id} replaced {old_id}")
        self._maybe_complete_join(group)

    def _rebalance_or_complete_join(self, group: ClassicGroup, reason: str) -> None:
        if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY):
            self._prepare_rebalance(group, reason)
        elif group.is_in(GroupState.PREPARING_REBALANCE):
            self._maybe_complete_join(group)

    # -- rebalance ---------------------------------------------------------------------------------------

    def _prepare_rebalance(self, group: ClassicGroup, reason: str) -> None:
        log.info("group %s: preparing rebalance: %s", group.group_id, reason)
        if group.is_in(GroupState.COMPLETING_REBALANCE):
            # The assignment in flight is void: members waiting in SyncGroup must rejoin.
            for m in group.members.values():
                m.assignment = b""
                self._respond_sync(m, _sync_error(ErrorCode.REBALANCE_IN_PROGRESS))
        self.timer.cancel(GroupTimerKey("sync", group.group_id))
        group.pending_sync.clear()
        initial = group.is_in(GroupState.EMPTY)
        self._transition(group, GroupState.PREPARING_REBALANCE)
        key = GroupTimerKey("join", group.group_id)
        if initial:
            delay = self.config.initial_rebalance_delay_ms
            group.new_member_added = False
            group.initial_rebalance_remaining_ms = max(group.max_rebalance_timeout_ms() - delay, 0)
            self.timer.schedule(key, delay, lambda: self._on_initial_delay(group))
        else:
            self.timer.schedule(key, group.max_rebalance_timeout_ms(), lambda: self._complete_join(group))
            self._maybe_complete_join(group)

    def _on_initial_delay(self, group: ClassicGroup) -> None:
        remaining = group.initial_rebalance_remaining_ms
        if group.new_member_added and remaining > 0:
            group.new_member_added = False
            delay = min(self.config.initial_rebalance_delay_ms, remaining)
            group.initial_rebalance_remaining_ms = max(remaining - self.config.initial_rebalance_delay_ms, 0)
            self.timer.schedule(GroupTimerKey("join", group.group_id), delay, lambda: self._on_initial_delay(group))
            return
        self._complete_join(group)

    def _maybe_complete_join(self, group: ClassicGroup) -> None:
        if (group.is_in(GroupState.PREPARING_REBALANCE) and group.has_all_members_joined()
                and group.previous_state != GroupState.EMPTY):
            self._complete_join(group)

    def _complete_join(self, group: ClassicGroup) -> None:
        if not group.is_in(GroupState.PREPARING_REBALANCE):
            return
        self.timer.cancel(GroupTimerKey("join", group.group_id))
        # Dynamic members that did not rejoin in time are out; static ones keep their seat
        # until their session expires.
        for m in group.not_yet_rejoined():
            if m.group_instance_id is None:
                log.info("group %s: member %s did not rejoin in time", group.group_id, m.member_id)
                self._cancel_heartbeat(group, m.member_id)
                group.remove(m.member_id)
        if group.members and not group.maybe_elect_joined_leader():
            # Nobody rejoined yet (only static members remain): wait another rebalance timeout.
            self.timer.schedule(GroupTimerKey("join", group.group_id), group.max_rebalance_timeout_ms(),
                                lambda: self._complete_join(group))
            return
        group.generation += 1
        if not group.members:
            group.protocol_name = None
            group.leader_id = None
            self._transition(group, GroupState.EMPTY)
            generation = group.generation

            def empty_written(code: ErrorCode) -> None:
                # As Kafka: no member waits on this record; if the broker fails before another
                # rebalance the previous generation comes back and its members time out.
                if code != ErrorCode.NONE:
                    log.warning("group %s: writing the empty generation %d failed: %s", group.group_id,
                                generation, code.name)

            self.persist(group, {}, empty_written)
            return
        group.protocol_name = group.select_protocol()
        self._transition(group, GroupState.COMPLETING_REBALANCE)
        group.pending_sync = set(group.members)
        for m in list(group.members.values()):
            m.is_new = False
            is_leader = m.member_id == group.leader_id
            self._respond_join(m, self._current_join_response(group, m, with_members=is_leader))
            self._schedule_heartbeat(group, m)
        generation = group.generation
        self.timer.schedule(GroupTimerKey("sync", group.group_id), group.max_rebalance_timeout_ms(),
                            lambda: self._on_sync_timeout(group, generation))

    def _on_sync_timeout(self, group: ClassicGroup, generation: int) -> None:
        if group.generation != generation or not group.is_in(GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            return
        laggards = [group.members[m] for m in group.pending_sync if m in group.members]
        group.pending_sync.clear()
        if not laggards:
            return
        for m in laggards:
            self._remove_member(group, m, ErrorCode.REBALANCE_IN_PROGRESS)

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

    # -- removal --------------------------------------------------------------------------------------------

    def _remove_member(self, group: ClassicGroup, member: ClassicMember, pending_error: ErrorCode) -> None:
        log.info("group %s: removing member %s", group.group_id, member.member_id)
        self._cancel_heartbeat(group, member.member_id)
        self._respond_join(member, _join_error(pending_error, member.member_id))
        self._respond_sync(member, _sync_error(pending_error))
        group.remove(member.member_id)
        if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, f"member {member.member_id} left")
        elif group.is_in(GroupState.PREPARING_REBALANCE):
            self._maybe_complete_join(group)

    def _on_session_expired(self, group: ClassicGroup, member_id: str) -> None:
        if group.is_in(GroupState.DEAD) or self.groups.get(group.group_id) is not group:
            return
        if member_id in group.pending_members:
            group.pending_members.discard(member_id)
            self._maybe_complete_join(group)
            return
        member = group.members.get(member_id)
        if member is None:
            return
        if not member.is_new and (member.awaiting_join or member.awaiting_sync):
            return  # bounded by the rebalance timeout instead; rescheduled when the rebalance completes
        self._remove_member(group, member, ErrorCode.UNKNOWN_MEMBER_ID)

    # -- loading and deletion -------------------------------------------------------------------------------

    def on_loaded(self, group: ClassicGroup) -> None:
        """After replay: members get a full session timeout to show up again."""
        for m in group.members.values():
            self._schedule_heartbeat(group, m)

    def fail_pending(self, code: ErrorCode) -> None:
        """Answer every JoinGroup/SyncGroup still waiting (the coordinator is going away)."""
        for group in list(self.groups.values()):
            if isinstance(group, ClassicGroup):
                for m in group.members.values():
                    self._respond_join(m, _join_error(code, m.member_id))
                    self._respond_sync(m, _sync_error(code))

    def _forget_created(self, group: ClassicGroup) -> None:
        """The record of the group a JoinGroup created could not be appended: the group goes."""
        if self.groups.get(group.group_id) is group:
            del self.groups[group.group_id]
        self.mark_dead(group)

    def mark_dead(self, group: ClassicGroup) -> None:
        for m in list(group.members.values()):
            self._cancel_heartbeat(group, m.member_id)
            self._respond_join(m, _join_error(ErrorCode.COORDINATOR_NOT_AVAILABLE, m.member_id))
            self._respond_sync(m, _sync_error(ErrorCode.COORDINATOR_NOT_AVAILABLE))
        for key in (GroupTimerKey("join", group.group_id), GroupTimerKey("sync", group.group_id)):
            self.timer.cancel(key)
        group.members.clear()
        group.static_members.clear()
        group.transition(GroupState.DEAD, self.timer.now_ms())
