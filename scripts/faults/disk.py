"""Small filesystems for disk-full faults (root needed): a tmpfs mounted as a log dir, filled to its
last block so that the next append there fails with ENOSPC, a real storage error."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILLER = "kbf-filler"


def mount_tmpfs(path: Path, size_mb: int, source: str) -> None:
    """Mount a tmpfs of ``size_mb`` MiB (named ``source`` in /proc/mounts) on the directory ``path``."""
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", source, str(path)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"mounting a {size_mb} MiB tmpfs on {path} failed ({res.returncode}): {res.stderr.strip()}")


def unmount(path: Path) -> None:
    """Detach the filesystem mounted on ``path`` (lazily: a process may still hold files there)."""
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextmanager
def small_disk(path: Path, size_mb: int, source: str) -> Iterator[Path]:
    """The directory ``path`` (made) with a tmpfs of ``size_mb`` MiB mounted on it, unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    mount_tmpfs(path, size_mb, source)
    try:
        yield path
    finally:
        unmount(path)


def fill(directory: Path, name: str = FILLER) -> int:
    """Fill the filesystem holding ``directory`` with the file ``name`` there, to the last block
    (smaller and smaller writes until each fails); the bytes written."""
    written = 0
    fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            chunk = b"\0" * size
            try:
                while True:
                    written += os.write(fd, chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    return written
