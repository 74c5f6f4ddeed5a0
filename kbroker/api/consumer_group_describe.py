"""ConsumerGroupDescribe (key 69), v0-1: KIP-848 groups with epochs and assignments.

Per group: GROUP_ID_NOT_FOUND when unknown or when it is a classic group ("not a consumer group");
members carry their current and target assignments (topic ids and names). v1 adds the member type
(0 for a classic member hosted by the group, 1 for a KIP-848 member). Authorized operations
are not computed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import refusal
from kbroker.api.group_describe import group_to_describe
from kbroker.api.registry import api
from kbroker.coordinator.group_views import reading_committed
from kbroker.metadata.image import MetadataImage
from kbroker.security.acls import DESCRIBE, GROUP, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.consumer_group_describe import (
    Assignment,
    ConsumerGroupDescribeRequest,
    ConsumerGroupDescribeResponse,
    TopicPartitions,
)

G = ConsumerGroupDescribeResponse.DescribedGroup


def _assignment(image: MetadataImage, parts: Mapping[str, Iterable[int]]) -> Assignment:
    out = []
    for topic in sorted(parts):
        info = image.topic(topic)
        if info is not None and parts[topic]:
            out.append(TopicPartitions(topic_id=info.topic_id, topic_name=topic, partitions=sorted(parts[topic])))
    return Assignment(topic_partitions=out)


@api(69, 0, 1)
def handle_consumer_group_describe(ctx: RequestContext, request: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse:
    # Kafka reads the groups at the last committed offset of their partition (group_views).
    with reading_committed(ctx.broker.group_coordinator, request.group_ids):
        return _consumer_group_describe(ctx, request)


def _consumer_group_describe(ctx: RequestContext, request: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse:
    from kbroker.coordinator.group_consumer import ConsumerGroup

    coordinator = ctx.broker.group_coordinator
    image = ctx.broker.image
    groups = []
    for group_id in request.group_ids:
        if not authorized(ctx, DESCRIBE, GROUP, group_id):  # Kafka: first (kbroker/security/acls.py)
            groups.append(G(group_id=group_id, error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, members=[]))
            continue
        group = group_to_describe(coordinator, group_id, ConsumerGroup, "consumer", G)
        if not isinstance(group, ConsumerGroup):
            groups.append(group)
            continue
        consumer = require(require(coordinator, "the group coordinator").consumer, "the consumer group manager")
        assignor = consumer.assignor_names()[0]
        for m in group.members.values():
            if m.server_assignor:
                assignor = m.server_assignor
                break
        members = [
            G.Member(member_id=m.member_id, instance_id=m.instance_id, rack_id=m.rack_id, member_epoch=m.member_epoch,
                     client_id=m.client_id, client_host=m.client_host,
                     subscribed_topic_names=list(m.subscribed_topic_names),
                     subscribed_topic_regex=m.subscribed_topic_regex,
                     assignment=_assignment(image, m.assigned),
                     target_assignment=_assignment(image, group.target.get(m.member_id, {})),
                     member_type=0 if m.is_classic else 1)
            for m in group.members.values()
        ]
        groups.append(G(group_id=group_id, error_code=ErrorCode.NONE, group_state=group.state_name(),
                        group_epoch=group.group_epoch, assignment_epoch=group.assignment_epoch,
                        assignor_name=assignor, members=members))
    return ConsumerGroupDescribeResponse(throttle_time_ms=0, groups=groups)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(69)
def _consumer_group_describe_error(request: ConsumerGroupDescribeRequest, version: int, code: int) -> ConsumerGroupDescribeResponse:
    R = ConsumerGroupDescribeResponse
    return R(groups=[R.DescribedGroup(group_id=group_id, error_code=code) for group_id in request.group_ids])
