"""ListOffsets (key 2), v1-11.

Timestamps: -2 earliest (log start), -1 latest (high watermark, or the last stable offset for
read_committed, v2+), -3 the record with the largest timestamp (v7+), -4 earliest local (v8+,
the log start here: there is no tiered storage), -5 earliest pending upload (v9+) and -6 latest
tiered (v11) answer offset -1 as Kafka does without tiered storage; otherwise the first record
whose timestamp is at or after the one asked, or offset -1 when there is none. v4+ checks
CurrentLeaderEpoch. A partition named twice gets INVALID_REQUEST.
"""

from __future__ import annotations

from kbroker.api.registry import api
from kbroker.log import LogCorruptedError
from protocol.errors import ErrorCode
from protocol.messages.list_offsets import ListOffsetsResponse

TopicResp = ListOffsetsResponse.ListOffsetsTopicResponse
PartResp = ListOffsetsResponse.ListOffsetsTopicResponse.ListOffsetsPartitionResponse

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, EARLIEST_PENDING_UPLOAD, LATEST_TIERED = -1, -2, -3, -4, -5, -6


def _lookup(partition, timestamp: int, isolation: int) -> tuple[int, int]:
    plog = partition.log
    if timestamp == LATEST:
        return -1, partition.last_stable_offset if isolation == 1 else plog.high_watermark
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return -1, plog.log_start_offset
    if timestamp in (EARLIEST_PENDING_UPLOAD, LATEST_TIERED):
        return -1, -1
    if timestamp == MAX_TIMESTAMP:
        found = plog.max_timestamp()
    elif timestamp < 0:
        raise ValueError(timestamp)
    else:
        found = plog.offset_for_timestamp(timestamp)
    if found is None:
        return -1, -1
    offset, ts = found
    limit = partition.last_stable_offset if isolation == 1 else plog.high_watermark
    if offset >= limit:
        return -1, -1
    return ts, offset


@api(2, 1, 11)
def handle_list_offsets(ctx, request) -> ListOffsetsResponse:
    broker = ctx.broker
    version = ctx.api_version
    isolation = request.isolation_level if version >= 2 else 0
    topics = []
    seen: set[tuple[str, int]] = set()
    duplicates = set()
    for t in request.topics:
        for p in t.partitions:
            key = (t.name, p.partition_index)
            if key in seen:
                duplicates.add(key)
            seen.add(key)
    for t in request.topics:
        parts = []
        topic = broker.image.topic(t.name)
        for p in t.partitions:
            resp = PartResp(partition_index=p.partition_index, error_code=ErrorCode.NONE, timestamp=-1, offset=-1,
                            leader_epoch=-1)
            parts.append(resp)
            if (t.name, p.partition_index) in duplicates:
                resp.error_code = ErrorCode.INVALID_REQUEST
                continue
            partition = broker.partition(t.name, p.partition_index)
            if partition is None:
                resp.error_code = (ErrorCode.NOT_LEADER_OR_FOLLOWER
                                   if topic is not None and p.partition_index in topic.partitions
                                   else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                continue
            epoch = p.current_leader_epoch if version >= 4 else -1
            if epoch >= 0 and epoch != partition.leader_epoch:
                resp.error_code = (ErrorCode.FENCED_LEADER_EPOCH if epoch < partition.leader_epoch
                                   else ErrorCode.UNKNOWN_LEADER_EPOCH)
                continue
            if p.timestamp < LATEST_TIERED or (p.timestamp == MAX_TIMESTAMP and version < 7):
                resp.error_code = ErrorCode.UNSUPPORTED_VERSION
                continue
            try:
                resp.timestamp, resp.offset = _lookup(partition, p.timestamp, isolation)
            except LogCorruptedError:
                resp.error_code = ErrorCode.KAFKA_STORAGE_ERROR
                continue
            resp.leader_epoch = partition.leader_epoch
        topics.append(TopicResp(name=t.name, partitions=parts))
    return ListOffsetsResponse(throttle_time_ms=0, topics=topics)
