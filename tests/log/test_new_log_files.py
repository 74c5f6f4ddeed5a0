"""A new partition log costs its directory only: the first segment's ``.log`` file is created by
the first write (issue 23: creating a topic of many partitions made a directory and a file per
partition before committing it). What the log holds and answers is the same either way."""

from __future__ import annotations

import os
from pathlib import Path

from log_batches import value_batch

from kbroker.log import LogConfig, LogManager, PartitionLog
from kbroker_protocol.records import iter_records

FIRST = "00000000000000000000.log"


def held_under(directory: Path) -> list[str]:
    """Files under ``directory`` this process holds a descriptor on."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


def values(log: PartitionLog) -> list[bytes]:
    return [bytes(r.value) for _h, data in log.iter_batches(0) for r in iter_records(data)]


def test_a_new_log_creates_its_segment_file_on_the_first_append(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert (tmp_path / "t-0").is_dir()
    assert not (tmp_path / "t-0" / FIRST).exists()
    assert held_under(tmp_path / "t-0") == []
    assert log.log_end_offset == 0 and log.size == 0
    assert log.read(0, 1000).slices == []
    log.append(value_batch([b"first"]))
    assert (tmp_path / "t-0" / FIRST).stat().st_size > 0
    assert values(log) == [b"first"]
    log.close()
    again = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert values(again) == [b"first"] and again.log_end_offset == 1
    again.close()


def test_a_log_never_written_flushes_closes_and_reopens_empty(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    log.flush()
    log.close()
    assert not (tmp_path / "t-0" / FIRST).exists()
    again = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert again.log_end_offset == 0 and values(again) == []
    again.append(value_batch([b"a", b"b"]))
    again.flush()
    again.close()
    third = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert values(third) == [b"a", b"b"]
    third.close()


def test_a_log_never_written_survives_a_crash(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    del log  # no close: as after kill -9
    again = PartitionLog.open(tmp_path / "t-0", LogConfig())
    assert again.log_end_offset == 0
    again.append(value_batch([b"x"]))
    assert values(again) == [b"x"]
    again.close()


def test_create_logs_makes_no_directory_until_make_dirs_or_a_first_write(tmp_path):
    manager = LogManager([tmp_path], LogConfig(), maintenance_interval_s=3600)
    try:
        keys = [("topic", p) for p in range(20)]
        assert manager.create_logs(keys, LogConfig()) == keys
        assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing made before the commit
        assert held_under(tmp_path) == []
        log = manager.get("topic", 7)
        assert log is not None and not log.directory_made
        assert log.log_end_offset == 0 and log.read(0, 1000).slices == []
        log.append(value_batch([b"seven"]))  # a first write makes its own directory
        assert (tmp_path / "topic-7" / FIRST).exists()
        assert values(log) == [b"seven"]
        manager.make_dirs(keys)  # (the commit: no worker started, so made at once)
        for _, p in keys:
            assert (tmp_path / f"topic-{p}").is_dir()
            assert (tmp_path / f"topic-{p}" / FIRST).exists() == (p == 7)
        assert held_under(tmp_path) == [str(tmp_path / "topic-7" / FIRST)]
    finally:
        manager.close()


def test_make_dirs_runs_on_the_worker_once_started(tmp_path):
    manager = LogManager([tmp_path], LogConfig(), maintenance_interval_s=3600)
    manager.start()
    try:
        keys = [("topic", p) for p in range(5)]
        manager.create_logs(keys, LogConfig())
        manager.make_dirs(keys)
        manager.drain_worker()
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"topic-{p}" for p in range(5)]
    finally:
        manager.close()


def test_a_log_without_its_directory_yet_closes_deletes_and_checkpoints(tmp_path):
    manager = LogManager([tmp_path], LogConfig(), maintenance_interval_s=3600)
    keys = [("t", 0), ("t", 1), ("t", 2)]
    manager.create_logs(keys, LogConfig())
    assert manager.delete("t", 0)  # never made: nothing to rename, nothing left behind
    manager.run_maintenance()
    assert not (tmp_path / "t-0").exists()
    log1 = manager.get("t", 1)
    assert log1 is not None
    log1.checkpoint()  # the periodic checkpoint makes the directory it writes into
    assert (tmp_path / "t-1" / "log-state.checkpoint").exists()
    manager.close()  # a clean close makes the last one, with its clean-shutdown marker
    assert (tmp_path / "t-2" / ".kafka_cleanshutdown").exists()
    again = LogManager([tmp_path], LogConfig(), maintenance_interval_s=3600)
    assert sorted(again.partitions()) == [("t", 1), ("t", 2)]
    again.close()


def test_a_crash_before_the_directory_is_made_loses_nothing_committed_to_it(tmp_path):
    manager = LogManager([tmp_path], LogConfig(), maintenance_interval_s=3600)
    manager.create_logs([("t", 0)], LogConfig())
    log = manager.get("t", 0)
    assert log is not None
    del manager, log  # the process dies before make_dirs: no directory on disk
    assert not (tmp_path / "t-0").exists()
    # At start the broker opens the partitions of the replayed metadata (`new=False`).
    again = LogManager([tmp_path], LogConfig(), maintenance_interval_s=3600)
    reopened = again.get_or_create("t", 0, new=False)
    assert (tmp_path / "t-0").is_dir() and reopened.log_end_offset == 0
    reopened.append(value_batch([b"x"]))
    assert values(reopened) == [b"x"]
    again.close()
