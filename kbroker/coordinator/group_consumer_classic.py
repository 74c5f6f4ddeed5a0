"""KIP-848 consumer groups hosting classic members, and the online upgrade of a classic group (see
``group_consumer``, "Interplay with classic groups")."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from kbroker.coordinator.assignment_sets import copy_parts, minus, same
from kbroker.coordinator.coordinator_writes import response_error
from kbroker.coordinator.group_classic import ClassicGroup, GroupState
from kbroker.coordinator.group_consumer_model import (
    _I16,
    ConsumerGroup,
    ConsumerGroupError,
    ConsumerMember,
    Parts,
    _decode_classic_assignment,
    _decode_classic_subscription,
)
from kbroker.coordinator.group_consumer_state import ConsumerGroupState
from kbroker.coordinator.group_members import Record
from kbroker.coordinator.group_records import encode_group_key
from kbroker.replication.produce_batch import ProduceError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.data.consumer_protocol_assignment import ConsumerProtocolAssignment
from kbroker_protocol.messages.join_group import JoinGroupResponse
from kbroker_protocol.messages.sync_group import SyncGroupResponse

log = logging.getLogger("kbroker.coordinator.group_consumer")  # the logger of the module before the split


class ConsumerClassicHosting(ConsumerGroupState):
    """Classic members (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) of a consumer group."""

    def _can_upgrade(self, group: ClassicGroup) -> bool:
        """Online upgrade (Kafka's ``group.consumer.migration.policy`` upgrade/bidirectional): a
        Stable classic group of consumers whose metadata and assignments decode."""
        policy = str(self._config["group.consumer.migration.policy"])
        if policy.lower() not in ("bidirectional", "upgrade"):
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

    def _upgrade(self, classic: ClassicGroup) -> ConsumerGroup:
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
            group.target[m.member_id] = copy_parts(assigned)
        group.subscribed_partitions = self._subscription_metadata(group)
        records: list[Record] = [(encode_group_key(gid), None), self._group_record(group)]
        for cm in group.members.values():
            records.append(self._member_record(group, cm))
            records.append(self._target_member_record(group, cm.member_id))
            records.append(self._current_record(group, cm))
        records.append(self._target_metadata_record(group))
        self._append(gid, records)
        self._once_appended(gid, lambda: self.coordinator.classic.mark_dead(classic))
        self.coordinator.groups[gid] = group
        for cm in group.members.values():
            self._schedule_session(group, cm)
        log.info("classic group %s upgraded to a consumer group at epoch %d", gid, group.group_epoch)
        return group

    def classic_join(self, group: ConsumerGroup, *, member_id: str, **request: Any) -> JoinGroupResponse:
        """JoinGroup of a classic consumer to a consumer group (:meth:`_classic_join`); when its
        records cannot be appended nothing changes and the error is answered (as Kafka normalises it)."""
        try:
            with self._all_or_nothing(group.group_id, [member_id], request.get("group_instance_id")):
                return self._classic_join(group, member_id=member_id, **request)
        except ProduceError as exc:
            return JoinGroupResponse(error_code=response_error(exc.code), generation_id=-1, protocol_name=None,
                                     leader="", member_id=member_id, members=[])

    def _classic_join(self, group: ConsumerGroup, *, member_id: str, group_instance_id: str | None,
                      protocol_type: str, protocols: list[tuple[str, bytes]], session_timeout_ms: int,
                      rebalance_timeout_ms: int, client_id: str, client_host: str,
                      require_known_member_id: bool) -> JoinGroupResponse:
        """The broker assigns (no leader), the response comes at once with the member epoch as
        generation, and SyncGroup returns the member's assignment. A member that must give
        partitions up or can take more is told REBALANCE_IN_PROGRESS by its next heartbeat, and
        converges over join rounds."""
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
        classic_names = [{n for n, _ in m.classic_protocols or []} for m in group.members.values() if m.is_classic]
        if classic_names and not any(all(n in names for names in classic_names) for n, _ in protocols):
            return error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        try:
            topics, owned_list, rack = _decode_classic_subscription(protocols[0][1])
        except Exception:
            return error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        unknown = member_id == ""
        if unknown:
            member_id = str(uuid.uuid4())
        records: list[Record] = []
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
            try:
                member = self._new_joiner(group, member_id)
            except ConsumerGroupError as exc:
                return error(exc.code)
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
        self._advance_epochs(group, bump, records)
        owned: Parts = {}
        for topic, parts in owned_list:
            owned.setdefault(topic, set()).update(parts)
        if not owned_list:
            # An eager client revoked everything before joining.
            member.pending_revocation = {}
            member.assigned = {}
        self._reconcile(group, member, owned)
        records.append(self._current_record(group, member))
        self._append(group.group_id, records)
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
        try:
            with self._all_or_nothing(group.group_id, [member_id], group_instance_id):
                return self._classic_heartbeat(group, member_id, generation, group_instance_id)
        except ProduceError as exc:
            return response_error(exc.code)

    def _classic_heartbeat(self, group: ConsumerGroup, member_id: str, generation: int,
                           group_instance_id: str | None) -> ErrorCode:
        code, member = self._classic_member(group, member_id, group_instance_id, generation)
        if member is None:
            return code
        self._schedule_session(group, member)
        subscribed = self._subscription_metadata(group)
        if subscribed != group.subscribed_partitions:
            group.subscribed_partitions = subscribed
            group.group_epoch += 1
            self._append(group.group_id, [self._group_record(group)])
        if group.group_epoch > group.assignment_epoch:
            self._append(group.group_id, self._compute_target(group))
        target = group.target.get(member_id, {})
        if member.pending_revocation or member.member_epoch != group.assignment_epoch:
            return ErrorCode.REBALANCE_IN_PROGRESS
        if not same(member.assigned, target):
            missing = minus(target, member.assigned)
            if minus(member.assigned, target) or any(
                    group.owner(t, p) is None for t, ps in missing.items() for p in ps):
                return ErrorCode.REBALANCE_IN_PROGRESS  # something to give up, or released partitions to take
        return ErrorCode.NONE

    def classic_leave(self, group: ConsumerGroup, members: list[tuple[str, str | None]]) -> list[ErrorCode]:
        """LeaveGroup of classic members: their removals are one batch; when it cannot be appended
        nobody leaves and every member gets the error."""
        acting = [mid for mid, _ in members]
        acting += [m.member_id for _, iid in members if iid is not None and (m := group.static_member(iid))]
        try:
            with self._all_or_nothing(group.group_id, acting):
                return self._classic_leave(group, members)
        except ProduceError as exc:
            return [response_error(exc.code)] * len(members)

    def _classic_leave(self, group: ConsumerGroup, members: list[tuple[str, str | None]]) -> list[ErrorCode]:
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
