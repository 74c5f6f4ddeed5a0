"""DescribeTopicPartitions (key 75), v0 (Kafka 3.8+).

Topics (all of them when the list is empty) in name order, each with its partitions, at most
``min(ResponsePartitionLimit, max.request.partition.size.limit)`` partitions per response, and at
least one (a limit of 0 or below is taken as 1, as Kafka 4.x does). A
cursor (topic, partition) starts the page: topics sorting before the cursor's are skipped, the
cursor topic starts at its partition index and every later topic at 0. When the limit cuts a topic
short, NextCursor names it and the first partition left out; when the limit is used up exactly at
the end of a topic and more topics follow, NextCursor names the next topic at partition 0. A
cursor topic missing from a non-empty topic list is INVALID_REQUEST for every requested topic.
Named topics that do not exist get UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for an
illegal name); when listing all topics there are none such. Without an authorizer every topic is
described and every operation is authorized (on missing topics too, as Kafka fills them in for
every topic of the response).
"""

from __future__ import annotations

import uuid

from kbroker.api.context import RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.metadata import TOPIC_OPERATIONS
from kbroker.api.registry import api
from kbroker.controller.errors import ControllerError
from kbroker.controller.topic_plans import validate_topic_name
from kbroker.metadata.directories import has_online_dir
from kbroker.metadata.image import INTERNAL_TOPICS, MetadataImage, PartitionState
from kbroker.security.acls import DESCRIBE, TOPIC, authorized, authorized_operations
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.describe_topic_partitions import (
    DescribeTopicPartitionsRequest,
    DescribeTopicPartitionsResponse,
)

Response = DescribeTopicPartitionsResponse
TopicOut = Response.DescribeTopicPartitionsResponseTopic
PartOut = Response.DescribeTopicPartitionsResponseTopic.DescribeTopicPartitionsResponsePartition

ZERO_UUID = uuid.UUID(int=0)


def _missing_topic_error(name: str) -> ErrorCode:
    try:
        validate_topic_name(name)
    except ControllerError:
        return ErrorCode.INVALID_TOPIC_EXCEPTION
    return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def _partition(image: MetadataImage, state: PartitionState, index: int) -> PartOut:
    leader = state.leader
    registered = image.brokers.get(leader)
    # (not registered, fenced, or in a log dir that is not one of the broker's online dirs)
    offline = [b for b in state.replicas
               if b not in image.brokers or image.brokers[b].fenced or not has_online_dir(image, b, state)]
    return PartOut(
        error_code=ErrorCode.NONE,
        partition_index=index,
        leader_id=leader if registered is not None else -1,
        leader_epoch=state.leader_epoch,
        replica_nodes=list(state.replicas),
        isr_nodes=list(state.isr),
        eligible_leader_replicas=[],
        last_known_elr=[],
        offline_replicas=offline,
    )


@api(75, 0, 0)
def handle_describe_topic_partitions(ctx: RequestContext, request: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse:
    broker = ctx.broker
    image = broker.image
    fetch_all = not request.topics
    cursor = request.cursor
    cursor_topic = cursor.topic_name if cursor is not None else ""
    if fetch_all:
        names = {name for name in image.topics if name >= cursor_topic}
    else:
        names = {t.name for t in request.topics if t.name >= cursor_topic}
        if cursor is not None and cursor.topic_name not in names:
            return Response(throttle_time_ms=0, topics=[
                TopicOut(error_code=ErrorCode.INVALID_REQUEST, name=t.name, topic_id=ZERO_UUID, is_internal=False,
                         partitions=[])
                for t in request.topics
            ])
    # Kafka: topics one may not DESCRIBE are left out, or answer TOPIC_AUTHORIZATION_FAILED (without
    # their id) when named; those answers come after the others (kbroker/security/acls.py)
    unauthorized = sorted(name for name in names if not authorized(ctx, DESCRIBE, TOPIC, name))
    names -= set(unauthorized)
    max_limit = broker.config["max.request.partition.size.limit"]
    remaining = max(min(max_limit, request.response_partition_limit), 1)  # at least one, as Kafka 4.x
    response = Response(throttle_time_ms=0, topics=[], next_cursor=None)
    for name in sorted(names):
        if remaining <= 0:
            if remaining == 0:
                response.next_cursor = Response.Cursor(topic_name=name, partition_index=0)
            break
        topic = image.topic(name)
        if topic is None:
            if not fetch_all:
                response.topics.append(TopicOut(error_code=_missing_topic_error(name), name=name,
                                                topic_id=ZERO_UUID, is_internal=name in INTERNAL_TOPICS,
                                                partitions=[], topic_authorized_operations=TOPIC_OPERATIONS))
            continue
        start = cursor.partition_index if cursor is not None and name == cursor_topic else 0
        start = max(start, 0)
        count = len(topic.partitions)
        upper = min(count, start + remaining)
        partitions = [
            _partition(image, topic.partitions[i], i) for i in range(start, upper) if i in topic.partitions
        ]
        response.topics.append(TopicOut(
            error_code=ErrorCode.NONE, name=name, topic_id=topic.topic_id, is_internal=topic.is_internal,
            partitions=partitions,
            topic_authorized_operations=authorized_operations(ctx, TOPIC, name, TOPIC_OPERATIONS),
        ))
        if upper < count:
            response.next_cursor = Response.Cursor(topic_name=name, partition_index=upper)
            break
        remaining -= len(partitions)
    if not fetch_all:
        response.topics.extend(TopicOut(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, name=name, topic_id=ZERO_UUID,
                                        is_internal=False, partitions=[]) for name in unauthorized)
    return response


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(75)
def _describe_topic_partitions_error(request: DescribeTopicPartitionsRequest, version: int, code: int) -> DescribeTopicPartitionsResponse:
    R = DescribeTopicPartitionsResponse
    return R(topics=[
        R.DescribeTopicPartitionsResponseTopic(name=topic.name, error_code=code, is_internal=False,
                                               partitions=[])
        for topic in request.topics
    ])
