"""The aborted-transaction index of one segment: ``<base>.txnindex``, as Apache Kafka lays it out.

Each entry is 34 bytes, big-endian::

    version i16 (0) | producerId i64 | firstOffset i64 | lastOffset i64 | lastStableOffset i64

one per transaction aborted by an ABORT marker stored in this segment: ``firstOffset`` is the
first offset of the transaction (possibly in an earlier segment), ``lastOffset`` the offset of
the marker and ``lastStableOffset`` the partition's last stable offset once the transaction was
complete (the first offset of the earliest transaction still open then, or ``lastOffset + 1``).
Entries are appended in marker order, so ``lastOffset`` strictly increases.

The file is created on the first append (a segment without aborted transactions has none). It is
not kept in memory: queries read it, so memory does not grow with the number of aborted
transactions. A file that fails the sanity check in `load` is rebuilt by the partition log from
the segment's batches, never trusted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .fd_budget import BUDGET

logger = logging.getLogger(__name__)

ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = ENTRY.size  # 34
VERSION = 0
_READ_ENTRIES = 2048  # entries per read when scanning a file


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int  # offset of the ABORT marker
    last_stable_offset: int

    def encode(self) -> bytes:
        return ENTRY.pack(VERSION, self.producer_id, self.first_offset, self.last_offset, self.last_stable_offset)


class TransactionIndexError(ValueError):
    """An append out of order, or a file that fails the sanity check."""


class TransactionIndex:
    """The ``.txnindex`` file of one segment (append-only, read on demand)."""

    __slots__ = ("path", "base_offset", "_count", "_last_offset", "_dirty")

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._count = 0  # entries in the file
        self._last_offset: int | None = None  # lastOffset of the last entry
        self._dirty = False  # written since the last fsync

    def __len__(self) -> int:
        return self._count

    @property
    def last_offset(self) -> int | None:
        return self._last_offset

    # -- the file ----------------------------------------------------------------------------

    # No descriptor is held between operations (see fd_budget.py): each opens and closes the file.

    def load(self, next_offset: int | None = None) -> bool:
        """Read the file's summary (count, last offset) after a sanity check; False if damaged.

        A missing file is an empty index. Damaged means: not a whole number of entries, an
        unknown version, lastOffset not strictly increasing, or (with ``next_offset``, the
        segment's end) a marker outside ``[base offset, next_offset)``. The caller rebuilds a
        damaged index (`reset`, then `append`).
        """
        self.close()
        self._count, self._last_offset = 0, None
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return True
        if len(data) % ENTRY_SIZE:
            logger.warning("%s: size %d is not a multiple of %d", self.path, len(data), ENTRY_SIZE)
            return False
        last = None
        for version, pid, first, last_offset, _lso in ENTRY.iter_unpack(data):
            problem = None
            if version != VERSION:
                problem = f"unknown entry version {version}"
            elif last is not None and last_offset <= last:
                problem = f"lastOffset {last_offset} does not follow {last}"
            elif last_offset < self.base_offset or (next_offset is not None and last_offset >= next_offset):
                problem = f"lastOffset {last_offset} outside the segment"
            elif first > last_offset or pid < 0:
                problem = f"bad entry (producer {pid}, first offset {first}, last offset {last_offset})"
            if problem is not None:
                logger.warning("%s: %s", self.path, problem)
                return False
            last = last_offset
        self._count, self._last_offset = len(data) // ENTRY_SIZE, last
        return True

    def append(self, txn: AbortedTxn) -> None:
        """Add an entry at the end; its lastOffset must be above the last one (as in Kafka)."""
        if self._last_offset is not None and txn.last_offset <= self._last_offset:
            raise TransactionIndexError(
                f"the last offset of appended transactions must increase: {txn.last_offset} is not above "
                f"{self._last_offset} in {self.path}"
            )
        fd = BUDGET.open_fd(self.path, os.O_WRONLY | os.O_CREAT)
        try:
            if not self._count:
                os.ftruncate(fd, 0)  # a stale file left at this name (e.g. by a crash) is not ours
            os.pwrite(fd, txn.encode(), self._count * ENTRY_SIZE)
        finally:
            os.close(fd)
        self._count += 1
        self._last_offset = txn.last_offset
        self._dirty = True

    def entries(self) -> Iterator[AbortedTxn]:
        """Every entry, in order."""
        if not self._count:
            return
        try:
            fd = BUDGET.open_fd(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            yield from self._entries_from(fd, 0)
        finally:
            os.close(fd)

    def _entries_from(self, fd: int, index: int) -> Iterator[AbortedTxn]:
        """The entries from the ``index``-th on, read from ``fd`` in chunks."""
        pos = index * ENTRY_SIZE
        end = self._count * ENTRY_SIZE
        while pos < end:
            chunk = os.pread(fd, min(_READ_ENTRIES * ENTRY_SIZE, end - pos), pos)
            chunk = chunk[: len(chunk) - len(chunk) % ENTRY_SIZE]
            if not chunk:
                return
            for _version, pid, first, last, lso in ENTRY.iter_unpack(chunk):
                yield AbortedTxn(pid, first, last, lso)
            pos += len(chunk)

    def _first_at_or_after(self, fd: int, offset: int) -> int:
        """Position (entry number) of the first entry whose lastOffset is at or after ``offset``,
        by binary search (lastOffset strictly increases). A short read counts as "at or after",
        which can only make the caller read more."""
        lo, hi = 0, self._count
        while lo < hi:
            mid = (lo + hi) // 2
            data = os.pread(fd, ENTRY_SIZE, mid * ENTRY_SIZE)
            if len(data) == ENTRY_SIZE and ENTRY.unpack(data)[3] < offset:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def collect(self, start: int, end: int) -> tuple[list[AbortedTxn], bool]:
        """Entries overlapping ``[start, end)`` (lastOffset >= start, firstOffset < end).

        ``complete`` is True when an entry's last stable offset reaches ``end``: no transaction
        in a later segment can then overlap the range (Kafka's TxnIndexSearchResult).

        Unlike Kafka, which reads the file from its start, the entries whose marker is before
        ``start`` are skipped by a binary search: a read_committed fetch near the end of a
        segment with many aborted transactions costs O(log n), not the whole file. They cannot
        match, and (a last stable offset being at most lastOffset + 1 <= start) cannot end the
        search either when ``start < end``; otherwise the search only goes on to later segments,
        whose entries are still filtered by the range.
        """
        out: list[AbortedTxn] = []
        if not self._count or self._last_offset is None or self._last_offset < start:
            return out, False
        try:
            fd = BUDGET.open_fd(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return out, False
        try:
            for txn in self._entries_from(fd, self._first_at_or_after(fd, start)):
                if txn.first_offset < end:  # (lastOffset >= start from here on)
                    out.append(txn)
                if txn.last_stable_offset >= end:
                    return out, True
            return out, False
        finally:
            os.close(fd)

    def truncate_to(self, offset: int) -> None:
        """Drop the entries whose lastOffset is at or above ``offset``."""
        if self._last_offset is None or self._last_offset < offset:
            return
        keep = 0
        last = None
        for txn in self.entries():
            if txn.last_offset >= offset:
                break
            keep += 1
            last = txn.last_offset
        fd = BUDGET.open_fd(self.path, os.O_WRONLY | os.O_CREAT)
        try:
            os.ftruncate(fd, keep * ENTRY_SIZE)
        finally:
            os.close(fd)
        self._count, self._last_offset = keep, last
        self._dirty = True

    def reset(self) -> None:
        """Empty the index and remove its file (before a rebuild)."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._count, self._last_offset, self._dirty = 0, None, False

    def flush(self) -> None:
        """fsync what was appended since the last flush."""
        if self._dirty:
            try:
                fd = BUDGET.open_fd(self.path, os.O_RDONLY)
            except FileNotFoundError:
                fd = None
            if fd is not None:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._dirty = False

    def close(self) -> None:
        """Flush what was written (a later append or read reopens the file)."""
        self.flush()

    def discard(self) -> None:
        """Forget without flushing (the segment was replaced or deleted)."""
        self._dirty = False

    def rename(self, path: Path) -> None:
        """Rename the file to ``path``. Without a file (no entries) any file at ``path`` is removed,
        so a stale index of a replaced segment never survives under the new name."""
        self.close()
        if self.path.exists():
            os.replace(self.path, path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.path = path

    def delete(self) -> None:
        self.discard()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._count, self._last_offset = 0, None


# -- open transactions at a segment boundary: ``<base>.txnstate`` ------------------------------
#
# Written by the partition log when it rolls to the segment starting at ``base``, before that
# segment's files are created: the transactions still open at ``base`` (producer id -> first
# offset). A rebuild of later ``.txnindex`` files replays from there instead of from the first
# segment. Layout, big-endian::
#
#     version i16 (0) | base i64 | count i32 | count x (producerId i64, firstOffset i64) | crc32 u32
#
# the CRC (zlib) covering everything before it. A file that fails any check is not used.

TXN_STATE_SUFFIX = ".txnstate"
_STATE_HEAD = struct.Struct(">hqi")
_STATE_ENTRY = struct.Struct(">qq")
_CRC = struct.Struct(">I")


def encode_open_txns(base: int, open_txns: dict[int, int]) -> bytes:
    body = bytearray(_STATE_HEAD.pack(VERSION, base, len(open_txns)))
    for pid, first_offset in sorted(open_txns.items()):
        body += _STATE_ENTRY.pack(pid, first_offset)
    return bytes(body) + _CRC.pack(zlib.crc32(body))


def decode_open_txns(data: bytes, base: int) -> dict[int, int] | None:
    """The open transactions recorded in ``data`` for the boundary ``base``; None if unusable."""
    if len(data) < _STATE_HEAD.size + _CRC.size:
        return None
    version, recorded_base, count = _STATE_HEAD.unpack_from(data, 0)
    end = _STATE_HEAD.size + count * _STATE_ENTRY.size
    if version != VERSION or recorded_base != base or count < 0 or len(data) != end + _CRC.size:
        return None
    if _CRC.unpack_from(data, end)[0] != zlib.crc32(data[:end]):
        return None
    open_txns = {}
    for i in range(count):
        pid, first_offset = _STATE_ENTRY.unpack_from(data, _STATE_HEAD.size + i * _STATE_ENTRY.size)
        if pid < 0 or not 0 <= first_offset < base or pid in open_txns:
            return None
        open_txns[pid] = first_offset
    return open_txns
