"""The file steps of moving a partition's log to another log dir (AlterReplicaLogDirs).

The closed log is copied to ``<dest>/<name>.<id>-future`` with a ``move-complete`` marker once
fsynced (:func:`copy_to_future`), the old directory is renamed for deletion, then the copy takes the
partition's name (:func:`swap_in`). A crash in between is repaired at load
(:func:`finish_interrupted`): a future copy without the marker is removed; one with the marker
replaces a partition that has no live directory any more, and is removed when the old one is still
live. `LogManager.move` holds the locks and reopens the log around these steps.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from .log_state import LEFTOVER_SUFFIXES, fsync_dir
from .partition_log import delete_dir_name

FUTURE_DIR_SUFFIX = "-future"
MOVE_COMPLETE = "move-complete"


def copy_to_future(source: Path, dest: Path) -> Path:
    """Copy the closed log at ``source`` into a new future directory in ``dest``, every file and
    both directories fsynced, the marker last; the future directory. On an OSError the partial copy
    is removed and the error raised (the source is untouched).

    A closed log's files change no more, but threads that dropped files from it before it closed
    may still remove them (retention and the cleaner unlink outside the log lock), and the cleaner
    may still be writing its output: files that opening removes (``.cleaned``, ``.deleted``,
    ``.tmp``) are not copied, and a file gone when its turn comes is left out."""
    future = dest / f"{source.name}.{uuid.uuid4().hex}{FUTURE_DIR_SUFFIX}"
    try:
        future.mkdir()
        with os.scandir(source) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            if name.endswith(LEFTOVER_SUFFIXES):
                continue
            try:
                shutil.copy2(source / name, future / name)  # (modification times kept, as before)
            except FileNotFoundError as exc:
                if str(exc.filename) != str(source / name):  # (the destination side: an error)
                    raise
                continue  # (removed since the listing: not part of the log any more)
            fd = os.open(future / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        (future / MOVE_COMPLETE).touch()
        fsync_dir(future)
        fsync_dir(dest)
    except OSError:
        shutil.rmtree(future, ignore_errors=True)
        raise
    return future


def swap_in(source: Path, future: Path, dest: Path) -> tuple[Path, Path]:
    """Rename ``source`` for deletion and give the completed ``future`` copy the partition's name in
    ``dest``; (the renamed old directory, to remove later; the partition's new directory)."""
    gone = source.with_name(delete_dir_name(source.name))
    os.replace(source, gone)
    fsync_dir(source.parent)
    target = dest / source.name
    os.replace(future, target)
    (target / MOVE_COMPLETE).unlink()
    fsync_dir(dest)
    return gone, target


def partition_name(future: Path) -> str:
    """The partition directory name a future directory was copied for."""
    return future.name.rsplit(".", 1)[0]


def is_complete(future: Path) -> bool:
    """Whether the copy in ``future`` was finished (its marker written after every fsync)."""
    return (future / MOVE_COMPLETE).exists()


def finish_interrupted(future: Path) -> Path:
    """Give a completed future copy its partition's name (the old directory is gone); the
    partition's directory."""
    target = future.parent / partition_name(future)
    future.rename(target)
    (target / MOVE_COMPLETE).unlink()
    fsync_dir(future.parent)
    return target
