"""Sparse offset and time indexes of one segment.

Both indexes are kept in memory (two arrays) and mirrored to an append-only file of fixed-size
big-endian entries, as Kafka lays them out:

* ``.index``: ``relativeOffset i32 | position i32`` — the batch whose base offset is
  ``base + relativeOffset`` starts at byte ``position`` of the ``.log`` file.
* ``.timeindex``: ``timestamp i64 | relativeOffset i32`` — no batch before the one with base
  offset ``base + relativeOffset`` has a timestamp as large as ``timestamp``; timestamps strictly
  increase from entry to entry.

The files are a cache: they are rebuilt from the ``.log`` whenever they are missing, fail the
sanity check in `load`, or follow a segment that needed recovery. New entries are kept in memory
and written out by `persist` (when a segment is sealed, flushed or closed), not one write per
entry on the append path. No descriptor is held between operations: each write opens the file
and closes it again (a broker with many segments would otherwise run out of descriptors, see
fd_budget.py); ``_dirty`` remembers that an fsync is due.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_right
from pathlib import Path

from .fd_budget import BUDGET


class _Index:
    _entry: struct.Struct
    _key_type: str
    _value_type: str

    def __init__(self, path: Path, base_offset: int, max_entries: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max_entries
        self.keys = array(self._key_type)
        self.values = array(self._value_type)
        self._persisted = 0  # entries already in the file
        self._dirty = False  # written since the last fsync

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def is_full(self) -> bool:
        return len(self.keys) >= self.max_entries

    def _write(self, data: bytes, position: int, *, truncate: int | None = None) -> None:
        """Optionally cut the file at ``truncate``, then write ``data`` at ``position``."""
        fd = BUDGET.open_fd(self.path, os.O_WRONLY | os.O_CREAT)
        try:
            if truncate is not None:
                os.ftruncate(fd, truncate)
            if data:
                os.pwrite(fd, data, position)
        finally:
            os.close(fd)
        self._dirty = True

    def _append(self, key: int, value: int) -> None:
        self.keys.append(key)
        self.values.append(value)

    def persist(self) -> None:
        """Write the entries added since the last call to the file."""
        count = len(self.keys)
        if count <= self._persisted:
            return
        entry = self._entry
        data = b"".join(
            entry.pack(k, v) for k, v in zip(self.keys[self._persisted :], self.values[self._persisted :], strict=True)
        )
        self._write(data, self._persisted * entry.size)
        self._persisted = count

    def load_entries(self) -> bool:
        """Read the file into memory; False if it is missing or not a whole number of entries."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        size = self._entry.size
        if len(data) % size:
            return False
        keys = array(self._key_type)
        values = array(self._value_type)
        for key, value in self._entry.iter_unpack(data):
            keys.append(key)
            values.append(value)
        self.keys, self.values = keys, values
        self._persisted = len(keys)
        return True

    def size_on_disk(self) -> int:
        """The file's size (0 if it is missing)."""
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def truncate_entries(self, count: int) -> None:
        """Keep the first ``count`` entries."""
        if count >= len(self.keys):
            return
        del self.keys[count:]
        del self.values[count:]
        if self._persisted > count:
            self._write(b"", 0, truncate=count * self._entry.size)
            self._persisted = count

    def reset(self) -> None:
        """Empty the index (before a rebuild)."""
        self.keys = array(self._key_type)
        self.values = array(self._value_type)
        self._write(b"", 0, truncate=0)
        self._persisted = 0

    def rewrite(self) -> None:
        """Write the in-memory entries to the file in one go (after a rebuild)."""
        data = b"".join(self._entry.pack(k, v) for k, v in zip(self.keys, self.values, strict=True))
        self._write(data, 0, truncate=0)
        self._persisted = len(self.keys)

    def flush(self) -> None:
        self.persist()
        if self._dirty:
            fd = BUDGET.open_fd(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._dirty = False

    def close(self) -> None:
        """Persist what is only in memory (entries stay in memory)."""
        self.persist()

    def rename(self, path: Path) -> None:
        """Rename the file (closing the descriptor first); a missing file is just re-pointed."""
        self.close()
        if self.path.exists():
            os.replace(self.path, path)
        self.path = path


class OffsetIndex(_Index):
    _entry = struct.Struct(">ii")
    _key_type = "i"
    _value_type = "i"

    def append(self, offset: int, position: int) -> None:
        self._append(offset - self.base_offset, position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """``(offset, position)`` of the last entry at or below ``offset``, else the segment start."""
        i = bisect_right(self.keys, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self.keys[i], self.values[i]

    def floor_position(self, position: int) -> int:
        """The largest indexed position at or below ``position`` (0 if none)."""
        i = bisect_right(self.values, position) - 1
        return self.values[i] if i >= 0 else 0

    @property
    def last_position(self) -> int:
        return self.values[-1] if self.values else 0

    def truncate_to(self, offset: int) -> None:
        """Drop the entries for offsets at or above ``offset``."""
        self.truncate_entries(bisect_right(self.keys, offset - self.base_offset - 1))

    def is_sane(self, log_size: int) -> bool:
        keys, values = self.keys, self.values
        if len(keys) > self.max_entries:
            return False
        for i in range(len(keys)):
            if keys[i] < 0 or not 0 <= values[i] < log_size:
                return False
            if i and (keys[i] <= keys[i - 1] or values[i] <= values[i - 1]):
                return False
        return True


class TimeIndex(_Index):
    _entry = struct.Struct(">qi")
    _key_type = "q"
    _value_type = "i"

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add an entry if ``timestamp`` is beyond the last one."""
        if self.keys and timestamp <= self.keys[-1]:
            return
        self._append(timestamp, offset - self.base_offset)

    def lookup(self, timestamp: int) -> int:
        """Offset to start scanning from for the first record with a timestamp >= ``timestamp``.

        That is the offset of the last entry whose timestamp is below ``timestamp`` (every batch
        before it is older), or the segment base when there is none.
        """
        i = bisect_right(self.keys, timestamp - 1) - 1
        if i < 0:
            return self.base_offset
        return self.base_offset + self.values[i]

    @property
    def last_timestamp(self) -> int:
        return self.keys[-1] if self.keys else -1

    def truncate_to(self, offset: int) -> None:
        rel = offset - self.base_offset
        count = len(self.values)
        while count and self.values[count - 1] >= rel:
            count -= 1
        self.truncate_entries(count)

    def is_sane(self, next_offset: int) -> bool:
        keys, values = self.keys, self.values
        if len(keys) > self.max_entries:
            return False
        limit = next_offset - self.base_offset
        for i in range(len(keys)):
            if not 0 <= values[i] < max(limit, 1):
                return False
            if i and (keys[i] <= keys[i - 1] or values[i] < values[i - 1]):
                return False
        return True
