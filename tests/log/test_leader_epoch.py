"""The leader epoch cache (kbroker/log/leader_epoch.py), its leader-epoch-checkpoint file, and
the partition log's use of it: epochs assigned on append, cut by truncation, DeleteRecords,
retention and recovery, and a follower's truncation by OffsetForLeaderEpoch (KIP-101/279)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from log_batches import make_batch, value_batch

from kbroker.log import LogConfig, PartitionLog
from kbroker.log.leader_epoch import (
    CHECKPOINT_FILE,
    UNDEFINED_EPOCH,
    UNDEFINED_OFFSET,
    EpochCheckpointError,
    LeaderEpochCache,
    format_checkpoint,
    parse_checkpoint,
    read_checkpoint_file,
    write_checkpoint_file,
)
from kbroker_protocol.records import ControlType, Record, build_batch, build_control_batch

U = (UNDEFINED_EPOCH, UNDEFINED_OFFSET)


def cache_of(*entries: tuple[int, int]) -> LeaderEpochCache:
    cache = LeaderEpochCache(None)
    for epoch, offset in entries:
        cache.assign(epoch, offset)
    return cache


# -- the cache against Kafka's semantics (cases read from Kafka's LeaderEpochFileCacheTest) --------

STANDARD = ((2, 6), (3, 8), (4, 11))

# (assigned in order, expected entries)
ASSIGN_CASES = [
    pytest.param([(2, 10)], [(2, 10)], id="first-entry"),
    pytest.param([(2, 9), (2, 10)], [(2, 9)], id="same-epoch-later-offset-is-ignored"),
    pytest.param([(2, 6), (2, 7)], [(2, 6)], id="same-epoch-next-offset-is-ignored"),
    pytest.param([(2, 9), (3, 9)], [(3, 9)], id="new-epoch-same-offset-replaces"),
    pytest.param([(2, 6), (3, 5)], [(3, 5)], id="new-epoch-lower-offset-replaces"),
    pytest.param([(1, 5), (2, 6), (1, 7)], [(1, 7)], id="older-epoch-later-offset-cuts-newer"),
    pytest.param([(5, 11), (6, 12), (7, 13), (7, 12)], [(5, 11), (7, 12)], id="latest-epoch-earlier-offset"),
    pytest.param([(0, 0), (1, 0)], [(1, 0)], id="leader-changes-before-any-data"),
    pytest.param([(0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (2, 6)], [(0, 0), (1, 3), (2, 6)],
                 id="follower-receives-many-batches"),
]


@pytest.mark.parametrize(("assigned", "expected"), ASSIGN_CASES)
def test_assign(assigned, expected):
    assert cache_of(*assigned).entries() == expected


def test_assign_reports_whether_it_changed_and_rejects_negative_values():
    cache = cache_of()
    assert cache.assign(2, 6) is True
    assert cache.assign(2, 9) is False
    assert cache.latest_epoch == 2
    with pytest.raises(ValueError):
        cache.assign(-1, 10)
    with pytest.raises(ValueError):
        cache.assign(3, -1)
    assert cache.entries() == [(2, 6)]


# (entries, requested epoch, log end offset, expected (epoch, end offset))
END_OFFSET_CASES = [
    pytest.param([], 0, 0, U, id="empty-cache"),
    pytest.param([], 7, 0, U, id="empty-cache-any-epoch"),
    pytest.param([], -1, 73, U, id="empty-cache-undefined-epoch"),
    pytest.param([(2, 11), (3, 12)], -1, 0, U, id="undefined-epoch"),
    pytest.param([(2, 10)], 2, 11, (2, 11), id="latest-epoch-gives-log-end"),
    pytest.param([(2, 6)], 2, 7, (2, 7), id="epochs-need-not-start-at-zero"),
    pytest.param([(2, 100)], 3, 100, U, id="above-every-epoch"),
    pytest.param([(5, 11), (6, 12), (7, 13)], 4, 0, (4, 11), id="below-every-epoch"),
    pytest.param([(1, 11), (2, 13), (3, 15)], 2, 17, (2, 15), id="older-epoch-ends-at-next-start"),
    pytest.param([(0, 10), (2, 13), (4, 17)], 1, 0, (0, 13), id="gap-answers-the-epoch-below"),
    pytest.param([(0, 10), (2, 13), (4, 17)], 3, 0, (2, 17), id="gap-answers-the-epoch-below-2"),
    pytest.param([(0, 0), (1, 0)], 0, 0, (0, 0), id="replaced-epoch-is-below-every-epoch"),
    pytest.param([(0, 0), (1, 5), (2, 10)], 1, 10, (1, 10), id="middle-epoch"),
    pytest.param([(0, 0), (1, 5), (2, 10)], 0, 10, (0, 5), id="first-epoch"),
]


@pytest.mark.parametrize(("entries", "requested", "log_end", "expected"), END_OFFSET_CASES)
def test_end_offset_for(entries, requested, log_end, expected):
    assert cache_of(*entries).end_offset_for(requested, log_end) == expected


def test_end_offset_for_as_leaders_change():
    cache = cache_of((0, 0), (1, 0))
    assert cache.end_offset_for(1, 0) == (1, 0)
    assert cache.end_offset_for(1, 5) == (1, 5)
    cache.assign(2, 5)
    assert cache.end_offset_for(2, 10) == (2, 10)
    assert cache.end_offset_for(1, 10) == (1, 5)
    assert cache.end_offset_for(0, 10) == (0, 0)  # epoch 0 is gone: below every epoch


@pytest.mark.parametrize(("offset", "expected"), [
    pytest.param(8, [(2, 6)], id="on-a-boundary-removes-it"),
    pytest.param(9, [(2, 6), (3, 8)], id="between-boundaries"),
    pytest.param(11, [(2, 6), (3, 8)], id="latest-start"),
    pytest.param(12, list(STANDARD), id="past-latest-start"),
    pytest.param(6, [], id="first-start"),
    pytest.param(-1, list(STANDARD), id="undefined-offset-changes-nothing"),
])
def test_truncate_from_end(offset, expected):
    cache = cache_of(*STANDARD)
    assert cache.truncate_from_end(offset) is (expected != list(STANDARD))
    assert cache.entries() == expected
    assert cache.latest_epoch == (expected[-1][0] if expected else -1)


@pytest.mark.parametrize(("offset", "expected"), [
    pytest.param(8, [(3, 8), (4, 11)], id="on-a-boundary"),
    pytest.param(9, [(3, 9), (4, 11)], id="between-boundaries-moves-the-epoch-up"),
    pytest.param(1, list(STANDARD), id="before-first-changes-nothing"),
    pytest.param(6, list(STANDARD), id="at-first-changes-nothing"),
    pytest.param(11, [(4, 11)], id="at-latest"),
    pytest.param(15, [(4, 15)], id="past-latest"),
    pytest.param(-1, list(STANDARD), id="undefined-offset-changes-nothing"),
])
def test_truncate_from_start(offset, expected):
    cache = cache_of(*STANDARD)
    cache.truncate_from_start(offset)
    assert cache.entries() == expected


def test_truncate_from_start_inside_the_first_epoch():
    cache = cache_of((0, 0), (1, 7), (2, 10))
    cache.truncate_from_start(5)
    assert cache.entries() == [(0, 5), (1, 7), (2, 10)]


def test_truncation_of_an_empty_cache():
    cache = cache_of()
    assert not cache.truncate_from_start(7)
    assert not cache.truncate_from_end(7)
    assert cache.entries() == []


@pytest.mark.parametrize(("offset", "expected"), [(25, 1), (20, 1), (30, 5), (50, 5), (10, 0), (5, None)])
def test_epoch_for_offset(offset, expected):
    assert cache_of((0, 10), (1, 20), (5, 30)).epoch_for_offset(offset) == expected


# -- the checkpoint file ------------------------------------------------------------------------


def test_file_format_is_kafkas(tmp_path):
    path = tmp_path / CHECKPOINT_FILE
    cache = LeaderEpochCache(path)
    for epoch, offset in STANDARD:
        cache.assign(epoch, offset)
    assert path.read_bytes() == b"0\n3\n2 6\n3 8\n4 11\n"
    cache.truncate_from_end(11)
    cache.truncate_from_start(8)
    assert path.read_bytes() == b"0\n1\n3 8\n"
    assert read_checkpoint_file(path) == [(3, 8)]
    assert not (tmp_path / (CHECKPOINT_FILE + ".tmp")).exists()
    cache.clear()
    assert path.read_bytes() == b"0\n0\n"


@given(st.lists(st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 2**63 - 1)), max_size=8))
def test_format_round_trip(raw):
    cache = cache_of(*raw)
    assert parse_checkpoint(format_checkpoint(cache.entries())) == cache.entries()


@pytest.mark.parametrize("data", [b"", b"0\n", b"0"])
def test_kafka_reads_a_short_file_as_empty(data):
    assert parse_checkpoint(data) == []


def test_kafka_whitespace_is_accepted():
    assert parse_checkpoint(b"0\n2\n1  5\n2\t9\n") == [(1, 5), (2, 9)]
    assert parse_checkpoint(b"0\r\n1\r\n1 5\r\n") == [(1, 5)]


@pytest.mark.parametrize("data", [
    pytest.param(b"1\n0\n", id="unknown-version"),
    pytest.param(b"x\n0\n", id="garbage-version"),
    pytest.param(b"0\nx\n", id="garbage-count"),
    pytest.param(b"0\n2\n1 5\n", id="fewer-lines-than-counted"),
    pytest.param(b"0\n1\n1 5\n2 9\n", id="more-lines-than-counted"),
    pytest.param(b"0\n1\n1 5 7\n", id="three-fields"),
    pytest.param(b"0\n1\n15\n", id="one-field"),
    pytest.param(b"0\n1\n1 x\n", id="bad-number"),
    pytest.param(b"0\n1\n1 1_0\n", id="python-only-number"),
    pytest.param(b"0\n1\n-1 5\n", id="negative-epoch"),
    pytest.param(b"0\n1\n2147483648 5\n", id="epoch-above-int32"),
    pytest.param(b"0\n2\n2 5\n1 9\n", id="epochs-going-back"),
    pytest.param(b"0\n2\n1 9\n2 9\n", id="offsets-not-increasing"),
    pytest.param(b"0\n1\n1 5\x00\n", id="nul-byte"),
    pytest.param(b"\xff\xfe\n", id="not-utf8"),
])
def test_damaged_file_fails_the_format_check(data):
    with pytest.raises(EpochCheckpointError):
        parse_checkpoint(data)


# -- a model of assign and truncation ------------------------------------------------------------


class Reference:
    """Kafka's rules restated plainly over a dict."""

    def __init__(self) -> None:
        self.epochs: dict[int, int] = {}

    def entries(self) -> list[tuple[int, int]]:
        return sorted(self.epochs.items())

    def assign(self, epoch: int, offset: int) -> None:
        entries = self.entries()
        if entries and entries[-1][0] == epoch and offset >= entries[-1][1]:
            return
        self.epochs = {e: s for e, s in entries if e < epoch and s < offset}
        self.epochs[epoch] = offset

    def truncate_from_end(self, offset: int) -> None:
        if offset >= 0:
            self.epochs = {e: s for e, s in self.epochs.items() if s < offset}

    def truncate_from_start(self, offset: int) -> None:
        below = [(e, s) for e, s in self.entries() if s <= offset]
        if below:
            self.epochs = {e: s for e, s in self.epochs.items() if s > offset}
            self.epochs[below[-1][0]] = offset

    def end_offset_for(self, requested: int, log_end: int) -> tuple[int, int]:
        entries = self.entries()
        if requested == -1 or not entries:
            return U
        if entries[-1][0] == requested:
            return requested, log_end
        higher = [(e, s) for e, s in entries if e > requested]
        lower = [(e, s) for e, s in entries if e <= requested]
        if not higher:
            return U
        return (lower[-1][0] if lower else requested), higher[0][1]

    def epoch_for_offset(self, offset: int) -> int | None:
        found = [e for e, s in self.entries() if s <= offset]
        return found[-1] if found else None


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("assign"), st.integers(0, 8), st.integers(0, 40)),
        st.tuples(st.just("end"), st.integers(-1, 40)),
        st.tuples(st.just("start"), st.integers(-1, 40)),
        st.tuples(st.just("clear")),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(OPS, st.integers(-1, 9), st.integers(0, 45))
def test_model(ops, requested, probe):
    cache, ref = LeaderEpochCache(None), Reference()
    for op in ops:
        if op[0] == "assign":
            cache.assign(op[1], op[2])
            ref.assign(op[1], op[2])
        elif op[0] == "end":
            cache.truncate_from_end(op[1])
            ref.truncate_from_end(op[1])
        elif op[0] == "start":
            cache.truncate_from_start(op[1])
            ref.truncate_from_start(op[1])
        else:
            cache.clear()
            ref.epochs.clear()
        entries = cache.entries()
        assert entries == ref.entries()
        assert cache.latest_epoch == (entries[-1][0] if entries else -1)
        assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(entries, entries[1:], strict=False))
        log_end = max([probe] + [s for _, s in entries])
        assert cache.end_offset_for(requested, log_end) == ref.end_offset_for(requested, log_end)
        assert cache.epoch_for_offset(probe) == ref.epoch_for_offset(probe)
    assert parse_checkpoint(format_checkpoint(cache.entries())) == ref.entries()


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


# -- opening: a missing, damaged, stale or half-written file --------------------------------------


@pytest.mark.parametrize("damage", [
    pytest.param(None, id="missing"),
    pytest.param(b"0\n3\n0 0\n1 6\n", id="cut-short"),
    pytest.param(b"0\n3\n0 0\n1 6\n3", id="cut-inside-a-line"),
    pytest.param(b"\x00" * 16, id="zeroed"),
    pytest.param(b"0\n2\n3 0\n1 6\n", id="not-monotonic"),
    pytest.param(b"7\n1\n0 0\n", id="unknown-version"),
])
@pytest.mark.parametrize("clean", [True, False])
def test_open_rebuilds_a_missing_or_damaged_file(tmp_path, damage, clean):
    log = epoch_log(tmp_path)
    log.close(clean=clean)
    path = tmp_path / "t-0" / CHECKPOINT_FILE
    if damage is None:
        path.unlink()
    else:
        path.write_bytes(damage)
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert log.leader_epochs.entries() == [(0, 0), (1, 6), (3, 9)]
    assert path.read_bytes() == b"0\n3\n0 0\n1 6\n3 9\n"
    check_consistent(log)
    log.close()


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param(b"", [], id="empty-file-is-an-empty-cache"),
    pytest.param(b"0\n3\n0 0\n1 6\n3 9", [(0, 0), (1, 6), (3, 9)], id="no-final-newline"),
    pytest.param(b"0\n1\n9 0\n", [(9, 0)], id="wrong-but-well-formed"),
])
def test_open_trusts_a_well_formed_file_after_a_clean_shutdown(tmp_path, data, expected):
    # As Kafka: only the format is checked, and the log is not read again after a clean shutdown.
    log = epoch_log(tmp_path)
    log.close()
    (tmp_path / "t-0" / CHECKPOINT_FILE).write_bytes(data)
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert log.leader_epochs.entries() == expected
    log.close()


def test_crash_between_tmp_write_and_rename_keeps_the_old_file(tmp_path):
    log = epoch_log(tmp_path)
    log.close(clean=False)
    directory = tmp_path / "t-0"
    tmp = directory / (CHECKPOINT_FILE + ".tmp")
    tmp.write_bytes(b"0\n1\n7 0\n")  # a newer write that never got renamed
    log = PartitionLog.open(directory, CONFIG)
    assert not tmp.exists()
    assert log.leader_epochs.entries() == [(0, 0), (1, 6), (3, 9)]
    check_consistent(log)
    log.close()


def test_write_is_atomic_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_FILE
    write_checkpoint_file(path, [(1, 5)])

    def crash(*_args):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_checkpoint_file(path, [(1, 5), (2, 9)])
    assert read_checkpoint_file(path) == [(1, 5)]


def test_open_cuts_a_stale_file_to_the_log(tmp_path):
    # A crash after the log was cut but before the file was rewritten (or entries past data lost).
    log = epoch_log(tmp_path)
    log.close()
    (tmp_path / "t-0" / CHECKPOINT_FILE).write_bytes(b"0\n5\n0 0\n1 6\n3 9\n4 18\n6 30\n")
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert log.leader_epochs.entries() == [(0, 0), (1, 6), (3, 9)]
    # As Kafka's truncateFromEndAsyncFlush, the file is rewritten later, but before any batch: a
    # batch of the latest epoch (no new entry) at offset 18 must not meet a file saying 4 starts there.
    log.append(three(), leader_epoch=3)
    check_consistent(log)
    log.close()


def test_unclean_open_adds_epochs_of_recovered_data(tmp_path):
    # The file knows epochs 0 and 1 only; recovery scans the unflushed segment (one segment here)
    # and finds epoch 3, as Kafka's LogSegment.recover does.
    log = epoch_log(tmp_path, LogConfig())
    log.close(clean=False)
    (tmp_path / "t-0" / CHECKPOINT_FILE).write_bytes(b"0\n2\n0 0\n1 6\n")
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert log.leader_epochs.entries() == [(0, 0), (1, 6), (3, 9)]
    check_consistent(log)
    log.close()


def test_new_partition_writes_no_file(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    log.close()
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert not (tmp_path / "t-0" / CHECKPOINT_FILE).exists()
    assert log.leader_epochs.entries() == []
    log.close()


LOG_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 2), st.integers(1, 3)),
        st.tuples(st.just("truncate"), st.integers(0, 30)),
        st.tuples(st.just("reopen"), st.booleans()),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None)
@given(LOG_OPS)
def test_log_model(ops):
    """Appends under rising epochs, truncations at batch boundaries and reopenings (clean or not):
    the cache, its file and the batches always agree."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "t-0"
        log = PartitionLog.open(directory, CONFIG)
        epoch = 0
        try:
            for op in ops:
                if op[0] == "append":
                    epoch += op[1]
                    log.append(value_batch([b"x" * 20] * op[2]), leader_epoch=epoch)
                elif op[0] == "truncate":
                    bases = [h.base_offset for h, _ in log.iter_batches()]
                    if bases:
                        log.truncate_to(bases[op[1] % len(bases)])
                        epoch = max(log.leader_epochs.latest_epoch, 0)
                else:
                    log.close(clean=op[1])
                    log = PartitionLog.open(directory, CONFIG)
                assert log.leader_epochs.entries() == epochs_from_batches(log)
                if log.leader_epochs.entries():  # an empty cache may have no file
                    check_consistent(log)
        finally:
            log.close()


# -- a writer killed at an arbitrary point --------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
from log_batches import value_batch
from kbroker.log import LogConfig, PartitionLog
log = PartitionLog.open(Path(sys.argv[1]), LogConfig(segment_bytes=2000, index_interval_bytes=100))
epoch = max(log.leader_epochs.latest_epoch, 0)
for i in range(100_000):
    if i % 3 == 0:
        epoch += 1  # a new leader every third batch: the checkpoint file is rewritten often
    info = log.append(value_batch([b"x" * 30] * (1 + i % 4)), leader_epoch=epoch)
    sys.stdout.write(f"{info.last_offset}\\n")
    sys.stdout.flush()
"""


def run_and_kill(directory: Path, acks: int) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)],
        stdout=subprocess.PIPE, cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(root)])},
    )
    assert proc.stdout is not None
    for n, _line in enumerate(proc.stdout, 1):
        if n >= acks:
            proc.send_signal(signal.SIGKILL)
            break
    proc.stdout.read()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.returncode


@pytest.mark.parametrize("seed", range(2))
def test_killed_writer_leaves_a_cache_that_matches_the_log(tmp_path, seed):
    rng = random.Random(seed)
    directory = tmp_path / "t-0"
    for _ in range(3):
        run_and_kill(directory, rng.randint(5, 60))
        if rng.random() < 0.5:
            # As a power loss could: the unflushed tail of the last segment is partly gone.
            last = sorted(directory.glob("*.log"))[-1]
            os.truncate(last, rng.randint(0, last.stat().st_size))
        log = PartitionLog.open(directory, LogConfig(segment_bytes=2000, index_interval_bytes=100))
        assert log.leader_epochs.entries() == epochs_from_batches(log)
        check_consistent(log)
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
