"""Durable files of the Raft layer and the metadata log: atomic writes (a temporary file, fsynced,
renamed, the directory fsynced) and the scan of a directory's snapshot files at open. Shared by
``raft/file_log.py``, ``raft/state_store.py`` and ``metadata/metadata_log.py``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomically(directory: str | os.PathLike[str], name: str, data: bytes | bytearray,
                     tmp_name: str | None = None) -> None:
    """Write ``directory/name`` so that a crash leaves the old file or the new one: through
    ``tmp_name`` (default ``name.tmp``), fsynced, renamed over ``name``, the directory fsynced."""
    path = os.path.join(directory, name)
    tmp = os.path.join(directory, tmp_name or name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(directory)


def scan_snapshot_files(directory: str | os.PathLike[str], snapshot_name: re.Pattern[str],
                        unfinished: Callable[[str], bool]) -> list[tuple[int, int, str]]:
    """The snapshot files in ``directory`` as (end offset, epoch, file name), oldest first:
    the files ``snapshot_name`` matches (its groups: end offset, epoch), after deleting those
    ``unfinished`` names (partial writes, snapshots marked for deletion)."""
    found: list[tuple[int, int, str]] = []
    for name in os.listdir(directory):
        if unfinished(name):
            os.unlink(os.path.join(directory, name))
            continue
        m = snapshot_name.match(name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), name))
    found.sort()
    return found
