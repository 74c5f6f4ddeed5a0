"""Reading a partition log: batch ranges for fetches and timestamp lookups for ListOffsets."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

from kbroker_protocol.record_batch import (
    BatchHeader,
    InvalidRecordBatch,
    parse_header,
)

from . import batch_records
from .errors import (
    LogCorruptedError,
    OffsetOutOfRangeError,
)
from .fd_budget import BUDGET
from .log_state import (
    LogState,
)
from .segment import (
    Damage,
    LogSegment,
)

logger = logging.getLogger(__name__)


# ListOffsets special timestamps.
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3

# A read holds one descriptor per segment it returns data from until the response is written:
# it spans at most a quarter of the descriptor budget's segments (at least this many; only tiny
# segments come near it), see fd_budget.py.
MIN_SEGMENTS_PER_READ = 16


@dataclass(frozen=True, slots=True)
class FileSlice:
    """``size`` bytes at ``position`` of an open file: whole batches, ready for ``os.sendfile``."""

    file: BinaryIO
    position: int
    size: int

    def __len__(self) -> int:
        return self.size

    def read(self) -> bytes:
        data = os.pread(self.file.fileno(), self.size, self.position)
        if len(data) != self.size:
            raise OSError(f"short read: {len(data)} of {self.size} bytes")
        return data


@dataclass(slots=True)
class ReadResult:
    slices: list[FileSlice]
    log_start_offset: int
    log_end_offset: int
    high_watermark: int
    # Where the next read continues: after the last batch returned, at the next stored batch
    # (or the log end) when records were compacted away in between; -1 when empty.
    next_offset: int = -1

    @property
    def size(self) -> int:
        return sum(s.size for s in self.slices)

    def __len__(self) -> int:
        # A ReadResult is itself a records value the codec leaves uncopied ("external"): the
        # server writes its slices to the socket one after another.
        return self.size

    def read(self) -> bytes:
        """All bytes of the result (tests and transports without ``sendfile``)."""
        return b"".join(s.read() for s in self.slices)

class LogReads(LogState):
    """Reads of whole batches and timestamp lookups."""

    def read(
        self,
        start_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_batch: bool = True,
    ) -> ReadResult:
        """Whole batches from the one containing ``start_offset``, at most ``max_bytes``.

        With ``min_one_batch`` the first batch is returned even if it is larger than
        ``max_bytes``. Batches whose last offset is at or above ``max_offset`` (e.g. the high
        watermark) are left out. Raises `OffsetOutOfRangeError` outside [log start, log end].
        """
        with self.lock:
            self._check_usable()
            leo = self.log_end_offset
            if start_offset < self._log_start_offset or start_offset > leo:
                raise OffsetOutOfRangeError(start_offset, self._log_start_offset, leo)
            limit = leo if max_offset is None else min(max_offset, leo)
            result = ReadResult([], self._log_start_offset, leo, self._high_watermark)
            remaining = max_bytes
            i = self._segment_index(start_offset)
            offset = start_offset
            while offset < limit and i < len(self._segments):
                seg = self._segments[i]
                must_fill = min_one_batch and not result.slices
                if remaining <= 0 and not must_fill:
                    break
                if len(result.slices) >= max(MIN_SEGMENTS_PER_READ, BUDGET.capacity // 4):
                    break
                try:
                    piece, done = self._read_segment(seg, offset, limit, remaining, must_fill)
                except OSError as exc:
                    # Out of descriptors for one more segment file: what was read so far is a
                    # complete answer (the client continues from next_offset).
                    if result.slices and exc.errno in (errno.EMFILE, errno.ENFILE):
                        break
                    raise
                if piece is not None:
                    result.slices.append(piece)
                    remaining -= piece.size
                    end = piece.position + piece.size
                    result.next_offset = seg.next_offset if end >= seg.size else seg.header_at(end).base_offset
                if done:
                    break
                i += 1
                if i < len(self._segments):
                    offset = self._segments[i].base_offset
            return result

    def offset_position(self, offset: int) -> tuple[int, int]:
        """Kafka's ``LogOffsetMetadata`` of ``offset``: the base offset of the segment holding it
        and the position there of the batch holding it (the segment's size at its end: the log
        end is at the end of the active segment). A held fetch compares the fetch offset's with
        the end offset's (``kbroker/replication/delayed_fetch.py``)."""
        with self.lock:
            self._check_usable()
            seg = self._segments[self._segment_index(offset)]
            found = seg.translate_offset(offset) if offset < seg.next_offset else None
            return seg.base_offset, found[0] if found is not None else seg.size

    def _read_segment(
        self, seg: LogSegment, offset: int, limit: int, max_bytes: int, must_fill: bool
    ) -> tuple[FileSlice | None, bool]:
        """A slice of ``seg`` from ``offset``; ``done`` when a limit stopped it (not the segment end)."""
        tail = seg.tail_batch_at(offset)  # a consumer at the log's end: its batch, no file read
        if tail is not None:
            start, last_offset, batch_size = tail
        else:
            found = seg.translate_offset(offset)
            if found is None:
                return None, False
            start, header = found
            last_offset, batch_size = header.last_offset, header.size
        if last_offset >= limit:
            return None, True
        if limit < seg.next_offset:
            limit_found = seg.translate_offset(limit, start)
            limit_pos = limit_found[0] if limit_found is not None else seg.size
        else:
            limit_pos = seg.size
        end = seg.boundary_at_or_below(start, min(limit_pos, start + max(max_bytes, 0)))
        if end == start:
            if not must_fill:
                return None, True
            end = start + batch_size
        self._verify_to(seg, end)
        # Stopped before the segment end: max_bytes or max_offset cut it, the read is complete.
        return FileSlice(seg.handle(), start, end - start), end < seg.size

    def _verify_to(self, seg: LogSegment, end: int) -> None:
        """Check ``seg``'s batches (CRCs) up to ``end`` if not yet done; a damaged one takes the
        partition offline (LogCorruptedError)."""
        if end > seg.verified_size:
            damage = seg.verify(end)
            if damage is not None:
                offset_at = seg.header_at(damage.position).base_offset if damage.position < seg.size else -1
                error = LogCorruptedError(seg.log_path, offset_at, damage.position, damage.reason)
                self._go_offline(error)
                logger.error("%s; partition %s is offline", error, self.directory.name)
                raise error

    def iter_batch_headers(self, start_offset: int | None = None) -> Iterator[tuple[BatchHeader, Callable[[], bytes]]]:
        """Every stored batch from the one holding ``start_offset`` (default: the log start) as
        ``(header, body)``, reading the headers only (as Kafka's producer-state rebuild does: CRCs
        are not checked, a batch whose framing is damaged takes the partition offline as a read
        would): ``body()`` reads the whole batch. For scans that need few batches' records (the
        producer-state rebuild: control batches only)."""
        offset = self._log_start_offset if start_offset is None else start_offset
        while True:
            with self.lock:
                self._check_usable()
                if offset >= self.log_end_offset:
                    return
                i = self._segment_index(offset)
                seg = self._segments[i]
                found = seg.translate_offset(offset)
                if found is None:  # past this segment's batches: the next segment's first
                    if i + 1 >= len(self._segments):
                        return
                    offset = self._segments[i + 1].base_offset
                    continue
                start, end = found[0], seg.size
            try:
                for pos, header in seg.batches(start, end):
                    offset = header.next_offset
                    yield header, partial(seg.pread, header.size, pos)
            except Damage as damage:
                with self.lock:
                    self._verify_to(seg, end)  # the damage found by a read (CRC included)
                    error = LogCorruptedError(seg.log_path, offset, damage.position, damage.reason)
                    self._go_offline(error)
                logger.error("%s; partition %s is offline", error, self.directory.name)
                raise error from None

    def iter_batches(self, start_offset: int | None = None) -> Iterator[tuple[BatchHeader, bytes]]:
        """Every stored batch from ``start_offset`` (default: the log start) as (header, bytes)."""
        offset = self._log_start_offset if start_offset is None else start_offset
        while True:
            result = self.read(offset, 1 << 20)
            if not result.slices:
                return
            data = result.read()
            pos = 0
            while pos < len(data):
                header = parse_header(data, pos)
                yield header, data[pos : pos + header.size]
                pos += header.size
                offset = header.next_offset

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """ListOffsets: ``(offset, timestamp)`` of the first record with a timestamp >= ``timestamp``.

        Special values: -2 (earliest) → log start, -1 (latest) → log end, -3 (max timestamp) →
        the record with the largest timestamp. None when no record qualifies.
        """
        with self.lock:
            self._check_usable()
            if timestamp == EARLIEST_TIMESTAMP:
                return self._log_start_offset, -1
            if timestamp == LATEST_TIMESTAMP:
                return self.log_end_offset, -1
            if timestamp == MAX_TIMESTAMP:
                return self._max_timestamp_offset()
            if timestamp < 0:
                raise ValueError(f"invalid timestamp {timestamp}")
            start = self._log_start_offset
            for seg in self._segments:
                if seg.max_timestamp < timestamp or seg.next_offset <= start:
                    continue
                from_offset = max(seg.time_index.lookup(timestamp), start)
                found = seg.translate_offset(from_offset)
                if found is None:
                    continue
                for pos, header in seg.batches(found[0]):
                    if header.max_timestamp >= timestamp and header.last_offset >= start:
                        hit = self._record_at_or_after(seg, pos, header, lambda ts: ts >= timestamp)
                        if hit is not None:
                            return hit
            return None

    def max_timestamp(self) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the record with the largest timestamp (ListOffsets -3)."""
        return self.offset_for_timestamp(MAX_TIMESTAMP)

    def _max_timestamp_offset(self) -> tuple[int, int] | None:
        start = self._log_start_offset
        best: tuple[int, LogSegment] | None = None
        for seg in self._segments:
            if seg.next_offset <= start or seg.size == 0:
                continue
            if seg.base_offset < start:
                # The first segment: only what is at or above the log start counts.
                top = max((ts for _, ts in self._visible_timestamps(seg)), default=-1)
            else:
                top = seg.max_timestamp
            if top >= 0 and (best is None or top > best[0]):
                best = (top, seg)
        if best is None:
            return None
        target, seg = best
        for pos, header in self._batches_from(seg, start):
            if header.max_timestamp >= target:
                found = self._record_at_or_after(seg, pos, header, lambda ts: ts == target)
                if found is not None:
                    return found
        return None

    def _batches_from(self, seg: LogSegment, offset: int) -> Iterator[tuple[int, BatchHeader]]:
        """Batches of ``seg`` whose last offset is at or above ``offset``."""
        found = seg.translate_offset(max(offset, seg.base_offset))
        if found is None:
            return iter(())
        return seg.batches(found[0])

    def _visible_timestamps(self, seg: LogSegment) -> Iterator[tuple[int, int]]:
        """(offset, timestamp) per batch of ``seg`` at or above the log start (records for the first)."""
        start = self._log_start_offset
        for pos, header in self._batches_from(seg, start):
            if header.base_offset >= start or header.is_log_append_time:
                yield header.base_offset, header.max_timestamp
                continue
            data = seg.pread(header.size, pos)
            try:
                yield from ((o, ts) for o, ts in batch_records.record_timestamps(data) if o >= start)
            except (InvalidRecordBatch, ValueError):
                yield header.base_offset, header.max_timestamp

    def _record_at_or_after(
        self, seg: LogSegment, pos: int, header: BatchHeader, match: Callable[[int], bool]
    ) -> tuple[int, int] | None:
        """The first record of the batch at or above the log start whose timestamp matches."""
        start = self._log_start_offset
        if header.is_log_append_time:
            # Every record carries the batch's maxTimestamp.
            return (max(header.base_offset, start), header.max_timestamp) if match(header.max_timestamp) else None
        data = seg.pread(header.size, pos)
        try:
            for offset, ts in batch_records.record_timestamps(data):
                if offset >= start and match(ts):
                    return offset, ts
        except (InvalidRecordBatch, ValueError):
            logger.warning("cannot decode records of batch at %d in %s", header.base_offset, seg.log_path)
            return max(header.base_offset, start), header.max_timestamp
        return None

