"""The log layer's descriptor budget (kbroker/log/fd_budget.py): an LRU of open segment files.

Descriptors are counted in /proc/self/fd (the files under the test's directory), so these tests
show what the process really holds, not only the budget's own bookkeeping.
"""

from __future__ import annotations

import errno
import gc
import os
from pathlib import Path

import pytest
from log_batches import value_batch

from kbroker.log import LogConfig, PartitionLog
from kbroker.log import fd_budget as fd_budget_module
from kbroker.log.fd_budget import BUDGET
from kbroker_protocol.records import iter_records

# Small segments: a roll every few batches.
SMALL = LogConfig(segment_bytes=600, index_interval_bytes=100)


def open_files_under(directory: Path) -> list[str]:
    """Paths under ``directory`` this process holds a descriptor on."""
    prefix = str(directory)
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith(prefix):
            found.append(target)
    return found


@pytest.fixture
def budget():
    saved = BUDGET.capacity
    BUDGET.resize(4)
    gc.collect()  # slices of earlier tests' reads
    with BUDGET._lock:  # files other tests left open would take part in the LRU order
        BUDGET._release_to(0, second_chance=False)
    yield BUDGET
    BUDGET.resize(saved)


def fill(log: PartitionLog, count: int) -> list[bytes]:
    values = [f"value-{i:04d}".encode() * 10 for i in range(count)]
    for value in values:
        log.append(value_batch([value]))
    return values


def read_values(log: PartitionLog, start: int = 0) -> list[bytes]:
    out = []
    for _header, data in log.iter_batches(start):
        out.extend(bytes(r.value) for r in iter_records(data))
    return out


def test_many_segments_hold_at_most_the_budget(tmp_path, budget):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    values = fill(log, 60)
    assert len(log.segments) > 10
    # Sealed segments were released as the log rolled: the process holds no more than the budget
    # (index files hold none between writes).
    held = open_files_under(tmp_path)
    assert len(held) <= 4, held
    assert all(path.endswith(".log") for path in held)
    # Everything stays readable from offset 0: released segment files are reopened on read.
    reopens = budget.reopens
    assert read_values(log) == values
    assert budget.reopens > reopens
    # One read spanning every segment held them all (its slices); they go once it is done.
    budget.trim()
    assert len(open_files_under(tmp_path)) <= 4
    log.close()
    assert open_files_under(tmp_path) == []


def test_many_partitions_hold_at_most_the_budget(tmp_path, budget):
    logs = [PartitionLog.open(tmp_path / f"t-{i}", SMALL) for i in range(20)]
    for log in logs:
        log.append(value_batch([b"x" * 50]))
    assert len(open_files_under(tmp_path)) <= 4
    # An active segment whose file was released is reopened by the next append.
    for i, log in enumerate(logs):
        log.append(value_batch([f"second-{i}".encode()]))
        log.flush()
    assert len(open_files_under(tmp_path)) <= 4
    for i, log in enumerate(logs):
        assert read_values(log) == [b"x" * 50, f"second-{i}".encode()]
    for log in logs:
        log.close()
    # Closed cleanly and reopened: the data is all there.
    reopened = PartitionLog.open(tmp_path / "t-7", SMALL)
    assert read_values(reopened) == [b"x" * 50, b"second-7"]
    reopened.close()


def test_a_file_in_use_by_a_reader_is_not_released(tmp_path, budget):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    values = fill(log, 40)
    first = log.segments[0]
    result = log.read(0, 100)  # a FileSlice of the first segment, as a pending sendfile holds it
    assert result.slices and budget.is_open(first)
    expected = result.read()
    # Reading everything else cycles every other segment through the budget.
    assert read_values(log, log.segments[1].base_offset) == values[first.next_offset :]
    budget.resize(1)
    assert budget.is_open(first) and first.file is result.slices[0].file
    assert result.read() == expected
    del result
    # No longer in use: the next files opened push it out.
    assert read_values(log, log.segments[1].base_offset) == values[first.next_offset :]
    budget.trim()
    assert not budget.is_open(first) and first.file is None
    assert read_values(log) == values
    log.close()


def test_a_released_file_held_by_a_slice_stays_readable(tmp_path, budget):
    """Even a release forced while a slice is out (the skip above bypassed) leaves the slice's
    descriptor open: it closes only when the last reference goes."""
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    fill(log, 30)
    seg = log.segments[0]
    result = log.read(0, 100)
    expected = result.read()
    with budget._lock:
        del budget._open[seg]
        seg.file = None
    assert result.read() == expected
    fd = result.slices[0].file.fileno()
    target = os.readlink(f"/proc/self/fd/{fd}")
    del result
    assert not os.path.exists(f"/proc/self/fd/{fd}") or os.readlink(f"/proc/self/fd/{fd}") != target
    log.close()


def test_recently_used_files_get_a_second_chance(tmp_path, budget):
    budget.resize(4 + len(budget))  # (room for files still in use by earlier tests, if any)
    logs = [PartitionLog.open(tmp_path / f"t-{i}", SMALL) for i in range(4)]
    # All four are open (budget 4); t-0 is used again, then a fifth file comes in.
    for log in logs:
        log.append(value_batch([b"a"]))
    for log in logs[1:]:
        log.segments[-1].used = False
    logs[0].append(value_batch([b"b"]))
    fifth = PartitionLog.open(tmp_path / "t-4", SMALL)  # (a new log opens no file until written)
    fifth.append(value_batch([b"c"]))
    assert budget.is_open(logs[0].segments[-1])
    assert not budget.is_open(logs[1].segments[-1])
    for log in [*logs, fifth]:
        log.close()


def test_running_out_of_descriptors_releases_files_and_lowers_the_budget(tmp_path, budget, monkeypatch):
    budget.resize(10)
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    values = fill(log, 60)
    held = len(budget)
    assert held == 10
    real_open = os.open
    failures = []

    def exhausted_once(path, flags, mode=0o777):
        if not failures:
            failures.append(path)
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, flags, mode)

    monkeypatch.setattr(fd_budget_module.os, "open", exhausted_once)
    assert read_values(log) == values  # the reopen failed once, files were released, it retried
    assert failures
    assert budget.capacity == held - held // 2
    monkeypatch.undo()
    log.close()


def test_exhaustion_with_nothing_to_release_is_raised(tmp_path, budget, monkeypatch):
    log = PartitionLog.open(tmp_path / "t-0", SMALL)
    log.close()
    BUDGET.resize(1)
    # Nothing of this test is open now; the only open file would be the new segment's.
    with BUDGET._lock:
        for seg in list(BUDGET._open):
            BUDGET._open.pop(seg)
            seg.file = None

    def exhausted(path, flags, mode=0o777):
        raise OSError(errno.EMFILE, "Too many open files")

    fresh = PartitionLog.open(tmp_path / "t-1", SMALL)  # (its segment file comes with the first write)
    monkeypatch.setattr(fd_budget_module.os, "open", exhausted)
    with pytest.raises(OSError) as info:
        fresh.append(value_batch([b"a"]))
    assert info.value.errno == errno.EMFILE
    assert fresh.log_end_offset == 0
