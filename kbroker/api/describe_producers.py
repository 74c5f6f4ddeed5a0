"""DescribeProducers (key 61), v0.

The active producers of each partition as its producer state holds them: id, epoch, last
sequence, last timestamp, coordinator epoch and the first offset of the open transaction (-1).
A topic the principal may not READ answers TOPIC_AUTHORIZATION_FAILED for each of its partitions,
before its existence is looked at (Kafka's handleDescribeProducersRequest).
"""

from __future__ import annotations

from kbroker.api.registry import api
from kbroker.security.acls import READ, TOPIC, authorized
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.describe_producers import DescribeProducersResponse

TopicResp = DescribeProducersResponse.TopicResponse
PartResp = TopicResp.PartitionResponse
Producer = PartResp.ProducerState


@api(61, 0, 0)
def handle_describe_producers(ctx, request) -> DescribeProducersResponse:
    broker = ctx.broker
    topics = []
    for t in request.topics:
        parts = []
        if not authorized(ctx, READ, TOPIC, t.name):
            code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            topics.append(TopicResp(name=t.name, partitions=[
                PartResp(partition_index=index, error_code=code, error_message=default_message(code),
                         active_producers=[]) for index in t.partition_indexes]))
            continue
        topic = broker.image.topic(t.name)
        for index in t.partition_indexes:
            partition = broker.partition(t.name, index)
            if partition is None:
                code = (ErrorCode.NOT_LEADER_OR_FOLLOWER if topic is not None and index in topic.partitions
                        else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                parts.append(PartResp(partition_index=index, error_code=code, error_message=None, active_producers=[]))
                continue
            producers = [
                Producer(producer_id=e.producer_id, producer_epoch=e.epoch, last_sequence=e.last_seq,
                         last_timestamp=e.last_timestamp, coordinator_epoch=e.coordinator_epoch,
                         current_txn_start_offset=first)
                for e, first in broker.txn_coordinator.producers_of(partition)
            ]
            parts.append(PartResp(partition_index=index, error_code=ErrorCode.NONE, error_message=None,
                                  active_producers=producers))
        topics.append(TopicResp(name=t.name, partitions=parts))
    return DescribeProducersResponse(throttle_time_ms=0, topics=topics)
