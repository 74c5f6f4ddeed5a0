"""Starting the write-back of the active segment early, so that a roll's fsync is short.

A segment is fsynced when it is rolled (`PartitionLog._roll`), on the thread that appends. With
the default flush policy the page cache may by then hold most of the segment unwritten: the
kernel starts writing dirty pages only after 30 s or past a share of memory, so an fsync at the
end of a 1 GiB segment filled in a few seconds writes about all of it (0.47 s measured on this
machine's virtio disk, far more on slower disks), and every client of the broker waits.

The log manager's maintenance thread therefore asks the kernel, about once a second, to start
writing the data appended since its last call (``sync_file_range(SYNC_FILE_RANGE_WRITE)``: it
queues the write and returns; it waits for nothing and promises no durability). The roll's
fsync then only waits for the last second's data. Durability is unchanged: this is only
earlier work for the disk, and where the call is missing nothing is done.
"""

from __future__ import annotations

import ctypes

from .prealloc import libc_function

SYNC_FILE_RANGE_WRITE = 2
MIN_BYTES = 4 * 1024 * 1024  # smaller amounts are left to the kernel

_sync_file_range = libc_function("sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint])


def supported() -> bool:
    return _sync_file_range is not None


def start(fd: int, offset: int, length: int) -> bool:
    """Queue the write-back of ``[offset, offset + length)``; False if the call is unavailable
    or refused (the data is then written back by the kernel as usual)."""
    if _sync_file_range is None or length <= 0:
        return False
    result: int = _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)  # (restype c_int)
    return result == 0
