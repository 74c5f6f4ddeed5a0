"""Appending to a partition log: placing batches, leader epochs, rolling segments and flushing."""

from __future__ import annotations

import bisect
import logging
import os
import time
from dataclasses import dataclass

from kbroker_protocol.record_batch import (
    APPEND_FIELDS,
    ATTRIBUTES_LOW_OFFSET,
    CONTROL_MASK,
    HEADER_SIZE,
    LOG_OVERHEAD,
    PREFIX,
    PREFIX_SIZE,
    TRANSACTIONAL_MASK,
    BatchHeader,
    InvalidRecordBatch,
)
from kbroker_protocol.records import set_log_append_time

from . import prealloc, writeback
from .config import INT_MAX, LogConfig
from .errors import (
    InvalidOffsetError,
    LogClosedError,
    RecordBatchTooLargeError,
)
from .fd_budget import SegmentFile
from .leader_epoch import LeaderEpochCache
from .log_state import (
    FLUSH_BOUNDS_MS,
    PendingRoll,
    fsync_dir,
)
from .roll import LogRoll
from .segment import (
    MIN_BATCH_LENGTH,
    LogSegment,
)

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class AppendInfo:
    first_offset: int
    last_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    log_append_time: int  # -1 unless message.timestamp.type=LogAppendTime
    log_start_offset: int
    num_records: int
    num_batches: int
    size: int


class LogAppend(LogRoll):
    """Appends, leader epoch assignment and flushes, over segment rolls (roll.py)."""

    def append(
        self,
        batches: bytes | bytearray | memoryview,
        *,
        leader_epoch: int = 0,
        assign_offsets: bool = True,
        sync: bool = True,
        header: BatchHeader | None = None,
    ) -> AppendInfo:
        """Append one or more validated magic-2 batches.

        With ``assign_offsets`` (a leader) baseOffset is set to the log end and
        partitionLeaderEpoch to ``leader_epoch``; otherwise (a follower) the batches are written
        unchanged and must start at or after the log end. The input is never modified. With
        ``flush.messages`` reached the data is fsynced before this returns, unless ``sync`` is
        False: then the caller owns that fsync (group commit: `sync_appended` on a worker thread,
        see kbroker/log/group_commit.py) and acknowledges the batch only after it. ``header``: the
        parsed header of ``batches`` when they are one batch whose header the caller has parsed
        and validated (the Produce path): its fields are read instead of unpacking it again.
        """
        view = memoryview(batches)
        if type(batches) is not bytes and (view.format != "B" or view.ndim != 1):
            view = view.cast("B")
        config = self.config
        if assign_offsets and len(view) >= HEADER_SIZE and config.message_timestamp_type == "CreateTime":
            # The common case, one batch from the leader, checked as _split_batches would.
            if header is None:
                _, length, _, magic, attributes, delta, max_ts, count = APPEND_FIELDS.unpack_from(view, 0)
            else:
                length, magic, attributes = header.batch_length, header.magic, header.attributes
                delta, max_ts, count = header.last_offset_delta, header.max_timestamp, header.records_count
            size = length + LOG_OVERHEAD
            if (
                size == len(view)
                and magic == 2
                and length >= MIN_BATCH_LENGTH
                and delta >= 0
                and count >= 0
                and size <= config.max_message_bytes
            ):
                # The produce hot path: about a microsecond of Python beside the kernel's copy.
                # `append_limits` (set by `_append_one`) says no roll is due.
                with self.lock:
                    segment = self._segments[-1]
                    limits = segment.append_limits
                    start = segment.size
                    base = segment.next_offset
                    last = base + delta
                    if (
                        limits is not None
                        and limits[0] is config
                        and start + size <= limits[1]
                        and max_ts <= limits[2]
                        and last <= limits[3]
                    ):  # (closing or going offline clears the limits)
                        if leader_epoch != self._epochs.latest_epoch:
                            self._assign_epoch(leader_epoch, base)
                        segment.write([PREFIX.pack(base, length, leader_epoch), view[PREFIX_SIZE:size]], size)
                        segment.track_batch(start, base, last, max_ts, size, limits[4])
                        if attributes & _TXN_OR_CONTROL:
                            segment.has_txn_batches = True
                        if segment.verified_size == start:
                            segment.verified_size = start + size
                        segment.size = start + size
                        if sync and last + 1 - self._recovery_point >= config.flush_messages:
                            self._flush_locked()
                        return AppendInfo(base, last, max_ts, last, -1, self._log_start_offset, count, 1, size)
                return self._append_one(view, size, delta, max_ts, count, leader_epoch, config, attributes, sync)
        batch_list = _split_batches(view, config.max_message_bytes)
        now_ms = int(self.clock() * 1000)
        with self.lock:
            if self._closed or self._offline is not None:
                self._check_usable()
            if self._dir_unborn:
                self._ensure_directory()
            leo = self._segments[-1].next_offset
            if len(batch_list) == 1:
                base = leo if assign_offsets else batch_list[0][2]
                bases = [base]
            elif assign_offsets:
                bases = []
                next_offset = leo
                for batch in batch_list:
                    bases.append(next_offset)
                    next_offset += batch[3] + 1
            else:
                bases = [batch[2] for batch in batch_list]
            if not assign_offsets:
                expected = leo
                for base, batch in zip(bases, batch_list):  # noqa: B905 (same length)
                    if base < expected:
                        raise InvalidOffsetError(f"batch base offset {base} is below the expected {expected}")
                    expected = base + batch[3] + 1
            first_offset = bases[0]
            last_offset = bases[-1] + batch_list[-1][3]
            total = len(view)
            segment = self._maybe_roll(total, first_offset, last_offset, batch_list[0][4], now_ms)
            log_append_time = -1
            buffers: list[bytes | bytearray | memoryview]
            if assign_offsets and config.message_timestamp_type == "LogAppendTime":
                # (a follower stores the times the leader stamped, byte for byte)
                log_append_time = now_ms
                buffers = [
                    _with_log_append_time(view[pos : pos + size], base, leader_epoch if assign_offsets else epoch, now_ms)
                    for base, (pos, size, _, _, _, _, epoch) in zip(bases, batch_list)  # noqa: B905 (same length)
                ]
                batch_list = [(b[0], b[1], b[2], b[3], now_ms, b[5], b[6]) for b in batch_list]
            elif assign_offsets:
                # A 16-byte replacement prefix (baseOffset, batchLength, epoch) + the untouched rest.
                buffers = []
                pack = PREFIX.pack
                for base, (pos, size, _, _, _, _, _) in zip(bases, batch_list):  # noqa: B905
                    buffers.append(pack(base, size - LOG_OVERHEAD, leader_epoch))
                    buffers.append(view[pos + PREFIX_SIZE : pos + size])
            else:
                buffers = [view]
            start = segment.size
            if self._epochs.stale_tail:
                self._epochs.write()  # before a batch the file's dropped tail would misdescribe
            if assign_offsets:
                if leader_epoch != self._epochs.latest_epoch:
                    self._assign_epoch(leader_epoch, first_offset)
            else:  # a follower: the epochs the leader stamped
                for base, batch in zip(bases, batch_list):  # noqa: B905 (same length)
                    if batch[6] != self._epochs.latest_epoch:
                        self._assign_epoch(batch[6], base)
            segment.write(buffers, total)
            interval = config.index_interval_bytes
            if len(batch_list) == 1:
                _, size, _, delta, max_ts, num_records, _ = batch_list[0]
                offset_of_max = last_offset
                segment.track_batch(start, first_offset, last_offset, max_ts, size, interval)
            else:
                max_ts, offset_of_max, num_records = -1, -1, 0
                track = segment.track_batch
                for base, (pos, size, _, delta, batch_max_ts, count, _) in zip(bases, batch_list):  # noqa: B905
                    track(start + pos, base, base + delta, batch_max_ts, size, interval)
                    num_records += count
                    if batch_max_ts > max_ts:
                        max_ts, offset_of_max = batch_max_ts, base + delta
            if segment.verified_size == start:
                segment.verified_size = start + total
            segment.size = start + total
            segment.append_limits = None  # recomputed by the next single-batch append
            if any(view[pos + ATTRIBUTES_LOW_OFFSET] & _TXN_OR_CONTROL for pos, *_ in batch_list):
                segment.has_txn_batches = True
            if sync and segment.next_offset - self._recovery_point >= config.flush_messages:
                self._flush_locked(now_ms)
            return AppendInfo(
                first_offset, last_offset, max_ts, offset_of_max, log_append_time, self._log_start_offset,
                num_records, len(batch_list), total,
            )

    def _append_one(
        self, view: memoryview, size: int, delta: int, max_ts: int, num_records: int, leader_epoch: int,
        config: LogConfig, attributes: int, sync: bool = True,
    ) -> AppendInfo:
        """One CreateTime batch from the leader when `append`'s fast path cannot take it: a roll
        may be due. Sets the active segment's `append_limits` for the next ones.
        """
        with self.lock:
            if self._closed or self._offline is not None:
                self._check_usable()
            if self._dir_unborn:
                self._ensure_directory()
            segment = self._segments[-1]
            base = segment.next_offset
            last = base + delta
            segment = self._maybe_roll(size, base, last, max_ts, None)
            start = segment.size
            if self._reserving and start + size > segment.reserved_end:
                self._reserve(segment, start + size, config)
            if self._epochs.stale_tail:
                self._epochs.write()  # (the fast path in `append` is closed until this has run)
            if leader_epoch != self._epochs.latest_epoch:
                self._assign_epoch(leader_epoch, base)
            segment.write([PREFIX.pack(base, size - LOG_OVERHEAD, leader_epoch), view[PREFIX_SIZE:size]], size)
            segment.track_batch(start, base, last, max_ts, size, config.index_interval_bytes)
            if attributes & _TXN_OR_CONTROL:
                segment.has_txn_batches = True
            if segment.verified_size == start:
                segment.verified_size = start + size
            segment.size = start + size
            segment.append_limits = self._append_limits(segment, config)
            if sync and last + 1 - self._recovery_point >= config.flush_messages:
                self._flush_locked()
            return AppendInfo(base, last, max_ts, last, -1, self._log_start_offset, num_records, 1, size)

    def _assign_epoch(self, epoch: int, base_offset: int) -> None:
        """A batch of a new leader epoch: the cache (and its file) learn it before the batch is
        written, as in Kafka. A batch without an epoch (-1) leaves the cache as it is."""
        if epoch >= 0:
            self._epochs.assign(epoch, base_offset)

    @property
    def leader_epochs(self) -> LeaderEpochCache:
        """The leader epoch cache (read it; the log changes it)."""
        return self._epochs

    def assign_epoch_start(self, leader_epoch: int, start_offset: int) -> bool:
        """A replica becoming leader in ``leader_epoch`` records that the epoch starts at
        ``start_offset`` (its log end), before any batch of it is written (Kafka's
        ``maybeAssignEpochStartOffset``). True if the cache changed. An entry at the log end is
        dropped again by truncation to the log end and at open, as in Kafka. A log without an
        epoch file yet (a new partition) writes it later (see `LeaderEpochCache.assign`)."""
        with self.lock:
            self._check_usable()
            return self._epochs.assign(leader_epoch, start_offset, defer_if_absent=True)

    def _append_limits(self, segment: LogSegment, config: LogConfig) -> tuple[LogConfig, int, int, int, int] | None:
        """Bounds within which an append to ``segment`` needs no roll (and no block reservation).

        ``(config, segment end position, max timestamp, last offset, index.interval.bytes)``, the
        first three inclusive; valid while ``config`` is the log's config. None when the
        segment is empty, its roll time is not known from timestamps, or an index is full.
        """
        first_ts = segment.first_batch_timestamp
        if (
            not segment.size
            or first_ts is None
            or first_ts < 0
            or len(segment.offset_index.keys) >= segment.offset_index.max_entries
            or len(segment.time_index.keys) >= segment.time_index.max_entries
        ):
            return None
        return (
            config,
            min(config.segment_bytes, segment.reserved_end) if self._reserving else config.segment_bytes,
            first_ts + config.segment_ms - segment.roll_jitter_ms,
            segment.base_offset + INT_MAX,
            config.index_interval_bytes,
        )

    def _reserve(self, segment: LogSegment, end: int, config: LogConfig) -> None:
        """Reserve disk blocks from the segment's end to ``end`` and a step beyond (not past
        segment.bytes): appends into reserved blocks cost the file system less (see `prealloc`)."""
        begin = max(segment.reserved_end, segment.size)
        target = max(end, min(end + prealloc.step_for(segment.size), config.segment_bytes))
        file = segment.handle()
        if prealloc.reserve(file.fileno(), begin, target - begin):
            segment.reserved_end = target
        else:
            self._reserving = False

    def _maybe_roll(
        self, size: int, first_offset: int, last_offset: int, first_ts: int, now_ms: int | None
    ) -> LogSegment:
        """The segment to append to: the active one, or a new one if a roll condition holds.

        ``now_ms`` is read from the clock when needed and not given.
        """
        segment = self._segments[-1]
        config = self.config
        if segment.size == 0:
            if last_offset - segment.base_offset > INT_MAX or first_offset < segment.base_offset:
                self._replace_empty_active(first_offset)
            return self._segments[-1]
        if segment.first_batch_timestamp is not None and segment.first_batch_timestamp >= 0:
            waited = first_ts - segment.first_batch_timestamp
        else:
            waited = (self._now_ms() if now_ms is None else now_ms) - segment.created_ms
        if (
            segment.size + size > config.segment_bytes
            or waited > config.segment_ms - segment.roll_jitter_ms
            or len(segment.offset_index.keys) >= segment.offset_index.max_entries
            or len(segment.time_index.keys) >= segment.time_index.max_entries
            or last_offset - segment.base_offset > INT_MAX
        ):
            return self._roll(max(first_offset, self.log_end_offset))
        return segment

    def _replace_empty_active(self, base_offset: int) -> None:
        old = self._segments.pop()
        old.delete_files()
        self._drop_txn_state(old.base_offset)
        # No data in between: the transactions open at the new base are those open at the old.
        if self._open_txns is not None:
            self._write_open_txns(base_offset, self._open_txns)
        else:
            self._drop_txn_state(base_offset)
        self._segments.append(self._new_segment(base_offset, fresh=True))
        fsync_dir(self.directory)

    def roll(self) -> None:
        """Start a new segment now (if the active one holds data)."""
        with self.lock:
            self._check_usable()
            if self._segments[-1].size:
                self._roll(self.log_end_offset)

    def _flush_locked(self, now_ms: int | None = None) -> None:
        if self.log_end_offset > self._recovery_point:
            started = time.perf_counter()
            self._sync_rolls(self._unsynced_rolls())  # segments rolled since the last flush
            file = self._segments[-1].handle()
            os.fdatasync(file.fileno())
            if self._dirs_unsynced:
                fsync_dir(self.directory)
                fsync_dir(self.directory.parent)
                self._dirs_unsynced = False
            self._recovery_point = self.log_end_offset
            self._count_flush((time.perf_counter() - started) * 1000.0)
        self._last_flush_ms = self._now_ms() if now_ms is None else now_ms

    def _count_flush(self, ms: float) -> None:
        buckets = self.flush_buckets
        if buckets is None:
            buckets = self.flush_buckets = [0] * (len(FLUSH_BOUNDS_MS) + 1)
        buckets[bisect.bisect_left(FLUSH_BOUNDS_MS, ms)] += 1
        self.flush_ms += ms

    def flush(self) -> None:
        """fsync everything appended so far; the recovery point moves to the log end."""
        with self.lock:
            self._check_usable()
            self._flush_locked()

    def start_writeback(self, min_bytes: int = writeback.MIN_BYTES) -> bool:
        """Queue the write-back of what was appended to the active segment since the last call,
        once it is at least ``min_bytes`` (see `writeback`: it keeps a roll's fsync short).
        Called by the maintenance thread; the system call runs outside the partition lock. True
        if something was queued."""
        with self.lock:
            if self._closed or self._offline is not None:
                return False
            segment = self._segments[-1]
            end = segment.size
            begin = min(segment.writeback_pos, end)
            if end - begin < min_bytes:
                return False
            file = segment.open_file()  # held: the descriptor stays valid even if the segment goes
            if file is None:
                return False
            segment.writeback_pos = end
        return writeback.start(file.fileno(), begin, end - begin)

    def flush_due(self) -> bool:
        """``flush.messages`` or more appended since the last flush (an append with ``sync=False``
        leaves that fsync to its caller)."""
        return self.log_end_offset - self._recovery_point >= self.config.flush_messages

    def sync_appended(self) -> int:
        """fsync everything appended so far, outside the partition lock, and return the recovery
        point after it: every offset below it is on disk. Group commit (kbroker/log/group_commit.py)
        calls it on a worker thread; appends continue meanwhile and wait for the next call."""
        with self.lock:
            self._check_usable()
            if self.log_end_offset <= self._recovery_point:
                return self._recovery_point
            file = self._segments[-1].open_file()  # held: stays valid even if the segment goes
            target = self.log_end_offset
            truncations = self._truncations
            sync_dirs = self._dirs_unsynced
            rolls = self._unsynced_rolls()
            self._last_flush_ms = self._now_ms()
        if file is None:
            raise LogClosedError(f"{self.directory}: the active segment was closed")
        started = time.perf_counter()
        self._sync_unlocked(file, target, truncations, sync_dirs, rolls)
        with self.lock:
            self._count_flush((time.perf_counter() - started) * 1000.0)
            return self._recovery_point

    def _sync_unlocked(self, file: SegmentFile, target: int, truncations: int, sync_dirs: bool,
                       rolls: list[PendingRoll]) -> None:
        """fsync ``file`` (the active segment, held open), the segments of ``rolls`` (rolled since
        the last flush, see roll.py) and, when new, the directories, outside the partition lock,
        then move the recovery point to ``target`` (the log end seen before): older segments are
        synced already; a truncation meanwhile (``truncations`` changed) may have replaced the
        data, so then the fsync proves nothing."""
        self._sync_rolls(rolls)
        os.fdatasync(file.fileno())
        if sync_dirs:
            fsync_dir(self.directory)
            fsync_dir(self.directory.parent)
        with self.lock:
            if sync_dirs:
                self._dirs_unsynced = False
            if truncations == self._truncations and not self._closed:
                self._recovery_point = max(self._recovery_point, min(target, self.log_end_offset))

    def maybe_flush(self, now_ms: int | None = None) -> bool:
        """Flush if ``flush.ms`` has passed since the last flush and there is unflushed data.

        Called by the maintenance thread: the fsync runs outside the partition lock, so appends
        continue meanwhile; the recovery point then moves to the log end seen before the fsync.
        """
        with self.lock:
            if self._closed or self._offline is not None:
                return False
            now_ms = self._now_ms() if now_ms is None else now_ms
            if self.log_end_offset <= self._recovery_point or now_ms - self._last_flush_ms < self.config.flush_ms:
                return False
            segment = self._segments[-1]
            file = segment.open_file()  # held: the descriptor stays valid even if the segment goes
            target = self.log_end_offset
            truncations = self._truncations
            sync_dirs = self._dirs_unsynced
            rolls = self._unsynced_rolls()
            self._last_flush_ms = now_ms
        assert file is not None
        self._sync_unlocked(file, target, truncations, sync_dirs, rolls)
        return True



_TXN_OR_CONTROL = TRANSACTIONAL_MASK | CONTROL_MASK


def _split_batches(view: memoryview, max_batch_bytes: int) -> list[tuple[int, int, int, int, int, int, int]]:
    """Cheap structural check of the input: whole magic-2 batches, each within the size limit.

    Returns per batch ``(position, size, baseOffset, lastOffsetDelta, maxTimestamp, recordsCount,
    partitionLeaderEpoch)``. The CRC is not checked (the caller validated the batches).
    """
    out = []
    pos = 0
    n = len(view)
    unpack = APPEND_FIELDS.unpack_from
    while pos < n:
        if n - pos < HEADER_SIZE:
            raise InvalidRecordBatch(f"record batch header truncated: {n - pos} bytes")
        base, length, epoch, magic, _, delta, max_ts, count = unpack(view, pos)
        if magic != 2:
            raise InvalidRecordBatch(f"unsupported record batch magic {magic}")
        if length < MIN_BATCH_LENGTH or delta < 0 or count < 0:
            raise InvalidRecordBatch(f"bad batch length {length} or lastOffsetDelta {delta}")
        size = length + LOG_OVERHEAD
        if pos + size > n:
            raise InvalidRecordBatch(f"record batch truncated: have {n - pos} of {size} bytes")
        if size > max_batch_bytes:
            raise RecordBatchTooLargeError(f"batch of {size} bytes exceeds max.message.bytes {max_batch_bytes}")
        out.append((pos, size, base, delta, max_ts, count, epoch))
        pos += size
    if not out:
        raise InvalidRecordBatch("no record batch")
    return out


def _with_log_append_time(batch: memoryview, base_offset: int, epoch: int, now_ms: int) -> bytearray:
    """A copy of ``batch`` stamped with LogAppendTime (attributes and maxTimestamp change, so the CRC)."""
    out = bytearray(batch)
    PREFIX.pack_into(out, 0, base_offset, len(out) - LOG_OVERHEAD, epoch)
    set_log_append_time(out, now_ms)
    return out

