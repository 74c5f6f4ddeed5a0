"""Block reservation ahead of appends (kbroker.log.prealloc) as the partition log uses it."""

from __future__ import annotations

import os

import pytest
from log_batches import split_batches, value_batch

from kbroker.log import LogConfig, PartitionLog, prealloc


def _reservation_works(directory) -> bool:
    """Whether this file system honours fallocate(KEEP_SIZE) (ext4, xfs, tmpfs do)."""
    path = directory / "probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        return prealloc.reserve(fd, 0, 1 << 20) and os.fstat(fd).st_blocks * 512 >= 1 << 20
    finally:
        os.close(fd)
        path.unlink()


def _allocated(path) -> int:
    return os.stat(path).st_blocks * 512


def test_step_grows_with_the_segment_within_bounds():
    assert prealloc.step_for(0) == prealloc.MIN_STEP
    assert prealloc.step_for(4 * prealloc.MIN_STEP) == prealloc.MIN_STEP
    assert prealloc.step_for(8 * prealloc.MIN_STEP) == 2 * prealloc.MIN_STEP
    assert prealloc.step_for(1 << 40) == prealloc.MAX_STEP


def test_reserve_keeps_the_size_and_trim_gives_blocks_back(tmp_path):
    works = _reservation_works(tmp_path)
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x" * 1000)
        assert prealloc.reserve(fd, 1000, 4 << 20) == works
        assert os.fstat(fd).st_size == 1000
        if works:
            assert _allocated(path) >= 4 << 20
        prealloc.trim(fd, 1000)
        assert os.fstat(fd).st_size == 1000
        assert _allocated(path) < 64 * 1024
        assert os.pread(fd, 2000, 0) == b"x" * 1000
    finally:
        os.close(fd)


def test_log_reserves_ahead_and_trims_on_roll_close_and_reopen(tmp_path):
    works = _reservation_works(tmp_path)
    batch = value_batch([b"v" * 16000])
    config = LogConfig(segment_bytes=40 * len(batch))
    log = PartitionLog.open(tmp_path / "t-0", config)
    for _ in range(10):
        log.append(batch)
    active = log.active_segment.log_path
    assert os.stat(active).st_size == log.size == 10 * len(batch)
    if works:
        assert _allocated(active) > log.size + 64 * 1024  # blocks reserved past the end
    for _ in range(35):
        log.append(batch)
    sealed = log.segments[0]
    assert len(log.segments) == 2 and sealed.size == 40 * len(batch)
    # The sealed segment was trimmed to its data; reading it is unaffected.
    assert _allocated(sealed.log_path) < sealed.size + 64 * 1024
    assert [b for b, _, _ in split_batches(log.read(0, 10**8).read())][:3] == [0, 1, 2]
    # A crash (no close) leaves a reservation behind; reopening gives it back.
    active = log.active_segment.log_path
    crashed = PartitionLog.open(tmp_path / "t-0", config)
    assert crashed.log_end_offset == 45
    assert _allocated(active) < os.stat(active).st_size + 64 * 1024
    crashed.append(batch)
    crashed.close()
    assert _allocated(active) < os.stat(active).st_size + 64 * 1024
    reopened = PartitionLog.open(tmp_path / "t-0", config)
    assert reopened.log_end_offset == 46
    assert [b for b, _, _ in split_batches(reopened.read(40, 10**8).read())] == list(range(40, 46))
    reopened.close()


def test_log_works_without_reservation(tmp_path, monkeypatch):
    monkeypatch.setattr(prealloc, "_fallocate", None)
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=4000))
    for i in range(30):
        assert log.append(value_batch([b"%d" % i * 50])).first_offset == i
    assert len(log.segments) > 1
    for seg in log.segments:
        assert os.stat(seg.log_path).st_size == seg.size
    log.close()


@pytest.mark.parametrize("errno_value", ["ENOSPC", "EOPNOTSUPP"])
def test_a_refused_reservation_never_fails_an_append(tmp_path, monkeypatch, errno_value):
    import ctypes
    import errno

    code = getattr(errno, errno_value)

    def failing(fd, mode, offset, length):
        ctypes.set_errno(code)
        return -1

    monkeypatch.setattr(prealloc, "_fallocate", failing)
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    for i in range(20):
        assert log.append(value_batch([b"x" * 20000])).first_offset == i
    assert log.log_end_offset == 20
    log.close()


def test_reopening_after_a_clean_close_leaves_the_files_untouched(tmp_path):
    """Only a crash leaves reserved blocks behind; a clean reopen must not touch the segment
    (its mtime stands in for timestamps in time-based retention of timestamp-less segments)."""
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    for _ in range(5):
        log.append(value_batch([b"x" * 5000]))
    log.close()
    path = log.segments[-1].log_path
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    reopened = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert os.stat(path).st_mtime_ns == 1_000_000_000_000_000_000
    assert reopened.log_end_offset == 5
    reopened.close()
