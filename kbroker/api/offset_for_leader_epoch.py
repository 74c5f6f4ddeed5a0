"""OffsetForLeaderEpoch (key 23), v2-4.

For each partition: the end offset of the requested leader epoch, as Kafka's leader epoch cache
answers it. The epochs are read from the partitionLeaderEpoch of the stored batches (the leader
stamps it on every append) plus the current epoch, which starts no later than the log end:

* requested epoch -1 (undefined), or above every known epoch: epoch -1, offset -1, no error;
* the current (latest) epoch: that epoch and the log end offset;
* an older epoch: the largest known epoch at or below it and the start offset of the next known
  epoch; below every known epoch: the requested epoch and the start of the first known one.

CurrentLeaderEpoch (v2+) fences stale callers: lower than the partition's is FENCED_LEADER_EPOCH,
higher UNKNOWN_LEADER_EPOCH. v3 adds ReplicaId (consumers send -1; there are no followers here),
v4 is flexible. Scanning batch headers is only needed for a request about an older epoch; the
scan is remembered per partition and resumed from where it stopped.
"""

from __future__ import annotations

import bisect
import weakref

from kbroker.api.registry import api
from kbroker.log import LogCorruptedError, LogError, OffsetOutOfRangeError
from protocol.errors import ErrorCode
from protocol.messages.offset_for_leader_epoch import OffsetForLeaderEpochResponse

TopicOut = OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult
PartOut = OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult.EpochEndOffset

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


class EpochHistory:
    """(epoch, start offset) pairs of one partition's log, built from batch headers."""

    __slots__ = ("entries", "scanned_to")

    def __init__(self) -> None:
        self.entries: list[tuple[int, int]] = []
        self.scanned_to = -1

    def update(self, plog) -> None:
        start = max(self.scanned_to, plog.log_start_offset)
        if self.scanned_to > plog.log_end_offset:  # truncated below what was scanned: start over
            self.entries.clear()
            start = plog.log_start_offset
        for header, _data in plog.iter_batches(start):
            epoch = header.partition_leader_epoch
            if not self.entries or epoch > self.entries[-1][0]:
                self.entries.append((epoch, header.base_offset))
            self.scanned_to = header.next_offset
        self.scanned_to = max(self.scanned_to, start)

    def known(self, current_epoch: int, log_start: int, log_end: int) -> list[tuple[int, int]]:
        entries = [e for e in self.entries if e[0] <= current_epoch]
        if not entries or entries[-1][0] < current_epoch:
            entries.append((current_epoch, log_end))
        # Data below the log start is gone: the first epoch starts at the log start at the earliest.
        while len(entries) > 1 and entries[1][1] <= log_start:
            entries.pop(0)
        if entries[0][1] < log_start:
            entries[0] = (entries[0][0], log_start)
        return entries


def end_offset_for(entries: list[tuple[int, int]], requested: int, log_end: int) -> tuple[int, int]:
    """Kafka's ``LeaderEpochFileCache.endOffsetFor`` over ``entries`` (ascending epochs)."""
    if requested == UNDEFINED_EPOCH or not entries:
        return UNDEFINED_EPOCH, UNDEFINED_OFFSET
    if entries[-1][0] == requested:
        return requested, log_end
    epochs = [e for e, _ in entries]
    higher = bisect.bisect_right(epochs, requested)
    if higher == len(entries):
        return UNDEFINED_EPOCH, UNDEFINED_OFFSET
    if higher == 0:
        return requested, entries[0][1]
    return entries[higher - 1][0], entries[higher][1]


def _lookup(histories: dict, partition, requested: int) -> tuple[int, int]:
    plog = partition.log
    current = partition.leader_epoch
    log_end = plog.log_end_offset
    if requested == UNDEFINED_EPOCH or requested > current:
        return UNDEFINED_EPOCH, UNDEFINED_OFFSET
    if requested == current:
        return current, log_end
    history = histories.get(plog)
    if history is None:
        history = histories[plog] = EpochHistory()
    try:
        history.update(plog)
    except OffsetOutOfRangeError:
        # Retention or DeleteRecords moved the log start during the scan: scan again from it.
        history.update(plog)
    return end_offset_for(history.known(current, plog.log_start_offset, log_end), requested, log_end)


# Per partition log; forgotten with the log (a deleted topic's log object goes away).
_HISTORIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@api(23, 2, 4)
def handle_offset_for_leader_epoch(ctx, request) -> OffsetForLeaderEpochResponse:
    broker = ctx.broker
    histories = _HISTORIES
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            out = PartOut(error_code=ErrorCode.NONE, partition=p.partition, leader_epoch=UNDEFINED_EPOCH,
                          end_offset=UNDEFINED_OFFSET)
            parts.append(out)
            partition = broker.partition(t.topic, p.partition)
            if partition is None:
                out.error_code = (ErrorCode.NOT_LEADER_OR_FOLLOWER if broker.image.partition(t.topic, p.partition)
                                  else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
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
            try:
                out.leader_epoch, out.end_offset = _lookup(histories, partition, p.leader_epoch)
            except (LogCorruptedError, LogError):
                out.error_code = ErrorCode.KAFKA_STORAGE_ERROR
        topics.append(TopicOut(topic=t.topic, partitions=parts))
    return OffsetForLeaderEpochResponse(throttle_time_ms=0, topics=topics)
