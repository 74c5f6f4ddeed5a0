"""Compaction of a log with transactions over several passes: transaction markers are removed once
no batch of their transaction is left and their delete horizon (delete.retention.ms after the pass
that found them so) has passed; a read_committed reader and a producer-state rebuild stay right."""

from __future__ import annotations

import dataclasses

from log_batches import split_batches

from kbroker.log import LogConfig, PartitionLog, clean_log
from kbroker.log.batch_records import iter_records
from kbroker.replication.producer_state import PartitionProducerState
from kbroker_protocol.record_batch import validate_batch
from kbroker_protocol.records import (
    ControlType,
    Record,
    build_batch,
    build_control_batch,
    parse_control_record,
)

RECORD_TS = 1_000_000  # record and marker timestamps: far older than delete.retention.ms at any pass
RETENTION_MS = 60_000
CONFIG = LogConfig(
    segment_bytes=400,
    index_interval_bytes=100,
    compact=True, delete=False,
    delete_retention_ms=RETENTION_MS,
    min_cleanable_dirty_ratio=0.0,
)


class FakeClock:
    def __init__(self, now_s: float) -> None:
        self.now = now_s

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: int) -> None:
        self.now += ms / 1000

    @property
    def ms(self) -> int:
        return int(self.now * 1000)


class Writer:
    def __init__(self, log: PartitionLog) -> None:
        self.log = log
        self.seq: dict[int, int] = {}
        self.open: dict[int, int] = {}  # pid -> first offset of its open transaction

    def data(self, key: bytes, value: bytes, pid: int = -1, txn: bool = False) -> int:
        seq = self.seq.get(pid, 0)
        batch = build_batch(
            [Record(key=key, value=value, timestamp=RECORD_TS)],
            producer_id=pid,
            producer_epoch=0 if pid >= 0 else -1,
            base_sequence=seq if pid >= 0 else -1,
            transactional=txn,
        )
        if pid >= 0:
            self.seq[pid] = seq + 1
        offset = self.log.append(batch).first_offset
        if txn:
            self.open.setdefault(pid, offset)
        return offset

    def marker(self, pid: int, commit: bool) -> int:
        kind = ControlType.COMMIT if commit else ControlType.ABORT
        batch = build_control_batch(kind, producer_id=pid, producer_epoch=0, timestamp=RECORD_TS)
        offset = self.log.append(batch).first_offset
        first = self.open.pop(pid, None)
        if not commit and first is not None:  # as the broker's write_marker: into the .txnindex
            self.log.record_aborted_txn(pid, first, offset, min(self.open.values(), default=offset + 1))
        return offset

    def fill(self, n: int) -> None:
        for i in range(n):
            self.data(b"filler-%d" % (i % 3), b"f%d" % i)

    def seal(self) -> None:
        self.log.roll()
        self.log.high_watermark = self.log.log_end_offset


def batches(log: PartitionLog) -> dict[int, tuple]:
    """base offset -> (header, records, marker type or None), every CRC checked."""
    out = {}
    for _, _, raw in split_batches(log.read(log.log_start_offset, 10**9).read()):
        header = validate_batch(raw)
        records = list(iter_records(raw))
        kind = parse_control_record(records[0]).type if header.is_control and records else None
        out[header.base_offset] = (header, records, kind)
    return out


def read_committed(log: PartitionLog, state: PartitionProducerState) -> list[tuple[int, bytes, bytes]]:
    """What a read_committed consumer gets from offset 0, as the Java consumer filters: the broker
    sends the aborted transactions (from the log's .txnindex); a producer's transactional batches are
    skipped from its aborted transaction's first offset until its ABORT marker."""
    aborted = sorted(log.collect_aborted_transactions(0, log.log_end_offset), key=lambda a: a.first_offset)
    skipping: set[int] = set()
    out = []
    for _, (header, records, kind) in sorted(batches(log).items()):
        while aborted and aborted[0].first_offset <= header.last_offset:
            skipping.add(aborted.pop(0).producer_id)
        if header.is_control:
            if kind == ControlType.ABORT:
                skipping.discard(header.producer_id)
            continue
        if header.is_transactional and header.producer_id in skipping:
            continue
        out.extend((r.offset, r.key, r.value) for r in records)
    return out


def latest_per_key(rows: list[tuple[int, bytes, bytes]]) -> dict[bytes, bytes]:
    latest = {}
    for _, key, value in rows:
        latest[key] = value
    return latest


def build_log(log: PartitionLog) -> dict[str, int]:
    w = Writer(log)
    at = {}
    at["aborted_1"] = w.data(b"k1", b"aborted-1", pid=7, txn=True)  # pid 7, txn A: aborted
    at["aborted_2"] = w.data(b"k2", b"aborted-2", pid=7, txn=True)
    w.fill(3)
    at["abort_A"] = w.marker(7, commit=False)
    at["b1"] = w.data(b"k1", b"b1", pid=8, txn=True)  # pid 8, txn B: committed, then shadowed
    at["b3"] = w.data(b"k3", b"b3", pid=8, txn=True)
    at["commit_B"] = w.marker(8, commit=True)
    w.data(b"k1", b"plain-1")
    w.data(b"k3", b"plain-3")
    w.fill(3)
    at["c2"] = w.data(b"k2", b"c2", pid=7, txn=True)  # pid 7, txn C: committed, 7's last batch
    at["commit_C"] = w.marker(7, commit=True)
    at["d4"] = w.data(b"k4", b"d4", pid=8, txn=True)  # pid 8, txn D: committed, 8's last batch
    at["commit_D"] = w.marker(8, commit=True)
    at["aborted_5"] = w.data(b"k5", b"aborted-5", pid=9, txn=True)  # pid 9, txn E: aborted, 9's last
    at["abort_E"] = w.marker(9, commit=False)
    w.fill(6)
    w.seal()
    return at


EXPECTED = {b"k1": b"plain-1", b"k2": b"c2", b"k3": b"plain-3", b"k4": b"d4"}  # besides the fillers


def check_consistent(log: PartitionLog, at: dict[str, int]) -> PartitionProducerState:
    """Invariants after any pass: nothing aborted readable, committed data per key, a rebuild of the
    producer state finds no open transaction and keeps the producers' sequences."""
    state = PartitionProducerState.load(log)
    assert state.first_unstable_offset() is None
    assert not state.open_txns
    visible = read_committed(log, state)
    assert not [v for _, _, v in visible if v.startswith(b"aborted")]
    latest = latest_per_key(visible)
    assert {k: v for k, v in latest.items() if not k.startswith(b"filler-")} == EXPECTED
    assert {k for k in latest if k.startswith(b"filler-")} == {b"filler-0", b"filler-1", b"filler-2"}
    assert len(visible) == len(latest)  # one record per key once cleaned (the fillers' last pass included)
    found = batches(log)
    assert at["aborted_1"] not in found and at["aborted_2"] not in found  # aborted data is gone
    # pid 9's aborted batch is its last: kept empty, so its ABORT marker must stay too.
    header, records, _ = found[at["aborted_5"]]
    assert records == [] and header.producer_id == 9 and header.is_transactional
    assert found[at["abort_E"]][2] == ControlType.ABORT
    assert {p: state.producers[p].last_seq for p in (7, 8, 9)} == {7: 2, 8: 2, 9: 0}
    return state


def markers(log: PartitionLog) -> dict[int, int | None]:
    """marker offset -> its delete horizon (None without one)."""
    return {
        o: (h.base_timestamp if h.has_delete_horizon else None)
        for o, (h, _, kind) in batches(log).items()
        if kind is not None
    }


def test_markers_go_one_pass_after_their_data_and_delete_retention_later(tmp_path):
    clock = FakeClock(50_000.0)
    log = PartitionLog.open(tmp_path / "t-0", CONFIG, clock=clock)
    at = build_log(log)
    all_markers = {at[m] for m in ("abort_A", "commit_B", "commit_C", "commit_D", "abort_E")}
    assert set(markers(log)) == all_markers

    # Pass 1: aborted data and the shadowed committed data go; their markers stay, with no horizon.
    assert clean_log(log) is not None
    check_consistent(log, at)
    assert at["b1"] not in batches(log) and at["b3"] not in batches(log)
    assert markers(log) == dict.fromkeys(all_markers)

    # Pass 2 (new dirty data): A's and B's markers have no data left: they get a delete horizon.
    clock.advance_ms(1000)
    Writer(log).fill(1)
    log.roll()
    log.high_watermark = log.log_end_offset
    assert clean_log(log) is not None
    horizon = clock.ms + RETENTION_MS
    assert markers(log) == {**dict.fromkeys(all_markers), at["abort_A"]: horizon, at["commit_B"]: horizon}
    header, records, _ = batches(log)[at["abort_A"]]
    assert records[0].timestamp == RECORD_TS and header.max_timestamp == RECORD_TS  # timestamps kept
    assert header.producer_id == 7 and header.is_transactional and header.last_offset == at["abort_A"]
    check_consistent(log, at)

    # Just before the horizon: no pass runs (nothing dirty) and the markers stay.
    clock.advance_ms(RETENTION_MS - 1)
    assert clean_log(log) is None
    assert at["abort_A"] in markers(log) and at["commit_B"] in markers(log)

    # At the horizon a pass runs without new dirty data and drops them; C, D and E stay (their
    # transactions' last batches are their producers' last, kept by the cleaner).
    clock.advance_ms(1)
    result = clean_log(log)
    assert result is not None and result.records_removed == 2
    assert markers(log) == dict.fromkeys(all_markers - {at["abort_A"], at["commit_B"]})
    check_consistent(log, at)

    # Nothing more to do, now or much later: the remaining markers are still needed.
    clock.advance_ms(10 * RETENTION_MS)
    assert clean_log(log) is None
    assert clean_log(log, force=True) is None

    # After a restart the cleaned log rebuilds the same state: no open transaction, LSO not stuck.
    leo = log.log_end_offset
    log.close()
    reopened = PartitionLog.open(tmp_path / "t-0", CONFIG, clock=clock)
    reopened.high_watermark = reopened.log_end_offset
    assert reopened.log_end_offset == leo
    check_consistent(reopened, at)
    assert [(a.producer_id, a.first_offset, a.last_offset) for a in reopened.collect_aborted_transactions(0, leo)] == [
        (9, at["aborted_5"], at["abort_E"])
    ]


def test_a_marker_keeps_its_horizon_across_a_restart(tmp_path):
    clock = FakeClock(50_000.0)
    log = PartitionLog.open(tmp_path / "t-0", CONFIG, clock=clock)
    at = build_log(log)
    assert clean_log(log) is not None
    clock.advance_ms(1000)
    Writer(log).fill(1)
    log.roll()
    log.high_watermark = log.log_end_offset
    assert clean_log(log) is not None
    horizon = clock.ms + RETENTION_MS
    assert markers(log)[at["abort_A"]] == horizon
    log.close()

    # The horizon is in the batch: after a restart, a pass before it keeps the marker ...
    log = PartitionLog.open(tmp_path / "t-0", CONFIG, clock=clock)
    clock.advance_ms(RETENTION_MS - 1000)
    w = Writer(log)
    w.fill(1)
    w.seal()
    assert clean_log(log) is not None
    assert markers(log)[at["abort_A"]] == horizon and markers(log)[at["commit_B"]] == horizon
    # ... and the first pass after it drops it.
    clock.advance_ms(1000)
    w.fill(1)
    w.seal()
    assert clean_log(log) is not None
    assert at["abort_A"] not in markers(log) and at["commit_B"] not in markers(log)
    check_consistent(log, at)


def test_no_marker_is_touched_at_or_after_an_open_transaction(tmp_path):
    clock = FakeClock(50_000.0)
    log = PartitionLog.open(tmp_path / "t-0", dataclasses.replace(CONFIG, delete_retention_ms=0), clock=clock)
    w = Writer(log)
    aborted_x = w.data(b"a", b"aborted-x", pid=3, txn=True)
    early_marker = w.marker(3, commit=False)
    w.data(b"a", b"plain", pid=3)
    w.fill(4)
    open_txn = w.data(b"o", b"open", pid=4, txn=True)  # never finished: nothing from here is cleaned
    w.data(b"b", b"aborted-y", pid=5, txn=True)
    w.fill(4)
    late_marker = w.marker(5, commit=False)
    w.data(b"b", b"later", pid=5)
    w.fill(4)
    w.seal()
    assert clean_log(log, force=True) is not None
    assert aborted_x not in batches(log)
    for _ in range(3):
        clock.advance_ms(1000)
        w.fill(1)
        w.seal()
        clean_log(log, force=True)  # nothing is dirty below the open transaction: no pass
    found = batches(log)
    assert found[early_marker][2] == ControlType.ABORT  # no pass since the one that dropped its data
    assert found[late_marker][2] == ControlType.ABORT and not found[late_marker][0].has_delete_horizon
    assert [r.value for r in found[open_txn][1]] == [b"open"]
    state = PartitionProducerState.load(log)
    assert state.first_unstable_offset() == open_txn

    # The transaction ends: the rest of the log becomes cleanable, and both markers go in turn.
    w.marker(4, commit=True)
    for _ in range(4):
        clock.advance_ms(1000)
        w.fill(1)
        w.seal()
        assert clean_log(log, force=True) is not None
    found = batches(log)
    assert early_marker not in found and late_marker not in found
    state = PartitionProducerState.load(log)
    assert state.first_unstable_offset() is None
    assert not [r for h, recs, _ in found.values() for r in recs if r.value and r.value.startswith(b"aborted")]
