"""The classic group protocol's rebalance core (see :mod:`kbroker.coordinator.group_classic` for the
protocol, its states and rules): the state a :class:`~kbroker.coordinator.group_classic.ClassicGroupManager`
runs over, the timers of member sessions and of the join and sync phases, a rebalance from its start
(PreparingRebalance, with the initial delay of an empty group) to the join phase's completion
(CompletingRebalance, or Empty when nobody is left), members removed (left, expired, not synced in
time), and the groups loaded, failed or deleted. The JoinGroup side is in
:mod:`kbroker.coordinator.group_classic_join`; SyncGroup, Heartbeat and LeaveGroup in
:mod:`kbroker.coordinator.group_classic`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kbroker.coordinator.group_classic_created import CreateGroup
from kbroker.coordinator.group_classic_model import (
    ClassicConfig,
    ClassicGroup,
    ClassicMember,
    GroupState,
    Persist,
    Timer,
    _join_error,
    _sync_error,
)
from kbroker.coordinator.timer_keys import GroupTimerKey
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.join_group import JoinGroupResponse
from kbroker_protocol.messages.sync_group import SyncGroupResponse

log = logging.getLogger("kbroker.coordinator.group_classic")  # (the protocol's logger, as before the split)


class ClassicRebalance:
    """The groups in ``groups`` (shared with the coordinator, which also keeps KIP-848 groups there:
    anything that is not a :class:`ClassicGroup` is foreign), their timers and their rebalances."""

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
