"""A partition log: an ordered list of segments with one active segment at the end.

Batches are stored exactly as received; `append` only patches baseOffset and
partitionLeaderEpoch (outside the CRC) by writing a 16-byte replacement header prefix followed by
the untouched rest of each batch with one ``pwritev``. Reads return `FileSlice` ranges cut at batch
boundaries for ``sendfile``.

Locking: every public method takes ``self.lock`` (a per-partition lock). The event loop calls
append/read; the background maintenance thread calls `delete_old_segments` and the cleaner, which
hold the lock only to pick segments and to swap them (file deletion and cleaning run outside).

Files in the partition directory:

* ``<20-digit base>.log/.index/.timeindex/.txnindex`` — the segments; the ``.txnindex`` (only
  for a segment holding ABORT markers) is the partition's aborted-transaction index, see
  `record_aborted_txn`, `collect_aborted_transactions` and txn_index.py;
* ``<20-digit base>.txnstate`` — the transactions open at the start of that segment, written when
  the log rolled to it: a rebuild of the ``.txnindex`` files after a crash replays from there
  (see `_rebuild_txn_indexes`);
* ``log-state.checkpoint`` — recovery point, log start offset, cleaner offset, and the number of
  ``.txnindex`` entries of each segment that has some (a file found with fewer is rebuilt; a
  checkpoint without that line comes from a version without ``.txnindex`` files: every segment's
  index is then built once);
* ``.kafka_cleanshutdown`` — written last by ``close(clean=True)``, removed by `open`.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import logging
import os
import random
import shutil
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from protocol.record_batch import (
    ATTRIBUTES_OFFSET,
    CONTROL_MASK,
    CRC_OFFSET,
    HEADER_SIZE,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_MASK,
    BatchHeader,
    InvalidRecordBatch,
    compute_crc,
    parse_header,
)
from protocol.records import ControlType, parse_control_record

from . import batch_records, prealloc, writeback
from .config import INT_MAX, LogConfig
from .errors import (
    InvalidOffsetError,
    LogClosedError,
    LogCorruptedError,
    OffsetOutOfRangeError,
    RecordBatchTooLargeError,
)
from .fd_budget import BUDGET
from .leader_epoch import UNDEFINED_EPOCH, UNDEFINED_OFFSET, LeaderEpochCache, open_cache
from .segment import (
    LOG_SUFFIX,
    MIN_BATCH_LENGTH,
    TXN_INDEX_SUFFIX,
    Damage,
    LogSegment,
    segment_name,
    segment_paths,
)
from .txn_index import TXN_STATE_SUFFIX, AbortedTxn, decode_open_txns, encode_open_txns

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "log-state.checkpoint"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
SWAP_RANGE_SUFFIX = ".swap-range"  # holds the first offset after the segments a swap replaces
DELETE_DIR_SUFFIX = "-delete"

# ListOffsets special timestamps.
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3

_PREFIX = struct.Struct(">qii")  # baseOffset, batchLength, partitionLeaderEpoch
_MAX_TIMESTAMP_OFFSET = 35  # byte offset of maxTimestamp in the batch header
_I64 = struct.Struct(">q")
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")
# baseOffset, batchLength, attributes, lastOffsetDelta, producerId: what a transaction replay reads
_TXN_FIELDS = struct.Struct(">qi9xhi16xq")
_REPLAY_CHUNK = 1024 * 1024
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


@dataclass(slots=True)
class Checkpoint:
    recovery_point: int = 0
    log_start_offset: int = 0
    cleaner_offset: int = 0
    # base offset -> .txnindex entries, for the segments with some; None: not recorded (a log
    # written before .txnindex files existed, or no checkpoint at all)
    txn_index_entries: dict[int, int] | None = None


def _format_txn_entries(entries: dict[int, int]) -> str:
    return " ".join([str(len(entries)), *(f"{base}:{count}" for base, count in entries.items())])


def _parse_txn_entries(text: str | None) -> dict[int, int] | None:
    if text is None:
        return None
    fields = text.split()
    if not fields or int(fields[0]) != len(fields) - 1:
        raise ValueError(f"bad txn_index_entries {text!r}")
    return {int(base): int(count) for base, count in (f.split(":", 1) for f in fields[1:])}


# Upper bounds (ms) of the flush latency buckets the metrics endpoint reports.
FLUSH_BOUNDS_MS: tuple[float, ...] = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
                                      2500.0, 5000.0)


def fsync_dir(path: Path) -> None:
    fd = BUDGET.open_fd(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_checkpoint(directory: Path) -> Checkpoint | None:
    try:
        lines = (directory / CHECKPOINT_FILE).read_text().split("\n")
    except FileNotFoundError:
        return None
    try:
        if lines[0] != "0":
            raise ValueError(f"unknown version {lines[0]!r}")
        values = dict(line.split(" ", 1) for line in lines[1:] if line)
        return Checkpoint(
            recovery_point=int(values["recovery_point"]),
            log_start_offset=int(values["log_start_offset"]),
            cleaner_offset=int(values.get("cleaner_offset", "0")),
            txn_index_entries=_parse_txn_entries(values.get("txn_index_entries")),
        )
    except (ValueError, KeyError) as exc:
        logger.warning("ignoring unreadable checkpoint in %s: %s", directory, exc)
        return None


class PartitionLog:
    """The log of one partition. Create with `PartitionLog.open`."""

    def __init__(self, directory: Path, config: LogConfig, clock: Callable[[], float]) -> None:
        self.directory = directory
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self._segments: list[LogSegment] = []
        self._log_start_offset = 0
        self._high_watermark = 0
        self._recovery_point = 0
        self._cleaner_offset = 0
        self._last_flush_ms = 0
        # Flush latency (Kafka's LogFlushStats), read by the metrics endpoint: a count per bucket of
        # FLUSH_BOUNDS_MS (then +Inf), allocated at the first flush, and their sum in ms.
        self.flush_buckets: list[int] | None = None
        self.flush_ms = 0.0
        self._offline: LogCorruptedError | None = None
        self._closed = False
        self._reserving = prealloc.supported()  # off for good once the file system refuses
        self._dirs_unsynced = False
        self._truncations = 0  # bumped by every truncation (a flush outside the lock checks it)
        # Checkpoint writes: numbered snapshots, written in order by one writer at a time. Lock
        # order: `lock` before `_checkpoint_lock` (never the other way round).
        self._checkpoint_lock = threading.Lock()
        self._checkpoint_version = 0
        self._checkpoint_written = 0
        self._checkpoint_data: bytes | None = None  # what the checkpoint file holds, once written
        # The transactions open at the active segment's base (producer id -> first offset), as
        # its .txnstate file records them; None when not known (no file is then written at roll).
        self._open_txns: dict[int, int] | None = None
        # (epoch, start offset) entries, kept in leader-epoch-checkpoint (see leader_epoch.py).
        self._epochs = LeaderEpochCache(None)

    # -- opening and recovery ----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig,
        *,
        clock: Callable[[], float] = time.time,
        verify: str = "recovery",
    ) -> PartitionLog:
        """Open (or create) the log in ``directory``, recovering it if it was not closed cleanly.

        ``verify="recovery"`` (Kafka's behaviour) checks the CRC of every batch from the recovery
        point on after an unclean shutdown; older data is checked lazily on its first read.
        ``verify="full"`` checks every batch of every segment now.

        Damage in the middle of the log does not raise here: the log opens offline and every
        operation raises `LogCorruptedError` (see docs/log.md).
        """
        if verify not in ("recovery", "full"):
            raise ValueError(f"verify must be 'recovery' or 'full', not {verify!r}")
        directory = Path(directory)
        created = not directory.is_dir()
        if created:
            directory.mkdir(parents=True)
        log = cls(directory, config, clock)
        # A new directory (and its first segment) must reach the disk before data is acknowledged
        # as flushed: the first flush fsyncs both directories (not done here: creating many
        # partitions stays cheap).
        log._dirs_unsynced = created
        log._load(verify)
        return log

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _new_segment(self, base_offset: int, *, fresh: bool = False) -> LogSegment:
        """A segment object for ``base_offset``: ``fresh`` when this process creates it empty
        (then it is known to hold no transactional or control batch yet)."""
        segment = LogSegment(
            self.directory,
            base_offset,
            index_bytes=self.config.segment_index_bytes,
            created_ms=self._now_ms(),
            roll_jitter_ms=random.randrange(self.config.segment_jitter_ms) if self.config.segment_jitter_ms > 0 else 0,
        )
        segment.has_txn_batches = not fresh
        return segment

    def _clean_leftovers(self) -> None:
        """Finish or undo file operations interrupted by a crash.

        The cleaner renames a segment's files ``.cleaned`` → ``.swap`` indexes first and the log
        last, then ``.swap`` → final names in the same order. So a ``.log.swap`` file means the
        new segment is complete and committed: it replaces every old segment in the range its
        ``.swap-range`` file gives, and its indexes (old or new) are removed to be rebuilt. Index ``.swap`` files without a ``.log.swap`` are
        from an uncommitted swap and are removed, as are ``.cleaned`` files (incomplete output),
        ``.deleted`` files (segments already dropped from the log) and ``.tmp`` files.
        """
        changed = False
        for path in sorted(self.directory.iterdir()):
            if path.name.endswith((CLEANED_SUFFIX, DELETED_SUFFIX, ".tmp")):
                path.unlink()
                changed = True
        log_swap = LOG_SUFFIX + SWAP_SUFFIX
        for path in sorted(self.directory.glob("*" + log_swap)):
            base = int(path.name[: -len(log_swap)])
            range_path = self.directory / segment_name(base, SWAP_RANGE_SUFFIX)
            try:
                upper = int(range_path.read_text().strip())
            except (FileNotFoundError, ValueError):
                upper = base + 1
            # The new segment replaces every old segment that starts in [base, upper).
            for other in self.directory.glob("*" + LOG_SUFFIX):
                name = other.name[: -len(LOG_SUFFIX)]
                if len(name) == 20 and name.isdigit() and base <= int(name) < upper:
                    for doomed in segment_paths(self.directory, int(name)):
                        doomed.unlink(missing_ok=True)
            logger.info("completing interrupted segment swap: %s", path)
            os.replace(path, self.directory / segment_name(base, LOG_SUFFIX))
            changed = True
        for path in sorted(self.directory.iterdir()):
            if path.name.endswith((SWAP_SUFFIX, SWAP_RANGE_SUFFIX)):
                path.unlink()
                changed = True
        if changed:
            fsync_dir(self.directory)

    def _load(self, verify: str) -> None:
        self._clean_leftovers()
        marker = self.directory / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        checkpoint = read_checkpoint(self.directory) or Checkpoint()
        recovery_point = checkpoint.recovery_point
        interval = self.config.index_interval_bytes
        bases = sorted(
            int(p.name[: -len(LOG_SUFFIX)])
            for p in self.directory.glob("*" + LOG_SUFFIX)
            if len(p.name) == 20 + len(LOG_SUFFIX) and p.name[:20].isdigit()
        )
        segments = [self._new_segment(base) for base in bases]
        recovered = False
        first_recovered: int | None = None  # the first segment recovery scanned (epoch cache)
        txn_stale: set[int] = set()  # positions of the segments whose .txnindex must be rebuilt
        for i, seg in enumerate(segments):
            last = i == len(segments) - 1
            next_base = None if last else segments[i + 1].base_offset
            recover = not clean and (last or next_base > recovery_point)
            scan = verify == "full" or recover
            if recover:
                txn_stale.add(i)
                if first_recovered is None:
                    first_recovered = i
            if scan:
                recovered = True
                damage = seg.rebuild(validate=True, interval=interval)
            else:
                damage = seg.load(interval=interval)
            if damage is None and next_base is not None and seg.next_offset > next_base:
                damage = Damage(seg.size, f"offsets run into the next segment (base {next_base})")
            if damage is None:
                continue
            offset = seg.next_offset
            if not last or (offset < recovery_point and self._damage_is_inside(seg, damage)):
                self._offline = LogCorruptedError(seg.log_path, offset, damage.position, damage.reason)
                logger.error("%s; partition %s is offline", self._offline, self.directory.name)
                self._segments = segments
                return
            logger.warning(
                "truncating %s at position %d (offset %d): %s", seg.log_path, damage.position, offset, damage.reason
            )
            if not scan:
                # Rebuild from the file to get consistent indexes for the kept part.
                seg.rebuild(validate=False, interval=interval, end=seg.size)
            os.ftruncate(seg.handle().fileno(), seg.size)
            txn_stale.add(i)
            recovered = True
        self._check_txn_indexes(segments, txn_stale, checkpoint.txn_index_entries)
        replayed: dict[int, dict[int, int]] = {}
        if txn_stale:
            replayed = self._rebuild_txn_indexes(segments, txn_stale)
            rebuilt_txn = True
        else:
            rebuilt_txn = False
        if not segments:
            self._drop_txn_state(checkpoint.log_start_offset)
            segments = [self._new_segment(checkpoint.log_start_offset, fresh=True)]
        self._open_txns = self._active_open_txns(segments, replayed)
        for seg in segments[:-1]:
            seg.offset_index.close()
            seg.time_index.close()
            seg.txn_index.close()
        self._segments = segments
        self._log_start_offset = max(checkpoint.log_start_offset, segments[0].base_offset)
        self._cleaner_offset = checkpoint.cleaner_offset
        self._epochs = open_cache(
            self.directory, segments, first_recovered, self._log_start_offset, self.log_end_offset
        )
        if self._log_start_offset > self.log_end_offset:
            # The start was moved past data lost in a crash: start empty at the log start.
            self._truncate_fully_locked(self._log_start_offset)
        if recovered:
            for seg in segments:
                seg.flush()
        self._recovery_point = self.log_end_offset
        self._high_watermark = self.log_end_offset
        self._last_flush_ms = self._now_ms()
        if recovered or rebuilt_txn:
            self._write_checkpoint()
        if clean:
            marker.unlink()
            fsync_dir(self.directory)
        elif self._offline is None:
            # Blocks a crashed process had reserved past the end of the active segment go back
            # (a clean close gave them back already).
            active = self._segments[-1]
            file = active.handle()
            prealloc.trim(file.fileno(), os.fstat(file.fileno()).st_size)

    def _check_txn_indexes(self, segments: list[LogSegment], stale: set[int], expected: dict[int, int] | None) -> None:
        """Load the ``.txnindex`` of each segment not in ``stale``; add to ``stale`` those to rebuild.

        Below the recovery point (after a clean shutdown: everywhere) an index is trusted once it
        passes the sanity check and has at least the entries the checkpoint counted (a deleted or
        cut file has fewer). Without counts in the checkpoint (a log from before .txnindex files)
        every index is rebuilt. Stray ``.txnindex`` files of no segment are removed.
        """
        bases = {seg.base_offset for seg in segments}
        for suffix in (TXN_INDEX_SUFFIX, TXN_STATE_SUFFIX):
            for path in self.directory.glob("*" + suffix):
                stem = path.name[: -len(suffix)]
                if len(stem) == 20 and stem.isdigit() and int(stem) not in bases:
                    path.unlink()
        if expected is None and any(seg.size for seg in segments):
            logger.info("building the transaction indexes of %s", self.directory.name)
            stale.update(range(len(segments)))
            return
        for i, seg in enumerate(segments):
            if i in stale:
                continue
            if not seg.txn_index.load(seg.next_offset):
                logger.warning("rebuilding damaged %s", seg.txn_index.path)
                stale.add(i)
            elif len(seg.txn_index) < (expected or {}).get(seg.base_offset, 0):
                logger.warning("rebuilding %s: %d entries, the checkpoint counted %d", seg.txn_index.path,
                               len(seg.txn_index), (expected or {})[seg.base_offset])
                stale.add(i)

    def _rebuild_txn_indexes(self, segments: list[LogSegment], stale: set[int]) -> dict[int, dict[int, int]]:
        """Rebuild the ``.txnindex`` of ``segments[i]`` for each ``i`` in ``stale`` from the batches.

        An entry needs the first offset of the aborted transaction, which may lie in an earlier
        segment, and the last stable offset when it was aborted. Both come from replaying the
        transactional batches and markers from a point where the open transactions are known:
        the base of the nearest segment at or before the first stale one with a valid
        ``.txnstate`` file (seeded with the transactions it lists), or the last stable offset of
        the last entry of the trusted indexes before the first stale segment if that is later
        (every transaction open at that entry's marker started at or after it, and so did every
        later one), or else the first segment. Segments without an ABORT marker need no replay:
        their index is just emptied.

        Returns the open transactions at the base of each segment the replay entered.
        """
        for i in stale:
            segments[i].txn_index.reset()
        order = sorted(stale)
        if not any(self._has_abort_marker(segments[i]) for i in order):
            return {}
        first, last = order[0], order[-1]
        start, anchor, open_txns = 0, segments[0].base_offset, {}
        for j in range(first, -1, -1):
            recorded = self._checked_open_txns(segments, j)
            if recorded is not None:
                start, anchor, open_txns = j, segments[j].base_offset, recorded
                break
        for j in range(first - 1, -1, -1):
            tail = None
            for tail in segments[j].txn_index.entries():  # noqa: B007 (the last entry)
                pass
            if tail is not None:
                if tail.last_stable_offset > anchor:
                    anchor, open_txns = tail.last_stable_offset, {}
                    start = self._position_in(segments, anchor)
                break
        logger.info("replaying the transactions of %s from offset %d (segment %d of %d, %d open)",
                    self.directory.name, anchor, start + 1, len(segments), len(open_txns))
        at_start: dict[int, dict[int, int]] = {}
        count = 0
        for k in range(start, last + 1):
            seg = segments[k]
            if anchor <= seg.base_offset:
                at_start[seg.base_offset] = dict(open_txns)
            found: list[AbortedTxn] = []
            self._replay_txns(seg, open_txns, anchor, found.append if k in stale else None)
            for txn in found:
                seg.txn_index.append(txn)
            count += len(found)
        for i in order:
            segments[i].txn_index.flush()
        logger.info("rebuilt the transaction index of %d segment(s) of %s: %d aborted transaction(s)",
                    len(order), self.directory.name, count)
        return at_start

    @classmethod
    def _replay_txns(
        cls, seg: LogSegment, open_txns: dict[int, int], anchor: int,
        on_abort: Callable[[AbortedTxn], object] | None,
    ) -> None:
        """Replay the batches of ``seg`` ending at or after ``anchor`` into ``open_txns`` (producer
        id -> first offset of its open transaction), calling ``on_abort`` for each transaction an
        ABORT marker closes.

        Reads the segment in large chunks and unpacks only the fields it needs (it runs on every
        roll): about 0.5 µs per batch. Raises `InvalidRecordBatch` on a batch that does not fit.
        """
        file = seg.handle()  # held while its descriptor is used
        fd, end = file.fileno(), seg.size
        unpack = _TXN_FIELDS.unpack_from
        need = _TXN_FIELDS.size
        pos = 0
        chunk, chunk_start = b"", 0
        while pos < end:
            rel = pos - chunk_start
            if rel + need > len(chunk):
                chunk, chunk_start, rel = os.pread(fd, min(_REPLAY_CHUNK, end - pos), pos), pos, 0
                if len(chunk) < need:
                    raise InvalidRecordBatch(f"truncated batch header at position {pos} of {seg.log_path}")
            base, length, attributes, delta, pid = unpack(chunk, rel)
            if length < MIN_BATCH_LENGTH or delta < 0:
                raise InvalidRecordBatch(f"bad batch at position {pos} of {seg.log_path}")
            size = length + 12
            if pid >= 0 and base + delta >= anchor:
                if not attributes & CONTROL_MASK:
                    if attributes & TRANSACTIONAL_MASK:
                        open_txns.setdefault(pid, base)
                else:
                    marker = cls._marker_type(seg, pos, seg.header_at(pos))
                    if marker in (ControlType.ABORT, ControlType.COMMIT):
                        first_offset = open_txns.pop(pid, None)
                        if marker == ControlType.ABORT and first_offset is not None and on_abort is not None:
                            lso = min(open_txns.values()) if open_txns else base + 1
                            on_abort(AbortedTxn(pid, first_offset, base, lso))
            pos += size

    def _txn_state_path(self, base_offset: int) -> Path:
        return self.directory / segment_name(base_offset, TXN_STATE_SUFFIX)

    def _read_open_txns(self, base_offset: int) -> dict[int, int] | None:
        """The open transactions the ``.txnstate`` file of ``base_offset`` records; None if it is
        missing or fails a check."""
        path = self._txn_state_path(base_offset)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read %s: %s", path, exc)
            return None
        recorded = decode_open_txns(data, base_offset)
        if recorded is None:
            logger.warning("ignoring damaged %s", path)
        return recorded

    def _write_open_txns(self, base_offset: int, open_txns: dict[int, int]) -> None:
        """Write (fsynced, atomically) the ``.txnstate`` file of ``base_offset``; on failure there
        is none, and a rebuild replays from further back."""
        path = self._txn_state_path(base_offset)
        try:
            write_file_atomically(path, encode_open_txns(base_offset, open_txns))
        except OSError as exc:
            logger.warning("cannot write %s: %s", path, exc)
            self._drop_txn_state(base_offset)

    def _drop_txn_state(self, base_offset: int) -> None:
        with contextlib.suppress(OSError):
            self._txn_state_path(base_offset).unlink(missing_ok=True)

    def _checked_open_txns(self, segments: list[LogSegment], j: int) -> dict[int, int] | None:
        """The ``.txnstate`` record at the base of ``segments[j]``, if a replay may start from it.

        Each transaction it lists must still have its first batch in the log (a transactional
        batch of that producer at that offset): compaction removes an aborted transaction's data
        and later its marker, and a replay that remembered the transaction but missed the
        marker would hold it open for ever. A batch still there keeps its marker (txn_cleaning.py
        rule 3). A transaction that began before the first segment (retention) cannot be checked,
        and leaving it out would lose its ABORT entry when it has batches in the first segment (a
        replay from the first segment finds them): such a record is not used either.
        """
        recorded = self._read_open_txns(segments[j].base_offset)
        if recorded is None:
            return None
        checked = {}
        for pid, first_offset in recorded.items():
            if first_offset < segments[0].base_offset:
                logger.info("not replaying from %s: the transaction of producer %d began before the log",
                            self._txn_state_path(segments[j].base_offset), pid)
                return None
            seg = segments[self._position_in(segments, first_offset)]
            try:
                found = seg.translate_offset(first_offset)
            except (InvalidRecordBatch, Damage, OSError):
                found = None
            header = None if found is None else found[1]
            if (
                header is None
                or header.base_offset != first_offset
                or header.producer_id != pid
                or header.is_control
                or not header.is_transactional
            ):
                logger.info("not replaying from %s: the transaction of producer %d at offset %d is gone",
                            self._txn_state_path(segments[j].base_offset), pid, first_offset)
                return None
            checked[pid] = first_offset
        return checked

    def _active_open_txns(
        self, segments: list[LogSegment], replayed: dict[int, dict[int, int]]
    ) -> dict[int, int] | None:
        """The open transactions at the base of the active segment, at open (None if unknown):
        from its ``.txnstate`` file, from a replay that went through its start (then written to
        that file), or empty for a log of one segment (what a full replay assumes too)."""
        base = segments[-1].base_offset
        recorded = self._read_open_txns(base)
        if recorded is not None:
            return recorded
        if base in replayed:
            if len(segments) > 1:
                self._write_open_txns(base, replayed[base])
            return replayed[base]
        return {} if len(segments) == 1 else None

    @staticmethod
    def _position_in(segments: list[LogSegment], offset: int) -> int:
        """Position of the last segment whose base offset is at or below ``offset`` (0 if none)."""
        pos = 0
        for i, seg in enumerate(segments):
            if seg.base_offset > offset:
                break
            pos = i
        return pos

    @classmethod
    def _has_abort_marker(cls, seg: LogSegment) -> bool:
        return any(
            header.is_control and header.producer_id >= 0 and cls._marker_type(seg, pos, header) == ControlType.ABORT
            for pos, header in seg.batches()
        )

    @staticmethod
    def _marker_type(seg: LogSegment, pos: int, header: BatchHeader) -> int | None:
        """The control record type (ABORT, COMMIT, ...) of the control batch at ``pos``."""
        try:
            record = next(batch_records.iter_records(seg.pread(header.size, pos)), None)
            return parse_control_record(record).type if record is not None else None
        except (InvalidRecordBatch, ValueError):
            logger.warning("unreadable control batch at offset %d in %s", header.base_offset, seg.log_path)
            return None

    @staticmethod
    def _damage_is_inside(seg: LogSegment, damage: Damage) -> bool:
        """Is the damage a bad batch with a plausible length that more data follows?"""
        try:
            header = seg.header_at(damage.position)
        except InvalidRecordBatch:
            return False
        if header.magic != 2 or header.batch_length < MIN_BATCH_LENGTH:
            return False
        return damage.position + header.size < seg.file_size()

    def _checkpoint_snapshot(self) -> tuple[int, bytes]:
        """A numbered snapshot of the checkpointed state (call with ``self.lock`` held)."""
        self._checkpoint_version += 1
        text = (
            "0\n"
            f"recovery_point {self._recovery_point}\n"
            f"log_start_offset {self._log_start_offset}\n"
            f"cleaner_offset {self._cleaner_offset}\n"
            f"txn_index_entries {_format_txn_entries(self._txn_index_entries())}\n"
        )
        return self._checkpoint_version, text.encode()

    def _store_checkpoint(self, version: int, data: bytes) -> None:
        """Write a snapshot unless a newer one is already on disk (writers are serialised)."""
        with self._checkpoint_lock:
            if version <= self._checkpoint_written:
                return
            if data != self._checkpoint_data:  # unchanged partitions cost no write and no fsync
                write_file_atomically(self.directory / CHECKPOINT_FILE, data)
                self._checkpoint_data = data
            self._checkpoint_written = version

    def _txn_index_entries(self) -> dict[int, int]:
        return {seg.base_offset: len(seg.txn_index) for seg in self._segments if len(seg.txn_index)}

    def _write_checkpoint(self) -> None:
        """Persist the checkpoint now, with ``self.lock`` held (the state cannot move meanwhile)."""
        self._store_checkpoint(*self._checkpoint_snapshot())

    def checkpoint(self) -> None:
        """Persist recovery point, log start and cleaner offset (the manager calls it periodically).

        The fsyncs happen outside the partition lock, so appends are not held up.
        """
        with self.lock:
            if self._closed or self._offline is not None:
                return
            snapshot = self._checkpoint_snapshot()
        self._store_checkpoint(*snapshot)

    # -- state -------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise LogClosedError(f"log {self.directory} is closed")
        if self._offline is not None:
            raise self._offline

    def _go_offline(self, error: LogCorruptedError) -> None:
        """Take the partition offline (``self.lock`` held): every operation then raises ``error``.

        Clears the cached `append_limits`, without which `append`'s one-batch path would keep
        accepting (and acknowledging) appends. Every later transition goes through here (at load no
        limits exist yet).
        """
        self._offline = error
        for seg in self._segments:
            seg.append_limits = None

    @property
    def offline(self) -> LogCorruptedError | None:
        """The corruption that took this partition offline, or None."""
        return self._offline

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._segments[-1].next_offset if self._segments else 0

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @high_watermark.setter
    def high_watermark(self, value: int) -> None:
        with self.lock:
            self._high_watermark = max(self._log_start_offset, min(value, self.log_end_offset))

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def cleaner_offset(self) -> int:
        return self._cleaner_offset

    @property
    def size(self) -> int:
        """Bytes of all segments."""
        return sum(seg.size for seg in self._segments)

    @property
    def segments(self) -> list[LogSegment]:
        """A snapshot of the segment list (oldest first)."""
        return list(self._segments)

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    # -- append ------------------------------------------------------------------------------

    def append(
        self,
        batches: bytes | bytearray | memoryview,
        *,
        leader_epoch: int = 0,
        assign_offsets: bool = True,
    ) -> AppendInfo:
        """Append one or more validated magic-2 batches.

        With ``assign_offsets`` (a leader) baseOffset is set to the log end and
        partitionLeaderEpoch to ``leader_epoch``; otherwise (a follower) the batches are written
        unchanged and must start at or after the log end. The input is never modified. With
        ``flush.messages`` reached the data is fsynced before this returns.
        """
        view = memoryview(batches)
        if type(batches) is not bytes and (view.format != "B" or view.ndim != 1):
            view = view.cast("B")
        config = self.config
        if assign_offsets and len(view) >= HEADER_SIZE and config.message_timestamp_type == "CreateTime":
            # The common case, one batch from the leader, checked as _split_batches would.
            _, length, _, magic, attributes, delta, max_ts, count = _BATCH_FIELDS.unpack_from(view, 0)
            size = length + 12
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
                        segment.write([_PREFIX.pack(base, length, leader_epoch), view[16:size]], size)
                        segment.track_batch(start, base, last, max_ts, size, limits[4])
                        if attributes & _TXN_OR_CONTROL:
                            segment.has_txn_batches = True
                        if segment.verified_size == start:
                            segment.verified_size = start + size
                        segment.size = start + size
                        if last + 1 - self._recovery_point >= config.flush_messages:
                            self._flush_locked()
                        return AppendInfo(base, last, max_ts, last, -1, self._log_start_offset, count, 1, size)
                return self._append_one(view, size, delta, max_ts, count, leader_epoch, config, attributes)
        batch_list = _split_batches(view, config.max_message_bytes)
        now_ms = int(self.clock() * 1000)
        with self.lock:
            if self._closed or self._offline is not None:
                self._check_usable()
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
            if config.message_timestamp_type == "LogAppendTime":
                log_append_time = now_ms
                buffers = [
                    _with_log_append_time(view[pos : pos + size], base, leader_epoch if assign_offsets else epoch, now_ms)
                    for base, (pos, size, _, _, _, _, epoch) in zip(bases, batch_list)  # noqa: B905 (same length)
                ]
                batch_list = [(b[0], b[1], b[2], b[3], now_ms, b[5], b[6]) for b in batch_list]
            elif assign_offsets:
                # A 16-byte replacement prefix (baseOffset, batchLength, epoch) + the untouched rest.
                buffers = []
                pack = _PREFIX.pack
                for base, (pos, size, _, _, _, _, _) in zip(bases, batch_list):  # noqa: B905
                    buffers.append(pack(base, size - 12, leader_epoch))
                    buffers.append(view[pos + 16 : pos + size])
            else:
                buffers = [view]
            start = segment.size
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
            if any(view[pos + _ATTRIBUTES_LOW] & _TXN_OR_CONTROL for pos, *_ in batch_list):
                segment.has_txn_batches = True
            if segment.next_offset - self._recovery_point >= config.flush_messages:
                self._flush_locked(now_ms)
            return AppendInfo(
                first_offset, last_offset, max_ts, offset_of_max, log_append_time, self._log_start_offset,
                num_records, len(batch_list), total,
            )

    def _append_one(
        self, view: memoryview, size: int, delta: int, max_ts: int, num_records: int, leader_epoch: int,
        config: LogConfig, attributes: int,
    ) -> AppendInfo:
        """One CreateTime batch from the leader when `append`'s fast path cannot take it: a roll
        may be due. Sets the active segment's `append_limits` for the next ones.
        """
        with self.lock:
            if self._closed or self._offline is not None:
                self._check_usable()
            segment = self._segments[-1]
            base = segment.next_offset
            last = base + delta
            segment = self._maybe_roll(size, base, last, max_ts, None)
            start = segment.size
            if self._reserving and start + size > segment.reserved_end:
                self._reserve(segment, start + size, config)
            if leader_epoch != self._epochs.latest_epoch:
                self._assign_epoch(leader_epoch, base)
            segment.write([_PREFIX.pack(base, size - 12, leader_epoch), view[16:size]], size)
            segment.track_batch(start, base, last, max_ts, size, config.index_interval_bytes)
            if attributes & _TXN_OR_CONTROL:
                segment.has_txn_batches = True
            if segment.verified_size == start:
                segment.verified_size = start + size
            segment.size = start + size
            segment.append_limits = self._append_limits(segment, config)
            if last + 1 - self._recovery_point >= config.flush_messages:
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
        dropped again by truncation to the log end and at open, as in Kafka."""
        with self.lock:
            self._check_usable()
            return self._epochs.assign(leader_epoch, start_offset)

    def truncate_to_epoch_end(self, leader_epoch: int, leader_end_offset: int) -> tuple[int, bool] | None:
        """A follower's truncation from the leader's OffsetForLeaderEpoch answer (KIP-101/279).

        ``leader_epoch``/``leader_end_offset`` are what the leader answered for the follower's
        latest epoch. As Kafka's fetcher: with this log's own end for that epoch it truncates to
        the smaller of the two ends (and the log end); if this log has no such epoch it truncates
        to its own end of the largest epoch below and the answer's ``complete`` is False (ask the
        leader again with this log's new latest epoch). Segments, offset and time indexes,
        ``.txnindex`` entries and the epoch cache are cut together (`truncate_to`).

        Returns ``(offset, complete)``, or None when the leader's end offset is undefined (-1:
        nothing is truncated; Kafka keeps the fetch offset). The producer state (kept in
        ``kbroker/replication/``) is not touched here: the caller must rebuild it to ``offset``.
        """
        with self.lock:
            self._check_usable()
            if leader_end_offset == UNDEFINED_OFFSET:
                return None
            log_end = self.log_end_offset
            if leader_epoch == UNDEFINED_EPOCH:
                offset, complete = min(leader_end_offset, log_end), True
            else:
                own_epoch, own_end = self._epochs.end_offset_for(leader_epoch, log_end)
                if own_end == UNDEFINED_OFFSET:  # below every epoch here
                    offset, complete = min(leader_end_offset, log_end), True
                elif own_epoch != leader_epoch:
                    offset, complete = min(own_end, log_end), False
                else:
                    offset, complete = min(own_end, leader_end_offset, log_end), True
            self.truncate_to(offset)
            return offset, complete

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

    def _roll(self, base_offset: int) -> LogSegment:
        """Seal the active segment (fsync it) and start a new one at ``base_offset``.

        The transactions open at ``base_offset`` (those open at the old segment's base, replayed
        through the old segment) are written to the new segment's ``.txnstate`` file first, so a
        crash leaves either no file or a complete one for data already on disk.
        """
        old = self._segments[-1]
        old.seal()
        # Everything before the new segment is now on disk: sealed segments are always flushed.
        self._recovery_point = max(self._recovery_point, old.next_offset)
        open_txns = None if self._open_txns is None else dict(self._open_txns)
        # A segment without transactional or control batches changes nothing: no replay.
        if open_txns is not None and old.has_txn_batches:
            try:
                self._replay_txns(old, open_txns, old.base_offset, None)
            except (InvalidRecordBatch, OSError) as exc:
                logger.warning("no transaction state recorded at offset %d of %s: %s", base_offset,
                               self.directory.name, exc)
                open_txns = None
        if open_txns is not None:
            self._write_open_txns(base_offset, open_txns)
        else:
            self._drop_txn_state(base_offset)
        self._open_txns = open_txns
        segment = self._new_segment(base_offset, fresh=True)
        self._segments.append(segment)
        fsync_dir(self.directory)
        return segment

    def roll(self) -> None:
        """Start a new segment now (if the active one holds data)."""
        with self.lock:
            self._check_usable()
            if self._segments[-1].size:
                self._roll(self.log_end_offset)

    # -- flushing --------------------------------------------------------------------------

    def _flush_locked(self, now_ms: int | None = None) -> None:
        if self.log_end_offset > self._recovery_point:
            started = time.perf_counter()
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
            self._last_flush_ms = now_ms
        assert file is not None
        os.fdatasync(file.fileno())
        if sync_dirs:
            fsync_dir(self.directory)
            fsync_dir(self.directory.parent)
        with self.lock:
            if sync_dirs:
                self._dirs_unsynced = False
            # Earlier segments are always on disk (sealed when rolled); a truncation meanwhile may
            # have replaced the data, so then the flush proves nothing.
            if truncations == self._truncations and not self._closed:
                self._recovery_point = max(self._recovery_point, min(target, self.log_end_offset))
        return True

    # -- reads ----------------------------------------------------------------------------

    def _segment_index(self, offset: int) -> int:
        """Index of the last segment whose base offset is at or below ``offset`` (0 if none)."""
        lo, hi = 0, len(self._segments)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._segments[mid].base_offset <= offset:
                lo = mid + 1
            else:
                hi = mid
        return max(lo - 1, 0)

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

    def _read_segment(
        self, seg: LogSegment, offset: int, limit: int, max_bytes: int, must_fill: bool
    ) -> tuple[FileSlice | None, bool]:
        """A slice of ``seg`` from ``offset``; ``done`` when a limit stopped it (not the segment end)."""
        found = seg.translate_offset(offset)
        if found is None:
            return None, False
        start, header = found
        if header.last_offset >= limit:
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
            end = start + header.size
        if end > seg.verified_size:
            damage = seg.verify(end)
            if damage is not None:
                offset_at = seg.header_at(damage.position).base_offset if damage.position < seg.size else -1
                self._go_offline(LogCorruptedError(seg.log_path, offset_at, damage.position, damage.reason))
                logger.error("%s; partition %s is offline", self._offline, self.directory.name)
                raise self._offline
        # Stopped before the segment end: max_bytes or max_offset cut it, the read is complete.
        return FileSlice(seg.handle(), start, end - start), end < seg.size

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

    # -- timestamps ------------------------------------------------------------------------

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

    # -- aborted transactions ------------------------------------------------------------------

    def record_aborted_txn(self, producer_id: int, first_offset: int, last_offset: int,
                           last_stable_offset: int) -> None:
        """Add an aborted transaction to the ``.txnindex`` of the segment holding its ABORT
        marker (at ``last_offset``, already appended). ``last_stable_offset``: the partition's
        last stable offset once it is aborted (Kafka's ``lastStableOffset(completedTxn)``).

        The active segment's index is fsynced with the segment when it is sealed (a crash before
        that rebuilds it at recovery); an older segment's is fsynced now.
        """
        with self.lock:
            self._check_usable()
            seg = self._segments[self._segment_index(last_offset)]
            if not seg.base_offset <= last_offset < seg.next_offset:
                raise ValueError(f"offset {last_offset} of the abort marker is not in the log")
            seg.txn_index.append(AbortedTxn(producer_id, first_offset, last_offset, last_stable_offset))
            if seg is not self._segments[-1]:
                seg.txn_index.close()

    def collect_aborted_transactions(self, start: int, end: int) -> list[AbortedTxn]:
        """The aborted transactions overlapping ``[start, end)``: marker at or after ``start``,
        first offset before ``end`` (what a read_committed fetch of that range must list).

        As Kafka's ``UnifiedLog.collectAbortedTransactions``: the indexes of the segments from
        the one holding ``start`` on, until an entry's last stable offset reaches ``end`` (no
        later transaction can then have started before ``end``). The index files are read even
        when the log is offline or closed (a fetch that has just read the data lists them).
        """
        with self.lock:
            out: list[AbortedTxn] = []
            for seg in self._segments[self._segment_index(start):]:
                found, complete = seg.txn_index.collect(start, end)
                out += found
                if complete:
                    break
            return out

    # -- truncation and log start ------------------------------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Remove every batch from the one containing ``offset`` on; the log end becomes ``offset``.

        As in Kafka, a batch that straddles ``offset`` goes entirely and the log end is still
        ``offset`` (the next append starts there). Below the log start, the log is emptied and
        restarts at ``offset``.
        """
        with self.lock:
            self._check_usable()
            if offset >= self.log_end_offset:
                # As Kafka: an entry a failed append left at the log end goes.
                self._epochs.truncate_from_end(self.log_end_offset)
                return
            if offset < self._log_start_offset or offset < self._segments[0].base_offset:
                self._truncate_fully_locked(offset)
                return
            doomed = []
            while len(self._segments) > 1 and self._segments[-1].base_offset > offset:
                doomed.append(self._segments.pop())
            seg = self._segments[-1]
            self._truncations += 1
            # The later segments (and their .txnstate records) go first, durably, as in Kafka: a
            # crash must not leave them beside a cut segment whose cut data their records count.
            for d in doomed:
                d.delete_files()
                self._drop_txn_state(d.base_offset)
            if doomed:
                fsync_dir(self.directory)
            found = seg.translate_offset(offset)
            if found is not None:
                seg.truncate_to_position(found[0], self.config.index_interval_bytes)
            seg.txn_index.truncate_to(offset)
            seg.next_offset = offset
            seg.append_limits = None
            self._epochs.truncate_from_end(offset)
            if doomed:
                self._open_txns = self._read_open_txns(seg.base_offset)
                if self._open_txns is None and len(self._segments) == 1:
                    self._open_txns = {}
            self._recovery_point = min(self._recovery_point, offset)
            self._high_watermark = min(self._high_watermark, offset)
            self._cleaner_offset = min(self._cleaner_offset, offset)
            self._write_checkpoint()

    def truncate_fully(self, offset: int) -> None:
        """Delete everything and continue at ``offset`` (a follower far behind the leader's start)."""
        with self.lock:
            self._check_usable()
            self._truncate_fully_locked(offset)

    def _truncate_fully_locked(self, offset: int) -> None:
        self._truncations += 1
        doomed, self._segments = self._segments, []
        for seg in doomed:
            seg.delete_files()
            self._drop_txn_state(seg.base_offset)
        self._drop_txn_state(offset)
        self._segments.append(self._new_segment(offset, fresh=True))
        self._open_txns = {}
        self._epochs.clear(write=len(self._epochs) > 0)
        fsync_dir(self.directory)
        self._log_start_offset = offset
        self._recovery_point = offset
        self._high_watermark = offset
        self._cleaner_offset = offset
        self._write_checkpoint()

    def advance_log_start(self, offset: int) -> int:
        """DeleteRecords: move the log start to ``offset`` (at most the high watermark).

        Segments entirely below the new start are deleted (never the active one). Returns the
        new log start offset.
        """
        with self.lock:
            self._check_usable()
            if offset > self._high_watermark or offset < 0:
                raise OffsetOutOfRangeError(offset, self._log_start_offset, self._high_watermark)
            if offset <= self._log_start_offset:
                return self._log_start_offset
            self._log_start_offset = offset
            self._cleaner_offset = max(self._cleaner_offset, offset)
            self._write_checkpoint()
            self._epochs.truncate_from_start(offset)
            doomed = self._remove_segments_below(offset)
        self._delete_segments(doomed)
        return offset

    def _remove_segments_below(self, offset: int) -> list[LogSegment]:
        doomed = []
        while len(self._segments) > 1 and self._segments[1].base_offset <= offset:
            doomed.append(self._segments.pop(0))
        for seg in doomed:
            # Renamed under the lock so a crash before the unlink cannot bring it back.
            with contextlib.suppress(FileNotFoundError):
                os.replace(seg.log_path, seg.log_path.with_name(seg.log_path.name + DELETED_SUFFIX))
        return doomed

    @staticmethod
    def _delete_segments(doomed: list[LogSegment]) -> None:
        for seg in doomed:
            seg.delete_files()
            with contextlib.suppress(FileNotFoundError):
                seg.log_path.with_name(seg.log_path.name + DELETED_SUFFIX).unlink()
            with contextlib.suppress(OSError):
                (seg.directory / segment_name(seg.base_offset, TXN_STATE_SUFFIX)).unlink(missing_ok=True)

    # -- retention ---------------------------------------------------------------------------

    def delete_old_segments(self, now_ms: int | None = None) -> int:
        """Apply retention (time, size, log start); returns how many segments were deleted.

        Only whole segments below the high watermark go, oldest first, never the active one.
        """
        with self.lock:
            if self._closed or self._offline is not None:
                return 0
            now_ms = self._now_ms() if now_ms is None else now_ms
            config = self.config
            excess = self.size - config.retention_bytes if config.retention_bytes >= 0 else -1
            count = 0
            for i, seg in enumerate(self._segments[:-1]):
                upper = self._segments[i + 1].base_offset
                if upper > self._high_watermark:
                    break
                if upper <= self._log_start_offset:
                    pass
                elif not config.delete:
                    break
                elif config.retention_ms >= 0 and now_ms - self._largest_timestamp(seg) > config.retention_ms:
                    pass
                elif excess >= 0 and excess - seg.size >= 0:
                    pass
                else:
                    break
                excess -= seg.size
                count += 1
            if not count:
                return 0
            doomed = self._segments[:count]
            new_start = self._segments[count].base_offset
            self._remove_segments_below(new_start)
            snapshot = None
            if new_start > self._log_start_offset:
                self._log_start_offset = new_start
                self._cleaner_offset = max(self._cleaner_offset, new_start)
                snapshot = self._checkpoint_snapshot()
                self._epochs.truncate_from_start(new_start, write=False)
        # Outside the lock: a crash before this write is harmless, the log start is then the base
        # of the first segment left, which is the same offset.
        if snapshot is not None:
            self._store_checkpoint(*snapshot)
            self._epochs.write_if_dirty()
        self._delete_segments(doomed)
        return count

    @staticmethod
    def _largest_timestamp(seg: LogSegment) -> int:
        if seg.max_timestamp >= 0:
            return seg.max_timestamp
        try:
            return int(seg.log_path.stat().st_mtime * 1000)
        except FileNotFoundError:
            return 0

    # -- shutdown and deletion ---------------------------------------------------------------

    def close(self, clean: bool = True) -> None:
        """Close the log. ``clean``: fsync everything, checkpoint, then write the shutdown marker."""
        with self.lock:
            if self._closed:
                return
            if clean and self._offline is None:
                # Older segments were fsynced when they were rolled, cleaned or recovered.
                self._segments[-1].seal()
                self._recovery_point = self.log_end_offset
                self._write_checkpoint()
                # Everything the marker vouches for is on disk now; one directory fsync makes
                # the marker itself durable.
                fd = os.open(self.directory / CLEAN_SHUTDOWN_FILE, os.O_WRONLY | os.O_CREAT, 0o644)
                os.close(fd)
                fsync_dir(self.directory)
            for seg in self._segments:
                seg.close()
                seg.append_limits = None  # appends go through _check_usable
            self._closed = True

    def delete(self, *, remove: bool = True, sync: bool = True) -> Path:
        """Topic deletion: close, rename the directory to ``<name>.<id>-delete``, then remove it.

        With ``remove=False`` the renamed directory is left for the caller to remove later. With
        ``sync=False`` the parent directory is not fsynced (a caller deleting many logs does it
        once per directory).
        """
        with self.lock:
            for seg in self._segments:
                seg.reserved_end = 0  # the files go: blocks reserved ahead need no trimming
            self.close(clean=False)
            target = self.directory.with_name(delete_dir_name(self.directory.name))
            os.replace(self.directory, target)
            if sync:
                fsync_dir(target.parent)
        if remove:
            shutil.rmtree(target, ignore_errors=True)
        return target

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.directory.name}, start={self._log_start_offset}, end={self.log_end_offset}, "
            f"hw={self._high_watermark}, segments={len(self._segments)})"
        )


def delete_dir_name(directory_name: str) -> str:
    """``<topic>-<partition>.<unique id>-delete`` for a partition directory ``<topic>-<partition>``,
    the topic cut short so that the name stays within 255 characters (a file name's limit), as
    Kafka's LocalLog.logDeleteDirName: a topic name may have 249 characters, and the suffix alone
    takes 42 or more."""
    topic, partition = directory_name.rsplit("-", 1)
    suffix = f"-{partition}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}"
    return topic[: 255 - len(suffix)] + suffix


# baseOffset, batchLength, partitionLeaderEpoch, magic, lastOffsetDelta, maxTimestamp, recordsCount
_BATCH_FIELDS = struct.Struct(">qiib4xhi8xq8x2x4xi")
_ATTRIBUTES_LOW = 22  # the low byte of the attributes (int16 at 21) in a batch header
_TXN_OR_CONTROL = TRANSACTIONAL_MASK | CONTROL_MASK


def _split_batches(view: memoryview, max_batch_bytes: int) -> list[tuple[int, int, int, int, int, int, int]]:
    """Cheap structural check of the input: whole magic-2 batches, each within the size limit.

    Returns per batch ``(position, size, baseOffset, lastOffsetDelta, maxTimestamp, recordsCount,
    partitionLeaderEpoch)``. The CRC is not checked (the caller validated the batches).
    """
    out = []
    pos = 0
    n = len(view)
    unpack = _BATCH_FIELDS.unpack_from
    while pos < n:
        if n - pos < HEADER_SIZE:
            raise InvalidRecordBatch(f"record batch header truncated: {n - pos} bytes")
        base, length, epoch, magic, _, delta, max_ts, count = unpack(view, pos)
        if magic != 2:
            raise InvalidRecordBatch(f"unsupported record batch magic {magic}")
        if length < MIN_BATCH_LENGTH or delta < 0 or count < 0:
            raise InvalidRecordBatch(f"bad batch length {length} or lastOffsetDelta {delta}")
        size = length + 12
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
    _PREFIX.pack_into(out, 0, base_offset, len(out) - 12, epoch)
    (attributes,) = _I16.unpack_from(out, ATTRIBUTES_OFFSET)
    _I16.pack_into(out, ATTRIBUTES_OFFSET, attributes | TIMESTAMP_TYPE_MASK)
    _I64.pack_into(out, _MAX_TIMESTAMP_OFFSET, now_ms)
    _U32.pack_into(out, CRC_OFFSET, compute_crc(out, 0, len(out)))
    return out


__all__ = [
    "AppendInfo",
    "FileSlice",
    "PartitionLog",
    "ReadResult",
    "EARLIEST_TIMESTAMP",
    "LATEST_TIMESTAMP",
    "MAX_TIMESTAMP",
]
