"""Stateful property test: PartitionLog against a plain in-memory model.

The model is a list of batches, each a list of records (offset, key, value, timestamp), plus the
log start, log end and high watermark. Rules append, read (by offset, with max_bytes and
max_offset), look up by timestamp, truncate, advance the log start, apply retention, compact and
reopen (cleanly or not); after every step the offsets agree with the model.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from log_batches import make_batch, split_batches

from kbroker.log import LogConfig, OffsetOutOfRangeError, PartitionLog, clean_log
from kbroker.log.batch_records import iter_records
from kbroker_protocol.record_batch import parse_header

NOW_MS = 10_000_000
CONFIG = LogConfig(
    segment_bytes=700,
    index_interval_bytes=90,
    compact=True,
    retention_ms=-1,
    delete_retention_ms=1000,
    min_cleanable_dirty_ratio=0.0,
)

keys = st.sampled_from([b"a", b"b", b"c", b"d", None])
values = st.one_of(st.none(), st.binary(min_size=0, max_size=60))
timestamps = st.integers(NOW_MS - 3000, NOW_MS + 1000)
records_st = st.lists(st.tuples(keys, values, timestamps), min_size=1, max_size=4)


@dataclasses.dataclass
class Batch:
    base: int
    last: int
    records: list[tuple[int, bytes | None, bytes | None, int]]
    size: int
    horizon: int | None = None  # delete horizon (ms) set by a compaction that kept a tombstone


class LogMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        # Logic, not durability, is under test here: use tmpfs when there is one (fsync is free).
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.tmp = Path(tempfile.mkdtemp(prefix="log-model-", dir=base))
        self.now_ms = NOW_MS
        self.log = PartitionLog.open(self.tmp / "t-0", CONFIG, clock=self.clock)
        self.batches: list[Batch] = []
        self.log_start = 0
        self.leo = 0
        self.hw = 0
        self.compacted_upto = 0  # offsets below may have compaction gaps

    def teardown(self):
        if hasattr(self, "log"):
            self.log.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------

    def clock(self) -> float:
        return self.now_ms / 1000

    def visible(self) -> list[Batch]:
        return [b for b in self.batches if b.last >= self.log_start and b.records]

    # -- rules --------------------------------------------------------------------------------

    @rule(many=st.lists(records_st, min_size=1, max_size=8))
    def append_many(self, many):
        for records in many:
            self.append(records)

    @rule(many=st.lists(records_st, min_size=2, max_size=4))
    def append_in_one_call(self, many):
        data = b"".join(make_batch(records, base_offset=77) for records in many)
        info = self.log.append(data)
        assert (info.first_offset, info.num_batches) == (self.leo, len(many))
        for records in many:
            batch = make_batch(records)
            self.batches.append(
                Batch(self.leo, self.leo + len(records) - 1, [(self.leo + i, k, v, ts) for i, (k, v, ts) in enumerate(records)], len(batch))
            )
            self.leo += len(records)
        assert info.last_offset == self.leo - 1
        self.hw = self.leo
        self.log.high_watermark = self.leo

    @rule(records=records_st)
    def append(self, records):
        batch = make_batch(records)
        info = self.log.append(batch)
        assert info.first_offset == self.leo
        assert info.last_offset == self.leo + len(records) - 1
        self.batches.append(
            Batch(self.leo, info.last_offset, [(self.leo + i, k, v, ts) for i, (k, v, ts) in enumerate(records)], len(batch))
        )
        self.leo = info.last_offset + 1
        self.hw = self.leo
        self.log.high_watermark = self.leo

    @rule(data=st.data(), max_bytes=st.sampled_from([0, 1, 80, 200, 500, 2000, 10**6]), limited=st.booleans())
    def read(self, data, max_bytes, limited):
        start = data.draw(st.integers(self.log_start, self.leo), label="start")
        limit = data.draw(st.integers(start, self.leo), label="max_offset") if limited else None
        self.check_read(start, max_bytes, limit)

    def check_read(self, start: int, max_bytes: int, limit: int | None) -> None:
        result = self.log.read(start, max_bytes, max_offset=limit)
        bound = self.leo if limit is None else limit
        expected = []
        budget = max_bytes
        for b in self.visible():
            if b.last < start:
                continue
            if b.last >= bound or (expected and b.size > budget):
                break
            if not expected and b.size > budget:
                expected.append(b)
                break
            expected.append(b)
            budget -= b.size
        got = split_batches(result.read())
        assert [(base, last) for base, last, _ in got] == [(b.base, b.last) for b in expected]
        assert result.size == sum(b.size for b in expected)
        if expected:
            following = [b.base for b in self.visible() if b.base > expected[-1].last]
            assert expected[-1].last + 1 <= result.next_offset <= (following[0] if following else self.leo)
        else:
            assert result.next_offset == -1
        for (_, _, raw), b in zip(got, expected, strict=True):
            header = parse_header(raw)
            assert (header.base_timestamp if header.has_delete_horizon else None) == b.horizon
            recs = [(r.offset, r.key, r.value is None, r.timestamp) for r in iter_records(raw)]
            assert recs == [(o, k, v is None, ts) for o, k, v, ts in b.records]

    @rule(offset=st.integers(-5, 5))
    def read_out_of_range(self, offset):
        target = self.log_start - 1 - abs(offset) if offset < 0 else self.leo + 1 + offset
        if target < 0:
            return
        try:
            self.log.read(target, 100)
        except OffsetOutOfRangeError:
            pass
        else:
            raise AssertionError(f"read at {target} outside [{self.log_start}, {self.leo}] did not fail")

    @rule(when=timestamps)
    def by_timestamp(self, when):
        expected = None
        for b in self.visible():
            for o, _, _, ts in b.records:
                if o >= self.log_start and ts >= when:
                    expected = (o, ts)
                    break
            if expected:
                break
        assert self.log.offset_for_timestamp(when) == expected

    @rule()
    def max_timestamp(self):
        recs = [(o, ts) for b in self.visible() for o, _, _, ts in b.records if o >= self.log_start]
        expected = None
        if recs:
            top = max(ts for _, ts in recs)
            expected = next((o, ts) for o, ts in recs if ts == top)
        assert self.log.max_timestamp() == expected

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def truncate(self, data):
        bases = [b.base for b in self.batches if b.base > max(self.compacted_upto, self.log_start)]
        target = data.draw(st.sampled_from([*bases, self.leo]), label="truncate to")
        self.log.truncate_to(target)
        self.batches = [b for b in self.batches if b.base < target]
        self.leo = target
        self.hw = min(self.hw, target)

    @rule(data=st.data())
    def advance_log_start(self, data):
        self.advance_to(data.draw(st.integers(self.log_start, self.hw), label="new log start"))

    def advance_to(self, target: int) -> None:
        assert self.log.advance_log_start(target) == target
        self.log_start = target

    @rule(retention_bytes=st.integers(0, 3000))
    def retention(self, retention_bytes):
        self.log.config = dataclasses.replace(CONFIG, retention_bytes=retention_bytes)
        self.log.delete_old_segments()
        self.log.config = CONFIG
        new_start = self.log.log_start_offset
        assert self.log_start <= new_start <= self.hw
        if new_start > self.log_start:
            # Whole segments went: the new start is the base of a segment, at a batch boundary or gap.
            assert not any(b.base < new_start <= b.last for b in self.batches)
            self.log_start = new_start
        assert self.log.size - self.log.segments[0].size < retention_bytes or len(self.log.segments) == 1

    @rule()
    def compact(self):
        result = clean_log(self.log, force=True)
        if result is None:
            return
        end = result.end_offset
        # As Kafka's cleaner: the key -> latest offset map covers only the dirty part, from the
        # first dirty offset (the end of the previous pass, or the log start if that is later) to
        # the end of the pass. A record is kept unless the map holds a later offset for its key,
        # so records below the log start that no pass has seen yet (in a batch straddling the
        # log start) are not compared with each other: a superseded one can stay there.
        first_dirty = max(self.compacted_upto, self.log_start)
        latest = {}
        for b in self.batches:
            for o, k, _, _ in b.records:
                if first_dirty <= o < end and k is not None:
                    latest[k] = o
        # Tombstones (Kafka, v2 batches): a batch that keeps one gets a delete horizon, now +
        # delete.retention.ms; a pass at or after the horizon drops the batch's tombstones.
        for b in self.batches:
            if b.last >= end:
                continue
            drop_tombstones = b.horizon is not None and b.horizon <= self.now_ms
            b.records = [
                (o, k, v, ts)
                for o, k, v, ts in b.records
                if k is None or (latest.get(k, -1) <= o and not (v is None and drop_tombstones))
            ]
            if b.horizon is None and any(k is not None and v is None for _, k, v, _ in b.records):
                b.horizon = self.now_ms + CONFIG.delete_retention_ms
        self.batches = [b for b in self.batches if b.records or b.last >= end]
        for b in self.batches:
            if b.last < end and b.last >= self.log_start:
                # A rebuilt batch is smaller; take its size from the log (its records are checked by `read`).
                ((base, last, raw),) = split_batches(self.log.read(max(b.base, self.log_start), 1).read())
                assert (base, last) == (b.base, b.last)
                b.size = len(raw)
        self.compacted_upto = max(self.compacted_upto, end)

    @rule(ms=st.integers(0, 1500))
    def tick(self, ms):
        self.now_ms += ms

    @rule()
    def roll(self):
        self.log.roll()

    @rule(background=st.booleans())
    def flush(self, background):
        if background:
            self.log.config = dataclasses.replace(CONFIG, flush_ms=0)
            self.log.maybe_flush()
            self.log.config = CONFIG
        else:
            self.log.flush()
        assert self.log.recovery_point == self.leo

    @rule(clean=st.booleans())
    def reopen(self, clean):
        self.log.close(clean=clean)
        self.log = PartitionLog.open(self.tmp / "t-0", CONFIG, clock=self.clock)
        self.hw = self.leo  # open sets the high watermark to the log end

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def offsets_agree(self):
        if not hasattr(self, "log"):
            return
        assert self.log.log_end_offset == self.leo
        assert self.log.log_start_offset == self.log_start
        assert self.log.high_watermark == self.hw


def test_compaction_of_batch_straddling_the_log_start():
    """Shrunk from a failing example: the model compared records below the log start too.

    The log start moves into a batch that no pass has cleaned, which holds tombstones of key a
    followed by a later value of a, all below the log start. The pass's key map starts at the log
    start, so it has no entry for a and the superseded records stay (Kafka's cleaner does the
    same); the read from the log start returns the whole batch. Its tombstones get a delete
    horizon and go in the first pass after it.
    """
    old, recent = NOW_MS - 3000, NOW_MS + 1
    machine = LogMachine()
    machine.setup()
    try:
        machine.append([(b"a", None, old), (b"a", None, recent), (b"a", b"", old), (b"b", None, old)])
        machine.advance_to(3)
        machine.roll()
        machine.append([(b"c", b"x", old)])
        machine.compact()
        machine.offsets_agree()
        machine.check_read(3, 0, None)
        horizon = NOW_MS + CONFIG.delete_retention_ms
        assert [(b.records, b.horizon) for b in machine.visible()] == [
            ([(0, b"a", None, old), (1, b"a", None, recent), (2, b"a", b"", old), (3, b"b", None, old)], horizon),
            ([(4, b"c", b"x", old)], None),
        ]
        machine.tick(CONFIG.delete_retention_ms)
        machine.roll()
        machine.append([(b"d", b"y", old)])
        machine.compact()
        machine.check_read(3, 0, None)
        assert machine.visible()[0].records == [(2, b"a", b"", old)]
        machine.reopen(clean=False)
        machine.offsets_agree()
        machine.check_read(3, 10**6, None)
    finally:
        machine.teardown()


LogMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
test_log_model = LogMachine.TestCase
