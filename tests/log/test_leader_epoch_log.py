"""The partition log's use of the leader epoch cache: epochs assigned on append and by a new leader, cut by
truncation, DeleteRecords and retention, and a follower's truncation by OffsetForLeaderEpoch (KIP-101/279)."""

from __future__ import annotations

import pytest
from leader_epoch_helpers import CONFIG, check_consistent, epoch_log, three
from log_batches import make_batch

from kbroker.log import LogConfig, PartitionLog
from kbroker.log.leader_epoch import (
    CHECKPOINT_FILE,
    UNDEFINED_OFFSET,
    read_checkpoint_file,
)


def test_append_assigns_new_epochs_and_writes_the_file(tmp_path):
    log = epoch_log(tmp_path)
    assert log.leader_epochs.entries() == [(0, 0), (1, 6), (3, 9)]
    assert (log.directory / CHECKPOINT_FILE).read_bytes() == b"0\n3\n0 0\n1 6\n3 9\n"
    assert len(log.segments) > 2
    check_consistent(log)
    log.close()


def test_every_append_path_assigns(tmp_path):
    # Two batches in one append (leader), LogAppendTime, and a follower's batches (their own epochs).
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(message_timestamp_type="LogAppendTime"))
    log.append(three(), leader_epoch=2)
    log.append(three() + three(), leader_epoch=4)
    assert log.leader_epochs.entries() == [(2, 0), (4, 3)]
    log.close()
    log = PartitionLog.open(tmp_path / "f-0", CONFIG)
    log.append(make_batch([(None, b"x", 1000)] * 2, base_offset=0, leader_epoch=5)
               + make_batch([(None, b"y", 1000)], base_offset=2, leader_epoch=5)
               + make_batch([(None, b"z", 1000)], base_offset=3, leader_epoch=6), assign_offsets=False)
    log.append(make_batch([(None, b"w", 1000)], base_offset=4, leader_epoch=-1), assign_offsets=False)
    assert log.leader_epochs.entries() == [(5, 0), (6, 3)]
    log.close()


# (leader's answer for the follower's latest epoch 3, expected truncation, batches left, cache left)
FOLLOWER_CASES = [
    pytest.param((1, 9), (9, True), [0, 3, 6], [(0, 0), (1, 6)], id="leader-ended-epoch-1-where-we-did"),
    pytest.param((2, 9), (9, False), [0, 3, 6], [(0, 0), (1, 6)], id="epoch-unknown-here-ask-again"),
    pytest.param((0, 6), (6, True), [0, 3], [(0, 0)], id="leader-had-less-of-epoch-0"),
    pytest.param((3, 12), (12, True), [0, 3, 6, 9], [(0, 0), (1, 6), (3, 9)], id="inside-epoch-3"),
    pytest.param((3, 40), (18, True), [0, 3, 6, 9, 12, 14, 15, 17], [(0, 0), (1, 6), (3, 9)],
                 id="leader-is-ahead-nothing-to-cut"),
    pytest.param((-1, 6), (6, True), [0, 3], [(0, 0)], id="leader-without-epochs"),
]


@pytest.mark.parametrize(("answer", "result", "bases", "cache"), FOLLOWER_CASES)
@pytest.mark.parametrize("clean", [True, False])
def test_truncate_to_epoch_end(tmp_path, answer, result, bases, cache, clean):
    log = epoch_log(tmp_path)
    assert log.truncate_to_epoch_end(*answer) == result
    assert log.log_end_offset == result[0]
    assert [h.base_offset for h, _ in log.iter_batches()] == bases
    assert log.leader_epochs.entries() == cache
    check_consistent(log)
    aborted = [t.last_offset for t in log.collect_aborted_transactions(0, 100)]
    assert aborted == [m for m in (14, 17) if m < result[0]]
    log.close(clean=clean)
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert log.log_end_offset == result[0]
    assert [h.base_offset for h, _ in log.iter_batches()] == bases
    check_consistent(log)
    assert [t.last_offset for t in log.collect_aborted_transactions(0, 100)] == aborted
    # The next leader's data goes on from there.
    log.append(three(), leader_epoch=5)
    assert log.leader_epochs.entries() == [*cache, (5, result[0])]
    check_consistent(log)
    log.close()


def test_truncate_to_epoch_end_with_undefined_answer_cuts_nothing(tmp_path):
    log = epoch_log(tmp_path)
    assert log.truncate_to_epoch_end(3, UNDEFINED_OFFSET) is None
    assert log.log_end_offset == 18
    check_consistent(log)
    log.close()


def test_delete_records_and_retention_move_the_first_epoch(tmp_path):
    log = epoch_log(tmp_path)
    log.high_watermark = log.log_end_offset
    log.advance_log_start(4)
    assert log.leader_epochs.entries() == [(0, 4), (1, 6), (3, 9)]
    assert read_checkpoint_file(log.directory / CHECKPOINT_FILE) == [(0, 4), (1, 6), (3, 9)]
    log.advance_log_start(7)
    assert log.leader_epochs.entries() == [(1, 7), (3, 9)]
    log.close()
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert log.leader_epochs.entries() == [(1, 7), (3, 9)]
    log.close()


def test_retention_cuts_the_cache(tmp_path):
    log = epoch_log(tmp_path, LogConfig(segment_bytes=300, index_interval_bytes=60, retention_bytes=1))
    log.high_watermark = log.log_end_offset
    assert log.delete_old_segments() > 0
    start = log.log_start_offset
    assert start > 9
    assert log.leader_epochs.entries() == [(3, start)]
    assert read_checkpoint_file(log.directory / CHECKPOINT_FILE) == [(3, start)]
    log.close()


def test_truncate_to_below_the_log_start_clears_the_cache(tmp_path):
    log = epoch_log(tmp_path)
    log.high_watermark = log.log_end_offset
    log.advance_log_start(7)
    log.truncate_to(2)
    assert log.log_end_offset == 2
    assert log.leader_epochs.entries() == []
    assert read_checkpoint_file(log.directory / CHECKPOINT_FILE) == []
    log.close()


def test_new_leader_assigns_its_epoch_at_the_log_end(tmp_path):
    log = epoch_log(tmp_path)
    assert log.assign_epoch_start(5, 18) is True
    assert log.assign_epoch_start(5, 18) is False
    assert log.leader_epochs.end_offset_for(3, 18) == (3, 18)
    assert log.leader_epochs.end_offset_for(5, 18) == (5, 18)
    log.append(three(), leader_epoch=5)
    assert log.leader_epochs.entries() == [(0, 0), (1, 6), (3, 9), (5, 18)]
    check_consistent(log)
    log.assign_epoch_start(6, 21)
    log.close()
    # No batch of epoch 6 was written: opening drops the entry at the log end, as Kafka's loader.
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert log.leader_epochs.entries() == [(0, 0), (1, 6), (3, 9), (5, 18)]
    check_consistent(log)
    log.close()
