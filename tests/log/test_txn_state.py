"""``.txnstate`` files: the transactions open at each segment boundary, written at roll, so a
rebuild of the ``.txnindex`` after a crash replays from the nearest boundary instead of from the
first segment."""

from __future__ import annotations

import pytest

from kbroker.log import PartitionLog
from kbroker.log.txn_index import AbortedTxn, decode_open_txns, encode_open_txns
from kbroker.replication.producer_state import PartitionProducerState
from kbroker_protocol.records import Record, build_batch
from tests.log.txn_index_helpers import CONFIG, Writer, expected_files, on_disk, open_at, reference


def state_path(log: PartitionLog, base: int):
    return log.directory / f"{base:020d}.txnstate"


def build_long(log: PartitionLog) -> dict[str, int]:
    """Many segments, no aborted transaction in them; producer 1's transaction (begun in the
    first segment) and producer 3's (begun later, still open) are open at the crash; producer 1
    is aborted in the active segment after the last checkpoint."""
    w = Writer(log)
    at = {"a": w.data(1, txn=True)}
    w.fill(8)
    w.data(2, txn=True)
    w.fill(6)
    w.end(2, commit=True)
    at["c"] = w.data(3, txn=True)
    w.fill(12)
    log.roll()
    log.flush()
    log.checkpoint()  # (the log manager does it periodically) the recovery point is on disk
    w.fill(1)
    at["abort_a"] = w.end(1, commit=False)
    w.fill(1)
    log.high_watermark = log.log_end_offset
    return at


def spy_replay(monkeypatch) -> list[int]:
    """Base offsets of the segments the transaction replay reads, in order."""
    visited: list[int] = []
    real = PartitionLog._replay_txns.__func__

    def spy(cls, seg, open_txns, anchor, on_abort):
        visited.append(seg.base_offset)
        return real(cls, seg, open_txns, anchor, on_abort)

    monkeypatch.setattr(PartitionLog, "_replay_txns", classmethod(spy))
    return visited


def test_every_roll_records_the_open_transactions(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    build_long(log)
    assert len(log.segments) >= 6
    for seg in log.segments[1:]:
        recorded = decode_open_txns(state_path(log, seg.base_offset).read_bytes(), seg.base_offset)
        assert recorded == open_at(log, seg.base_offset)
    assert not state_path(log, log.segments[0].base_offset).exists()
    log.close()


def test_a_crash_rebuilds_from_the_active_segment_only(tmp_path, monkeypatch):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    at = build_long(log)
    active = log.active_segment.base_offset
    assert at["a"] < log.segments[1].base_offset < at["c"] < active <= at["abort_a"]
    before = on_disk(log)
    assert reference(log) == [AbortedTxn(1, at["a"], at["abort_a"], at["c"])]
    log.close(clean=False)
    visited = spy_replay(monkeypatch)
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert visited == [active]  # not the five segments before it
    assert on_disk(reopened) == before == expected_files(reopened)
    assert reopened.collect_aborted_transactions(0, reopened.log_end_offset) == [
        AbortedTxn(1, at["a"], at["abort_a"], at["c"])]
    reopened.close()


@pytest.mark.parametrize("damage", ["deleted", "garbage", "cut", "other_base", "bad_crc", "all_deleted"])
def test_a_damaged_or_missing_state_falls_back_to_a_longer_replay(tmp_path, monkeypatch, damage):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    at = build_long(log)
    bases = [s.base_offset for s in log.segments]
    before = on_disk(log)
    log.close(clean=False)
    path = state_path(log, bases[-1])
    data = path.read_bytes()
    if damage == "deleted":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"\xa5" * len(data))
    elif damage == "cut":
        path.write_bytes(data[:-3])
    elif damage == "other_base":
        path.write_bytes(state_path(log, bases[-2]).read_bytes())
    elif damage == "bad_crc":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    else:
        for base in bases:
            state_path(log, base).unlink(missing_ok=True)
    visited = spy_replay(monkeypatch)
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    # From the nearest boundary with a good record (or the first segment), never a wrong index.
    assert visited == (bases if damage == "all_deleted" else bases[-2:])
    assert on_disk(reopened) == before == expected_files(reopened)
    assert reopened.collect_aborted_transactions(0, reopened.log_end_offset) == [
        AbortedTxn(1, at["a"], at["abort_a"], at["c"])]
    # The active segment's record is written again for the next crash.
    assert decode_open_txns(path.read_bytes(), bases[-1]) == open_at(reopened, bases[-1])
    reopened.close()


def test_a_state_without_its_segment_is_removed(tmp_path):
    """A crash after the record of a roll was written but before its segment was created."""
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    build_long(log)
    leo = log.log_end_offset
    log.close(clean=False)
    stray = state_path(log, leo)
    stray.write_bytes(encode_open_txns(leo, {99: 0}))
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert not stray.exists()
    w = Writer(reopened)
    w.state = PartitionProducerState.load(reopened)
    w.fill(2)
    reopened.roll()
    w.data(99, txn=True)
    w.end(99, commit=False)
    new_base = reopened.active_segment.base_offset
    assert decode_open_txns(state_path(reopened, new_base).read_bytes(), new_base) == open_at(reopened, new_base)
    reopened.close(clean=False)
    again = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert on_disk(again) == expected_files(again)
    again.close()


def test_truncation_and_retention_keep_the_states_right(tmp_path, monkeypatch):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    at = build_long(log)
    cut = log.segments[2].base_offset + 1
    doomed = [s.base_offset for s in log.segments if s.base_offset > cut]
    log.truncate_to(cut)
    assert not any(state_path(log, base).exists() for base in doomed)
    w = Writer(log)
    w.state = PartitionProducerState.load(log)
    w.data(5, txn=True)
    w.fill(10)
    w.end(1, commit=False)  # producer 1's transaction, begun in the first segment
    w.fill(1)
    log.high_watermark = log.log_end_offset
    log.advance_log_start(log.segments[1].base_offset)
    assert not state_path(log, 0).exists()
    for seg in log.segments[1:]:
        recorded = decode_open_txns(state_path(log, seg.base_offset).read_bytes(), seg.base_offset)
        assert recorded == open_at(log, seg.base_offset) | ({1: at["a"]} if 1 in recorded else {})
    log.roll()
    log.flush()
    log.checkpoint()
    w.fill(1)
    w.end(5, commit=False)
    recovered = [s.base_offset for s in log.segments if s.next_offset > log.recovery_point or s is log.active_segment]
    assert len(log.segments) >= 4
    before = on_disk(log)
    entries = log.collect_aborted_transactions(0, log.log_end_offset)
    assert [(t.producer_id, t.first_offset) for t in entries] == [(1, at["a"]), (5, entries[1].first_offset)]
    log.close(clean=False)
    visited = spy_replay(monkeypatch)
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert visited == recovered[-1:]
    assert on_disk(reopened) == before
    assert reopened.collect_aborted_transactions(0, reopened.log_end_offset) == entries
    reopened.close()


def test_a_state_naming_a_transaction_whose_data_is_gone_is_not_used(tmp_path, monkeypatch):
    """Compaction removes an aborted transaction's data, later its marker: a record that still
    lists the transaction would hold it open for ever, so the replay starts further back."""
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    at = build_long(log)
    bases = [s.base_offset for s in log.segments]
    before = on_disk(log)
    log.close(clean=False)
    recorded = decode_open_txns(state_path(log, bases[-1]).read_bytes(), bases[-1])
    assert recorded == {1: at["a"], 3: at["c"]}
    # Producer 9 "began" at a batch of no producer (as if its data had been cleaned away).
    state_path(log, bases[-1]).write_bytes(encode_open_txns(bases[-1], recorded | {9: at["a"] + 1}))
    visited = spy_replay(monkeypatch)
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert visited == bases[-2:]
    assert on_disk(reopened) == before == expected_files(reopened)
    reopened.close()


def test_a_roll_replays_only_segments_holding_transactional_or_control_batches(tmp_path, monkeypatch):
    """Rolling a segment of plain (or idempotent) batches carries the open transactions over
    without reading it; one transactional batch or marker, by either append path, makes the roll
    read it, and so does a segment loaded from disk (not known to be free of them)."""
    visited = spy_replay(monkeypatch)
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    w = Writer(log)
    first = w.data(1, txn=True)
    log.roll()
    assert visited == [0]
    w.fill(3)
    w.data(2)  # idempotent, not transactional
    base = log.active_segment.base_offset
    log.roll()
    assert visited == [0]  # not read: nothing in it opens or closes a transaction
    assert decode_open_txns(state_path(log, log.active_segment.base_offset).read_bytes(),
                            log.active_segment.base_offset) == {1: first}
    assert base not in visited
    w.fill(3)
    w.data(3, txn=True)  # a transactional batch on the one-batch path
    base = log.active_segment.base_offset
    log.roll()
    assert visited[-1] == base
    w.fill(2)
    w.end(3, commit=True)  # a marker on the one-batch path
    base = log.active_segment.base_offset
    log.roll()
    assert visited[-1] == base
    # Several batches in one call (the general path), one of them transactional.
    plain = build_batch([Record(key=b"k", value=b"v", timestamp=1000)])
    txn = build_batch([Record(key=b"k", value=b"v", timestamp=1000)], producer_id=4, producer_epoch=0,
                      base_sequence=0, transactional=True)
    base = log.active_segment.base_offset
    log.append(plain + plain)
    log.roll()
    assert visited[-1] != base
    base = log.active_segment.base_offset
    log.append(plain + txn)
    log.roll()
    assert visited[-1] == base
    expected = open_at(log, log.active_segment.base_offset)
    assert expected == {1: first, 4: base + 1}
    assert decode_open_txns(state_path(log, log.active_segment.base_offset).read_bytes(),
                            log.active_segment.base_offset) == expected
    # After a reopen the active segment is read at its roll, even if it holds plain batches only.
    w.fill(2)
    log.close()
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    base = reopened.active_segment.base_offset
    reopened.roll()
    assert visited[-1] == base
    assert decode_open_txns(state_path(reopened, reopened.active_segment.base_offset).read_bytes(),
                            reopened.active_segment.base_offset) == expected
    reopened.close()
