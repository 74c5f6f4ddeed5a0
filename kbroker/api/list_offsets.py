"""ListOffsets (key 2), v1-11.

Timestamps: -2 earliest (log start), -1 latest (high watermark, or the last stable offset for
read_committed, v2+), -3 the record with the largest timestamp (v7+), -4 earliest local (v8+,
the log start here: there is no tiered storage), -5 latest tiered (v9+) and -6 earliest pending
upload (v11) answer offset -1 as Kafka does without tiered storage; otherwise the first record
whose timestamp is at or after the one asked, or offset -1 when there is none (or it is at or
above the high watermark / last stable offset). v4+ checks CurrentLeaderEpoch. A partition named
twice gets INVALID_REQUEST. Only the leader answers (a follower replica: NOT_LEADER_OR_FOLLOWER),
except for ReplicaId -2 (debugging); a follower's request (ReplicaId >= 0) reads up to the log
end rather than the high watermark, as Kafka's ``fetchOffsetForTimestamp`` without isolation.

LeaderEpoch (v4+), as Kafka's ``Partition.fetchOffsetForTimestamp`` / ``UnifiedLog.fetchOffsetByTimestamp``:

* -1 latest: the partition's current leader epoch;
* -2 earliest and -4 earliest local: the epoch the leader epoch cache gives the log start, i.e.
  the partitionLeaderEpoch of the stored batch holding the log start offset; for an empty log the
  current leader epoch (the leader stamps its epoch at the log end when it becomes leader);
* -3 max timestamp and a timestamp lookup: the partitionLeaderEpoch of the batch holding the
  offset found (-1 when the batch has none);
* -5 and -6, and no offset found: -1.
"""

from __future__ import annotations

import os

from kbroker.api.context import RequestContext, partition_or_error
from kbroker.api.error_response import NO_OFFSET, NO_TIMESTAMP, refusal
from kbroker.api.registry import api
from kbroker.api.services import ReplicaServices
from kbroker.log import LogCorruptedError, OffsetOutOfRangeError, PartitionLog
from kbroker.replication.partition import Partition
from kbroker.security.acls import DESCRIBE, TOPIC, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.list_offsets import ListOffsetsRequest, ListOffsetsResponse
from kbroker_protocol.record_batch import HEADER_SIZE, parse_header

TopicResp = ListOffsetsResponse.ListOffsetsTopicResponse
PartResp = ListOffsetsResponse.ListOffsetsTopicResponse.ListOffsetsPartitionResponse

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED, EARLIEST_PENDING_UPLOAD = -1, -2, -3, -4, -5, -6
NO_EPOCH = -1
DEBUGGING_REPLICA_ID = -2


def batch_leader_epoch(plog: PartitionLog, offset: int) -> int:
    """partitionLeaderEpoch of the stored batch holding ``offset`` (-1 when unknown or unset)."""
    try:
        result = plog.read(offset, 1)
    except OffsetOutOfRangeError:  # the log start moved past it meanwhile
        return NO_EPOCH
    if not result.slices:
        return NO_EPOCH
    first = result.slices[0]
    data = os.pread(first.file.fileno(), HEADER_SIZE, first.position)
    if len(data) < HEADER_SIZE:
        return NO_EPOCH
    epoch = parse_header(data).partition_leader_epoch
    return epoch if epoch >= 0 else NO_EPOCH


def _lookup(partition: Partition, timestamp: int, isolation: int) -> tuple[int, int, int]:
    """(timestamp, offset, leader epoch) answered for ``timestamp``; isolation -1: a replica's
    request, up to the log end."""
    plog = partition.log
    if timestamp == LATEST:
        offset = (partition.last_stable_offset if isolation == 1 else plog.high_watermark if isolation == 0
                  else plog.log_end_offset)
        return -1, offset, partition.leader_epoch
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        start = plog.log_start_offset
        if start >= plog.log_end_offset:
            return -1, start, partition.leader_epoch
        return -1, start, batch_leader_epoch(plog, start)
    if timestamp in (LATEST_TIERED, EARLIEST_PENDING_UPLOAD):
        return -1, -1, NO_EPOCH
    if timestamp == MAX_TIMESTAMP:
        found = plog.max_timestamp()
    elif timestamp < 0:
        raise ValueError(timestamp)
    else:
        found = plog.offset_for_timestamp(timestamp)
    if found is None:
        return -1, -1, NO_EPOCH
    offset, ts = found
    limit = (partition.last_stable_offset if isolation == 1 else plog.high_watermark if isolation == 0
             else plog.log_end_offset)
    if offset >= limit:
        return -1, -1, NO_EPOCH
    return ts, offset, batch_leader_epoch(plog, offset)


@api(ListOffsetsRequest, ListOffsetsResponse, 1, 11)
def handle_list_offsets(ctx: RequestContext[ReplicaServices], request: ListOffsetsRequest) -> ListOffsetsResponse:
    broker = ctx.broker
    version = ctx.api_version
    isolation = request.isolation_level if version >= 2 else 0
    replica_id = request.replica_id
    if replica_id >= 0:
        isolation = -1  # a follower: up to the log end
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
        denied = not authorized(ctx, DESCRIBE, TOPIC, t.name)  # Kafka: DESCRIBE first (kbroker/security/acls.py)
        for p in t.partitions:
            resp = PartResp(partition_index=p.partition_index, error_code=ErrorCode.NONE, timestamp=-1, offset=-1,
                            leader_epoch=-1)
            parts.append(resp)
            if denied:
                resp.error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
                continue
            if (t.name, p.partition_index) in duplicates:
                resp.error_code = ErrorCode.INVALID_REQUEST
                continue
            partition, missing = partition_or_error(broker, t.name, p.partition_index)
            if partition is None:
                resp.error_code = missing
                continue
            epoch = p.current_leader_epoch if version >= 4 else -1
            if epoch >= 0 and epoch != partition.leader_epoch:
                resp.error_code = (ErrorCode.FENCED_LEADER_EPOCH if epoch < partition.leader_epoch
                                   else ErrorCode.UNKNOWN_LEADER_EPOCH)
                continue
            if replica_id != DEBUGGING_REPLICA_ID and not partition.is_leader:
                resp.error_code = ErrorCode.NOT_LEADER_OR_FOLLOWER
                continue
            if p.timestamp < EARLIEST_PENDING_UPLOAD or (p.timestamp == MAX_TIMESTAMP and version < 7):
                resp.error_code = ErrorCode.UNSUPPORTED_VERSION
                continue
            try:
                resp.timestamp, resp.offset, epoch = _lookup(partition, p.timestamp, isolation)
            except LogCorruptedError:
                resp.error_code = ErrorCode.KAFKA_STORAGE_ERROR
                continue
            if version >= 4:
                resp.leader_epoch = epoch
        topics.append(TopicResp(name=t.name, partitions=parts))
    return ListOffsetsResponse(throttle_time_ms=0, topics=topics)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(2)
def _list_offsets_error(request: ListOffsetsRequest, version: int, code: int) -> ListOffsetsResponse:
    R = ListOffsetsResponse
    T = R.ListOffsetsTopicResponse
    return R(topics=[
        T(name=topic.name, partitions=[
            T.ListOffsetsPartitionResponse(partition_index=p.partition_index, error_code=code,
                                           offset=NO_OFFSET, timestamp=NO_TIMESTAMP)
            for p in topic.partitions])
        for topic in request.topics
    ])
