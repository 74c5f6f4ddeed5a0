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
