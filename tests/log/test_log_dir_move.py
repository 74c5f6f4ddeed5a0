"""LogManager.move between log dirs, and the repair at load of a move a crash interrupted."""

from __future__ import annotations

import shutil

import pytest

from kbroker.log import LogConfig
from kbroker.log.dir_move import FUTURE_DIR_SUFFIX, MOVE_COMPLETE
from kbroker.log.log_manager import LogManager
from kbroker_protocol.records import Record, build_batch

CONFIG = LogConfig(segment_bytes=4096)


def write(log, n):
    for i in range(n):
        log.append(build_batch([Record(key=None, value=b"r%d" % i + b"x" * 300, timestamp=1)]))


def manager(tmp_path):
    return LogManager([tmp_path / "a", tmp_path / "b"], CONFIG)


def test_move_keeps_every_record_and_segment(tmp_path):
    m = manager(tmp_path)
    log = m.get_or_create("t", 0, CONFIG)
    write(log, 40)  # several segments
    source = log.directory.parent
    dest = next(d for d in m.log_dirs if d != source)
    end = log.log_end_offset
    moved = m.move("t", 0, dest)
    assert moved.directory == dest / "t-0"
    assert moved.log_end_offset == end and moved.log_start_offset == 0
    assert not (source / "t-0").exists()
    write(moved, 5)
    assert moved.log_end_offset == end + 5
    m.close()
    again = manager(tmp_path)
    assert again.get("t", 0).directory == dest / "t-0"
    assert again.get("t", 0).log_end_offset == end + 5
    again.close()


def test_move_to_an_unknown_dir_is_refused(tmp_path):
    m = manager(tmp_path)
    m.get_or_create("t", 0, CONFIG)
    with pytest.raises(ValueError):
        m.move("t", 0, tmp_path / "c")
    with pytest.raises(KeyError):
        m.move("t", 1, m.log_dirs[0])
    m.close()


def _crash_copy(tmp_path, *, marker: bool, old_gone: bool):
    """A move stopped after the copy: with or without its completion marker, with or without the
    old directory renamed for deletion."""
    m = manager(tmp_path)
    log = m.get_or_create("t", 0, CONFIG)
    write(log, 10)
    source = log.directory
    dest = next(d for d in m.log_dirs if d != source.parent)
    m.close()
    future = dest / f"t-0.{'ab' * 16}{FUTURE_DIR_SUFFIX}"
    shutil.copytree(source, future)
    if marker:
        (future / MOVE_COMPLETE).touch()
    if old_gone:
        source.rename(source.with_name(f"t-0.{'cd' * 16}-delete"))
    return source, dest, future


@pytest.mark.parametrize("marker", [True, False])
def test_a_future_copy_is_dropped_while_the_old_log_is_live(tmp_path, marker):
    source, _dest, future = _crash_copy(tmp_path, marker=marker, old_gone=False)
    m = manager(tmp_path)
    assert m.get("t", 0).directory == source
    assert m.get("t", 0).log_end_offset == 10
    m.close()
    assert not future.exists()


def test_a_complete_copy_replaces_the_deleted_old_log(tmp_path):
    _source, dest, future = _crash_copy(tmp_path, marker=True, old_gone=True)
    m = manager(tmp_path)
    assert m.get("t", 0).directory == dest / "t-0"
    assert m.get("t", 0).log_end_offset == 10
    assert not (dest / "t-0" / MOVE_COMPLETE).exists()
    m.close()
    assert not future.exists()


def test_offline_dir_serves_old_partitions_offline_and_new_ones_elsewhere(tmp_path):
    from kbroker.log import LogCorruptedError
    from kbroker.log.log_manager import LogDirOfflineError

    (tmp_path / "b").write_text("a failed disk")
    m = manager(tmp_path)
    assert m.offline_dirs == [tmp_path / "b"]
    old = m.get_or_create("t", 0, CONFIG, new=False)
    assert old.offline is not None
    with pytest.raises(LogCorruptedError):
        write(old, 1)
    fresh = m.get_or_create("t", 1, CONFIG)
    assert fresh.directory == tmp_path / "a" / "t-1"
    assert m.create_logs([("u", 0), ("u", 1)], CONFIG) == [("u", 0), ("u", 1)]
    assert {m.get("u", i).directory.parent for i in range(2)} == {tmp_path / "a"}
    with pytest.raises(LogDirOfflineError):
        m.move("t", 1, tmp_path / "b")
    m.close()


def test_every_dir_offline_is_refused(tmp_path):
    from kbroker.log.log_manager import LogDirOfflineError

    (tmp_path / "a").write_text("x")
    (tmp_path / "b").write_text("x")
    with pytest.raises(LogDirOfflineError):
        manager(tmp_path)


def test_a_failed_copy_reopens_the_log_where_it_was(tmp_path, monkeypatch):
    """The log is served again from its dir with what only memory held (high watermark, roll
    listener), and a later move succeeds."""
    import errno

    from kbroker.log import dir_move

    m = manager(tmp_path)
    log = m.get_or_create("t", 0, CONFIG)
    write(log, 20)
    log.high_watermark = 15
    rolls: list[int] = []

    def listener(base_offset):
        rolls.append(base_offset)
        return None

    log.roll_listener = listener
    source = log.directory
    dest = next(d for d in m.log_dirs if d != source.parent)

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dir_move, "copy_to_future", full)
    with pytest.raises(OSError):
        m.move("t", 0, dest)
    monkeypatch.undo()
    reopened = m.get("t", 0)
    assert reopened is not log and reopened.directory == source
    assert (reopened.log_end_offset, reopened.high_watermark) == (20, 15)
    assert reopened.roll_listener is listener
    rolls.clear()
    write(reopened, 20)  # appends go on, rolls told to the listener
    assert reopened.log_end_offset == 40 and rolls
    assert not list(dest.glob("*" + FUTURE_DIR_SUFFIX))  # the partial copy is gone
    moved = m.move("t", 0, dest)
    assert moved.directory == dest / "t-0" and moved.log_end_offset == 40
    assert moved.high_watermark == 15 and moved.roll_listener is listener
    m.close()


def test_files_removed_outside_the_log_lock_during_the_copy(tmp_path, monkeypatch):
    """Retention drops segments under the log lock and unlinks their files after it: a move
    copying meanwhile leaves out what is gone when its turn comes (and what opening removes)."""
    import os

    m = manager(tmp_path)
    log = m.get_or_create("t", 0, CONFIG)
    write(log, 40)
    log.high_watermark = 40
    source = log.directory
    with log.lock:  # retention's first step (the segments below 20 leave the log)
        log._log_start_offset = 20
        doomed = log._remove_segments_below(20)
    assert doomed
    (source / "00000000000000000000.snapshot.tmp").write_bytes(b"half")  # a write under way
    real_scandir = os.scandir
    unlinked: list[int] = []

    def scandir(path="."):
        listing = real_scandir(path)
        if isinstance(path, int) or os.fspath(path) != os.fspath(source) or unlinked:
            return listing
        with listing:
            entries = list(listing)
        log._delete_segments(doomed)  # ... its second step, between the listing and the copies
        unlinked.append(len(doomed))

        class Listing:
            def __enter__(self):
                return iter(entries)

            def __exit__(self, *exc):
                return None

            def __iter__(self):
                return iter(entries)

        return Listing()

    monkeypatch.setattr(os, "scandir", scandir)
    dest = next(d for d in m.log_dirs if d != source.parent)
    moved = m.move("t", 0, dest)
    monkeypatch.undo()
    assert unlinked
    assert moved.directory == dest / "t-0"
    assert (moved.log_start_offset, moved.log_end_offset) == (20, 40)
    assert not [p.name for p in moved.directory.iterdir() if p.name.endswith((".deleted", ".tmp"))]
    first = doomed[0].base_offset
    assert not (moved.directory / f"{first:020d}.index").exists()
    m.close()


def test_a_move_waits_for_a_producer_snapshot_under_way(tmp_path):
    """What a roll listener returns (a producer snapshot) writes into the directory outside the
    log lock: a move's close waits for it, so the copy has the file it wrote."""
    import threading

    from waiting import wait_until

    from kbroker.log.log_state import write_file_atomically

    m = manager(tmp_path)
    log = m.get_or_create("t", 0, CONFIG)
    started, release, close_waits = threading.Event(), threading.Event(), threading.Event()
    mover: list[threading.Thread] = []

    def snapshot():
        started.set()
        release.wait()
        write_file_atomically(log.directory / "00000000000000000001.snapshot", b"state")

    log.roll_listener = lambda base_offset: snapshot
    completions: list = []
    log.roll_scheduler = completions.append
    write(log, 40)  # rolls
    assert completions
    worker = threading.Thread(target=completions[0])  # (the roll worker)
    worker.start()
    started.wait()

    class Watched:  # the lock a close takes to wait for the write: tells when the move waits on it
        def __init__(self, lock):
            self.lock = lock

        def __enter__(self):
            if mover and threading.current_thread() is mover[0]:
                close_waits.set()
            return self.lock.__enter__()

        def __exit__(self, *exc):
            return self.lock.__exit__(*exc)

    log._after_sync_lock = Watched(log._after_sync_lock)
    dest = next(d for d in m.log_dirs if d != log.directory.parent)
    result: list = []
    mover.append(threading.Thread(target=lambda: result.append(m.move("t", 0, dest))))
    mover[0].start()
    wait_until(lambda: close_waits.is_set() or not mover[0].is_alive(), message="the move waits or is done")
    release.set()
    worker.join()
    mover[0].join()
    [moved] = result
    assert (moved.directory / "00000000000000000001.snapshot").read_bytes() == b"state"
    m.close()
