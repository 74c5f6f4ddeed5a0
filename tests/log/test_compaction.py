"""Compaction: latest record per key, tombstones, offsets kept, atomic swap and crash recovery."""

from __future__ import annotations

import dataclasses
import os
import random

import pytest
from log_batches import make_batch, split_batches

from kbroker.log import LogConfig, PartitionLog, clean_log
from kbroker.log.batch_records import iter_records
from kbroker_protocol.record_batch import parse_header, validate_batch

NOW = 10_000_000
COMPACT = LogConfig(
    segment_bytes=1500,
    index_interval_bytes=100,
    compact=True, delete=False,
    delete_retention_ms=1000,
    min_cleanable_dirty_ratio=0.0,
)


class FakeClock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def records(log: PartitionLog) -> list[tuple[int, bytes | None, bool]]:
    """(offset, key, is tombstone) of every stored record; checks every batch CRC."""
    out = []
    for _, _, raw in split_batches(log.read(log.log_start_offset, 10**9).read()):
        validate_batch(raw)
        out.extend((r.offset, r.key, r.value is None) for r in iter_records(raw))
    return out


def write(log: PartitionLog, rng: random.Random, count: int, *, compression: int = 0, now_ms: int = 0):
    """Append ``count`` records in batches of 1-4; returns [(offset, key, value)]."""
    written = []
    while len(written) < count:
        batch = []
        for _ in range(rng.randint(1, 4)):
            key = b"key-%d" % rng.randrange(12)
            value = None if rng.random() < 0.15 else b"v%d-" % len(written) + os.urandom(rng.randrange(40))
            batch.append((key, value, now_ms))
        info = log.append(make_batch(batch, compression=compression))
        written.extend((info.first_offset + i, k, v) for i, (k, v, _) in enumerate(batch))
    log.high_watermark = log.log_end_offset
    return written


def expected_after_clean(written, end_offset, *, tombstones_gone_below=0):
    """What a pass up to ``end_offset`` keeps; tombstones below ``tombstones_gone_below`` were
    kept by an earlier pass that gave their batch a delete horizon which has passed since."""
    latest = {}
    for offset, key, _ in written:
        if offset < end_offset:
            latest[key] = offset
    out = []
    for offset, key, value in written:
        if offset >= end_offset:
            out.append((offset, key, value is None))
        elif latest[key] == offset and not (value is None and offset < tombstones_gone_below):
            out.append((offset, key, value is None))
    return out


@pytest.mark.parametrize("compression", [0, 1, 2, 3, 4])
def test_compaction_keeps_latest_per_key_and_offsets(tmp_path, compression):
    clock = FakeClock()
    log = PartitionLog.open(tmp_path / "t-0", COMPACT, clock=clock)
    written = write(log, random.Random(compression), 300, compression=compression, now_ms=int(clock.now * 1000))
    leo = log.log_end_offset
    result = clean_log(log)
    assert result is not None and result.records_removed > 0
    end = log.active_segment.base_offset
    assert result.end_offset == end
    # Tombstones are kept by the pass that first sees them; their batches get a delete horizon.
    assert records(log) == expected_after_clean(written, end)
    assert log.log_end_offset == leo
    # Reading from any offset in a gap: the first batch reaches it, the next kept record is found.
    kept = [o for o, _, _ in records(log)]
    for offset in range(0, leo, 7):
        first = next(o for o in kept if o >= offset)
        batches = split_batches(log.read(offset, 10**6).read())
        assert batches[0][1] >= offset
        assert min(r.offset for _, _, raw in batches for r in iter_records(raw) if r.offset >= offset) == first
    # Later: the horizon has passed and those tombstones go on the next pass; the ones this
    # pass sees first (in the segment that was active) stay.
    first_end = end
    clock.now += 2
    log.roll()
    end = log.log_end_offset
    assert clean_log(log) is not None
    assert records(log) == expected_after_clean(written, end, tombstones_gone_below=first_end)
    log.close()
    reopened = PartitionLog.open(tmp_path / "t-0", COMPACT, clock=clock)
    assert records(reopened) == expected_after_clean(written, end, tombstones_gone_below=first_end)
    assert reopened.cleaner_offset == end


def test_second_pass_cleans_new_dirty_data_against_clean_part(tmp_path):
    clock = FakeClock()
    log = PartitionLog.open(tmp_path / "t-0", COMPACT, clock=clock)
    rng = random.Random(5)
    now_ms = int(clock.now * 1000)
    written = write(log, rng, 200, now_ms=now_ms)
    clean_log(log)
    written += write(log, rng, 200, now_ms=now_ms)
    clean_log(log)
    end = log.active_segment.base_offset
    assert records(log) == expected_after_clean(written, end)


def test_records_below_log_start_are_cleaned_against_the_dirty_part_only(tmp_path):
    # Kafka's first dirty offset is the log start when the log start passed the cleaner's
    # checkpoint, and its key -> offset map only holds records from there: a record below the
    # log start goes only if its key comes again at or after the log start.
    clock = FakeClock()
    log = PartitionLog.open(tmp_path / "t-0", COMPACT, clock=clock)
    now_ms = int(clock.now * 1000)
    log.append(make_batch([(b"a", b"a1", now_ms), (b"a", b"a2", now_ms), (b"b", b"b1", now_ms), (b"b", b"b2", now_ms)]))
    log.high_watermark = log.log_end_offset
    assert log.advance_log_start(3) == 3
    log.roll()
    log.append(make_batch([(b"c", b"c1", now_ms)]))
    log.high_watermark = log.log_end_offset
    result = clean_log(log)
    assert result is not None and result.records_removed == 1 and result.end_offset == 4
    # The batch straddling the log start is read whole (as Kafka does): offsets 0 and 1 stay,
    # offset 2 (b, superseded by offset 3) goes.
    assert records(log) == [(0, b"a", False), (1, b"a", False), (3, b"b", False), (4, b"c", False)]
    assert log.cleaner_offset == 4


def test_tombstone_goes_one_delete_retention_after_the_pass_that_first_keeps_it(tmp_path):
    # Kafka's rule for v2 batches: the record's own timestamp does not matter (here it is far in
    # the past); the first pass that keeps a tombstone gives its batch a delete horizon, now +
    # delete.retention.ms, and only a pass at or after that horizon drops it.
    clock = FakeClock()
    log = PartitionLog.open(tmp_path / "t-0", COMPACT, clock=clock)
    log.append(make_batch([(b"a", b"a1", 5), (b"b", None, 5), (b"c", b"c1", 5)]))
    log.append(make_batch([(b"a", None, 6), (b"d", b"d1", 7)]))
    log.roll()
    log.append(make_batch([(b"e", b"e1", 8)]))
    log.high_watermark = log.log_end_offset
    assert clean_log(log) is not None
    now_ms = int(clock.now * 1000)
    assert records(log) == [(1, b"b", True), (2, b"c", False), (3, b"a", True), (4, b"d", False), (5, b"e", False)]
    headers = [parse_header(raw) for _, _, raw in split_batches(log.read(0, 10**6).read())]
    assert [(h.base_offset, h.has_delete_horizon, h.base_timestamp) for h in headers] == [
        (0, True, now_ms + 1000), (3, True, now_ms + 1000), (5, False, 8)]
    # Record timestamps are unchanged under the new base timestamp.
    assert [r.timestamp for _, _, raw in split_batches(log.read(0, 10**6).read()) for r in iter_records(raw)] == [5, 5, 6, 7, 8]

    def dirty_pass(key: bytes) -> None:
        log.roll()
        log.append(make_batch([(key, b"x", 9)]))
        log.high_watermark = log.log_end_offset
        assert clean_log(log) is not None

    clock.now = 10_000.999  # just before the horizon: kept
    dirty_pass(b"f")
    assert (1, b"b", True) in records(log) and (3, b"a", True) in records(log)
    clock.now = 10_001.0
    dirty_pass(b"g")
    assert records(log) == [(2, b"c", False), (4, b"d", False), (5, b"e", False), (6, b"f", False), (7, b"g", False)]


def test_nothing_to_clean_without_compact_policy_or_below_dirty_ratio(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=1500))
    write(log, random.Random(1), 100)
    assert clean_log(log) is None
    log.config = LogConfig(segment_bytes=1500, compact=True, delete=False, min_cleanable_dirty_ratio=0.5)
    assert clean_log(log) is not None
    write(log, random.Random(2), 5)
    assert clean_log(log) is None  # the new dirty part is a small share


def test_compaction_respects_high_watermark_and_min_lag(tmp_path):
    clock = FakeClock()
    log = PartitionLog.open(tmp_path / "t-0", COMPACT, clock=clock)
    write(log, random.Random(3), 200, now_ms=int(clock.now * 1000))
    log.high_watermark = 0
    assert clean_log(log) is None
    log.high_watermark = log.log_end_offset
    log.config = dataclasses.replace(COMPACT, min_compaction_lag_ms=60_000)
    assert clean_log(log) is None
    clock.now += 61
    assert clean_log(log) is not None


def test_cleaner_output_is_dropped_if_log_changed(tmp_path, monkeypatch):
    log = PartitionLog.open(tmp_path / "t-0", COMPACT)
    write(log, random.Random(4), 200)
    before = records(log)
    import kbroker.log.cleaner as cleaner

    original = cleaner._clean_group

    def truncating(log_, *args):
        out = original(log_, *args)
        log_.truncate_to(5)
        return out

    monkeypatch.setattr(cleaner, "_clean_group", truncating)
    assert clean_log(log) is None
    got = records(log)
    assert got == before[: len(got)] and log.log_end_offset <= 5 and all(o < 5 for o, _, _ in got)
    assert not list((tmp_path / "t-0").glob("*.cleaned"))


@pytest.mark.parametrize("crash_after", [*range(0, 60, 3), 1000])
def test_crash_during_swap_recovers_old_or_new_segments(tmp_path, monkeypatch, crash_after):
    d = tmp_path / "t-0"
    clock = FakeClock()
    log = PartitionLog.open(d, COMPACT, clock=clock)
    rng = random.Random(6)
    written = write(log, rng, 150)
    clean_log(log)  # a first pass leaves small segments that the next pass merges
    first_end = log.cleaner_offset
    written += write(log, rng, 150)
    clock.now += 2  # past the delete horizon the first pass gave its tombstones' batches
    before = records(log)
    bases = [seg.base_offset for seg in log.segments]
    end = log.active_segment.base_offset
    after = expected_after_clean(written, end, tombstones_gone_below=first_end)

    class Crash(Exception):
        pass

    calls = {"n": 0}
    real_replace = os.replace

    def replace(src, dst):
        if calls["n"] == crash_after:
            raise Crash
        calls["n"] += 1
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    crashed = False
    try:
        clean_log(log)
    except Crash:
        crashed = True
    monkeypatch.undo()
    # The process "dies" here: no clean close.
    reopened = PartitionLog.open(d, COMPACT)
    assert reopened.offline is None
    got = records(reopened)
    # Every original segment's range holds either its old records or its cleaned records.
    for lo, hi in zip(bases, bases[1:] + [10**9], strict=True):
        part = [r for r in got if lo <= r[0] < hi]
        assert part in ([r for r in before if lo <= r[0] < hi], [r for r in after if lo <= r[0] < hi]), (lo, hi)
    assert not [p for p in d.iterdir() if p.name.endswith((".swap", ".cleaned", ".deleted", ".swap-range"))]
    if not crashed:
        assert got == after


def test_file_slices_read_before_a_swap_still_read_the_old_bytes(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", COMPACT)
    write(log, random.Random(8), 200)
    result = log.read(0, 10**9)
    before = result.read()
    assert clean_log(log) is not None
    assert log.read(0, 10**9).read() != before
    assert result.read() == before  # the replaced segment files stay readable through the slices


def test_transactions_aborted_data_goes_open_transactions_stay_last_producer_batch_kept(tmp_path):
    from kbroker_protocol.records import ControlType, Record, build_batch, build_control_batch

    log = PartitionLog.open(tmp_path / "t-0", dataclasses.replace(COMPACT, segment_bytes=400))
    seq = {7: 0, 8: 0, 9: 0}

    def data(key: bytes, pid: int = -1, txn: bool = False) -> int:
        batch = build_batch(
            [Record(key=key, value=b"v-" + key, timestamp=NOW)],
            producer_id=pid,
            producer_epoch=0 if pid >= 0 else -1,
            base_sequence=seq[pid] if pid >= 0 else -1,
            transactional=txn,
        )
        if pid >= 0:
            seq[pid] += 1
        return log.append(batch).first_offset

    def marker(pid: int, commit: bool) -> int:
        kind = ControlType.COMMIT if commit else ControlType.ABORT
        return log.append(build_control_batch(kind, producer_id=pid, producer_epoch=0, timestamp=NOW)).first_offset

    committed_a = data(b"a")
    aborted_a = data(b"a", pid=7, txn=True)  # aborted: must not shadow committed_a
    aborted_last = data(b"x", pid=7, txn=True)  # producer 7's last batch: stays, emptied
    aborted_marker = marker(7, commit=False)
    idem_b = data(b"b", pid=9)  # producer 9's only batch: its record is shadowed below, the batch stays
    data(b"b")
    committed_c = data(b"c", pid=8, txn=True)
    commit_marker = marker(8, commit=True)
    for i in range(12):
        data(b"filler-%d" % (i % 3))
    open_txn = data(b"d", pid=8, txn=True)  # never committed: nothing from here on is cleaned
    data(b"d")
    data(b"a")
    log.roll()
    log.high_watermark = log.log_end_offset
    result = clean_log(log)
    assert result is not None
    assert result.end_offset <= open_txn

    kept = {}
    batches = {}
    for _, _, raw in split_batches(log.read(0, 10**9).read()):
        header = validate_batch(raw)
        batches[header.base_offset] = header
        for r in iter_records(raw):
            kept[r.offset] = r.key
    assert kept[committed_a] == b"a"  # the aborted write did not shadow it
    assert aborted_a not in batches  # aborted data is gone
    assert batches[aborted_last].records_count == 0 and batches[aborted_last].producer_id == 7
    assert batches[aborted_last].last_offset == aborted_last
    assert aborted_marker in batches and commit_marker in batches  # markers are kept
    assert kept[committed_c] == b"c"
    assert batches[idem_b].records_count == 0 and batches[idem_b].producer_id == 9  # empty, kept
    assert open_txn in kept and kept[open_txn] == b"d"  # the unstable part is not cleaned
    assert kept[open_txn + 1] == b"d"


def test_damage_found_by_the_cleaner_stops_appends_on_the_hot_path(tmp_path):
    """The cleaner takes a damaged partition offline: the one-batch append path (which relies on
    the active segment's cached `append_limits`) must refuse appends like every other operation."""
    from kbroker.log.errors import LogCorruptedError

    log = PartitionLog.open(tmp_path / "t-0", COMPACT)
    while len(log.segments) < 4 or log.active_segment.size > COMPACT.segment_bytes // 2:
        log.append(make_batch([(b"k%d" % (log.log_end_offset % 5), b"v" * 30, 1000)]))
    log.high_watermark = log.log_end_offset
    assert log.active_segment.append_limits is not None  # the next append would take the hot path
    with open(log.segments[0].log_path, "r+b") as f:  # a flipped byte: CRC mismatch
        f.seek(80)
        byte = f.read(1)
        f.seek(80)
        f.write(bytes([byte[0] ^ 0xFF]))
    end = log.log_end_offset
    assert clean_log(log, force=True) is None
    assert log.offline is not None
    with pytest.raises(LogCorruptedError):
        log.append(make_batch([(b"k", b"after the damage", 1000)]))
    assert log.log_end_offset == end
