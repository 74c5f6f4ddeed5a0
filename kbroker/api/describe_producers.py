"""DescribeProducers (key 61), v0.

The active producers of each partition as its producer state holds them: id, epoch, last
sequence, last timestamp, coordinator epoch and the first offset of the open transaction (-1).
An illegal topic name answers INVALID_TOPIC_EXCEPTION, then a topic the principal may not READ
TOPIC_AUTHORIZATION_FAILED, then a missing topic UNKNOWN_TOPIC_OR_PARTITION, each for every
partition asked, with its message (Kafka's handleDescribeProducersRequest).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import PartitionLookup, RequestContext, partition_or_error, require
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.metadata.new_topic import topic_name_error
from kbroker.security.acls import READ, TOPIC, authorized
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.describe_producers import DescribeProducersRequest, DescribeProducersResponse

if TYPE_CHECKING:
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator

TopicResp = DescribeProducersResponse.TopicResponse
PartResp = TopicResp.PartitionResponse
Producer = PartResp.ProducerState


class DescribeProducersServices(PartitionLookup, Authorizing, Protocol):
    """What DescribeProducers uses of the broker."""

    @property
    def txn_coordinator(self) -> TransactionCoordinator | None: ...


def _topic_error(ctx: RequestContext[DescribeProducersServices], name: str, exists: bool) -> tuple[ErrorCode, str | None] | None:
    """Kafka's topic-level checks, in its order: a legal name, READ, the topic exists."""
    if (message := topic_name_error(name)) is not None:
        return ErrorCode.INVALID_TOPIC_EXCEPTION, message
    for ok, code in ((authorized(ctx, READ, TOPIC, name), ErrorCode.TOPIC_AUTHORIZATION_FAILED),
                     (exists, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)):
        if not ok:
            return code, default_message(code)
    return None


@api(DescribeProducersRequest, DescribeProducersResponse, 0, 0)
def handle_describe_producers(ctx: RequestContext[DescribeProducersServices], request: DescribeProducersRequest) -> DescribeProducersResponse:
    broker = ctx.broker
    topics = []
    for t in request.topics:
        parts = []
        topic = broker.image.topic(t.name)
        error = _topic_error(ctx, t.name, topic is not None)
        if error is not None:
            code, message = error
            topics.append(TopicResp(name=t.name, partitions=[
                PartResp(partition_index=index, error_code=code, error_message=message,
                         active_producers=[]) for index in t.partition_indexes]))
            continue
        for index in t.partition_indexes:
            partition, missing = partition_or_error(broker, t.name, index)
            if partition is None:
                parts.append(PartResp(partition_index=index, error_code=missing, error_message=None,
                                      active_producers=[]))
                continue
            producers = [
                Producer(producer_id=e.producer_id, producer_epoch=e.epoch, last_sequence=e.last_seq,
                         last_timestamp=e.last_timestamp, coordinator_epoch=e.coordinator_epoch,
                         current_txn_start_offset=first)
                for e, first in require(broker.txn_coordinator, "the transaction coordinator").producers_of(partition)
            ]
            parts.append(PartResp(partition_index=index, error_code=ErrorCode.NONE, error_message=None,
                                  active_producers=producers))
        topics.append(TopicResp(name=t.name, partitions=parts))
    return DescribeProducersResponse(throttle_time_ms=0, topics=topics)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(61)
def _describe_producers_error(request: DescribeProducersRequest, version: int, code: int) -> DescribeProducersResponse:
    R = DescribeProducersResponse
    T = R.TopicResponse
    return R(topics=[
        T(name=topic.name, partitions=[T.PartitionResponse(partition_index=index, error_code=code)
                                       for index in topic.partition_indexes])
        for topic in request.topics
    ])
