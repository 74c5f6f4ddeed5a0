"""Early write-back of the active segment (kbroker.log.writeback), queued by the maintenance thread."""

from __future__ import annotations

import os

from log_batches import value_batch

from kbroker.log import LogConfig, LogManager, PartitionLog, writeback


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, fd: int, offset: int, length: int, flags: int) -> int:
        assert flags == writeback.SYNC_FILE_RANGE_WRITE
        os.fstat(fd)  # a valid descriptor
        self.calls.append((fd, offset, length))
        return 0


BATCH = value_batch([b"x" * 60_000])


def test_queues_only_what_is_new_and_enough(tmp_path, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(writeback, "_sync_file_range", recorder)
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=400 * len(BATCH)))
    for _ in range(10):
        log.append(BATCH)
    assert not log.start_writeback(min_bytes=20 * len(BATCH))  # not enough yet
    assert log.start_writeback(min_bytes=5 * len(BATCH))
    assert [(o, n) for _, o, n in recorder.calls] == [(0, 10 * len(BATCH))]
    assert not log.start_writeback(min_bytes=1)  # nothing new
    for _ in range(3):
        log.append(BATCH)
    assert log.start_writeback(min_bytes=1)
    assert [(o, n) for _, o, n in recorder.calls][1:] == [(10 * len(BATCH), 3 * len(BATCH))]
    # A truncation below what was queued starts again from the cut.
    log.truncate_to(5)
    log.append(BATCH)
    assert log.start_writeback(min_bytes=1)
    assert [(o, n) for _, o, n in recorder.calls][2:] == [(5 * len(BATCH), len(BATCH))]
    # A new segment starts from its own beginning.
    log.roll()
    log.append(BATCH)
    assert log.start_writeback(min_bytes=1)
    assert [(o, n) for _, o, n in recorder.calls][3:] == [(0, len(BATCH))]
    log.close()
    assert not log.start_writeback(min_bytes=0)
    assert len(recorder.calls) == 4


def test_the_maintenance_round_queues_write_back(tmp_path, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(writeback, "_sync_file_range", recorder)
    manager = LogManager([tmp_path], LogConfig())
    log = manager.get_or_create("t", 0, LogConfig())
    while log.size < writeback.MIN_BYTES:
        log.append(BATCH)
    manager.run_maintenance()
    assert [(o, n) for _, o, n in recorder.calls] == [(0, log.size)]
    manager.close()


def test_the_real_call_is_accepted_here(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    for _ in range(3):
        log.append(BATCH)
    assert log.start_writeback(min_bytes=1) == writeback.supported()
    log.close()
