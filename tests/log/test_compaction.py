"""Compaction: latest record per key, tombstones, offsets kept, atomic swap and crash recovery."""

from __future__ import annotations

import dataclasses
import os
import random

import pytest
from log_batches import make_batch, split_batches

from kbroker.log import LogConfig, PartitionLog, clean_log
from kbroker.log.batch_records import iter_records
from protocol.record_batch import validate_batch

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


def expected_after_clean(written, end_offset, *, drop_tombstones):
    latest = {}
    for offset, key, _ in written:
        if offset < end_offset:
            latest[key] = offset
    out = []
    for offset, key, value in written:
        if offset >= end_offset:
            out.append((offset, key, value is None))
        elif latest[key] == offset and not (value is None and drop_tombstones):
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
    # Tombstones are younger than delete.retention.ms: kept.
    assert records(log) == expected_after_clean(written, end, drop_tombstones=False)
    assert log.log_end_offset == leo
    # Reading from any offset in a gap: the first batch reaches it, the next kept record is found.
    kept = [o for o, _, _ in records(log)]
    for offset in range(0, leo, 7):
        first = next(o for o in kept if o >= offset)
        batches = split_batches(log.read(offset, 10**6).read())
        assert batches[0][1] >= offset
        assert min(r.offset for _, _, raw in batches for r in iter_records(raw) if r.offset >= offset) == first
    # Later: tombstones have been visible long enough and go on the next pass.
    clock.now += 2
    log.roll()
    end = log.log_end_offset
    assert clean_log(log) is not None
    assert records(log) == expected_after_clean(written, end, drop_tombstones=True)
    log.close()
    reopened = PartitionLog.open(tmp_path / "t-0", COMPACT, clock=clock)
    assert records(reopened) == expected_after_clean(written, end, drop_tombstones=True)
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
    assert records(log) == expected_after_clean(written, end, drop_tombstones=False)


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
    log = PartitionLog.open(d, COMPACT)
    rng = random.Random(6)
    written = write(log, rng, 150)
    clean_log(log)  # a first pass leaves small segments that the next pass merges
    written += write(log, rng, 150)
    before = records(log)
    bases = [seg.base_offset for seg in log.segments]
    end = log.active_segment.base_offset
    # Records carry timestamp 0: tombstones are past delete.retention.ms and go.
    after = expected_after_clean(written, end, drop_tombstones=True)

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
    from protocol.records import ControlType, Record, build_batch, build_control_batch

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
