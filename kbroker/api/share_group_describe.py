"""ShareGroupDescribe (key 77), v1: share groups, their members and assignments.

Per group, as Kafka's ``GroupMetadataManager.shareGroupDescribe``: GROUP_ID_NOT_FOUND for an
unknown group ("Group x not found.") or another kind of group ("Group x is not a share group."),
the coordinator errors of the group's partition, else state (Empty/Stable), epochs, the assignor
(``simple``) and each member with its subscription and assigned partitions (topic names resolved).
"""

from __future__ import annotations

from kbroker.api.context import RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.group_describe import group_to_describe
from kbroker.api.registry import api
from kbroker.api.services import ShareGroupServices
from kbroker.coordinator.group_views import reading_committed
from kbroker.coordinator.share_coordinator import share_groups_enabled
from kbroker.coordinator.share_group import ShareGroup
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.share_group_describe import (
    Assignment,
    ShareGroupDescribeRequest,
    ShareGroupDescribeResponse,
    TopicPartitions,
)

G = ShareGroupDescribeResponse.DescribedGroup
M = ShareGroupDescribeResponse.DescribedGroup.Member
# What a group allows without an authorizer: READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
ALL_GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11)


@api(ShareGroupDescribeRequest, ShareGroupDescribeResponse, 1, 1)
def handle_share_group_describe(ctx: RequestContext[ShareGroupServices], request: ShareGroupDescribeRequest) -> ShareGroupDescribeResponse:
    # Kafka reads the groups at the last committed offset of their partition (group_views).
    with reading_committed(ctx.broker.group_coordinator, request.group_ids):
        return _share_group_describe(ctx, request)


def _share_group_describe(ctx: RequestContext[ShareGroupServices], request: ShareGroupDescribeRequest) -> ShareGroupDescribeResponse:
    broker = ctx.broker
    if not share_groups_enabled(broker):
        return ShareGroupDescribeResponse(groups=[G(group_id=g, error_code=ErrorCode.UNSUPPORTED_VERSION, members=[])
                                                  for g in request.group_ids])
    coordinator = broker.group_coordinator
    image = broker.image
    out = []
    for group_id in request.group_ids:
        group = group_to_describe(coordinator, group_id, ShareGroup, "share", G, check_id=False)
        if not isinstance(group, ShareGroup):
            out.append(group)
            continue
        members = []
        for m in group.members.values():
            tps = []
            for tid, parts in sorted(m.assigned.items(), key=lambda kv: str(kv[0])):
                topic = image.topic_by_id(tid)
                tps.append(TopicPartitions(topic_id=tid, topic_name=topic.name if topic else "",
                                           partitions=sorted(parts)))
            members.append(M(member_id=m.member_id, rack_id=m.rack_id, member_epoch=m.member_epoch,
                             client_id=m.client_id, client_host=m.client_host,
                             subscribed_topic_names=list(m.subscribed_topic_names),
                             assignment=Assignment(topic_partitions=tps)))
        out.append(G(group_id=group_id, error_code=ErrorCode.NONE, group_state=group.state_name(),
                     group_epoch=group.group_epoch, assignment_epoch=group.assignment_epoch, assignor_name="simple",
                     members=members,
                     authorized_operations=ALL_GROUP_OPERATIONS if request.include_authorized_operations
                     else -2147483648))
    return ShareGroupDescribeResponse(groups=out)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(77)
def _share_group_describe_error(request: ShareGroupDescribeRequest, version: int, code: int) -> ShareGroupDescribeResponse:
    R = ShareGroupDescribeResponse
    return R(groups=[R.DescribedGroup(group_id=group_id, error_code=code) for group_id in request.group_ids])
