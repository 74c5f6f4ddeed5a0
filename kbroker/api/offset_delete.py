"""OffsetDelete (key 47), v0.

Deletes committed offsets of a group (tombstones). Top-level GROUP_ID_NOT_FOUND for an unknown
group and NON_EMPTY_GROUP for a classic group with members that does not use the consumer protocol;
per partition GROUP_SUBSCRIBED_TO_TOPIC while a member subscribes to the topic, and
UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext, require
from kbroker.api.registry import api
from kbroker.coordinator.group_coordinator import coordinator_error
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.offset_delete import OffsetDeleteRequest, OffsetDeleteResponse

if TYPE_CHECKING:
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.metadata.image import MetadataImage

T = OffsetDeleteResponse.OffsetDeleteResponseTopic
P = T.OffsetDeleteResponsePartition


class OffsetDeleteServices(Protocol):
    """What OffsetDelete uses of the broker."""

    @property
    def group_coordinator(self) -> GroupCoordinator | None: ...
    image: MetadataImage


@api(OffsetDeleteRequest, OffsetDeleteResponse, 0, 0)
def handle_offset_delete(ctx: RequestContext[OffsetDeleteServices], request: OffsetDeleteRequest) -> OffsetDeleteResponse:
    coordinator = ctx.broker.group_coordinator
    if coordinator is not None and not request.group_id:
        return OffsetDeleteResponse(error_code=ErrorCode.INVALID_GROUP_ID, topics=[])
    code = coordinator_error(coordinator, request.group_id)
    if code != ErrorCode.NONE:
        return OffsetDeleteResponse(error_code=code, topics=[])
    coordinator = require(coordinator, "the group coordinator")  # (coordinator_error: there is one)

    image = ctx.broker.image
    known = []
    unknown: dict[str, list[int]] = {}
    for t in request.topics:
        info = image.topic(t.name)
        parts = [p.partition_index for p in t.partitions]
        if info is None:
            unknown.setdefault(t.name, []).extend(parts)
        else:
            bad = [p for p in parts if p not in info.partitions]
            if bad:
                unknown.setdefault(t.name, []).extend(bad)
            known.append((t.name, [p for p in parts if p in info.partitions]))
    error, rows = coordinator.delete_offsets(request.group_id, known)
    if error != ErrorCode.NONE:
        return OffsetDeleteResponse(error_code=error, throttle_time_ms=0, topics=[])
    by_topic: dict[str, list[P]] = {}
    for topic, p, code in rows:
        by_topic.setdefault(topic, []).append(P(partition_index=p, error_code=code))
    for topic, parts in unknown.items():
        by_topic.setdefault(topic, []).extend(
            P(partition_index=p, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) for p in parts)
    return OffsetDeleteResponse(error_code=ErrorCode.NONE, throttle_time_ms=0,
                                topics=[T(name=name, partitions=parts) for name, parts in by_topic.items()])
