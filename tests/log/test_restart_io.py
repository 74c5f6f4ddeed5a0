"""What opening logs again costs in file writes (issue 23: start-up with 10,000 partitions spent
most of its time in per-partition fsyncs), and that the writes it leaves out lose nothing."""

from __future__ import annotations

import os

from log_batches import make_batch

from kbroker.log import LogConfig, LogManager, PartitionLog
from kbroker.log import append as append_module
from kbroker.log import leader_epoch as leader_epoch_module
from kbroker.log import recovery as recovery_module
from kbroker.log.leader_epoch import CHECKPOINT_FILE, read_checkpoint_file
from kbroker.log.log_state import CLEAN_SHUTDOWN_FILE

CONFIG = LogConfig(segment_bytes=1 << 20)


def batch() -> bytes:
    return make_batch([(b"k", b"v" * 10, 1_000), (b"k", b"w" * 10, 1_001)])


def test_an_empty_partition_led_again_in_its_epoch_writes_no_epoch_file(tmp_path, monkeypatch):
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, CONFIG)
    log.assign_epoch_start(0, 0)
    log.close()
    assert read_checkpoint_file(directory / CHECKPOINT_FILE) == [(0, 0)]
    writes: list[object] = []
    real = leader_epoch_module.write_checkpoint_file
    monkeypatch.setattr(leader_epoch_module, "write_checkpoint_file", lambda p, e: (writes.append(e), real(p, e)))
    again = PartitionLog.open(directory, CONFIG)
    assert again.leader_epochs.entries() == []  # (0, 0) is at the log end: cut, as Kafka does
    again.assign_epoch_start(0, 0)  # a restarted single node leads every partition again
    assert writes == []
    assert again.leader_epochs.entries() == [(0, 0)]
    again.append(batch(), leader_epoch=0)
    assert writes == []
    again.close()
    assert read_checkpoint_file(directory / CHECKPOINT_FILE) == [(0, 0)]


def test_a_new_epoch_after_a_reopen_is_written(tmp_path):
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, CONFIG)
    log.assign_epoch_start(0, 0)
    log.append(batch(), leader_epoch=0)
    log.close()
    again = PartitionLog.open(directory, CONFIG)
    again.assign_epoch_start(1, 2)
    assert read_checkpoint_file(directory / CHECKPOINT_FILE) == [(0, 0), (1, 2)]
    again.close(clean=False)


def test_a_follower_append_rewrites_a_file_cut_at_open(tmp_path):
    # The file says epoch 4 starts at 2, past the log end: opening cuts it from the cache only.
    # A follower then appends a batch of epoch 0 at offset 2 (no new entry): the file must not
    # keep saying epoch 4 starts there.
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, CONFIG)
    log.assign_epoch_start(0, 0)
    log.append(batch(), leader_epoch=0)
    log.close()
    (directory / CHECKPOINT_FILE).write_bytes(b"0\n2\n0 0\n4 2\n")
    again = PartitionLog.open(directory, CONFIG)
    assert again.leader_epochs.entries() == [(0, 0)]
    data = bytearray(make_batch([(b"k", b"x", 1_002)]))
    data[0:8] = (2).to_bytes(8, "big")  # baseOffset 2; partitionLeaderEpoch stays 0 (not in the CRC)
    again.append(bytes(data), assign_offsets=False)
    assert read_checkpoint_file(directory / CHECKPOINT_FILE) == [(0, 0)]
    again.close(clean=False)


def test_a_new_log_is_created_without_reading_its_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(recovery_module.LogRecovery, "_clean_leftovers",
                        lambda self: (_ for _ in ()).throw(AssertionError("scanned a new directory")))
    log = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert log.log_end_offset == 0 and log.leader_epochs.entries() == []
    log.append(batch(), leader_epoch=0)
    log.flush()
    log.close()
    monkeypatch.undo()
    again = PartitionLog.open(tmp_path / "t-0", CONFIG)
    assert again.log_end_offset == 2
    again.close()


def test_the_clean_marker_goes_without_a_directory_fsync_until_the_first_flush(tmp_path, monkeypatch):
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, CONFIG)
    log.append(batch(), leader_epoch=0)
    log.close()
    assert (directory / CLEAN_SHUTDOWN_FILE).exists()
    synced: list[object] = []
    monkeypatch.setattr(recovery_module, "fsync_dir", lambda p: synced.append(p), raising=False)
    monkeypatch.setattr(append_module, "fsync_dir", lambda p: synced.append(p))
    again = PartitionLog.open(directory, CONFIG)
    assert not (directory / CLEAN_SHUTDOWN_FILE).exists()
    assert synced == []
    again.append(batch(), leader_epoch=0)
    again.flush()  # data acknowledged as durable: the marker's removal is made durable first
    assert directory in synced
    again.close(clean=False)


def test_a_log_manager_syncs_the_removed_markers_once(tmp_path, monkeypatch):
    logs = tmp_path / "logs"
    manager = LogManager([logs], CONFIG)
    for p in range(3):
        manager.get_or_create("t", p).append(batch(), leader_epoch=0)
    manager.close()
    calls: list[object] = []
    from kbroker.log import log_manager as log_manager_module

    real = log_manager_module.sync_filesystem
    monkeypatch.setattr(log_manager_module, "sync_filesystem", lambda p: (calls.append(p), real(p)))
    again = LogManager([logs], CONFIG)
    assert calls == [logs]
    for p in range(3):
        log = again.get("t", p)
        assert log is not None and not log._dirs_unsynced
        assert not (log.directory / CLEAN_SHUTDOWN_FILE).exists()
        assert log.log_end_offset == 2
    again.close()
    assert os.path.exists(logs / "t-0" / CLEAN_SHUTDOWN_FILE)


def test_the_periodic_checkpoint_of_an_unchanged_reopened_log_writes_nothing(tmp_path, monkeypatch):
    from kbroker.log import log_state as log_state_module

    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, CONFIG)
    log.append(batch(), leader_epoch=0)
    log.close()
    writes: list[object] = []
    real = log_state_module.write_file_atomically
    monkeypatch.setattr(log_state_module, "write_file_atomically", lambda p, d: (writes.append(p), real(p, d)))
    again = PartitionLog.open(directory, CONFIG)
    again.checkpoint()
    assert writes == []
    again.append(batch(), leader_epoch=0)
    again.flush()
    again.checkpoint()  # the recovery point moved: written
    assert writes == [directory / "log-state.checkpoint"]
    again.close(clean=False)
    assert b"recovery_point 4" in (directory / "log-state.checkpoint").read_bytes()


def test_an_empty_partition_reopened_cleanly_writes_no_index_file(tmp_path):
    directory = tmp_path / "t-0"
    PartitionLog.open(directory, CONFIG).close()
    before = sorted(p.name for p in directory.iterdir())
    again = PartitionLog.open(directory, CONFIG)
    assert sorted(p.name for p in directory.iterdir()) == [n for n in before if n != CLEAN_SHUTDOWN_FILE]
    assert again.log_end_offset == 0
    again.append(batch(), leader_epoch=0)
    again.close()
    third = PartitionLog.open(directory, CONFIG)
    assert third.log_end_offset == 2
    assert [h.base_offset for h, _ in third.iter_batches()] == [0]
    third.close()


def test_stale_index_entries_of_an_empty_segment_are_still_dropped(tmp_path):
    directory = tmp_path / "t-0"
    log = PartitionLog.open(directory, LogConfig(segment_bytes=1 << 20, index_interval_bytes=1))
    for _ in range(3):
        log.append(batch(), leader_epoch=0)
    log.close()
    index = next(directory.glob("*.index"))
    assert index.stat().st_size > 0
    os.truncate(next(directory.glob("*.log")), 0)  # the data is gone, its index entries are not
    again = PartitionLog.open(directory, CONFIG)
    assert again.log_end_offset == 0
    again.append(batch(), leader_epoch=0)
    assert again.log_end_offset == 2
    again.close()
