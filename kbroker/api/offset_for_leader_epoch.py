"""OffsetForLeaderEpoch (key 23), v2-4.

For each partition: the end offset of the requested leader epoch, as Kafka's leader epoch cache
answers it. The cache holds the partitionLeaderEpoch of the first stored batch of each epoch (the
leader stamps it on every append); the current epoch is added, starting at the log end:

* requested epoch -1 (undefined), or above every known epoch: epoch -1, offset -1, no error;
* the current (latest) epoch: that epoch and the log end offset;
* an older epoch: the largest known epoch at or below it and the start offset of the next known
  epoch; below every known epoch: the requested epoch and the start of the first known one.

CurrentLeaderEpoch (v2+) fences stale callers: lower than the partition's is FENCED_LEADER_EPOCH,
higher UNKNOWN_LEADER_EPOCH. Only the leader answers (Kafka's ``fetchOnlyFromLeader``): a
follower replica says NOT_LEADER_OR_FOLLOWER. v3 adds ReplicaId (consumers send -1), v4 is
flexible. A new leader records its epoch's start (its log end) in the cache as it takes over. The answers come from the log's leader epoch cache (`kbroker/log/leader_epoch.py`,
kept in the partition's ``leader-epoch-checkpoint`` file), as in Kafka.
"""

from __future__ import annotations

from typing import Protocol

from kbroker.api.context import PartitionLookup, RequestContext, partition_or_error
from kbroker.api.error_response import NO_EPOCH, NO_OFFSET, refusal
from kbroker.api.registry import api
from kbroker.log import LogCorruptedError, LogError, leader_epoch
from kbroker.replication.partition import Partition
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.offset_for_leader_epoch import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
)

TopicOut = OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult
PartOut = OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult.EpochEndOffset

UNDEFINED_EPOCH = leader_epoch.UNDEFINED_EPOCH
UNDEFINED_OFFSET = leader_epoch.UNDEFINED_OFFSET


class OffsetForLeaderEpochServices(PartitionLookup, Protocol):
    """What OffsetForLeaderEpoch uses of the broker."""


def leader_epoch_end(partition: Partition, requested: int) -> tuple[int, int]:
    """The partition log's epoch cache, plus the current epoch: Kafka's leader assigns its epoch
    to the log end when it becomes leader (kbroker's partition layer does not, so the current
    epoch is added here when no batch of it is stored yet)."""
    plog = partition.log
    current = partition.leader_epoch
    log_end = plog.log_end_offset
    if requested == UNDEFINED_EPOCH or requested > current:
        return UNDEFINED_EPOCH, UNDEFINED_OFFSET
    if requested == current:
        return current, log_end
    entries = [e for e in plog.leader_epochs.entries() if e[0] <= current]
    if not entries or entries[-1][0] < current:
        entries.append((current, log_end))
    return leader_epoch.end_offset_for(entries, requested, log_end)


@api(OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, 2, 4)
def handle_offset_for_leader_epoch(ctx: RequestContext[OffsetForLeaderEpochServices], request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse:
    broker = ctx.broker
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            out = PartOut(error_code=ErrorCode.NONE, partition=p.partition, leader_epoch=UNDEFINED_EPOCH,
                          end_offset=UNDEFINED_OFFSET)
            parts.append(out)
            partition, missing = partition_or_error(broker, t.topic, p.partition)
            if partition is None:
                out.error_code = missing
                continue
            if partition.log.offline is not None:
                out.error_code = ErrorCode.KAFKA_STORAGE_ERROR
                continue
            fence = p.current_leader_epoch
            if fence != -1 and fence < partition.leader_epoch:
                out.error_code = ErrorCode.FENCED_LEADER_EPOCH
                continue
            if fence != -1 and fence > partition.leader_epoch:
                out.error_code = ErrorCode.UNKNOWN_LEADER_EPOCH
                continue
            if not partition.is_leader:
                out.error_code = ErrorCode.NOT_LEADER_OR_FOLLOWER
                continue
            try:
                out.leader_epoch, out.end_offset = leader_epoch_end(partition, p.leader_epoch)
            except (LogCorruptedError, LogError):
                out.error_code = ErrorCode.KAFKA_STORAGE_ERROR
        topics.append(TopicOut(topic=t.topic, partitions=parts))
    return OffsetForLeaderEpochResponse(throttle_time_ms=0, topics=topics)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(23)
def _offset_for_leader_epoch_error(request: OffsetForLeaderEpochRequest, version: int, code: int) -> OffsetForLeaderEpochResponse:
    R = OffsetForLeaderEpochResponse
    T = R.OffsetForLeaderTopicResult
    return R(topics=[
        T(topic=topic.topic, partitions=[
            T.EpochEndOffset(partition=p.partition, error_code=code, leader_epoch=NO_EPOCH,
                             end_offset=NO_OFFSET)
            for p in topic.partitions])
        for topic in request.topics
    ])
