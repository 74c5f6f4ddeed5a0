"""Producer snapshots above a truncation point: the log deletes them when it is cut (Kafka's
``ProducerStateManager.truncateAndReload``), a roll's snapshot is not put in place after a
truncation that happened while it was written, and a roll at a follower's gap takes none."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kbroker.log import LogConfig, PartitionLog
from kbroker.replication.producer_snapshot import encode, load_state, roll_snapshot, write_snapshot
from kbroker.replication.producer_state import PartitionProducerState
from kbroker_protocol.record_batch import parse_header
from kbroker_protocol.records import ControlType, Record, build_batch, build_control_batch

TXN, IDEM = 1000, 2000


def snapshot_names(plog: PartitionLog) -> list[str]:
    return sorted(p.name for p in Path(plog.directory).iterdir() if ".producer-snapshot" in p.name)


def name(offset: int) -> str:
    return f"{offset:020d}.producer-snapshot"


def append(plog: PartitionLog, state: PartitionProducerState, batch: bytes) -> None:
    info = plog.append(batch)
    state.update(parse_header(batch), info.first_offset, info.last_offset)


def test_a_retry_after_a_truncation_does_not_revive_the_old_open_transaction(tmp_path):
    """The old leader's log: TXN's open transaction at 0, IDEM's batch at 1, a snapshot at 2. The
    new leader's: TXN's transaction aborted at 0, IDEM's retried batch (the same bytes, so the
    same CRC) at 1. The old snapshot matched the new log's last batch and claimed the
    transaction open (the last stable offset stuck at 0)."""
    txn = build_batch([Record(value=b"txn", timestamp=1)], producer_id=TXN, producer_epoch=0, base_sequence=0,
                      transactional=True)
    idem = build_batch([Record(value=b"idem", timestamp=1)], producer_id=IDEM, producer_epoch=0, base_sequence=0)
    abort = build_control_batch(ControlType.ABORT, producer_id=TXN, producer_epoch=0, timestamp=2)
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    try:
        state = PartitionProducerState()
        append(plog, state, txn)
        append(plog, state, idem)
        assert state.first_unstable_offset() == 0
        write_snapshot(state, plog)
        assert snapshot_names(plog) == [name(2)]
        plog.truncate_to(2)  # (nothing cut: a snapshot at the log end stays)
        assert snapshot_names(plog) == [name(2)]
        plog.truncate_to(0)
        plog.append(abort)
        plog.append(idem)
        rebuilt = load_state(plog)
        assert rebuilt.first_unstable_offset() is None
        assert set(rebuilt.producers) == {TXN, IDEM}
        assert snapshot_names(plog) == []  # (deleted by the truncation)
        # The close's snapshot at that end is the new state's, not the old one's.
        write_snapshot(rebuilt, plog)
        assert snapshot_names(plog) == [name(2)]
        assert load_state(plog).first_unstable_offset() is None
    finally:
        plog.close()


def test_a_full_truncation_below_a_snapshot_deletes_it(tmp_path):
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    try:
        state = PartitionProducerState()
        append(plog, state, build_batch([Record(value=b"v", timestamp=1)], producer_id=IDEM, producer_epoch=0,
                                        base_sequence=0))
        write_snapshot(state, plog)
        plog.truncate_fully(0)
        assert snapshot_names(plog) == []
        assert load_state(plog).producers == {}
    finally:
        plog.close()


@pytest.mark.parametrize("restart", ["clean", "crash"])
@pytest.mark.parametrize("new_start", [2, 10])
def test_a_full_truncation_deletes_every_snapshot_and_a_restart_brings_no_producer_back(tmp_path, new_start,
                                                                                          restart):
    """Kafka's ``UnifiedLog.truncateFullyAndStartAt`` (a follower starting over at the leader's log
    start) resets the producer state and deletes every snapshot
    (``ProducerStateManager.truncateFullyAndStartAt``), those at or below the new start too: the
    newest of them (here at the log end, 2) would otherwise be the empty log's state, now and after
    a restart, clean or after a kill."""
    directory = tmp_path / "t-0"
    plog = PartitionLog.open(directory, LogConfig())
    state = PartitionProducerState()
    append(plog, state, build_batch([Record(value=b"v", timestamp=1)], producer_id=IDEM, producer_epoch=0,
                                    base_sequence=0))
    append(plog, state, build_batch([Record(value=b"t", timestamp=1)], producer_id=TXN, producer_epoch=0,
                                    base_sequence=0, transactional=True))
    write_snapshot(state, plog)
    assert snapshot_names(plog) == [name(2)]
    plog.truncate_fully(new_start)
    assert plog.log_start_offset == plog.log_end_offset == new_start
    assert snapshot_names(plog) == []
    rebuilt = load_state(plog)
    assert rebuilt.producers == {} and rebuilt.first_unstable_offset() is None
    plog.close()
    if restart == "crash":  # (as after a kill: no clean-shutdown marker, no checkpoint)
        (directory / ".kafka_cleanshutdown").unlink()
        (directory / "log-state.checkpoint").unlink()
    plog = PartitionLog.open(directory, LogConfig())
    try:
        assert plog.log_start_offset == plog.log_end_offset == new_start
        reopened = load_state(plog)
        assert reopened.producers == {} and reopened.first_unstable_offset() is None
        # the log regrows from there with the leader's batches: only those producers
        append(plog, reopened, build_batch([Record(value=b"w", timestamp=1)], producer_id=3, producer_epoch=0,
                                           base_sequence=0))
        assert set(load_state(plog).producers) == {3}
    finally:
        plog.close()


def test_a_torn_tail_cut_at_open_deletes_the_snapshots_past_it(tmp_path):
    directory = tmp_path / "t-0"
    plog = PartitionLog.open(directory, LogConfig())
    state = PartitionProducerState()
    for seq in range(3):
        append(plog, state, build_batch([Record(value=b"v" * 50, timestamp=1)], producer_id=IDEM, producer_epoch=0,
                                        base_sequence=seq))
    write_snapshot(state, plog)
    plog.close()
    (directory / ".kafka_cleanshutdown").unlink()  # a crash: the tail's write was torn
    (directory / "log-state.checkpoint").unlink()
    segment = sorted(directory.glob("*.log"))[-1]
    os.truncate(segment, segment.stat().st_size - 10)
    plog = PartitionLog.open(directory, LogConfig())
    try:
        assert plog.log_end_offset == 2
        assert snapshot_names(plog) == []
    finally:
        plog.close()


def test_load_state_deletes_a_snapshot_above_the_log_end(tmp_path):
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    try:
        state = PartitionProducerState()
        append(plog, state, build_batch([Record(value=b"v", timestamp=1)], producer_id=IDEM, producer_epoch=0,
                                        base_sequence=0))
        stale = PartitionProducerState()
        stale.update(parse_header(build_batch([Record(value=b"v", timestamp=1)], producer_id=9, producer_epoch=0,
                                              base_sequence=0)), 4, 4)
        (Path(plog.directory) / name(5)).write_bytes(encode(stale, 5, (4, 1234)))  # (as a crash may leave)
        assert set(load_state(plog).producers) == {IDEM}
        assert snapshot_names(plog) == []
    finally:
        plog.close()


def rolled_log(tmp_path: Path) -> tuple[PartitionLog, PartitionProducerState, list[Callable[[], object]]]:
    """A log whose roll's disk work (the producer snapshot included) waits in the returned list."""
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=1024))
    jobs: list[Callable[[], object]] = []
    plog.roll_scheduler = jobs.append
    state = PartitionProducerState()
    plog.roll_listener = lambda base: roll_snapshot(state, plog)
    seq = 0
    while not jobs:
        append(plog, state, build_batch([Record(value=b"x" * 300, timestamp=1)], producer_id=7, producer_epoch=0,
                                        base_sequence=seq))
        seq += 1
    return plog, state, jobs


@pytest.mark.parametrize("when", ["before the write", "after the write"])
def test_a_truncation_while_the_roll_snapshot_is_written_keeps_it_out(tmp_path, when):
    """The roll worker writes the snapshot outside the log's lock: a truncation then (the loop
    thread's, a follower's) must not leave it above the log end."""
    plog, _state, jobs = rolled_log(tmp_path)
    try:
        pending = plog._pending_rolls[-1]
        write = pending.after_sync
        assert write is not None

        def truncated_meanwhile() -> Any:  # (the roll worker's step, as roll.py calls it)
            if when == "before the write":
                plog.truncate_to(1)
                return write()
            finish = write()
            plog.truncate_to(1)
            return finish

        pending.after_sync = truncated_meanwhile
        for job in jobs:
            job()
        assert plog.log_end_offset == 1
        assert snapshot_names(plog) == []  # (no .roll.tmp file left either)
    finally:
        plog.close()


def test_a_roll_snapshot_goes_in_place_when_nothing_was_truncated(tmp_path):
    plog, state, jobs = rolled_log(tmp_path)
    try:
        base = plog.segments[-1].base_offset  # (the batch that rolled the log is past it)
        for job in jobs:
            job()
        assert snapshot_names(plog) == [name(base)]
        assert load_state(plog).producers[7].last_seq == state.producers[7].last_seq
    finally:
        plog.close()


def test_no_roll_snapshot_at_a_follower_gap(tmp_path):
    """A follower's batch starting past the log end rolls the log to its first offset: no batch
    ends just before that offset, so a snapshot there could not be checked at load."""
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=1024))
    try:
        jobs: list[Callable[[], object]] = []
        plog.roll_scheduler = jobs.append
        state = PartitionProducerState()
        plog.roll_listener = lambda base: roll_snapshot(state, plog)
        for seq in range(2):
            append(plog, state, build_batch([Record(value=b"x" * 300, timestamp=1)], producer_id=7,
                                            producer_epoch=0, base_sequence=seq))
        gap = build_batch([Record(value=b"x" * 600, timestamp=1)], base_offset=10, producer_id=7, producer_epoch=0,
                          base_sequence=2)
        plog.append(gap, assign_offsets=False)
        assert [seg.base_offset for seg in plog.segments] == [0, 10]
        for job in jobs:
            job()
        assert snapshot_names(plog) == []
    finally:
        plog.close()


def test_a_snapshot_past_the_log_start_without_a_last_batch_is_not_trusted(tmp_path):
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    try:
        state = PartitionProducerState()
        append(plog, state, build_batch([Record(value=b"v", timestamp=1)], producer_id=IDEM, producer_epoch=0,
                                        base_sequence=0))
        bogus = PartitionProducerState()
        bogus.update(parse_header(build_batch([Record(value=b"v", timestamp=1)], producer_id=9, producer_epoch=0,
                                              base_sequence=0)), 0, 0)
        (Path(plog.directory) / name(1)).write_bytes(encode(bogus, 1, None))
        assert set(load_state(plog).producers) == {IDEM}
    finally:
        plog.close()
