"""Group commit (kbroker/log/group_commit.py): one fsync covers every append waiting on it, and no
waiter is released before an fsync that started after its append has returned."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from log_batches import make_batch

from kbroker.log import LogConfig, PartitionLog
from kbroker.log import append as log_append
from kbroker.log.group_commit import GroupCommit

CONFIG = LogConfig(segment_bytes=1 << 20, flush_messages=1)


class GatedSync:
    """os.fdatasync replacement: each call blocks until the test opens its gate, then syncs."""

    def __init__(self) -> None:
        self.calls: list[int] = []  # file size seen at the start of each call
        self.gates: list[threading.Event] = []
        self.started = threading.Semaphore(0)
        self.free = False  # once set, calls go straight through
        self._real = os.fdatasync

    def __call__(self, fd: int) -> None:
        if self.free:
            self._real(fd)
            return
        gate = threading.Event()
        self.gates.append(gate)
        self.calls.append(os.fstat(fd).st_size)
        self.started.release()
        gate.wait(30)
        self._real(fd)

    async def wait_started(self, n: int) -> None:
        for _ in range(n):
            assert await asyncio.to_thread(self.started.acquire, True, 30)


def batch(i: int) -> bytes:
    return make_batch([(b"k%d" % i, b"v" * 100, 1_000 + i)])


async def test_one_fsync_covers_every_append_waiting_on_it(tmp_path, monkeypatch):
    gated = GatedSync()
    monkeypatch.setattr(log_append.os, "fdatasync", gated)
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    commit = GroupCommit(lambda: log)

    info = log.append(batch(0), sync=False)
    assert log.flush_due() and log.recovery_point == 0  # sync=False left the fsync to the caller
    first = commit.wait(info.last_offset + 1)
    await gated.wait_started(1)
    # Appended while that fsync runs: not covered by it.
    later = []
    for i in range(1, 6):
        info = log.append(batch(i), sync=False)
        later.append(commit.wait(info.last_offset + 1))
    await asyncio.sleep(0)
    assert not first.done() and not any(f.done() for f in later)

    gated.gates[0].set()
    await first
    await gated.wait_started(1)  # the next fsync starts at once, for all five
    assert not any(f.done() for f in later)
    assert log.recovery_point == 1
    gated.gates[1].set()
    await asyncio.gather(*later)
    assert commit.fsyncs == 2 and len(gated.calls) == 2
    assert log.recovery_point == log.log_end_offset == 6
    assert gated.calls[1] == os.path.getsize(sorted((tmp_path / "t-0").glob("*.log"))[-1])
    gated.free = True
    log.close()


async def test_an_fsync_error_reaches_every_waiter(tmp_path, monkeypatch):
    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    commit = GroupCommit(lambda: log)
    monkeypatch.setattr(log_append.os, "fdatasync", failing)
    futures = [commit.wait(log.append(batch(i), sync=False).last_offset + 1) for i in range(3)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, OSError) and r.errno == 5 for r in results)
    assert log.recovery_point == 0 and commit.waiting == 0
    monkeypatch.undo()
    await commit.wait(log.log_end_offset)  # a later fsync that works releases later waiters
    assert log.recovery_point == 3
    log.close()


async def test_a_closed_log_fails_its_waiters(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    info = log.append(batch(0), sync=False)
    log.close()
    with pytest.raises(Exception, match="closed"):
        await GroupCommit(lambda: log).wait(info.last_offset + 1)


def test_append_with_sync_fsyncs_before_returning(tmp_path, monkeypatch):
    calls: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(log_append.os, "fdatasync", lambda fd: (calls.append(fd), real(fd)))
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    log.append(batch(0))
    assert len(calls) == 1 and log.recovery_point == 1 and not log.flush_due()
    log.append(batch(1), sync=False)
    assert len(calls) == 1 and log.flush_due()
    log.close()
