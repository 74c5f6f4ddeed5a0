"""One log segment: ``<base>.log`` with its ``.index``, ``.timeindex`` and ``.txnindex``.

The ``.txnindex`` (aborted transactions whose ABORT marker is in this segment, see txn_index.py)
is written by the partition log: the segment only persists, truncates, renames and deletes it.

The ``.log`` file holds record batches exactly as they were appended. ``size`` is the number of
bytes known to be whole batches; nothing beyond it is ever served. The file object ``file`` is
shared with the `FileSlice` objects handed to readers and is never closed explicitly: when a
segment is deleted its files are unlinked and the descriptor closes when the last reader drops it
(Linux keeps unlinked open files readable).

The descriptor budget (fd_budget.py) may release ``file`` of an idle segment (``file`` is then
None): `handle` reopens it. Code using the descriptor holds the object `handle` returned for as
long as it uses it (never just the number), so a release never closes a descriptor in use.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from kbroker_protocol.record_batch import HEADER_SIZE, LOG_OVERHEAD, BatchHeader, compute_crc, parse_header

from . import prealloc
from .fd_budget import BUDGET, SegmentFile
from .index import OffsetIndex, TimeIndex
from .txn_index import TransactionIndex

MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
_WALK_CHUNK = 4 * 1024  # header walks: several small batches per read, little copying of big ones
_SCAN_CHUNK = 4 * 1024 * 1024
_IOV_MAX = 1024

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
TXN_INDEX_SUFFIX = ".txnindex"
SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)


def segment_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


def segment_paths(directory: Path, base_offset: int, suffix: str = "") -> list[Path]:
    """Every file a segment may have, each name followed by ``suffix``."""
    return [directory / (segment_name(base_offset, ext) + suffix) for ext in SEGMENT_SUFFIXES]


class Damage(Exception):
    """Bytes at ``position`` are not a valid batch."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


def walk_batches(fd: int, start: int, end: int, *, validate: bool) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` for each batch in ``[start, end)`` of the file.

    Checks length, magic and that the batch fits; with ``validate`` also the CRC. Raises `Damage`
    at the first bad batch.
    """
    chunk = b""
    chunk_start = start
    pos = start
    read_size = _SCAN_CHUNK if validate else _WALK_CHUNK
    while pos < end:
        rel = pos - chunk_start
        if rel < 0 or rel + HEADER_SIZE > len(chunk):
            chunk = os.pread(fd, min(read_size, end - pos), pos)
            chunk_start, rel = pos, 0
            if len(chunk) < HEADER_SIZE:
                raise Damage(pos, f"truncated batch header ({end - pos} bytes left)")
        header = parse_header(chunk, rel)
        if header.magic != 2:
            raise Damage(pos, f"bad magic {header.magic}")
        if header.batch_length < MIN_BATCH_LENGTH:
            raise Damage(pos, f"bad batch length {header.batch_length}")
        if header.last_offset_delta < 0 or header.records_count < 0:
            raise Damage(pos, "negative lastOffsetDelta or record count")
        size = header.size
        if pos + size > end:
            raise Damage(pos, f"truncated batch: {end - pos} of {size} bytes")
        if validate:
            if rel + size > len(chunk):
                chunk = os.pread(fd, max(size, min(read_size, end - pos)), pos)
                chunk_start, rel = pos, 0
                if len(chunk) < size:
                    raise Damage(pos, "truncated batch")
            if compute_crc(chunk, rel, size) != header.crc:
                raise Damage(pos, "CRC mismatch")
        yield pos, header
        pos += size


class LogSegment:
    """A segment's files and the in-memory state derived from them."""

    __slots__ = (
        "directory", "base_offset", "suffix", "log_path", "file", "used", "closed", "offset_index", "time_index", "size",
        "next_offset", "max_timestamp", "offset_of_max_timestamp", "first_batch_timestamp", "created_ms",
        "roll_jitter_ms", "index_bytes", "bytes_since_last_index_entry", "verified_size", "num_records_estimate",
        "append_limits", "txn_index", "reserved_end", "has_txn_batches", "writeback_pos", "unborn", "tail_batch",
    )

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        *,
        index_bytes: int,
        created_ms: int,
        suffix: str = "",
        roll_jitter_ms: int = 0,
        lazy: bool = False,
    ) -> None:
        """Open (creating if needed) the segment files; ``suffix`` (e.g. ".cleaned") follows each name.

        ``index_bytes`` (segment.index.bytes) bounds each index: the segment rolls when one is full.
        ``lazy``: the segment is the empty first one of a log whose ``.log`` file does not exist;
        the file is created on first use (`handle`), not now: creating a topic of many partitions
        then costs one directory per partition before its records are committed, not a directory
        and a file (a flush of the still empty segment has nothing to sync and creates nothing).
        """
        self.directory = directory
        self.base_offset = base_offset
        self.suffix = suffix
        self.log_path = directory / (segment_name(base_offset, LOG_SUFFIX) + suffix)
        self.file: SegmentFile | None = None  # None: released by the budget (or closed)
        self.used = True  # the budget's second-chance bit, set on each use
        self.closed = False
        self.unborn = lazy  # True until the `.log` file is created (see `handle`)
        if not lazy:
            BUDGET.open_segment(self, create=True)
        self.offset_index = OffsetIndex(
            directory / (segment_name(base_offset, INDEX_SUFFIX) + suffix), base_offset, max(1, index_bytes // 8)
        )
        self.time_index = TimeIndex(
            directory / (segment_name(base_offset, TIME_INDEX_SUFFIX) + suffix), base_offset, max(1, index_bytes // 12)
        )
        self.txn_index = TransactionIndex(directory / (segment_name(base_offset, TXN_INDEX_SUFFIX) + suffix), base_offset)
        self.size = 0
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1  # base offset of the first batch reaching max_timestamp
        self.first_batch_timestamp: int | None = None
        self.created_ms = created_ms
        self.roll_jitter_ms = roll_jitter_ms  # drawn per segment, as Kafka does, to spread time rolls
        self.index_bytes = index_bytes
        self.bytes_since_last_index_entry = 0
        self.verified_size = 0  # bytes whose CRC is known good (checked or appended by us)
        self.num_records_estimate = 0
        # Set by PartitionLog's append path; cleared whenever the state it was derived from changes.
        self.append_limits: tuple[object, int, int, int, int] | None = None
        self.reserved_end = 0  # blocks reserved up to here, past the data (see prealloc)
        self.writeback_pos = 0  # write-back queued up to here (see writeback)
        # False only while the segment is known to hold no transactional or control batch.
        self.has_txn_batches = True
        # (position, base offset, last offset, size) of the batch `track_batch` saw last: a read of
        # the log's tail finds its batch without the index and the batch walk (`tail_batch_at`)
        self.tail_batch: tuple[int, int, int, int] | None = None

    # -- paths ---------------------------------------------------------------------------

    def handle(self) -> SegmentFile:
        """The open ``.log`` file, reopened if the budget released it. Hold the object while
        using its descriptor: the descriptor stays valid as long as the object is referenced."""
        file = self.file
        if file is None:
            if self.closed:
                raise ValueError(f"segment {self.log_path} is closed")
            file = BUDGET.open_segment(self, create=self.unborn)
            self.unborn = False
        self.used = True
        return file

    def open_file(self) -> SegmentFile | None:
        """Like `handle`, but None once the segment is closed (deleted or replaced)."""
        if self.closed:
            return None
        try:
            return self.handle()
        except (ValueError, FileNotFoundError):
            return None

    def file_size(self) -> int:
        file = self.handle()  # held while its descriptor is used
        return os.fstat(file.fileno()).st_size

    # -- loading and recovery ------------------------------------------------------------

    def track_batch(
        self, pos: int, base_offset: int, last_offset: int, max_timestamp: int, size: int, interval: int
    ) -> None:
        """Account for the batch just stored at ``pos``: timestamps, indexes, next offset.

        On the produce hot path: the time index entry is inlined. An index that fills up clears
        ``append_limits``, so the next append goes through the roll check.
        """
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = base_offset
        if self.first_batch_timestamp is None:
            self.first_batch_timestamp = max_timestamp
        if self.bytes_since_last_index_entry > interval:
            index = self.offset_index
            keys = index.keys
            if len(keys) < index.max_entries:
                keys.append(base_offset - self.base_offset)
                index.values.append(pos)
                time_index = self.time_index
                time_keys = time_index.keys
                if not time_keys or self.max_timestamp > time_keys[-1]:
                    time_keys.append(self.max_timestamp)
                    time_index.values.append(self.offset_of_max_timestamp - self.base_offset)
                if len(keys) >= index.max_entries or len(time_keys) >= time_index.max_entries:
                    self.append_limits = None
            self.bytes_since_last_index_entry = size
        else:
            self.bytes_since_last_index_entry += size
        self.next_offset = last_offset + 1
        self.tail_batch = (pos, base_offset, last_offset, size)

    def tail_batch_at(self, offset: int) -> tuple[int, int, int] | None:
        """``(position, last offset, size)`` of the segment's last batch when ``offset`` is in it
        (what `translate_offset` finds, without reading the file), else None. Known only while
        the segment ends where the last tracked batch ended: a truncation, a load from disk or
        anything else that moved the end without `track_batch` leaves it to `translate_offset`."""
        tail = self.tail_batch
        if (tail is not None and tail[1] <= offset <= tail[2] and tail[2] + 1 == self.next_offset
                and tail[0] + tail[3] == self.size):
            return tail[0], tail[2], tail[3]
        return None

    def rebuild(self, *, validate: bool, interval: int, end: int | None = None) -> Damage | None:
        """Scan the whole file, rebuild both indexes and the in-memory state.

        Stops at the first bad batch (or one whose offsets go backwards) and returns the `Damage`;
        ``size`` is then the position of the last whole good batch. The file is not truncated.
        """
        self.append_limits = None
        self.offset_index.reset()
        self.time_index.reset()
        self.size = 0
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.first_batch_timestamp = None
        self.bytes_since_last_index_entry = 0
        file = self.handle()
        end = os.fstat(file.fileno()).st_size if end is None else end
        damage = None
        try:
            for pos, header in walk_batches(file.fileno(), 0, end, validate=validate):
                if header.base_offset < self.next_offset:
                    damage = Damage(pos, f"offset {header.base_offset} goes backwards")
                    break
                self.track_batch(pos, header.base_offset, header.last_offset, header.max_timestamp, header.size, interval)
                self.size = pos + header.size
        except Damage as exc:
            damage = exc
        # Entries were collected in memory; write each index in one go.
        self.offset_index.rewrite()
        self.time_index.rewrite()
        if validate:
            self.verified_size = self.size
        return damage

    def load(self, *, interval: int) -> Damage | None:
        """Trust the files after a clean shutdown: load the indexes, check the tail.

        Indexes that are missing or fail the sanity check are rebuilt (without CRC checks). The
        batches after the last index entry are walked to find the end; a damaged tail is returned.
        """
        file = self.handle()
        end = os.fstat(file.fileno()).st_size
        if end == 0 and not self.offset_index.size_on_disk() and not self.time_index.size_on_disk():
            # An empty segment whose indexes are missing or empty (a partition never written to
            # has no index files): nothing to rebuild or write (restarting 10,000 such partitions
            # wrote 20,000 index files).
            return None
        ok = self.offset_index.load_entries() and self.offset_index.is_sane(end)
        ok = ok and self.time_index.load_entries()
        if not ok:
            return self.rebuild(validate=False, interval=interval)
        if not self._index_matches_log(end):
            return self.rebuild(validate=False, interval=interval)
        start = self.offset_index.last_position
        # The batch at `start` has the last indexed offset (checked above); a damaged tail is
        # reported from there.
        self.next_offset = self.base_offset + (self.offset_index.keys[-1] if len(self.offset_index) else 0)
        self.size = start
        self.max_timestamp = self.time_index.last_timestamp
        self.offset_of_max_timestamp = (
            self.base_offset + self.time_index.values[-1] if len(self.time_index) else -1
        )
        try:
            for pos, header in walk_batches(file.fileno(), start, end, validate=False):
                if header.base_offset < self.next_offset:
                    return Damage(pos, f"offset {header.base_offset} goes backwards")
                if header.max_timestamp > self.max_timestamp:
                    self.max_timestamp = header.max_timestamp
                    self.offset_of_max_timestamp = header.base_offset
                self.next_offset = header.next_offset
                self.size = pos + header.size
                self.bytes_since_last_index_entry += header.size
        except Damage as exc:
            return exc
        if not self.time_index.is_sane(self.next_offset):
            return self.rebuild(validate=False, interval=interval)
        if self.size > 0:
            self.first_batch_timestamp = parse_header(os.pread(file.fileno(), HEADER_SIZE, 0)).max_timestamp
        return None

    def _index_matches_log(self, end: int) -> bool:
        """Spot-check the offset index against the log: the last entry and up to 16 others."""
        count = len(self.offset_index)
        if not count:
            return True
        picks = {count - 1, *range(0, count, max(1, count // 16))}
        for i in sorted(picks):
            offset = self.base_offset + self.offset_index.keys[i]
            position = self.offset_index.values[i]
            if position + HEADER_SIZE > end:
                return False
            header = self.header_at(position)
            if header.base_offset != offset or header.magic != 2 or header.batch_length < MIN_BATCH_LENGTH:
                return False
        return True

    # -- append ----------------------------------------------------------------------------

    def write(self, buffers: list[bytes | bytearray | memoryview], nbytes: int) -> None:
        """Write ``buffers`` (``nbytes`` in total) at the end of the committed data (``size``).

        On the append hot path: one ``pwritev`` in the common case. If the write fails, whatever
        part of it landed is cut off again (nothing beyond ``size`` is ever read) and the error
        is raised.
        """
        pos = self.size
        file = self.file  # held while its descriptor is used (see `handle`)
        if file is None:
            file = self.handle()
        else:
            self.used = True
        fd = file.fileno()
        try:
            if len(buffers) > _IOV_MAX or os.pwritev(fd, buffers, pos) != nbytes:
                self._write_all(fd, buffers, nbytes, pos)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, pos)
            raise

    def _write_all(self, fd: int, buffers: list[bytes | bytearray | memoryview], nbytes: int, pos: int) -> None:
        """The slow way: at most IOV_MAX buffers per call, continuing after short writes."""
        written = 0
        while True:
            n = os.pwritev(fd, buffers[:_IOV_MAX], pos + written)
            written += n
            if written >= nbytes:
                break
            if n == 0:
                raise OSError(f"short write to {self.log_path}: {written} of {nbytes} bytes")
            # Drop what was written, keep the rest of a partly written buffer.
            while n >= len(buffers[0]):
                n -= len(buffers[0])
                buffers = buffers[1:]
            if n:
                buffers = [memoryview(buffers[0])[n:], *buffers[1:]]

    def header_at(self, position: int) -> BatchHeader:
        file = self.handle()
        return parse_header(os.pread(file.fileno(), HEADER_SIZE, position))

    def pread(self, size: int, position: int) -> bytes:
        file = self.handle()
        return os.pread(file.fileno(), size, position)

    def batches(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
        file = self.handle()  # held by the generator while it runs
        yield from walk_batches(file.fileno(), start, self.size if end is None else end, validate=False)

    def translate_offset(self, offset: int, start_position: int = 0) -> tuple[int, BatchHeader] | None:
        """The first batch whose last offset is at or above ``offset``, as ``(position, header)``."""
        if offset >= self.next_offset:
            return None
        _, pos = self.offset_index.lookup(offset)
        pos = max(pos, start_position)
        for p, header in self.batches(pos):
            if header.last_offset >= offset:
                return p, header
        return None

    def boundary_at_or_below(self, start: int, limit: int) -> int:
        """The largest batch boundary ``b`` with ``start <= b <= limit`` (``start`` at a batch)."""
        if limit >= self.size:
            return self.size
        pos = max(start, self.offset_index.floor_position(limit))
        for p, header in self.batches(pos):
            if p + header.size > limit:
                return p
        return self.size

    def verify(self, end: int) -> Damage | None:
        """Check the CRC of every batch between ``verified_size`` and ``end``."""
        if end <= self.verified_size:
            return None
        file = self.handle()
        try:
            for pos, header in walk_batches(file.fileno(), self.verified_size, end, validate=True):
                self.verified_size = pos + header.size
        except Damage as exc:
            return exc
        return None

    # -- truncation, flushing, closing -------------------------------------------------------

    def truncate_to_position(self, position: int, interval: int) -> None:
        """Cut the file at ``position`` (a batch boundary) and recompute the derived state."""
        file = self.handle()
        os.ftruncate(file.fileno(), position)  # (also gives back any reserved blocks)
        self.reserved_end = 0
        self.writeback_pos = min(self.writeback_pos, position)
        self.append_limits = None
        self.size = position
        self.verified_size = min(self.verified_size, position)
        if position == 0:
            self.offset_index.reset()
            self.time_index.reset()
            self.txn_index.reset()
            self.next_offset = self.base_offset
            self.max_timestamp = -1
            self.offset_of_max_timestamp = -1
            self.first_batch_timestamp = None
            self.bytes_since_last_index_entry = 0
            return
        verified = self.verified_size
        self.rebuild(validate=False, interval=interval, end=position)
        self.verified_size = verified
        self.txn_index.truncate_to(self.next_offset)

    def flush(self) -> None:
        file = None if self.unborn else self.open_file()
        if file is not None:
            os.fdatasync(file.fileno())
        self.offset_index.flush()
        self.time_index.flush()
        self.txn_index.flush()

    def seal(self) -> None:
        """The segment stops being active: final time index entry, fsync, close index files."""
        self.release_reserved()
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        self.flush()
        self.offset_index.close()
        self.time_index.close()
        self.txn_index.close()

    def close(self) -> None:
        """Persist the indexes and forget the files; readers holding `file` keep it open."""
        self.release_reserved()
        self.offset_index.close()
        self.time_index.close()
        self.txn_index.close()
        self._forget_file()

    def _forget_file(self) -> None:
        self.closed = True
        self.file = None
        BUDGET.forget(self)

    def release_reserved(self) -> None:
        """Give back the blocks reserved past the end of the file (see `prealloc`)."""
        if self.reserved_end:
            file = self.open_file()
            if file is not None:
                prealloc.trim(file.fileno(), os.fstat(file.fileno()).st_size)
        self.reserved_end = 0

    def discard(self) -> None:
        """Forget the files without writing anything (the segment was replaced or deleted)."""
        for index in (self.offset_index, self.time_index):
            index._persisted = len(index)
            index.close()
        self.txn_index.discard()
        self._forget_file()

    def paths(self) -> list[Path]:
        return segment_paths(self.directory, self.base_offset, self.suffix)

    def rename_suffix(self, suffix: str) -> None:
        """Rename the files to end in ``suffix`` instead (indexes first, the log last)."""
        if self.unborn:
            self.handle()  # (the `.log` is renamed too: it must exist)
        self.offset_index.close()
        self.time_index.close()
        for index, ext in ((self.offset_index, INDEX_SUFFIX), (self.time_index, TIME_INDEX_SUFFIX)):
            index.rename(self.directory / (segment_name(self.base_offset, ext) + suffix))
        self.txn_index.rename(self.directory / (segment_name(self.base_offset, TXN_INDEX_SUFFIX) + suffix))
        target = self.directory / (segment_name(self.base_offset, LOG_SUFFIX) + suffix)
        os.replace(self.log_path, target)
        self.log_path = target
        self.suffix = suffix

    def delete_files(self) -> None:
        self.discard()
        for path in self.paths():
            try:
                path.unlink()
            except FileNotFoundError:
                pass
