"""A segment roll's disk waits (fsyncs of the sealed segment, .txnstate, directory) run after the
roll, off the appending thread (kbroker/log/roll.py): the log stays ordered, readable and
recoverable whenever they run, and the recovery point only passes data that is synced."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from log_batches import split_batches, value_batch

from kbroker.log import LogConfig, LogManager, PartitionLog
from kbroker.log.segment import segment_name
from kbroker.log.txn_index import TXN_STATE_SUFFIX

SMALL = LogConfig(segment_bytes=1000, index_interval_bytes=100)


class Captured:
    """A roll scheduler that keeps the tasks until the test runs them."""

    def __init__(self) -> None:
        self.tasks: list[Callable[[], object]] = []

    def __call__(self, task: Callable[[], object]) -> None:
        self.tasks.append(task)

    def run_all(self) -> None:
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task()


def open_captured(path, config: LogConfig = SMALL) -> tuple[PartitionLog, Captured]:
    log = PartitionLog.open(path, config)
    captured = Captured()
    log.roll_scheduler = captured
    return log, captured


def append_until_roll(log: PartitionLog, first: int) -> int:
    """Append one-record batches (values ``v<n>``) from ``first`` until the log rolls; returns the
    next value number."""
    segments = len(log.segments)
    n = first
    while len(log.segments) == segments:
        log.append(value_batch([b"v%d" % n]))
        n += 1
    return n


def values(log: PartitionLog) -> list[tuple[int, bytes]]:
    """(offset, batch bytes) of every batch, in log order."""
    out = []
    for header, data in log.iter_batches():
        [(base, last, _)] = split_batches(data)
        assert base == last == header.base_offset
        out.append((base, data))
    return out


def txn_state_file(log: PartitionLog, base: int):
    return log.directory / segment_name(base, TXN_STATE_SUFFIX)


def test_roll_leaves_the_fsyncs_to_the_scheduler_and_appends_continue_in_order(tmp_path, monkeypatch):
    log, captured = open_captured(tmp_path / "t-0")
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    n = append_until_roll(log, 0)
    sealed, active = log.segments[-2], log.segments[-1]
    assert len(captured.tasks) == 1 and synced == []  # the roll itself synced nothing
    assert log.recovery_point < sealed.next_offset  # not past data that is not on disk yet
    assert not txn_state_file(log, active.base_offset).exists()
    for i in range(n, n + 5):  # appends while the roll is pending go on, in order
        log.append(value_batch([b"v%d" % i]))
    captured.run_all()
    assert len(synced) == 1
    assert log.recovery_point == sealed.next_offset
    assert txn_state_file(log, active.base_offset).exists()
    got = values(log)
    assert [o for o, _ in got] == list(range(n + 5))
    assert all(data.endswith(b"v%d\x00" % i) for i, (_, data) in enumerate(got))
    log.close()


def test_crash_before_the_completion_recovers_every_record_in_order(tmp_path):
    log, captured = open_captured(tmp_path / "t-0")
    n = append_until_roll(log, 0)
    n = append_until_roll(log, n)  # two pending rolls
    log.append(value_batch([b"tail"]))
    assert len(captured.tasks) == 2
    log.checkpoint()  # the recovery point on disk is still the one before the rolls
    expected = log.read(0, 10**9).read()
    # The process dies before the worker ran: no completion, no clean close.
    reopened = PartitionLog.open(tmp_path / "t-0", SMALL)
    assert reopened.offline is None
    assert reopened.read(0, 10**9).read() == expected
    assert reopened.log_end_offset == n + 1
    assert reopened.append(value_batch([b"after"])).first_offset == n + 1
    reopened.close()


def test_a_flush_while_a_roll_is_pending_syncs_the_sealed_segment_first(tmp_path, monkeypatch):
    log, captured = open_captured(tmp_path / "t-0", LogConfig(segment_bytes=1000, index_interval_bytes=100,
                                                             flush_messages=10**9))
    append_until_roll(log, 0)
    sealed = log.segments[-2]
    sealed_fd = sealed.open_file().fileno()
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    log.flush()
    assert sealed_fd in synced  # the sealed segment, then the active one
    assert log.recovery_point == log.log_end_offset
    before = len(synced)
    captured.run_all()  # the completion finds the data synced: no second data fsync
    assert len(synced) == before
    assert log.recovery_point == log.log_end_offset
    assert txn_state_file(log, log.segments[-1].base_offset).exists()
    log.close()


def test_flush_per_message_syncs_the_new_segments_entry_and_the_sealed_indexes_before_the_ack(
        tmp_path, monkeypatch):
    """With flush.messages=1 the recovery point is the log end before every append, so a roll's
    sealed data is already on disk: the append that rolls must still fsync the directory (the new
    segment's entry) and the sealed segment's indexes before it returns (is acknowledged), without
    waiting for the roll worker (review finding of 2026-12-07)."""
    import kbroker.log.append as append_module
    import kbroker.log.roll as roll_module

    log, captured = open_captured(tmp_path / "t-0", LogConfig(segment_bytes=1000, index_interval_bytes=100,
                                                             flush_messages=1))
    log.append(value_batch([b"first"]))  # the first flush syncs the new directories
    dirs: list[object] = []
    files: list[object] = []
    for module in (append_module, roll_module):
        real_dir = module.fsync_dir
        monkeypatch.setattr(module, "fsync_dir", lambda d, real=real_dir: (dirs.append(d), real(d)))
    real_existing = roll_module._fsync_existing
    monkeypatch.setattr(roll_module, "_fsync_existing", lambda p: (files.append(p), real_existing(p)))
    append_until_roll(log, 0)  # the last append went into the new segment and returned
    assert log.recovery_point == log.log_end_offset > log.segments[-1].base_offset
    assert captured.tasks  # the worker has not run
    assert log.directory in dirs
    sealed = log.segments[-2]
    assert sealed.offset_index.path in files and sealed.time_index.path in files
    log.close()


def test_a_background_flush_while_a_roll_is_pending_syncs_it_too(tmp_path, monkeypatch):
    log, captured = open_captured(tmp_path / "t-0", LogConfig(segment_bytes=1000, index_interval_bytes=100,
                                                             flush_ms=0))
    append_until_roll(log, 0)
    sealed_fd = log.segments[-2].open_file().fileno()
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    assert log.maybe_flush(now_ms=2**62)
    assert sealed_fd in synced
    assert log.recovery_point == log.log_end_offset
    captured.run_all()
    log.close()


def test_truncation_below_the_new_segment_before_the_completion(tmp_path):
    log, captured = open_captured(tmp_path / "t-0")
    append_until_roll(log, 0)
    sealed, active = log.segments[-2], log.segments[-1]
    log.append(value_batch([b"x"]))
    cut = sealed.next_offset - 2
    log.truncate_to(cut)
    captured.run_all()
    # The new segment went with the truncation: its .txnstate is not written back, and the
    # recovery point does not pass the truncation point.
    assert active not in log.segments
    assert not txn_state_file(log, active.base_offset).exists()
    assert log.recovery_point <= cut
    assert log.log_end_offset == cut
    assert log.append(value_batch([b"y"])).first_offset == cut
    log.close()
    reopened = PartitionLog.open(tmp_path / "t-0", SMALL)
    assert [o for o, _ in values(reopened)] == list(range(cut + 1))
    reopened.close()


def test_clean_close_completes_pending_rolls(tmp_path):
    log, captured = open_captured(tmp_path / "t-0")
    n = append_until_roll(log, 0)
    active = log.segments[-1]
    expected = log.read(0, 10**9).read()
    log.close()
    assert txn_state_file(log, active.base_offset).exists()
    assert (tmp_path / "t-0" / ".kafka_cleanshutdown").exists()
    captured.run_all()  # the worker's late run does nothing more
    reopened = PartitionLog.open(tmp_path / "t-0", SMALL)
    assert reopened.recovery_point == reopened.log_end_offset == n
    assert reopened.read(0, 10**9).read() == expected
    reopened.close()


def test_retention_deletes_a_sealed_segment_whose_roll_is_pending(tmp_path):
    config = LogConfig(segment_bytes=1000, index_interval_bytes=100, retention_bytes=0)
    log, captured = open_captured(tmp_path / "t-0", config)
    append_until_roll(log, 0)
    log.high_watermark = log.log_end_offset
    sealed = log.segments[0]
    assert log.delete_old_segments() == 1
    assert not sealed.log_path.exists()
    captured.run_all()  # fsyncs what is left, recreates nothing
    assert not sealed.log_path.exists()
    assert not list(log.directory.glob("*.index")) or all(
        p.name != segment_name(sealed.base_offset, ".index") for p in log.directory.glob("*.index"))
    assert log.recovery_point == sealed.next_offset
    log.close()


def test_log_manager_completes_rolls_on_its_roll_thread(tmp_path, monkeypatch):
    manager = LogManager([tmp_path], SMALL, maintenance_interval_s=3600)
    threads: list[str] = []
    real = PartitionLog.complete_rolls

    def recording(self: PartitionLog) -> None:
        threads.append(threading.current_thread().name)
        real(self)

    monkeypatch.setattr(PartitionLog, "complete_rolls", recording)
    manager.start()
    try:
        log = manager.get_or_create("t", 0)
        append_until_roll(log, 0)
        sealed = log.segments[-2]
        manager.drain_worker()
        assert threads and all(name.startswith("log-roll") for name in threads)
        assert log.recovery_point == sealed.next_offset
    finally:
        manager.close()
    # without a started manager (no roll thread) a roll completes where it happens
    manager = LogManager([tmp_path], SMALL, maintenance_interval_s=3600)
    threads.clear()
    log = manager.get("t", 0)
    assert log is not None
    append_until_roll(log, 100)
    assert threads == [threading.current_thread().name]
    assert log.recovery_point == log.segments[-2].next_offset
    manager.close()


def test_a_power_loss_before_the_roll_fsync_cuts_the_torn_sealed_tail(tmp_path):
    log, captured = open_captured(tmp_path / "t-0")
    n = append_until_roll(log, 0)  # values 0..n-2 in the sealed segment, n-1 in the new one
    log.append(value_batch([b"in the new segment"]))
    log.checkpoint()  # on disk: the recovery point from before the roll
    sealed = log.segments[-2]
    size = sealed.size
    assert captured.tasks  # the roll's fsync never ran
    del log
    # The power loss: the sealed segment's last batch never reached the disk, the new segment did.
    os.truncate(sealed.log_path, size - 10)
    reopened = PartitionLog.open(tmp_path / "t-0", SMALL)
    assert reopened.offline is None  # a torn unflushed tail, not corruption
    assert [s.base_offset for s in reopened.segments] == [0]  # cut there, the later segment gone
    assert [o for o, _ in values(reopened)] == list(range(n - 2))  # the torn batch n-2 went
    assert reopened.append(value_batch([b"again"])).first_offset == n - 2
    reopened.close()
