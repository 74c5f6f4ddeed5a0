"""DeleteRecords (key 21), v0-2.

Moves each partition's log start offset forward (``PartitionLog.advance_log_start``); segments
wholly below it are removed. Offset -1 means the high watermark; an offset beyond the high
watermark, or any other negative one, is OFFSET_OUT_OF_RANGE. An offset at or below the current
log start changes nothing and answers the current log start. As in Kafka: unknown partitions get
UNKNOWN_TOPIC_OR_PARTITION, internal topics INVALID_TOPIC_EXCEPTION, a topic whose
cleanup.policy lacks ``delete`` POLICY_VIOLATION; every error carries low watermark -1. With one
replica the new low watermark is reached when the call returns, so timeoutMs is not needed.
v2 is v1 with flexible encoding.
"""

from __future__ import annotations

import logging

from kbroker.api.context import BrokerServices, RequestContext, partition_or_error
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.log import LogCorruptedError, LogError, OffsetOutOfRangeError
from kbroker.metadata.image import INTERNAL_TOPICS
from kbroker.security.acls import DELETE, TOPIC, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.delete_records import DeleteRecordsRequest, DeleteRecordsResponse

log = logging.getLogger(__name__)

TopicResult = DeleteRecordsResponse.DeleteRecordsTopicResult
PartResult = DeleteRecordsResponse.DeleteRecordsTopicResult.DeleteRecordsPartitionResult

HIGH_WATERMARK = -1
INVALID_LOW_WATERMARK = -1


def _delete(broker: BrokerServices, topic: str, index: int, offset: int) -> tuple[ErrorCode, int]:
    if broker.image.partition(topic, index) is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, INVALID_LOW_WATERMARK
    if topic in INTERNAL_TOPICS:
        return ErrorCode.INVALID_TOPIC_EXCEPTION, INVALID_LOW_WATERMARK
    partition, missing = partition_or_error(broker, topic, index, leader=True)  # only the leader moves the log start
    if partition is None:
        return missing, INVALID_LOW_WATERMARK
    plog = partition.log
    if not plog.config.delete:
        return ErrorCode.POLICY_VIOLATION, INVALID_LOW_WATERMARK
    target = plog.high_watermark if offset == HIGH_WATERMARK else offset
    if target < 0:
        return ErrorCode.OFFSET_OUT_OF_RANGE, INVALID_LOW_WATERMARK
    try:
        low = plog.advance_log_start(target)
    except OffsetOutOfRangeError:
        return ErrorCode.OFFSET_OUT_OF_RANGE, INVALID_LOW_WATERMARK
    except LogCorruptedError:
        return ErrorCode.KAFKA_STORAGE_ERROR, INVALID_LOW_WATERMARK
    except LogError as exc:
        log.warning("delete records on %s-%s failed: %s", topic, index, exc)
        return ErrorCode.KAFKA_STORAGE_ERROR, INVALID_LOW_WATERMARK
    return ErrorCode.NONE, low


@api(21, 0, 2)
def handle_delete_records(ctx: RequestContext, request: DeleteRecordsRequest) -> DeleteRecordsResponse:
    broker = ctx.broker
    by_topic: dict[str, TopicResult] = {}
    for t in request.topics:
        result = by_topic.setdefault(t.name, TopicResult(name=t.name, partitions=[]))
        denied = not authorized(ctx, DELETE, TOPIC, t.name)  # Kafka: DELETE on the topic (security/acls.py)
        for p in t.partitions:
            error, low = ((ErrorCode.TOPIC_AUTHORIZATION_FAILED, -1) if denied
                          else _delete(broker, t.name, p.partition_index, p.offset))
            result.partitions.append(PartResult(partition_index=p.partition_index, low_watermark=low,
                                                error_code=error))
    return DeleteRecordsResponse(throttle_time_ms=0, topics=list(by_topic.values()))


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(21)
def _delete_records_error(request: DeleteRecordsRequest, version: int, code: int) -> DeleteRecordsResponse:
    R = DeleteRecordsResponse
    T = R.DeleteRecordsTopicResult
    return R(topics=[
        T(name=topic.name, partitions=[
            T.DeleteRecordsPartitionResult(partition_index=p.partition_index, low_watermark=-1,
                                           error_code=code)
            for p in topic.partitions])
        for topic in request.topics
    ])
