"""The state a partition log is made of, shared by its concerns (append, reads, retention and
truncation, transaction state, recovery), and its checkpoint file.

See partition_log.py for the files of a partition directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import prealloc
from .config import LogConfig
from .errors import (
    LogClosedError,
    LogCorruptedError,
)
from .fd_budget import BUDGET
from .leader_epoch import LeaderEpochCache
from .segment import (
    LogSegment,
)

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "log-state.checkpoint"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
DELETED_SUFFIX = ".deleted"
# ``<20-digit offset>.producer-snapshot``: the replication layer's producer-state snapshots
# (kbroker/replication/producer_snapshot.py); the log deletes those above its end when it is cut
PRODUCER_SNAPSHOT_SUFFIX = ".producer-snapshot"
CLEANED_SUFFIX = ".cleaned"
# Files that opening a log removes (`_clean_leftovers`): a cleaner's unfinished output, segments
# already dropped from the log, unfinished atomic writes.
LEFTOVER_SUFFIXES = (CLEANED_SUFFIX, DELETED_SUFFIX, ".tmp")
SWAP_SUFFIX = ".swap"
SWAP_RANGE_SUFFIX = ".swap-range"  # holds the first offset after the segments a swap replaces

# Upper bounds (ms) of the flush latency buckets the metrics endpoint reports.
FLUSH_BOUNDS_MS: tuple[float, ...] = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
                                      2500.0, 5000.0)



@dataclass(slots=True)
class Checkpoint:
    recovery_point: int = 0
    log_start_offset: int = 0
    cleaner_offset: int = 0
    # base offset -> .txnindex entries, for the segments with some; None: not recorded (a log
    # written before .txnindex files existed, or no checkpoint at all)
    txn_index_entries: dict[int, int] | None = None
    # the file's bytes as read (a checkpoint of the same state is not written again)
    raw: bytes | None = field(default=None, compare=False)


def _format_txn_entries(entries: dict[int, int]) -> str:
    return " ".join([str(len(entries)), *(f"{base}:{count}" for base, count in entries.items())])


def _parse_txn_entries(text: str | None) -> dict[int, int] | None:
    if text is None:
        return None
    fields = text.split()
    if not fields or int(fields[0]) != len(fields) - 1:
        raise ValueError(f"bad txn_index_entries {text!r}")
    return {int(base): int(count) for base, count in (f.split(":", 1) for f in fields[1:])}


def fsync_dir(path: Path) -> None:
    fd = BUDGET.open_fd(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_syncfs = prealloc.libc_function("syncfs", [ctypes.c_int])


def sync_filesystem(path: Path) -> None:
    """Make every change to the filesystem holding ``path`` durable: one syncfs(2) (os.sync()
    where it is missing), for what would otherwise take a directory fsync per partition."""
    if _syncfs is None:
        os.sync()
        return
    fd = BUDGET.open_fd(path, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs: {os.strerror(err)}", str(path))
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


def producer_snapshot_files(directory: Path) -> list[tuple[int, Path]]:
    """The ``(offset, path)`` of each producer snapshot in ``directory``, by offset."""
    out = []
    try:
        entries = os.scandir(directory)  # (not Path.glob: 10x slower, for each partition opened)
    except FileNotFoundError:
        return []
    with entries:
        for entry in entries:
            name = entry.name
            if name.endswith(PRODUCER_SNAPSHOT_SUFFIX):
                stem = name[: -len(PRODUCER_SNAPSHOT_SUFFIX)]
                if len(stem) == 20 and stem.isdigit():
                    out.append((int(stem), directory / name))
    return sorted(out)


def drop_producer_snapshots_above(directory: Path, offset: int) -> bool:
    """Delete the producer snapshots above ``offset`` (a log cut there: as Kafka's
    ``ProducerStateManager.truncateAndReload``, a snapshot past the log end describes batches
    that are gone); whether any was. The caller fsyncs the directory."""
    dropped = False
    for snap_offset, path in producer_snapshot_files(directory):
        if snap_offset > offset:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            dropped = True
    return dropped


def read_checkpoint(directory: Path) -> Checkpoint | None:
    try:
        raw = (directory / CHECKPOINT_FILE).read_bytes()
    except FileNotFoundError:
        return None
    try:
        lines = raw.decode().split("\n")
        if lines[0] != "0":
            raise ValueError(f"unknown version {lines[0]!r}")
        values = dict(line.split(" ", 1) for line in lines[1:] if line)
        return Checkpoint(
            recovery_point=int(values["recovery_point"]),
            log_start_offset=int(values["log_start_offset"]),
            cleaner_offset=int(values.get("cleaner_offset", "0")),
            txn_index_entries=_parse_txn_entries(values.get("txn_index_entries")),
            raw=raw,
        )
    except (ValueError, KeyError) as exc:
        logger.warning("ignoring unreadable checkpoint in %s: %s", directory, exc)
        return None


# A roll listener's work (roll.py): run outside the lock once the sealed segment is durable, it
# returns what to run then under the lock (or None), told whether the roll is still current (no
# truncation since, the log not closed): a file written aside is renamed into place only then.
RollFinish = Callable[[bool], object]
RollWork = Callable[[], RollFinish | None]


@dataclass(eq=False, slots=True)
class PendingRoll:
    """A segment roll whose disk waits have not run yet (roll.py)."""

    sealed: LogSegment
    target: int  # the first offset after the sealed segment
    truncations: int  # the log's truncation count at the roll
    active: LogSegment  # the new segment
    open_txns: dict[int, int] | None  # the new segment's .txnstate content, None: no file
    done: bool = False
    # the sealed segment's data and indexes and the directory (the new segment's entry) fsynced
    synced: bool = False
    # what the roll listener asked to run once the sealed segment is durable (roll.py)
    after_sync: RollWork | None = None


class LogState:
    """The fields of a `PartitionLog`, its checkpoint and its simple accessors. Every concern of the
    log is a mixin over this class; `PartitionLog` combines them."""

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
        # The directory is still to be made (`PartitionLog.open(lazy_dir=True)`): the first write
        # into it, or the log manager's worker soon after the partition is committed, makes it.
        self._dir_unborn = False
        self._truncations = 0  # bumped by every truncation (a flush outside the lock checks it)
        # Checkpoint writes: numbered snapshots, written in order by one writer at a time. Lock
        # order: `lock` before `_checkpoint_lock` (never the other way round). `_closed` is set
        # with both held (see `_store_checkpoint`).
        self._checkpoint_lock = threading.Lock()
        # Held by the roll worker while what a roll listener returned writes into the directory
        # without `lock` (a producer snapshot: its encoding is too slow for `lock`). `close` sets
        # `_closed` with it held too (after `lock` and `_checkpoint_lock`), so no such write is
        # under way or starts once a log is closed: a move copies the closed directory.
        self._after_sync_lock = threading.Lock()
        self._checkpoint_version = 0
        self._checkpoint_written = 0
        self._checkpoint_data: bytes | None = None  # what the checkpoint file holds, once written
        # The transactions open at the active segment's base (producer id -> first offset), as
        # its .txnstate file records them; None when not known (no file is then written at roll).
        self._open_txns: dict[int, int] | None = None
        # (epoch, start offset) entries, kept in leader-epoch-checkpoint (see leader_epoch.py).
        self._epochs = LeaderEpochCache(None)
        # Rolls whose fsyncs are still to run, oldest first (roll.py).
        self._pending_rolls: list[PendingRoll] = []

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _new_segment(self, base_offset: int, *, fresh: bool = False, lazy: bool = False) -> LogSegment:
        """A segment object for ``base_offset``: ``fresh`` when this process creates it empty
        (then it is known to hold no transactional or control batch yet); ``lazy``: its ``.log``
        file is created on first use (see `LogSegment`)."""
        segment = LogSegment(
            self.directory,
            base_offset,
            index_bytes=self.config.segment_index_bytes,
            created_ms=self._now_ms(),
            roll_jitter_ms=random.randrange(self.config.segment_jitter_ms) if self.config.segment_jitter_ms > 0 else 0,
            lazy=lazy,
        )
        segment.has_txn_batches = not fresh
        return segment

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

    def _ensure_directory(self) -> None:
        """Make the directory of a log opened with ``lazy_dir`` (its parent, the log dir, must
        exist: a vanished log dir is a storage error, not something to create again)."""
        if self._dir_unborn:
            self.directory.mkdir(exist_ok=True)
            self._dir_unborn = False

    def materialize(self) -> None:
        """Make the directory now if it is still to be made (and the log is open)."""
        with self.lock:
            if not self._closed:
                self._ensure_directory()

    @property
    def directory_made(self) -> bool:
        return not self._dir_unborn

    def _store_checkpoint(self, version: int, data: bytes) -> None:
        """Write a snapshot unless a newer one is already on disk (writers are serialised).

        A snapshot taken before the log was closed is dropped: `close` marks the log closed under
        the checkpoint lock, so once it has, no periodic checkpoint writes (nor makes the
        directory of a log that never had one) after a deletion renamed or skipped its directory
        or another log took its place; a write under way when it closes ends first."""
        with self._checkpoint_lock:
            if version <= self._checkpoint_written or self._closed:
                return
            self._ensure_directory()
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

    def high_watermark_to_end(self) -> None:
        """``high_watermark = log_end_offset`` in one call (a leader without followers, after each
        append: the setter's reads and bounds cost some 7,000 instructions, this a third)."""
        with self.lock:
            segments = self._segments
            end = segments[-1].next_offset if segments else 0
            start = self._log_start_offset
            self._high_watermark = end if end > start else start

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

