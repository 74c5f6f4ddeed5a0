"""KIP-848 consumer groups: the group state a heartbeat changes (see ``group_consumer``).

Subscriptions resolved against the metadata image, the target assignment (``group_assignors``), the
reconciliation of a member towards its target (revocation first, then the partitions nobody else
owns), member removal, the session and revocation timers, the records written to
``__consumer_offsets`` and their replay.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from kbroker.coordinator.assignment_sets import copy_parts, grant, intersect, minus, same, union
from kbroker.coordinator.group_assignors import ASSIGNORS, AssignmentMember
from kbroker.coordinator.group_consumer_model import (
    CURRENT_ASSIGNMENT,
    GROUP_METADATA,
    KIND,
    MEMBER_METADATA,
    REGULAR_EXPRESSION,
    STABLE,
    TARGET_MEMBER,
    UNRELEASED,
    UNREVOKED,
    ConsumerGroup,
    ConsumerGroupError,
    ConsumerMember,
    Parts,
)
from kbroker.coordinator.group_members import (
    GroupHost,
    MemberGroupManager,
    Record,
    decode_record,
    record_key,
    record_value,
)
from kbroker.coordinator.group_regex import RegexResolutions, RegexUpdate, Requester, ResolvedRegex, prune
from kbroker.coordinator.timer_keys import GroupTimerKey
from kbroker.replication.produce_batch import ProduceError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.coordinator import (
    ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataValue,
    ConsumerGroupRegularExpressionKey,
    ConsumerGroupRegularExpressionValue,
    ConsumerGroupTargetAssignmentMemberValue,
)
from kbroker_protocol.messages.coordinator.consumer_group_current_member_assignment_value import (
    TopicPartitions,
)
from kbroker_protocol.primitives import Message

log = logging.getLogger("kbroker.coordinator.group_consumer")  # the logger of the module before the split

_M = TypeVar("_M", bound=Message)


class _TopicPartitions(Protocol):
    topic_id: uuid.UUID
    partitions: list[int]


class ConsumerGroupState(MemberGroupManager[ConsumerGroup, ConsumerMember]):
    kind = KIND

    def __init__(self, coordinator: GroupHost) -> None:
        super().__init__(coordinator)
        # The groups' regular expressions are resolved against the image (group_regex), which
        # tells when topics appear (through the coordinator's ``on_metadata_record``, which the
        # composition root hooks into the image).
        self.regexes = RegexResolutions(lambda: self.broker.image, lambda: self.broker.authorizer,
                                        self.timer.now_ms,
                                        lambda: int(self._config["group.consumer.regex.refresh.interval.ms"]))
        # The groups whose refresh is under way (Kafka's executor.isScheduled(groupId + "-regex")):
        # group id -> the group object it was asked for (a group unloaded and loaded again is another).
        self._resolving: dict[str, ConsumerGroup] = {}

    # -- configuration and topics ------------------------------------------------------------------------

    def assignor_names(self) -> list[str]:
        return [a for a in self._config["group.consumer.assignors"] if a in ASSIGNORS] or ["uniform"]

    def subscribed_topics(self, member: ConsumerMember, group_id: str) -> set[str]:
        image = self.broker.image
        topics = {t for t in member.subscribed_topic_names if image.topic(t) is not None}
        if member.subscribed_topic_regex:
            group = self.coordinator.groups.get(group_id)
            resolved = group.resolved_regexes if isinstance(group, ConsumerGroup) else {}
            topics |= self.regexes.topics(resolved, member.subscribed_topic_regex)
        return topics

    # -- regular expressions (group_regex) ------------------------------------------------------------------

    @staticmethod
    def _subscribed_regexes(group: ConsumerGroup) -> set[str]:
        return {m.subscribed_topic_regex for m in group.members.values() if m.subscribed_topic_regex}

    def _maybe_refresh_regexes(self, group: ConsumerGroup, requester: Requester | None, new_regex: bool) -> None:
        """Kafka's ``maybeUpdateRegularExpressions`` (after the member's subscription is updated):
        when the group needs a refresh and has none under way, resolve every expression it
        subscribes to after the heartbeat's records are appended (``new_regex``: the heartbeat
        brought an expression nobody in the group subscribed to)."""
        group_id = group.group_id
        if self._resolving.get(group_id) is group:
            return
        regexes = self._subscribed_regexes(group)
        if not self.regexes.should_refresh(group.resolved_regexes, regexes, new_regex):
            return
        batch = frozenset(regexes)

        def started() -> None:
            self._resolving[group_id] = group
            self.timer.schedule(GroupTimerKey("cg-regex", group_id), 0,
                                lambda: self._on_regexes_resolved(group, batch, requester))

        self._once_appended(group_id, started)

    def on_unloaded(self, group_id: str) -> None:
        """The group was unloaded (its partition is led elsewhere now) and its timers cancelled: a
        refresh under way will not complete here."""
        self._resolving.pop(group_id, None)

    def _on_regexes_resolved(self, group: ConsumerGroup, regexes: frozenset[str], requester: Requester | None) -> None:
        """Kafka's executor task and ``handleRegularExpressionsResult``: resolve the batch, then
        write a record per expression still subscribed to and, when an expression's topics or the
        subscribed partitions changed, a new group epoch (the members get the new target at their
        next heartbeat). A failed write is logged; the next heartbeat asks again."""
        group_id = group.group_id
        if self._resolving.get(group_id) is group:
            del self._resolving[group_id]
        if self.coordinator.groups.get(group_id) is not group:
            return  # deleted or unloaded meanwhile
        resolved = self.regexes.resolve_batch(group_id, regexes, requester)
        try:
            with self._all_or_nothing(group_id):
                records: list[Record] = []
                subscribed = self._subscribed_regexes(group)
                bump = False
                for regex, new in sorted(resolved.items()):
                    if regex not in subscribed:
                        continue
                    old = group.resolved_regexes.get(regex)
                    if (old.topics if old is not None else frozenset()) != new.topics:
                        bump = True
                    group.resolved_regexes[regex] = new
                    records.append(self._regex_record(group_id, regex, new))
                metadata = self._subscription_metadata(group)
                group.metadata_image_offset = self.broker.image.offset
                if metadata != group.subscribed_partitions:
                    group.subscribed_partitions = metadata
                    bump = True
                if bump:
                    self._next_group_epoch(group, records)
                    log.info("consumer group %s: epoch %d after the refresh of its regular expressions", group_id,
                             group.group_epoch)
                self._append(group_id, records)
        except ProduceError as exc:
            log.warning("consumer group %s: the write of its regular expressions failed (%s)", group_id,
                        exc.code.name)

    def _prune_regexes(self, group: ConsumerGroup, records: list[Record]) -> None:
        """Kafka's maybeDeleteResolvedRegularExpressions: tombstones for the expressions whose last
        subscriber changed its subscription or left."""
        deleted = prune(group.resolved_regexes, self._subscribed_regexes(group))
        records.extend(self._regex_records(group, RegexUpdate({}, deleted)))

    def _regex_records(self, group: ConsumerGroup, update: RegexUpdate) -> list[Record]:
        out = [self._regex_record(group.group_id, regex, None) for regex in update.deleted]
        out.extend(self._regex_record(group.group_id, regex, resolved) for regex, resolved in update.resolved.items())
        return out

    @staticmethod
    def _regex_record(group_id: str, regex: str, resolved: ResolvedRegex | None) -> Record:
        key = record_key(REGULAR_EXPRESSION, ConsumerGroupRegularExpressionKey(group_id=group_id,
                                                                               regular_expression=regex))
        if resolved is None:
            return key, None
        return key, record_value(ConsumerGroupRegularExpressionValue(
            topics=sorted(resolved.topics), version=resolved.version, timestamp=resolved.resolved_at_ms))

    def _replay_regex(self, key: bytes, value: bytes | None) -> None:
        """Kafka's replay of ConsumerGroupRegularExpression: a record creates the group if needed, a
        tombstone of an unknown group is ignored."""
        k, v = decode_record(self.kind.types, REGULAR_EXPRESSION, key, value)
        assert isinstance(k, ConsumerGroupRegularExpressionKey)
        group = self.coordinator.groups.get(k.group_id)
        if not isinstance(group, ConsumerGroup):
            if v is None:
                return
            group = self._new_group(k.group_id)
            self.coordinator.groups[k.group_id] = group
        if v is None:
            group.resolved_regexes.pop(k.regular_expression, None)
        else:
            assert isinstance(v, ConsumerGroupRegularExpressionValue)
            group.resolved_regexes[k.regular_expression] = ResolvedRegex(frozenset(v.topics), v.version, v.timestamp)

    def tombstones(self, group: ConsumerGroup) -> list[Record]:
        """Kafka's createGroupTombstoneRecords: the resolved expressions' tombstones come before the
        group's epoch record's."""
        out = super().tombstones(group)
        regexes = [self._regex_record(group.group_id, r, None) for r in sorted(group.resolved_regexes)]
        return out[:-1] + regexes + out[-1:]

    def _topic_id(self, name: str) -> uuid.UUID | None:
        t = self.broker.image.topic(name)
        return None if t is None else t.topic_id

    def _topic_name(self, topic_id: uuid.UUID) -> str | None:
        t = self.broker.image.topic_by_id(topic_id)
        return None if t is None else t.name

    def _to_ids(self, parts: Parts, cls: Callable[..., _M]) -> list[_M]:
        out = []
        for topic in sorted(parts):
            tid = self._topic_id(topic)
            if tid is not None and parts[topic]:
                out.append(cls(topic_id=tid, partitions=sorted(parts[topic])))
        return out

    def _from_ids(self, items: Sequence[_TopicPartitions] | None) -> Parts:
        out: Parts = {}
        for item in items or []:
            name = self._topic_name(item.topic_id)
            if name is not None:
                out.setdefault(name, set()).update(item.partitions)
        return out

    def _subscription_metadata(self, group: ConsumerGroup) -> dict[str, int]:
        out: dict[str, int] = {}
        image = self.broker.image
        for m in group.members.values():
            for topic in self.subscribed_topics(m, group.group_id):
                t = image.topic(topic)
                if t is not None:
                    out[topic] = len(t.partitions)
        return out

    # -- assignment and reconciliation ---------------------------------------------------------------------

    def _advance_epochs(self, group: ConsumerGroup, bump: bool, records: list[Record]) -> None:
        """A new group epoch when the members changed (``bump``) or the subscribed topics' partition
        counts (part of the group's metadata) did; a new target assignment when it is behind."""
        self._prune_regexes(group, records)
        image_offset = self.broker.image.offset
        if bump or image_offset != group.metadata_image_offset:
            group.metadata_image_offset = image_offset
            subscribed = self._subscription_metadata(group)
            if subscribed != group.subscribed_partitions:
                group.subscribed_partitions = subscribed
                bump = True
        if bump:
            self._next_group_epoch(group, records)
        if group.group_epoch > group.assignment_epoch:
            records.extend(self._compute_target(group))

    def _compute_target(self, group: ConsumerGroup) -> list[Record]:
        names = self.assignor_names()
        chosen = names[0]
        for m in group.members.values():  # the most common requested assignor, as Kafka does
            if m.server_assignor in names:
                chosen = m.server_assignor
                break
        members = {mid: AssignmentMember(self.subscribed_topics(m, group.group_id), copy_parts(group.target.get(mid, m.assigned)))
                   for mid, m in group.members.items()}
        target = ASSIGNORS[chosen](members, dict(group.subscribed_partitions))
        group.target = {mid: copy_parts(parts) for mid, parts in target.items()}
        records = self._new_target(group, list(group.members))
        log.info("consumer group %s: epoch %d target assignment by %s: %s", group.group_id, group.group_epoch,
                 chosen, {m: {t: sorted(ps) for t, ps in parts.items()} for m, parts in group.target.items()})
        return records

    def _reconcile(self, group: ConsumerGroup, member: ConsumerMember, owned: Parts | None,
                   subscription_changed: bool = False) -> None:
        """Kafka's ``CurrentAssignmentBuilder``; ``subscription_changed``: the heartbeat changed the
        member's subscription, whose topics it no longer subscribes to it gives up at once."""
        target = group.target.get(member.member_id, {})
        if member.pending_revocation:
            if owned is None or intersect(owned, member.pending_revocation):
                if subscription_changed:
                    self._drop_unsubscribed(group, member, owned)
                return  # still revoking
            member.pending_revocation = {}
            self.timer.cancel(self._revoke_key(group, member.member_id))
        if member.member_epoch == group.assignment_epoch and member.state == STABLE and same(member.assigned, target):
            if subscription_changed:
                self._drop_unsubscribed(group, member, owned)
            return
        # Kafka's computeNextAssignment: the target of a topic the member no longer subscribes to
        # (its expression not resolved yet) is empty.
        subscribed = self.subscribed_topics(member, group.group_id)
        target = {t: ps for t, ps in target.items() if t in subscribed}
        revoke = minus(member.assigned, target)
        if revoke:
            member.assigned = intersect(member.assigned, target)
            member.pending_revocation = revoke
            member.state = UNREVOKED
            mid = member.member_id
            self._schedule_revocation(group, member, member.rebalance_timeout_ms,
                                      lambda: self._on_revocation_timeout(group, mid))
            return
        granted, complete = grant(target, group.owner, member)
        member.bump_epoch(group.assignment_epoch)
        member.assigned = granted
        member.state = STABLE if complete else UNRELEASED

    def _drop_unsubscribed(self, group: ConsumerGroup, member: ConsumerMember, owned: Parts | None) -> None:
        """Kafka's ``updateCurrentAssignment``: the member's partitions of topics it no longer
        subscribes to (an expression not resolved yet subscribes to none) leave its assignment and
        are to be revoked (UNREVOKED_PARTITIONS, with the rebalance timeout) while it still owns
        them; its epoch stays."""
        subscribed = self.subscribed_topics(member, group.group_id)
        dropped = {t: set(ps) for t, ps in member.assigned.items() if ps and t not in subscribed}
        if not dropped:
            return
        member.assigned = {t: ps for t, ps in member.assigned.items() if t in subscribed}
        pending = union(member.pending_revocation, dropped)
        if owned is None or intersect(owned, pending):
            member.pending_revocation = pending
            if member.state != UNREVOKED:
                member.state = UNREVOKED
                mid = member.member_id
                self._schedule_revocation(group, member, member.rebalance_timeout_ms,
                                          lambda: self._on_revocation_timeout(group, mid))

    def _new_joiner(self, group: ConsumerGroup, member_id: str) -> ConsumerMember:
        """A new member; GROUP_MAX_SIZE_REACHED when the group has ``group.max.size`` members."""
        if len(group.members) >= self._config["group.max.size"]:
            raise ConsumerGroupError(ErrorCode.GROUP_MAX_SIZE_REACHED)
        member = group.members[member_id] = ConsumerMember(member_id=member_id)
        return member

    def _replace_static(self, group: ConsumerGroup, previous: ConsumerMember, member_id: str,
                        records: list[Record]) -> ConsumerMember:
        """A static member rejoining under a new member id takes over the old one's assignment
        and epoch."""
        old_id = previous.member_id
        self._take_over_static(group, previous, member_id, records)
        group.target[member_id] = group.target.pop(old_id, {})
        records.append(self._target_member_record(group, member_id))
        return previous

    # -- removal and timers ------------------------------------------------------------------------------------

    def remove_member(self, group: ConsumerGroup, member_id: str) -> None:
        if member_id not in group.members:
            return
        records = self._drop_member(group, member_id)
        self._prune_regexes(group, records)
        if not group.members:
            group.empty_since_ms = self.timer.now_ms()
        group.subscribed_partitions = self._subscription_metadata(group)
        group.metadata_image_offset = self.broker.image.offset
        records.append(self._group_record(group))
        if not group.members:
            group.target = {}
            group.assignment_epoch = group.group_epoch
            records.append(self._target_metadata_record(group))
        self._append(group.group_id, records)
        log.info("consumer group %s: member %s removed (epoch %d)", group.group_id, member_id, group.group_epoch)

    def _schedule_session(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        mid = member.member_id
        timeout = member.session_timeout_ms if member.is_classic and member.session_timeout_ms \
            else self._group_int(group.group_id, "consumer.session.timeout.ms")
        self.timer.schedule(self._session_key(group, mid), timeout, lambda: self._on_session_expired(group, mid))

    def _on_session_expired(self, group: ConsumerGroup, member_id: str) -> None:
        if self.coordinator.groups.get(group.group_id) is group:
            self._remove_or_retry(group, member_id, self._session_key(group, member_id),
                                  lambda: self._on_session_expired(group, member_id))

    def _on_revocation_timeout(self, group: ConsumerGroup, member_id: str) -> None:
        member = group.members.get(member_id)
        if member is not None and member.pending_revocation and self.coordinator.groups.get(group.group_id) is group:
            log.info("consumer group %s: member %s did not revoke in time", group.group_id, member_id)
            self._remove_or_retry(group, member_id, self._revoke_key(group, member_id),
                                  lambda: self._on_revocation_timeout(group, member_id))

    def _remove_or_retry(self, group: ConsumerGroup, member_id: str, key: GroupTimerKey,
                         again: Callable[[], None]) -> None:
        """A timer's removal of a member; when its records cannot be appended the group stays as it
        was and the timer fires again after Kafka's timer retry backoff."""
        self._timer_write(group.group_id, key, again, lambda: self.remove_member(group, member_id), [member_id])

    # -- records ---------------------------------------------------------------------------------------------

    def _group_record(self, group: ConsumerGroup) -> Record:
        return self._record(GROUP_METADATA, ConsumerGroupMetadataValue(epoch=group.group_epoch, metadata_hash=0),
                            group.group_id)

    def _member_record(self, group: ConsumerGroup, m: ConsumerMember) -> Record:
        value = ConsumerGroupMemberMetadataValue(
            instance_id=m.instance_id, rack_id=m.rack_id, client_id=m.client_id, client_host=m.client_host,
            subscribed_topic_names=list(m.subscribed_topic_names), subscribed_topic_regex=m.subscribed_topic_regex,
            rebalance_timeout_ms=m.rebalance_timeout_ms, server_assignor=m.server_assignor)
        if m.is_classic:
            C = ConsumerGroupMemberMetadataValue.ClassicMemberMetadata
            value.classic_member_metadata = C(session_timeout_ms=m.session_timeout_ms or 0, supported_protocols=[
                C.ClassicProtocol(name=n, metadata=meta) for n, meta in m.classic_protocols or []])
        return self._record(MEMBER_METADATA, value, group.group_id, m.member_id)

    def _target_member_record(self, group: ConsumerGroup, member_id: str) -> Record:
        value = ConsumerGroupTargetAssignmentMemberValue(topic_partitions=self._to_ids(
            group.target.get(member_id, {}), ConsumerGroupTargetAssignmentMemberValue.TopicPartition))
        return self._record(TARGET_MEMBER, value, group.group_id, member_id)

    def _current_record(self, group: ConsumerGroup, m: ConsumerMember) -> Record:
        value = ConsumerGroupCurrentMemberAssignmentValue(
            member_epoch=m.member_epoch, previous_member_epoch=m.previous_member_epoch, state=m.state,
            assigned_partitions=self._to_ids(m.assigned, TopicPartitions),
            partitions_pending_revocation=self._to_ids(m.pending_revocation, TopicPartitions))
        return self._record(CURRENT_ASSIGNMENT, value, group.group_id, m.member_id)

    # -- replay (the skeleton is MemberGroupManager.replay) ------------------------------------------------------

    def apply(self, kind: int, key: bytes, value: bytes | None, *, replay: bool) -> None:
        """Replay of a consumer group record (live writes already changed the state)."""
        if replay and kind == REGULAR_EXPRESSION:
            self._replay_regex(key, value)
        elif replay and kind in KIND.types:
            self.replay(kind, key, value)

    def _replay_member_metadata(self, member: ConsumerMember, v: Message) -> None:
        assert isinstance(v, ConsumerGroupMemberMetadataValue)  # (the kind's value class of the record type)
        member.instance_id, member.rack_id = v.instance_id, v.rack_id
        member.client_id, member.client_host = v.client_id, v.client_host
        member.subscribed_topic_names = list(v.subscribed_topic_names)
        member.subscribed_topic_regex = v.subscribed_topic_regex or None
        member.rebalance_timeout_ms, member.server_assignor = v.rebalance_timeout_ms, v.server_assignor
        if v.classic_member_metadata is not None:
            member.session_timeout_ms = v.classic_member_metadata.session_timeout_ms
            member.classic_protocols = [(p.name, bytes(p.metadata))
                                        for p in v.classic_member_metadata.supported_protocols]

    def _replay_target(self, value: Message) -> Parts:
        assert isinstance(value, ConsumerGroupTargetAssignmentMemberValue)
        return self._from_ids(value.topic_partitions)

    def _replay_current(self, member: ConsumerMember, v: Message) -> None:
        assert isinstance(v, ConsumerGroupCurrentMemberAssignmentValue)
        member.member_epoch, member.previous_member_epoch, member.state = (
            v.member_epoch, v.previous_member_epoch, v.state)
        member.assigned = self._from_ids(v.assigned_partitions)
        member.pending_revocation = self._from_ids(v.partitions_pending_revocation)

    def _partial(self, group: ConsumerGroup, member_id: str) -> bool:
        m = group.members[member_id]
        return member_id not in group.target and not m.subscribed_topic_names and m.subscribed_topic_regex is None

    def _loaded(self, group: ConsumerGroup) -> None:
        group.subscribed_partitions = self._subscription_metadata(group)

    # -- used by the coordinator -----------------------------------------------------------------------------

    def is_subscribed_to(self, group: ConsumerGroup, topic: str) -> bool:
        return any(topic in self.subscribed_topics(m, group.group_id) for m in group.members.values())

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
