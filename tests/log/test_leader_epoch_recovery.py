"""Opening a partition log's leader epoch cache from a missing, damaged, stale or half-written
leader-epoch-checkpoint file, recovery, a model of appends, truncations and reopenings, and a writer
killed at an arbitrary point."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from leader_epoch_helpers import CONFIG, check_consistent, epoch_log, epochs_from_batches, three
from log_batches import value_batch

from kbroker.log import LogConfig, PartitionLog
from kbroker.log.leader_epoch import (
    CHECKPOINT_FILE,
    read_checkpoint_file,
    write_checkpoint_file,
)

# -- opening: a missing, damaged, stale or half-written file --------------------------------------


@pytest.mark.parametrize("damage", [
    pytest.param(None, id="missing"),
    pytest.param(b"0\n3\n0 0\n1 6\n", id="cut-short"),
    pytest.param(b"0\n3\n0 0\n1 6\n3", id="cut-inside-a-line"),
    pytest.param(b"\x00" * 16, id="zeroed"),
    pytest.param(b"0\n2\n3 0\n1 6\n", id="not-monotonic"),
    pytest.param(b"7\n1\n0 0\n", id="unknown-version"),
])
@pytest.mark.parametrize("clean", [True, False])
def test_open_rebuilds_a_missing_or_damaged_file(tmp_path, damage, clean):
    log = epoch_log(tmp_path)
    log.close(clean=clean)
    path = tmp_path / "t-0" / CHECKPOINT_FILE
    if damage is None:
        path.unlink()
    else:
        path.write_bytes(damage)
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert log.leader_epochs.entries() == [(0, 0), (1, 6), (3, 9)]
    assert path.read_bytes() == b"0\n3\n0 0\n1 6\n3 9\n"
    check_consistent(log)
    log.close()


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param(b"", [], id="empty-file-is-an-empty-cache"),
    pytest.param(b"0\n3\n0 0\n1 6\n3 9", [(0, 0), (1, 6), (3, 9)], id="no-final-newline"),
    pytest.param(b"0\n1\n9 0\n", [(9, 0)], id="wrong-but-well-formed"),
])
def test_open_trusts_a_well_formed_file_after_a_clean_shutdown(tmp_path, data, expected):
    # As Kafka: only the format is checked, and the log is not read again after a clean shutdown.
    log = epoch_log(tmp_path)
    log.close()
    (tmp_path / "t-0" / CHECKPOINT_FILE).write_bytes(data)
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert log.leader_epochs.entries() == expected
    log.close()


def test_crash_between_tmp_write_and_rename_keeps_the_old_file(tmp_path):
    log = epoch_log(tmp_path)
    log.close(clean=False)
    directory = tmp_path / "t-0"
    tmp = directory / (CHECKPOINT_FILE + ".tmp")
    tmp.write_bytes(b"0\n1\n7 0\n")  # a newer write that never got renamed
    log = PartitionLog.open(directory, CONFIG)
    assert not tmp.exists()
    assert log.leader_epochs.entries() == [(0, 0), (1, 6), (3, 9)]
    check_consistent(log)
    log.close()


def test_write_is_atomic_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_FILE
    write_checkpoint_file(path, [(1, 5)])

    def crash(*_args):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_checkpoint_file(path, [(1, 5), (2, 9)])
    assert read_checkpoint_file(path) == [(1, 5)]


def test_open_cuts_a_stale_file_to_the_log(tmp_path):
    # A crash after the log was cut but before the file was rewritten (or entries past data lost).
    log = epoch_log(tmp_path)
    log.close()
    (tmp_path / "t-0" / CHECKPOINT_FILE).write_bytes(b"0\n5\n0 0\n1 6\n3 9\n4 18\n6 30\n")
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert log.leader_epochs.entries() == [(0, 0), (1, 6), (3, 9)]
    # As Kafka's truncateFromEndAsyncFlush, the file is rewritten later, but before any batch: a
    # batch of the latest epoch (no new entry) at offset 18 must not meet a file saying 4 starts there.
    log.append(three(), leader_epoch=3)
    check_consistent(log)
    log.close()


def test_unclean_open_adds_epochs_of_recovered_data(tmp_path):
    # The file knows epochs 0 and 1 only; recovery scans the unflushed segment (one segment here)
    # and finds epoch 3, as Kafka's LogSegment.recover does.
    log = epoch_log(tmp_path, LogConfig())
    log.close(clean=False)
    (tmp_path / "t-0" / CHECKPOINT_FILE).write_bytes(b"0\n2\n0 0\n1 6\n")
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert log.leader_epochs.entries() == [(0, 0), (1, 6), (3, 9)]
    check_consistent(log)
    log.close()


def test_new_partition_writes_no_file(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    log.close()
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert not (tmp_path / "t-0" / CHECKPOINT_FILE).exists()
    assert log.leader_epochs.entries() == []
    log.close()


LOG_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 2), st.integers(1, 3)),
        st.tuples(st.just("truncate"), st.integers(0, 30)),
        st.tuples(st.just("reopen"), st.booleans()),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None)
@given(LOG_OPS)
def test_log_model(ops):
    """Appends under rising epochs, truncations at batch boundaries and reopenings (clean or not):
    the cache, its file and the batches always agree."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "t-0"
        log = PartitionLog.open(directory, CONFIG)
        epoch = 0
        try:
            for op in ops:
                if op[0] == "append":
                    epoch += op[1]
                    log.append(value_batch([b"x" * 20] * op[2]), leader_epoch=epoch)
                elif op[0] == "truncate":
                    bases = [h.base_offset for h, _ in log.iter_batches()]
                    if bases:
                        log.truncate_to(bases[op[1] % len(bases)])
                        epoch = max(log.leader_epochs.latest_epoch, 0)
                else:
                    log.close(clean=op[1])
                    log = PartitionLog.open(directory, CONFIG)
                assert log.leader_epochs.entries() == epochs_from_batches(log)
                if log.leader_epochs.entries():  # an empty cache may have no file
                    check_consistent(log)
        finally:
            log.close()


# -- a writer killed at an arbitrary point --------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
from log_batches import value_batch
from kbroker.log import LogConfig, PartitionLog
log = PartitionLog.open(Path(sys.argv[1]), LogConfig(segment_bytes=2000, index_interval_bytes=100))
epoch = max(log.leader_epochs.latest_epoch, 0)
for i in range(100_000):
    if i % 3 == 0:
        epoch += 1  # a new leader every third batch: the checkpoint file is rewritten often
    info = log.append(value_batch([b"x" * 30] * (1 + i % 4)), leader_epoch=epoch)
    sys.stdout.write(f"{info.last_offset}\\n")
    sys.stdout.flush()
"""


def run_and_kill(directory: Path, acks: int) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)],
        stdout=subprocess.PIPE, cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(root)])},
    )
    assert proc.stdout is not None
    for n, _line in enumerate(proc.stdout, 1):
        if n >= acks:
            proc.send_signal(signal.SIGKILL)
            break
    proc.stdout.read()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.returncode


@pytest.mark.parametrize("seed", range(2))
def test_killed_writer_leaves_a_cache_that_matches_the_log(tmp_path, seed):
    rng = random.Random(seed)
    directory = tmp_path / "t-0"
    for _ in range(3):
        run_and_kill(directory, rng.randint(5, 60))
        if rng.random() < 0.5:
            # As a power loss could: the unflushed tail of the last segment is partly gone.
            last = sorted(directory.glob("*.log"))[-1]
            os.truncate(last, rng.randint(0, last.stat().st_size))
        log = PartitionLog.open(directory, LogConfig(segment_bytes=2000, index_interval_bytes=100))
        assert log.leader_epochs.entries() == epochs_from_batches(log)
        check_consistent(log)
        log.close()
