"""The partition log's aborted-transaction index: per-segment ``.txnindex`` files, kept through
reopening (loaded after a clean shutdown, rebuilt after an unclean one or when damaged),
truncation, retention and compaction."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from kbroker.log import LogConfig, PartitionLog, clean_log
from kbroker.log.partition_log import CHECKPOINT_FILE
from kbroker.log.txn_index import ENTRY_SIZE, AbortedTxn, decode_open_txns
from kbroker.replication.producer_state import PartitionProducerState
from kbroker_protocol.records import (
    ControlType,
    build_control_batch,
)
from tests.log.txn_index_helpers import CONFIG, Writer, expected_files, on_disk, open_at, reference


def build(log: PartitionLog) -> dict[str, int]:
    """Transactions that interleave and cross segments; several ABORTs while others are open."""
    w = Writer(log)
    at = {}
    at["a"] = w.data(1, txn=True)  # producer 1: aborted, crosses segments
    w.fill(3)
    at["b"] = w.data(2, txn=True)  # producer 2: open while 1 aborts
    w.fill(3)
    at["abort_a"] = w.end(1, commit=False)  # LSO: producer 2's first offset
    w.data(3, txn=True)
    at["commit_3"] = w.end(3, commit=True)
    w.fill(4)
    at["abort_b"] = w.end(2, commit=False)
    at["c"] = w.data(1, txn=True)
    at["abort_c"] = w.end(1, commit=False)  # nothing else open: LSO = marker + 1
    w.fill(5)
    at["d"] = w.data(4, txn=True)  # producer 4 open at the end
    w.fill(2)
    at["abort_nothing"] = w.end(5, commit=False)  # no open transaction: aborts nothing
    w.fill(2)
    log.high_watermark = log.log_end_offset
    return at


@pytest.fixture
def log(tmp_path):
    plog = PartitionLog.open(tmp_path / "t-0", CONFIG)
    yield plog
    plog.close()


def test_entries_go_to_the_segment_of_their_marker(log):
    at = build(log)
    assert len(log.segments) >= 4
    ref = reference(log)
    assert [(t.producer_id, t.first_offset, t.last_offset) for t in ref] == [
        (1, at["a"], at["abort_a"]), (2, at["b"], at["abort_b"]), (1, at["c"], at["abort_c"])]
    assert ref[0].last_stable_offset == at["b"] and ref[2].last_stable_offset == at["abort_c"] + 1
    files = on_disk(log)
    assert files == expected_files(log)
    # The first aborted transaction starts in an earlier segment than its marker's: only the
    # marker's segment has it.
    seg_of = {s.base_offset: s for s in log.segments}
    first_seg = max(b for b in seg_of if b <= at["a"])
    assert first_seg not in files and all(len(data) % ENTRY_SIZE == 0 for data in files.values())
    assert log.collect_aborted_transactions(0, log.log_end_offset) == ref


def test_collect_matches_the_reference_for_every_range(log):
    build(log)
    ref = reference(log)
    leo = log.log_end_offset
    for start in range(leo):
        for end in range(start + 1, leo + 1):
            want = [t for t in ref if t.last_offset >= start and t.first_offset < end]
            got = log.collect_aborted_transactions(start, end)
            assert [t for t in got if t in want] == want and set(got) <= set(ref), (start, end)
            # Every entry returned overlaps the range (the early stop never cuts one short).
            assert got == want, (start, end)


def test_clean_reopen_loads_the_files(tmp_path, monkeypatch):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    build(log)
    before = on_disk(log)
    ref = reference(log)
    log.close()
    rebuilt = []
    monkeypatch.setattr(PartitionLog, "_rebuild_txn_indexes", lambda self, segs, stale: rebuilt.append(stale))
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert rebuilt == []
    assert on_disk(reopened) == before
    assert reopened.collect_aborted_transactions(0, reopened.log_end_offset) == ref
    reopened.close()


def test_unclean_reopen_rebuilds_the_recovered_segments(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    build(log)
    before = on_disk(log)
    active = log.active_segment.base_offset
    log.close(clean=False)
    (tmp_path / "t-0" / f"{active:020d}.txnindex").unlink(missing_ok=True)
    # Entries of a recovered segment are rebuilt, never trusted: a bogus file is replaced.
    last_marker_seg = max(before)
    (tmp_path / "t-0" / f"{last_marker_seg:020d}.txnindex").write_bytes(b"")
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert on_disk(reopened) == before == expected_files(reopened)
    reopened.close()


def test_unclean_reopen_trusts_segments_below_the_recovery_point(tmp_path, monkeypatch):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    at = build(log)
    log.flush()
    log.checkpoint()  # (the log manager does it periodically) the recovery point is on disk
    recovery_point = log.recovery_point
    w = Writer(log)
    w.state = PartitionProducerState.load(log)
    w.fill(6)  # new segments after the recovery point, one aborted transaction in them
    w.data(7, txn=True)
    w.fill(3)
    w.end(7, commit=False)
    w.fill(1)
    before = on_disk(log)
    log.close(clean=False)
    stale_bases = []
    real = PartitionLog._rebuild_txn_indexes

    def spy(self, segments, stale):
        stale_bases.extend(segments[i].base_offset for i in sorted(stale))
        return real(self, segments, stale)

    monkeypatch.setattr(PartitionLog, "_rebuild_txn_indexes", spy)
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    # Only the segments from the one holding the recovery point on were rebuilt; the earlier
    # ones, with three aborted transactions, were loaded.
    assert stale_bases and min(stale_bases) == max(s.base_offset for s in reopened.segments
                                                   if s.base_offset < recovery_point)
    assert at["abort_c"] < min(stale_bases)
    assert on_disk(reopened) == before == expected_files(reopened)
    reopened.close()


@pytest.mark.parametrize("damage", ["deleted", "zeroed", "garbage", "cut", "reordered"])
def test_a_damaged_or_missing_file_is_rebuilt(tmp_path, damage):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    build(log)
    log.roll()
    before = on_disk(log)
    log.close()
    for base, data in before.items():  # every file, whichever entries (and LSOs) it holds
        path = tmp_path / "t-0" / f"{base:020d}.txnindex"
        if damage == "deleted":
            path.unlink()
        elif damage == "zeroed":
            path.write_bytes(b"\x00" * len(data))
        elif damage == "garbage":
            path.write_bytes(b"\xa5" * (len(data) + 5))
        elif damage == "cut":
            path.write_bytes(data[:-ENTRY_SIZE])  # a whole number of entries, one fewer
        else:
            path.write_bytes(data[ENTRY_SIZE:] + data[:ENTRY_SIZE] if len(data) > ENTRY_SIZE else b"\x00\x07" + data[2:])
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert on_disk(reopened) == before
    assert reopened.collect_aborted_transactions(0, reopened.log_end_offset) == reference(reopened)
    reopened.close()


def test_a_damaged_file_in_the_middle_is_rebuilt_with_exact_stable_offsets(tmp_path):
    """The rebuild of one segment needs transactions opened in earlier segments: both the first
    offsets and the last stable offsets come out as they were written."""
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    at = build(log)
    w = Writer(log)
    w.state = PartitionProducerState.load(log)
    w.fill(8)
    w.end(4, commit=False)  # producer 4's transaction began segments ago
    w.fill(8)
    log.roll()
    before = on_disk(log)
    seg_of_abort_b = max(b for b in before if b <= at["abort_b"])
    log.close()
    for base in before:
        if base >= seg_of_abort_b:
            (tmp_path / "t-0" / f"{base:020d}.txnindex").write_bytes(b"junk")
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert on_disk(reopened) == before
    reopened.close()


def test_a_log_without_counts_in_its_checkpoint_builds_every_index(tmp_path):
    """A log written before .txnindex files existed: nothing on disk, the checkpoint has no count
    line; the first open builds every index (once)."""
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    build(log)
    before = on_disk(log)
    log.close()
    for base in before:
        (tmp_path / "t-0" / f"{base:020d}.txnindex").unlink()
    checkpoint = tmp_path / "t-0" / CHECKPOINT_FILE
    text = checkpoint.read_text()
    assert "txn_index_entries" in text
    checkpoint.write_text("".join(line + "\n" for line in text.splitlines() if not line.startswith("txn_index")))
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert on_disk(reopened) == before
    assert "txn_index_entries" in checkpoint.read_text()
    reopened.close()


def test_truncation_drops_entries_and_files(log):
    at = build(log)
    log.truncate_to(at["abort_c"])  # the marker of the last aborted transaction goes
    assert [t.last_offset for t in log.collect_aborted_transactions(0, log.log_end_offset)] == [
        at["abort_a"], at["abort_b"]]
    assert on_disk(log) == expected_files(log)
    log.truncate_to(at["abort_a"])
    assert log.collect_aborted_transactions(0, log.log_end_offset) == []
    assert on_disk(log) == {}


def test_truncation_survives_reopen(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    at = build(log)
    log.truncate_to(at["abort_c"])
    expected = expected_files(log)
    log.close()
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert on_disk(reopened) == expected
    reopened.close()


def test_retention_and_delete_records_remove_the_files(log):
    at = build(log)
    seg_a = max(s.base_offset for s in log.segments if s.base_offset <= at["abort_a"])
    assert seg_a in on_disk(log)
    log.advance_log_start(at["abort_b"] + 1)
    assert seg_a not in on_disk(log)
    assert not (log.directory / f"{seg_a:020d}.txnindex").exists()
    start = log.log_start_offset
    assert log.collect_aborted_transactions(start, log.log_end_offset) == [
        t for t in reference(log) if t.last_offset >= start]
    log.config = LogConfig(segment_bytes=400, index_interval_bytes=100, retention_bytes=0)
    log.delete_old_segments()
    assert len(log.segments) == 1
    assert set(p.name for p in log.directory.glob("*.txnindex")) <= {
        f"{log.active_segment.base_offset:020d}.txnindex"}


def test_compaction_carries_the_entries_of_the_markers_it_keeps(tmp_path):
    config = LogConfig(segment_bytes=100_000, index_interval_bytes=100, compact=True, delete=False,
                       min_cleanable_dirty_ratio=0.0)
    log = PartitionLog.open(tmp_path / "t-0", config)
    w = Writer(log)
    w.data(-1, key=b"x", value=b"1")
    w.data(1, txn=True, key=b"a", value=b"aborted")
    for i in range(6):
        w.data(-1, key=b"x", value=b"%d" % i)  # shadowed
    log.roll()
    w.data(2, txn=True, key=b"b", value=b"open-while-1-aborts")
    abort_1 = w.end(1, commit=False)
    for i in range(6):
        w.data(-1, key=b"x", value=b"%d" % i)
    log.roll()
    w.end(2, commit=False)
    for i in range(6):
        w.data(-1, key=b"y", value=b"%d" % i)
    log.roll()
    log.high_watermark = log.log_end_offset
    ref = reference(log)
    assert len(on_disk(log)) == 2
    result = clean_log(log, force=True)
    assert result is not None and result.records_removed > 0
    assert len(log.segments) == 2  # the three segments were merged into one (and the active one)
    # The aborted data is gone but both ABORT markers are kept (their producers' last batches
    # stay as empty batches): their entries are in the segment that now holds each marker.
    assert reference(log) == ref
    assert on_disk(log) == expected_files(log)
    assert list(on_disk(log)) == [0] and len(on_disk(log)[0]) == 2 * ENTRY_SIZE
    assert log.collect_aborted_transactions(0, log.log_end_offset) == ref
    assert any(t.last_offset == abort_1 for t in ref)
    assert sorted(p.name for p in log.directory.glob("*.txnindex*")) == ["00000000000000000000.txnindex"]
    log.close()
    reopened = PartitionLog.open(tmp_path / "t-0", config)
    assert on_disk(reopened) == expected_files(reopened)
    assert reopened.collect_aborted_transactions(0, reopened.log_end_offset) == ref
    reopened.close()


def test_record_rejects_a_marker_outside_the_log(log):
    build(log)
    with pytest.raises(ValueError):
        log.record_aborted_txn(1, 0, log.log_end_offset, log.log_end_offset + 1)


ops_st = st.lists(
    st.one_of(
        st.tuples(st.just("data"), st.integers(1, 3)),
        st.tuples(st.just("end"), st.integers(1, 3), st.booleans()),
        st.tuples(st.just("fill"), st.integers(1, 3)),
        st.tuples(st.just("roll")),
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("reopen"), st.sampled_from(["clean", "crash", "delete", "garbage", "nostate", "badstate"])),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ops=ops_st)
def test_the_index_always_matches_the_log(ops):
    """Random transactions, rolls, truncations and reopens (clean, crashed, with the index files
    deleted or garbled, crashed with the .txnstate files deleted or garbled): the files hold
    exactly the aborted transactions the batches show, with the same last stable offsets, and
    collect returns them; each .txnstate file lists the transactions open at its offset."""
    shm = Path("/dev/shm")
    tmp = Path(tempfile.mkdtemp(prefix="txnindex-", dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
    log = PartitionLog.open(tmp / "t-0", CONFIG)
    try:
        w = Writer(log)
        for op in ops:
            kind = op[0]
            if kind == "data":
                w.data(op[1], txn=True)
            elif kind == "end":
                w.end(op[1], commit=op[2])
            elif kind == "fill":
                w.fill(op[1])
            elif kind == "roll":
                log.roll()
            elif kind == "truncate":
                log.truncate_to(int(op[1] * log.log_end_offset))
                w.state = PartitionProducerState.load(log)
            else:
                log.close(clean=op[1] not in ("crash", "nostate", "badstate"))
                for path in (tmp / "t-0").glob("*.txnindex"):
                    if op[1] == "delete":
                        path.unlink()
                    elif op[1] == "garbage":
                        path.write_bytes(b"\x00\x01" + path.read_bytes()[2:])
                for path in (tmp / "t-0").glob("*.txnstate"):  # crashed, the records damaged
                    if op[1] == "nostate":
                        path.unlink()
                    elif op[1] == "badstate":
                        path.write_bytes(path.read_bytes()[:-1] + b"\x00")
                log = w.log = PartitionLog.open(tmp / "t-0", CONFIG)
                w.state = PartitionProducerState.load(log)
            assert on_disk(log) == expected_files(log), op
            for seg in log.segments:  # each .txnstate lists exactly the transactions open there
                path = tmp / "t-0" / f"{seg.base_offset:020d}.txnstate"
                if path.exists():  # (or one damaged by "badstate": never used)
                    assert decode_open_txns(path.read_bytes(), seg.base_offset) in (None, open_at(log, seg.base_offset)), op
            leo = log.log_end_offset
            assert log.collect_aborted_transactions(0, leo) == reference(log), op
    finally:
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_compaction_does_not_lose_an_entry_recorded_while_it_runs(tmp_path, monkeypatch):
    from kbroker.log import cleaner

    config = LogConfig(segment_bytes=100_000, index_interval_bytes=100, compact=True, delete=False,
                       min_cleanable_dirty_ratio=0.0)
    log = PartitionLog.open(tmp_path / "t-0", config)
    w = Writer(log)
    first = w.data(1, txn=True, key=b"a")
    for i in range(4):
        w.data(-1, key=b"x", value=b"%d" % i)
    marker = log.append(build_control_batch(ControlType.ABORT, producer_id=1, producer_epoch=0,
                                            timestamp=2000)).first_offset  # entry not recorded yet
    log.roll()
    log.high_watermark = log.log_end_offset
    real = cleaner._clean_group

    def clean_group(*args, **kwargs):
        log.record_aborted_txn(1, first, marker, marker + 1)  # lands while the pass runs
        return real(*args, **kwargs)

    monkeypatch.setattr(cleaner, "_clean_group", clean_group)
    assert clean_log(log, force=True) is None  # the swap is abandoned
    monkeypatch.setattr(cleaner, "_clean_group", real)
    assert log.collect_aborted_transactions(0, log.log_end_offset) == [AbortedTxn(1, first, marker, marker + 1)]
    assert clean_log(log, force=True) is not None
    assert log.collect_aborted_transactions(0, log.log_end_offset) == [AbortedTxn(1, first, marker, marker + 1)]
    assert on_disk(log) == expected_files(log)
    log.close()
