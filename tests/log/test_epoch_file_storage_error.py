"""A storage error writing a partition's leader epoch file fails its log dir (Kafka's
LeaderEpochFileCache: an IOException becomes a KafkaStorageException for the dir)."""

from __future__ import annotations

import errno

import pytest

from kbroker.log import dir_failure, leader_epoch
from kbroker.log.config import LogConfig
from kbroker.log.partition_log import PartitionLog
from kbroker_protocol.records import Record, build_batch


def test_becoming_leader_on_a_full_disk_fails_the_log_dir(tmp_path, monkeypatch):
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    failed: list[tuple[str, int]] = []
    handler = lambda d, what, exc: failed.append((what, exc.errno))  # noqa: E731
    dir_failure.register(tmp_path, handler)
    try:
        plog.append(build_batch([Record(value=b"v")]), leader_epoch=0)
        plog.assign_epoch_start(1, plog.log_end_offset)  # the epoch file exists from here on

        def full(path, entries):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(leader_epoch, "write_checkpoint_file", full)
        with pytest.raises(OSError):
            plog.assign_epoch_start(2, plog.log_end_offset)
        with pytest.raises(OSError):
            plog.truncate_to(0)
    finally:
        dir_failure.unregister(tmp_path, handler)
        plog.close()
    assert failed == [("writing the leader epochs of t-0", errno.ENOSPC), ("truncating t-0", errno.ENOSPC)]
