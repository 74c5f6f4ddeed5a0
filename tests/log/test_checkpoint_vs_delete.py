"""The periodic checkpoint against a partition's deletion (or a close before it).

`PartitionLog.checkpoint` takes its snapshot under the log's lock and writes it outside (the
fsyncs must not hold appends up), on the maintenance thread, while a deletion runs on another. A
snapshot taken before the log was closed must not be written afterwards: not into the directory
the deletion renamed away (a failed write), not into a directory it makes again for a partition
whose directory was never made (a stray directory of a deleted partition, loaded at the next
start), not into the directory of the partition re-created under the same name (its checkpoint
overwritten with the old log's offsets). A write under way when the deletion starts ends first.

The interleavings are forced, not waited for: the deletion runs at the one point where the
checkpoint holds no lock, or the checkpoint's write is held while another thread deletes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import pytest
from log_batches import value_batch

from kbroker.log import LogConfig, PartitionLog, log_state
from kbroker.log.log_state import CHECKPOINT_FILE, read_checkpoint

WAIT_S = 30  # a safety net for a broken run, never reached by a passing one


def stray(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def delete_before_the_write(log: PartitionLog, then: Callable[[], None] = lambda: None) -> None:
    """Make the log's next checkpoint delete it (and run ``then``) between its snapshot and its
    write: the point where a deletion on another thread can come in."""
    store = log._store_checkpoint

    def deleted_first(version: int, data: bytes) -> None:
        log.delete()
        then()
        store(version, data)

    log._store_checkpoint = deleted_first  # type: ignore[method-assign]


def test_a_snapshot_taken_before_the_deletion_is_not_written(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig())
    log.append(value_batch([b"a", b"b"]))
    delete_before_the_write(log)
    log.checkpoint()  # (the renamed directory is gone: writing into it would fail)
    assert stray(tmp_path) == []


def test_a_snapshot_of_a_log_never_made_does_not_make_its_directory_after_the_deletion(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(), lazy_dir=True)
    assert not log.directory_made
    delete_before_the_write(log)
    log.checkpoint()
    assert stray(tmp_path) == []


def test_a_stale_snapshot_does_not_land_in_the_recreated_partition(tmp_path: Path) -> None:
    old = PartitionLog.open(tmp_path / "t-0", LogConfig())
    old.append(value_batch([b"a", b"b", b"c"]))
    old.high_watermark = 3
    old.advance_log_start(2)  # log start 2 (checkpointed)
    old.append(value_batch([b"d"]))
    old.flush()  # recovery point 4: the next snapshot differs from the checkpoint on disk
    recreated: list[PartitionLog] = []
    delete_before_the_write(old, lambda: recreated.append(PartitionLog.open(tmp_path / "t-0", LogConfig())))
    old.checkpoint()
    [new] = recreated
    assert read_checkpoint(tmp_path / "t-0") is None  # the new log has checkpointed nothing yet
    new.close()
    written = read_checkpoint(tmp_path / "t-0")
    assert written is not None
    assert (written.log_start_offset, written.recovery_point) == (0, 0)


class WatchedLock:
    """A log's checkpoint lock that tells when the thread named ``watched`` comes to take it."""

    def __init__(self, inner: threading.Lock, watched: str, arrived: threading.Event) -> None:
        self.inner, self.watched, self.arrived = inner, watched, arrived

    def __enter__(self) -> bool:
        if threading.current_thread().name == self.watched:
            self.arrived.set()
        return self.inner.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.inner.release()


@pytest.mark.parametrize("lazy_dir", [False, True], ids=["made", "never-made"])
def test_a_deletion_waits_for_the_checkpoint_write_under_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            lazy_dir: bool) -> None:
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(), lazy_dir=lazy_dir)
    writing, resume = threading.Event(), threading.Event()
    # Set when the deleting thread has finished, or has come to wait for the checkpoint lock.
    deleter_blocked_or_done = threading.Event()
    log._checkpoint_lock = WatchedLock(log._checkpoint_lock, "deleter", deleter_blocked_or_done)  # type: ignore[assignment]
    write = log_state.write_file_atomically

    def held_write(path: Path, data: bytes) -> None:
        writing.set()
        assert resume.wait(WAIT_S)
        write(path, data)

    monkeypatch.setattr(log_state, "write_file_atomically", held_write)
    errors: list[BaseException] = []

    def run(action: Callable[[], object]) -> Callable[[], None]:
        def body() -> None:
            try:
                action()
            except BaseException as exc:
                errors.append(exc)
            finally:
                if threading.current_thread().name == "deleter":
                    deleter_blocked_or_done.set()
        return body

    checkpointer = threading.Thread(target=run(log.checkpoint), name="checkpointer")
    checkpointer.start()
    assert writing.wait(WAIT_S)  # the snapshot is being written (its directory made)
    assert (tmp_path / "t-0").is_dir()
    deleter = threading.Thread(target=run(log.delete), name="deleter")
    deleter.start()
    assert deleter_blocked_or_done.wait(WAIT_S)
    resume.set()
    checkpointer.join(WAIT_S)
    deleter.join(WAIT_S)
    assert not checkpointer.is_alive() and not deleter.is_alive()
    assert errors == []
    assert stray(tmp_path) == []
    assert not (tmp_path / "t-0" / CHECKPOINT_FILE).exists()
