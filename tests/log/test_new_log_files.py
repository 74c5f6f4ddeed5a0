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


def test_create_logs_makes_one_directory_per_partition_and_no_segment_file(tmp_path):
    manager = LogManager([tmp_path], LogConfig(), maintenance_interval_s=3600)
    try:
        keys = [("topic", p) for p in range(20)]
        assert manager.create_logs(keys, LogConfig()) == keys
        for _, p in keys:
            assert (tmp_path / f"topic-{p}").is_dir()
            assert not (tmp_path / f"topic-{p}" / FIRST).exists()
        assert held_under(tmp_path) == []
        log = manager.get("topic", 7)
        assert log is not None
        log.append(value_batch([b"seven"]))
        assert (tmp_path / "topic-7" / FIRST).exists()
        assert values(log) == [b"seven"]
    finally:
        manager.close()
