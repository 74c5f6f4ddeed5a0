"""A partition log with leader epochs for the leader epoch tests: batches of three offsets, a log of
epochs 0, 0, 1, 3 with two aborted transactions, the epochs its batches imply, and the check that
batches, indexes, .txnindex and the epoch cache agree (moved from test_leader_epoch)."""

from __future__ import annotations

from log_batches import value_batch

from kbroker.log import LogConfig, PartitionLog
from kbroker.log.leader_epoch import (
    CHECKPOINT_FILE,
    LeaderEpochCache,
    read_checkpoint_file,
)
from kbroker_protocol.records import ControlType, Record, build_batch, build_control_batch

# -- the partition log ---------------------------------------------------------------------------

CONFIG = LogConfig(segment_bytes=300, index_interval_bytes=60)


def three() -> bytes:
    return value_batch([b"a" * 20, b"b" * 20, b"c" * 20])


def epochs_from_batches(log: PartitionLog) -> list[tuple[int, int]]:
    """What the cache must hold: the first batch of each higher epoch."""
    out: list[tuple[int, int]] = []
    for header, _ in log.iter_batches():
        epoch = header.partition_leader_epoch
        if epoch >= 0 and (not out or epoch > out[-1][0]):
            out.append((epoch, header.base_offset))
    return out


def check_consistent(log: PartitionLog) -> None:
    """Batches, offset/time indexes, .txnindex entries and the epoch cache all agree."""
    end = log.log_end_offset
    headers = [h for h, _ in log.iter_batches()]
    assert all(h.last_offset < end for h in headers)
    for seg in log.segments:
        for key, pos in zip(seg.offset_index.keys, seg.offset_index.values, strict=True):
            assert seg.base_offset + key < end
            assert seg.header_at(pos).base_offset == seg.base_offset + key
        for _ts, rel in zip(seg.time_index.keys, seg.time_index.values, strict=True):
            assert seg.base_offset + rel < end
    for txn in log.collect_aborted_transactions(log.log_start_offset, end):
        assert txn.last_offset < end
    cache = log.leader_epochs.entries()
    assert cache == epochs_from_batches(log)
    on_disk = read_checkpoint_file(log.directory / CHECKPOINT_FILE)
    if log.leader_epochs.stale_tail:
        # Opening cut entries at or past the log end from the cache only (Kafka's
        # truncateFromEndAsyncFlush): the file is rewritten before the next batch.
        assert on_disk is not None
        cut = LeaderEpochCache(None, on_disk)
        cut.truncate_from_end(end, write=False)
        cut.truncate_from_start(log.log_start_offset, write=False)
        assert cut.entries() == cache
    else:
        assert on_disk == cache


def epoch_log(tmp_path, config: LogConfig = CONFIG) -> PartitionLog:
    """Batches of 3 offsets with leader epochs 0, 0, 1, 3: offsets 0-2, 3-5, 6-8, 9-11; a
    transaction of producer 7 aborted at offset 12 (epoch 3) and one at 15 (epoch 3)."""
    log = PartitionLog.open(tmp_path / "t-0", config)
    for epoch in (0, 0, 1, 3):
        log.append(three(), leader_epoch=epoch)
    for _ in range(2):
        data = build_batch([Record(key=b"k", value=b"v", timestamp=1000)] * 2, producer_id=7, producer_epoch=0,
                           base_sequence=0, transactional=True)
        first = log.append(data, leader_epoch=3).first_offset
        marker = log.append(build_control_batch(ControlType.ABORT, producer_id=7, producer_epoch=0, timestamp=2000),
                            leader_epoch=3).first_offset
        log.record_aborted_txn(7, first, marker, marker + 1)
    assert log.log_end_offset == 18
    return log
