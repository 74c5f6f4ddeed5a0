"""LogManager: loading, placement, deletion, maintenance (flush.ms, retention, compaction), shutdown."""

from __future__ import annotations

import dataclasses
import random

from log_batches import make_batch, split_batches, value_batch

from kbroker.log import LogConfig, LogManager
from kbroker.log.batch_records import iter_records
from kbroker_protocol.record_batch import validate_batch


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_loads_existing_partitions_and_places_new_ones_evenly(tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    manager = LogManager(dirs, LogConfig())
    logs = [manager.get_or_create("my-topic", p) for p in range(4)]
    assert sorted(log.directory.parent.name for log in logs) == ["a", "a", "b", "b"]
    for p, log in enumerate(logs):
        log.append(value_batch([b"p%d" % p] * (p + 1)))
    manager.close()
    assert all((log.directory / ".kafka_cleanshutdown").exists() for log in logs)
    manager = LogManager(dirs, LogConfig())
    assert sorted(manager.partitions()) == [("my-topic", p) for p in range(4)]
    assert [manager.get("my-topic", p).log_end_offset for p in range(4)] == [1, 2, 3, 4]
    assert manager.get("my-topic", 9) is None
    manager.close()


def test_get_or_create_updates_config(tmp_path):
    manager = LogManager([tmp_path], LogConfig())
    log = manager.get_or_create("t", 0)
    config = LogConfig(retention_ms=5)
    assert manager.get_or_create("t", 0, config) is log
    assert log.config == config
    manager.update_config("t", LogConfig(retention_ms=6))
    assert log.config.retention_ms == 6
    manager.close()


def test_delete_renames_then_removes(tmp_path):
    manager = LogManager([tmp_path], LogConfig())
    log = manager.get_or_create("gone", 0)
    log.append(value_batch([b"x"]))
    manager.get_or_create("kept", 0)
    assert manager.delete("gone", 0)
    assert not manager.delete("gone", 0)
    assert manager.get("gone", 0) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept-0"]
    manager.close()


def test_leftover_delete_dirs_are_removed_at_start(tmp_path):
    (tmp_path / "t-0.abc-delete").mkdir()
    (tmp_path / "t-0.abc-delete" / "00000000000000000000.log").write_bytes(b"x")
    manager = LogManager([tmp_path], LogConfig())
    assert manager.partitions() == {}
    assert list(tmp_path.iterdir()) == []
    manager.close()


def test_maintenance_flushes_on_flush_ms_and_applies_retention(tmp_path):
    clock = FakeClock()
    config = LogConfig(flush_ms=1000, segment_bytes=300, retention_ms=60_000)
    manager = LogManager([tmp_path], config, clock=clock)
    log = manager.get_or_create("t", 0)
    for _ in range(10):
        log.append(value_batch([b"y" * 80], timestamp=int(clock.now * 1000)))
    log.high_watermark = log.log_end_offset
    unflushed = log.recovery_point
    manager.run_maintenance()
    assert log.recovery_point == unflushed  # flush.ms not reached yet
    clock.now += 1
    manager.run_maintenance()
    assert log.recovery_point == log.log_end_offset
    assert log.log_start_offset == 0
    clock.now += 61
    manager.run_maintenance()
    assert log.log_start_offset == log.active_segment.base_offset > 0
    assert len(log.segments) == 1
    manager.close()


def test_corrupt_partition_loads_offline_and_others_serve(tmp_path):
    manager = LogManager([tmp_path], LogConfig(segment_bytes=300))
    for name in ("good", "bad"):
        log = manager.get_or_create(name, 0)
        for i in range(10):
            log.append(value_batch([b"%s-%d" % (name.encode(), i)] * 5))
    manager.close()
    first = sorted((tmp_path / "bad-0").glob("*.log"))[0]
    raw = bytearray(first.read_bytes())
    raw[70] ^= 0xFF
    first.write_bytes(bytes(raw))
    manager = LogManager([tmp_path], LogConfig(segment_bytes=300), verify="full")
    assert list(manager.offline_partitions()) == [("bad", 0)]
    assert manager.offline_partitions()[("bad", 0)].offline.path == first
    good = manager.get("good", 0)
    assert len(split_batches(good.read(0, 10**6).read())) == 10
    manager.run_maintenance()  # skips the offline log
    manager.close()


def test_background_thread_compacts_and_retains_while_appending(tmp_path):
    config = LogConfig(
        segment_bytes=2000,
        compact=True,
        retention_bytes=30_000,
        retention_ms=-1,
        min_cleanable_dirty_ratio=0.1,
    )
    manager = LogManager([tmp_path], config, maintenance_interval_s=0.001)
    log = manager.get_or_create("c", 0)
    manager.start()
    rng = random.Random(1)
    latest = {}
    rounds_seen = manager.maintenance_rounds
    for i in range(1500):
        key = b"k%d" % rng.randrange(50)
        info = log.append(make_batch([(key, b"v%d" % i, i)]))
        log.high_watermark = log.log_end_offset
        latest[key] = info.first_offset
        if i % 300 == 0:
            # Let some maintenance rounds interleave with the appends.
            assert manager.wait_for_maintenance(manager.maintenance_rounds + 2, timeout=30)
    assert manager.wait_for_maintenance(rounds_seen + 5, timeout=30)
    manager.stop()
    manager.run_maintenance()
    seen = {}
    previous = -1
    for _, _, raw in split_batches(log.read(log.log_start_offset, 10**9).read()):
        validate_batch(raw)
        for r in iter_records(raw):
            assert r.offset > previous
            previous = r.offset
            seen[r.key] = r.offset
    # The latest record of every key that is still in the retained range survives.
    for key, offset in latest.items():
        if offset >= log.log_start_offset:
            assert seen[key] == offset
    assert log.size <= 30_000 + config.segment_bytes + 100
    manager.close()
    reopened = LogManager([tmp_path], config)
    assert reopened.get("c", 0).log_end_offset == 1500
    reopened.close()


def test_manager_loads_with_per_topic_config(tmp_path):
    manager = LogManager([tmp_path], LogConfig())
    manager.get_or_create("t", 0).append(value_batch([b"x"]))
    manager.close()
    special = dataclasses.replace(LogConfig(), retention_ms=1)
    manager = LogManager([tmp_path], LogConfig(), config_for=lambda topic: special)
    assert manager.get("t", 0).config is special
    manager.close()


def test_periodic_checkpoint_skips_unchanged_partitions(tmp_path):
    """A checkpoint round rewrites (and fsyncs) only the partitions whose numbers moved."""
    from kbroker.log import LogConfig, PartitionLog

    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    plog.append(value_batch([b"a", b"b", b"c"]))
    plog.flush()
    plog.checkpoint()
    files = list((tmp_path / "t-0").glob("*checkpoint*"))
    assert files, "the checkpoint was not written"
    for f in files:
        f.write_bytes(f.read_bytes())  # same content; a rewrite by the log would replace the inode
    inodes = {f: f.stat().st_ino for f in files}
    plog.checkpoint()
    assert {f: f.stat().st_ino for f in files} == inodes
    plog.append(value_batch([b"d"]))
    plog.flush()
    plog.checkpoint()
    assert any(f.stat().st_ino != inodes[f] for f in files)
    plog.close()


def _crashed_logs(dirs, partitions: int) -> dict[tuple[str, int], int]:
    """Partitions with 1..n records each, left as a crash leaves them (no clean close); the last
    one's segment gets a torn tail. Returns each partition's log end offset to expect."""
    manager = LogManager(dirs, LogConfig())
    expected = {}
    for p in range(partitions):
        log = manager.get_or_create("t", p)
        for i in range(p % 3 + 1):
            log.append(value_batch([b"r%d-%d" % (p, i)]))
        expected[("t", p)] = p % 3 + 1
    last = manager.get("t", partitions - 1).directory
    for log in manager.partitions().values():
        log.close(clean=False)  # no fsync, no checkpoint, no marker: recovered at the next load
    torn = sorted(last.glob("*.log"))[-1]
    with torn.open("ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x01\x00\x00")  # a batch header cut short
    return expected  # (the torn tail is cut off: the records before it stay)


def test_recovery_threads_open_the_logs_of_a_log_dir_on_that_many_threads(tmp_path, monkeypatch):
    """num.recovery.threads.per.data.dir: a crashed log dir's partitions are opened (recovered)
    by a pool of that many threads, with the same result as one thread."""
    import threading

    dirs = [tmp_path / "a", tmp_path / "b"]
    expected = _crashed_logs(dirs, 12)
    opened_on: list[str] = []
    real_open = LogManager._open_log

    def spy(self, *args, **kwargs):
        opened_on.append(threading.current_thread().name)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(LogManager, "_open_log", spy)
    manager = LogManager(dirs, LogConfig(), recovery_threads=3)
    assert {key: log.log_end_offset for key, log in manager.partitions().items()} == expected
    assert all(log.recovery_point == log.log_end_offset for log in manager.partitions().values())
    assert len(opened_on) == 12
    pool_threads = {name for name in opened_on if name.startswith("log-recovery")}
    assert opened_on.count(threading.current_thread().name) == 0
    assert 1 <= len(pool_threads) <= 3
    manager.close()
    # reloaded on one thread (the caller's): the same partitions, cleanly closed this time
    opened_on.clear()
    manager = LogManager(dirs, LogConfig(), recovery_threads=1)
    assert {key: log.log_end_offset for key, log in manager.partitions().items()} == expected
    assert set(opened_on) == {threading.current_thread().name}
    manager.close()


def test_a_failed_open_on_a_recovery_thread_fails_the_load(tmp_path, monkeypatch):
    import pytest

    _crashed_logs([tmp_path], 6)
    real_open = LogManager._open_log

    def failing(self, directory, *args, **kwargs):
        if directory.name == "t-4":
            raise PermissionError(13, "Permission denied", str(directory))
        return real_open(self, directory, *args, **kwargs)

    monkeypatch.setattr(LogManager, "_open_log", failing)
    with pytest.raises(PermissionError):
        LogManager([tmp_path], LogConfig(), recovery_threads=2)
