"""Kill a flush-per-message writer with SIGKILL at seeded random points; nothing acknowledged is lost.

The writer prints each acknowledged batch after `append` returns. The test kills it after a seeded
random number of acknowledgements (so the kill lands at an arbitrary point of a later append), then
opens the log and checks: every acknowledged batch is there, byte for byte, offsets are contiguous
from 0, and every stored batch is whole with a valid CRC. The next round appends to the same log.
Every other round also cuts the last segment somewhere after the last acknowledged batch, as a
power loss could, so recovery has torn batches to remove.

A process kill keeps the page cache, so the test runs on tmpfs when there is one: fsync is then
free and the test fast, and what it checks (no acknowledged batch lost, no partial batch visible
after recovery) does not depend on the file system.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from log_batches import split_batches
from log_crash_writer import CONFIG, batch_for

from kbroker.log import PartitionLog
from kbroker_protocol.record_batch import validate_batch

WRITER = Path(__file__).with_name("log_crash_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def run_and_kill(directory: Path, acks_before_kill: int) -> list[tuple[int, int]]:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(directory)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    acked = []
    assert proc.stdout is not None
    for line in proc.stdout:
        first, last = map(int, line.split())
        acked.append((first, last))
        if len(acked) >= acks_before_kill:
            proc.send_signal(signal.SIGKILL)
            break
    # Lines already in the pipe were printed after append returned: they are acknowledged too.
    for line in proc.stdout:
        if line.endswith(b"\n"):
            acked.append(tuple(map(int, line.split())))
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    return acked


def lose_unflushed_tail(directory: Path, last_acked: int, rng: random.Random) -> None:
    """Cut the last segment somewhere after the last acknowledged batch, as a power loss could.

    Only bytes that were never acknowledged (so maybe never fsynced) go; the cut usually lands
    inside a batch, leaving a torn one for recovery to remove.
    """
    last = sorted(directory.glob("*.log"))[-1]
    data = last.read_bytes()
    pos = 0
    keep = 0
    while pos + 12 <= len(data):
        base = int.from_bytes(data[pos : pos + 8], "big", signed=True)
        size = int.from_bytes(data[pos + 8 : pos + 12], "big", signed=True) + 12
        if base <= last_acked:
            keep = pos + size
        pos += size
    if keep < len(data):
        os.truncate(last, rng.randint(keep, len(data) - 1))


def reopened_with_every_acked_batch(directory: Path, all_acked: list[tuple[int, int]], round_: int) -> PartitionLog:
    """The log reopened (recovered): online, its batches contiguous from offset 0, each whole with a
    valid CRC and the bytes written, and every acknowledged (base, last) among them."""
    log = PartitionLog.open(directory, CONFIG)
    assert log.offline is None
    stored = split_batches(log.read(0, 10**9).read()) if log.log_end_offset else []
    expected_next = 0
    for base, last, raw in stored:
        assert base == expected_next
        validate_batch(raw)
        assert raw == batch_for(base)
        expected_next = last + 1
    assert expected_next == log.log_end_offset
    ranges = {(base, last) for base, last, _ in stored}
    missing = [a for a in all_acked if a not in ranges]
    assert not missing, (round_, missing[:5])
    return log


def test_acknowledged_batches_survive_sigkill(tmp_path):
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="crash-", dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    try:
        run_rounds(root / "crash-0")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_rounds(directory: Path) -> None:
    rng = random.Random(20261125)
    all_acked: list[tuple[int, int]] = []
    rounds = 24
    for round_ in range(rounds):
        all_acked += run_and_kill(directory, rng.randint(1, 60))
        if round_ % 2:
            lose_unflushed_tail(directory, max((last for _, last in all_acked), default=-1), rng)
        log = reopened_with_every_acked_batch(directory, all_acked, round_)
        # Alternate: the next writer starts after a clean close or after an unclean one.
        log.close(clean=round_ % 2 == 0)
    assert len(all_acked) >= rounds


GROUP_WRITER = Path(__file__).with_name("log_group_writer.py")


def run_group_and_kill(directory: Path, acks_before_kill: int, producers: int) -> tuple[list[tuple[int, int]], dict, int]:
    """Run the group-commit writer until `acks_before_kill` acknowledgements, SIGKILL it; returns
    the acknowledged batches, per segment file the largest size an fdatasync has covered, and the
    number of group-commit fsyncs those acknowledgements took."""
    proc = subprocess.Popen(
        [sys.executable, str(GROUP_WRITER), str(directory), str(producers)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    acked: list[tuple[int, int]] = []
    synced: dict[str, int] = {}
    fsyncs = 0
    assert proc.stdout is not None
    killed = False
    for line in proc.stdout:
        if not line.endswith(b"\n"):
            continue
        kind, *fields = line.split()
        if kind == b"A":
            acked.append((int(fields[0]), int(fields[1])))
            fsyncs = int(fields[2])
        else:
            path, size = fields[0].decode(), int(fields[1])
            synced[path] = max(synced.get(path, 0), size)
        if not killed and len(acked) >= acks_before_kill:
            proc.send_signal(signal.SIGKILL)
            killed = True
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    return acked, synced, fsyncs


def test_group_commit_acknowledges_only_what_an_fsync_covered(tmp_path):
    """Group commit (kbroker/log/group_commit.py), 8 concurrent producers, flush.messages=1: after a
    SIGKILL the active segment loses everything past what an fdatasync had covered (a power loss
    at its worst, or at a random point past it) and still every acknowledged batch is there."""
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="crash-", dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    directory = root / "group-0"
    rng = random.Random(20261206)
    all_acked: list[tuple[int, int]] = []
    fsyncs = 0
    try:
        for round_ in range(6):
            acked, synced, n = run_group_and_kill(directory, rng.randint(8, 80), producers=8)
            fsyncs += n
            all_acked += acked
            last = sorted(directory.glob("*.log"))[-1]
            floor = synced.get(str(last), 0)
            size = last.stat().st_size
            # Every other round: exactly the fsynced bytes stay; else a random cut past them.
            os.truncate(last, floor if round_ % 2 else rng.randint(floor, size))
            log = reopened_with_every_acked_batch(directory, all_acked, round_)
            log.close(clean=round_ % 2 == 0)
        assert len(all_acked) >= 6 * 8
        # The acknowledgements shared fsyncs: eight producers wait on each one.
        assert fsyncs < len(all_acked) / 2, (fsyncs, len(all_acked))
    finally:
        shutil.rmtree(root, ignore_errors=True)
