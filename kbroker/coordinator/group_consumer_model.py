"""KIP-848 consumer groups: the group and member records, the record types and the classic
consumer protocol's subscription and assignment decoding (see ``group_consumer``)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

from kbroker.coordinator.group_members import GroupError, GroupKind, GroupMember, MemberGroup
from kbroker.coordinator.group_regex import ResolvedRegex
from kbroker_protocol.messages.coordinator import (
    ConsumerGroupCurrentMemberAssignmentKey,
    ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupMemberMetadataKey,
    ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataKey,
    ConsumerGroupMetadataValue,
    ConsumerGroupRegularExpressionKey,
    ConsumerGroupRegularExpressionValue,
    ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupTargetAssignmentMemberValue,
    ConsumerGroupTargetAssignmentMetadataKey,
    ConsumerGroupTargetAssignmentMetadataValue,
)
from kbroker_protocol.messages.data.consumer_protocol_assignment import ConsumerProtocolAssignment
from kbroker_protocol.messages.data.consumer_protocol_subscription import ConsumerProtocolSubscription

_I16 = struct.Struct(">h")

STABLE, UNREVOKED, UNRELEASED = 0, 2, 1  # Kafka's MemberState values

GROUP_METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT = 3, 5, 6, 7, 8
REGULAR_EXPRESSION = 16  # ConsumerGroupRegularExpression: a resolved regular expression of the group
_RECORD_TYPES = {
    REGULAR_EXPRESSION: (ConsumerGroupRegularExpressionKey, ConsumerGroupRegularExpressionValue),
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


@dataclass(eq=False)
class ConsumerMember(GroupMember):
    subscribed_topic_names: list[str] = field(default_factory=list)
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    rebalance_timeout_ms: int = 300000
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
class ConsumerGroup(MemberGroup[ConsumerMember, Parts]):
    subscribed_partitions: dict[str, int] = field(default_factory=dict)
    # the group's resolved regular expressions (group_regex), persisted as type 16 records
    resolved_regexes: dict[str, ResolvedRegex] = field(default_factory=dict)
    # the offset of the metadata image ``subscribed_partitions`` was computed against (not
    # persisted): as Kafka, the subscription metadata is computed again when the group epoch is
    # bumped or the metadata changed, not for an expression waiting to be resolved
    metadata_image_offset: int = -1

    type_name: ClassVar[str] = "consumer"

    def state_name(self) -> str:
        if not self.members:
            return "Empty"
        if self.group_epoch != self.assignment_epoch:
            return "Assigning"
        if any(m.member_epoch != self.assignment_epoch or m.state != STABLE for m in self.members.values()):
            return "Reconciling"
        return "Stable"

    def owner(self, topic: str, partition: int) -> ConsumerMember | None:
        for m in self.members.values():
            if partition in m.assigned.get(topic, ()) or partition in m.pending_revocation.get(topic, ()):
                return m
        return None


class ConsumerGroupError(GroupError):
    """A ConsumerGroupHeartbeat error."""


KIND = GroupKind(GROUP_METADATA, MEMBER_METADATA, TARGET_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT,
                 _RECORD_TYPES, ConsumerGroupError, ConsumerGroup, ConsumerMember, session_timer="cg-session",
                 revoke_timer="cg-revoke", group_tombstones=(TARGET_METADATA, GROUP_METADATA))
