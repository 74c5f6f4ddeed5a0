"""Becoming leader of a new partition writes no leader-epoch-checkpoint (and no fsync) at once:
creating 10,000 partitions cost 20,000 fsyncs on the event loop (issue 23). The entry is written
by a clean close; without it a reopened log rebuilds the cache from its batch headers."""

from __future__ import annotations

import os

from log_batches import make_batch

from kbroker.log import LogConfig, PartitionLog
from kbroker.log import leader_epoch as leader_epoch_module

CONFIG = LogConfig(segment_bytes=1 << 20)


def batch() -> bytes:
    return make_batch([(b"k", b"v" * 10, 1_000), (b"k", b"w" * 10, 1_001)])


def test_a_new_leader_writes_no_epoch_file_and_a_crash_loses_no_epoch(tmp_path, monkeypatch):
    fsyncs: list[int] = []
    real = os.fsync
    monkeypatch.setattr(leader_epoch_module.os, "fsync", lambda fd: (fsyncs.append(fd), real(fd)))
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, CONFIG)
    assert log.assign_epoch_start(3, 0)
    assert not (directory / "leader-epoch-checkpoint").exists() and fsyncs == []
    assert log.leader_epochs.entries() == [(3, 0)]
    log.append(batch(), leader_epoch=3)
    log.flush()
    monkeypatch.undo()
    # A crash: the log is never closed; another instance opens the same files.
    again = PartitionLog.open(directory, CONFIG)
    assert again.leader_epochs.entries() == [(3, 0)]
    assert again.leader_epochs.end_offset_for(3, again.log_end_offset) == (3, 2)
    again.close()
    log.close(clean=False)


def test_a_clean_close_writes_the_deferred_epoch(tmp_path):
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, CONFIG)
    log.assign_epoch_start(5, 0)
    log.append(batch(), leader_epoch=5)
    log.close()
    assert (directory / "leader-epoch-checkpoint").read_text() == "0\n1\n5 0\n"
    reopened = PartitionLog.open(directory, CONFIG)
    assert reopened.leader_epochs.entries() == [(5, 0)]
    # The file exists now: the next leadership change writes it at once, as before.
    reopened.assign_epoch_start(6, 2)
    assert (directory / "leader-epoch-checkpoint").read_text() == "0\n2\n5 0\n6 2\n"
    reopened.close()
