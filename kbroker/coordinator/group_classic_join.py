"""The JoinGroup side of the classic group protocol (see :mod:`kbroker.coordinator.group_classic`): a
request checked and routed (a new member, with KIP-394's MEMBER_ID_REQUIRED; a known or pending one;
a group created, its record written first), a member added or updated and the rebalance it starts,
and a static member (KIP-345) rejoining with a new id that replaces its old one, answered once the
group's record holds the new id (undone if that write fails).
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, TypedDict

from kbroker.coordinator.group_classic_created import answer_once, write_created
from kbroker.coordinator.group_classic_model import (
    NEW_MEMBER_JOIN_TIMEOUT_MS,
    ClassicGroup,
    ClassicMember,
    GroupState,
    JoinCallback,
    _join_error,
    _sync_error,
)
from kbroker.coordinator.group_classic_rebalance import ClassicRebalance
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.join_group import JoinGroupResponse

if TYPE_CHECKING:
    from typing import Unpack


class JoinArgs(TypedDict):
    """A joining member's fields from its JoinGroup request (as ClassicMember takes them)."""

    group_instance_id: str | None
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    client_id: str
    client_host: str


log = logging.getLogger("kbroker.coordinator.group_classic")  # (the protocol's logger, as before the split)


class ClassicJoin(ClassicRebalance):
    """JoinGroup over the rebalance core."""

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
        args: JoinArgs = dict(group_instance_id=group_instance_id, protocol_type=protocol_type, protocols=protocols,
                    session_timeout_ms=session_timeout_ms, rebalance_timeout_ms=rebalance_timeout_ms,
                    client_id=client_id, client_host=client_host)
        if unknown:
            self._join_new_member(group, require_known_member_id, respond, **args)
        else:
            self._join_existing_member(group, member_id, respond, **args)
        if create is not None:
            write_created(create, group, respond, self._forget_created)

    def _join_new_member(self, group: ClassicGroup, require_known_member_id: bool, respond: JoinCallback,
                         **args: Unpack[JoinArgs]) -> None:
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
                              **args: Unpack[JoinArgs]) -> None:
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
                                  **args: Unpack[JoinArgs]) -> None:
        member = ClassicMember(member_id=member_id, is_new=True, join_callback=respond, **args)
        group.add(member)
        if group.is_in(GroupState.PREPARING_REBALANCE) and group.previous_state == GroupState.EMPTY:
            group.new_member_added = True
        # A new member that never completes its join is dropped after this (Kafka: 5 minutes).
        self._schedule_heartbeat(group, member, NEW_MEMBER_JOIN_TIMEOUT_MS)
        self._rebalance_or_complete_join(group, f"member {member_id} joined")

    def _update_member_and_rebalance(self, group: ClassicGroup, member: ClassicMember, respond: JoinCallback,
                                     **args: Unpack[JoinArgs]) -> None:
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
                               **args: Unpack[JoinArgs]) -> None:
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
