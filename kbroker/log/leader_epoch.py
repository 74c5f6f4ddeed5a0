"""The leader epoch cache of a partition and its ``leader-epoch-checkpoint`` file.

As Kafka's ``LeaderEpochFileCache``: an ascending list of ``(epoch, start offset)`` entries, the
first offset written under each leader epoch. Epochs and start offsets both strictly increase
along the list. It answers OffsetForLeaderEpoch (KIP-101/279): a follower asks the leader for the
end offset of its latest epoch and truncates its log there, so the logs of the replicas never
diverge.

The file is Kafka's checkpoint text format, byte for byte::

    0            version
    2            number of entries
    0 0          epoch start-offset
    3 1500

It is written atomically (temporary file, fsync, rename, directory fsync). A file that fails the
format check (Kafka's: version 0, count line, two fields per line, as many lines as counted) or
that is not monotonic is not trusted: the log rebuilds the cache from its batch headers.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kbroker_protocol.record_batch import LOG_OVERHEAD, PREFIX

if TYPE_CHECKING:
    from .segment import LogSegment

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "leader-epoch-checkpoint"
VERSION = 0
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


class EpochCheckpointError(ValueError):
    """A ``leader-epoch-checkpoint`` file that fails the format check."""


def format_checkpoint(entries: Iterable[tuple[int, int]]) -> bytes:
    entries = list(entries)
    lines = [str(VERSION), str(len(entries))]
    lines += [f"{epoch} {offset}" for epoch, offset in entries]
    return ("\n".join(lines) + "\n").encode()


def parse_checkpoint(data: bytes) -> list[tuple[int, int]]:
    """The entries of a checkpoint file's content; `EpochCheckpointError` if it is damaged.

    Kafka's checks (an empty file, or a file that ends after the version line, is an empty cache;
    unknown version, malformed lines, or a count that differs from the lines are errors), plus
    what Kafka's cache would refuse or silently drop: negative values, out-of-range numbers, and
    epochs or start offsets that do not strictly increase.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EpochCheckpointError(f"not text: {exc}") from None
    lines = text.splitlines()
    if not lines:
        return []
    version = _to_int(lines[0])
    if version != VERSION:
        raise EpochCheckpointError(f"unrecognised version {version}, expected {VERSION}")
    if len(lines) == 1:
        return []
    expected = _to_int(lines[1])
    entries: list[tuple[int, int]] = []
    for line in lines[2:]:
        fields = line.split()
        if len(fields) != 2:
            raise EpochCheckpointError(f"malformed line {line!r}")
        epoch, offset = _to_int(fields[0]), _to_int(fields[1])
        if not 0 <= epoch <= _INT32_MAX or not 0 <= offset <= _INT64_MAX:
            raise EpochCheckpointError(f"entry out of range {line!r}")
        if entries and (epoch <= entries[-1][0] or offset <= entries[-1][1]):
            raise EpochCheckpointError(f"entry {line!r} does not follow {entries[-1]}")
        entries.append((epoch, offset))
    if len(entries) != expected:
        raise EpochCheckpointError(f"expected {expected} entries, found {len(entries)}")
    return entries


def _to_int(text: str) -> int:
    # Java's parseInt/parseLong: optional sign, ASCII digits only (Python's int() also takes
    # spaces, underscores and other digits).
    body = text[1:] if text[:1] in ("-", "+") else text
    if not body or not body.isascii() or not body.isdigit():
        raise EpochCheckpointError(f"malformed line {text!r}")
    return int(text)


def read_checkpoint_file(path: Path) -> list[tuple[int, int]] | None:
    """The entries in ``path``; None when the file is missing; `EpochCheckpointError` if damaged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse_checkpoint(data)


def end_offset_for(entries: list[tuple[int, int]], requested: int, log_end: int) -> tuple[int, int]:
    """Kafka's ``LeaderEpochFileCache.endOffsetFor`` over ``entries`` (ascending epochs).

    * requested -1 (UNDEFINED), an empty cache, or an epoch above every known one: (-1, -1);
    * the latest epoch: that epoch and ``log_end``;
    * an older epoch: the largest known epoch at or below it and the start offset of the next
      known epoch; below every known epoch: the requested epoch and the first known start offset.
    """
    if requested == UNDEFINED_EPOCH or not entries:
        return UNDEFINED_EPOCH, UNDEFINED_OFFSET
    if entries[-1][0] == requested:
        return requested, log_end
    higher = bisect.bisect_right(entries, (requested, _INT64_MAX))
    if higher == len(entries):
        return UNDEFINED_EPOCH, UNDEFINED_OFFSET
    if higher == 0:
        return requested, entries[0][1]
    return entries[higher - 1][0], entries[higher][1]


class LeaderEpochCache:
    """The (epoch, start offset) entries of one partition, kept in ``path`` (None: memory only).

    Changes happen under the owning log's lock. The entry list is replaced, never changed in
    place, so a reader (or a file write from another thread) always sees a consistent list.
    ``latest_epoch`` (-1 when empty) is a plain attribute: the append path compares a batch's
    epoch with it and calls `assign` only when they differ.
    """

    __slots__ = ("path", "latest_epoch", "_entries", "_write_lock", "_dirty", "_on_disk", "stale_tail")

    def __init__(self, path: Path | None, entries: Iterable[tuple[int, int]] = ()) -> None:
        self.path = path
        self._entries: list[tuple[int, int]] = []
        self.latest_epoch = UNDEFINED_EPOCH
        self._write_lock = threading.Lock()
        self._dirty = False
        # What the file holds, durably (read from it or written by `write`, which fsyncs); None
        # when unknown. A write of these same entries is skipped.
        self._on_disk: list[tuple[int, int]] | None = None
        # The file has entries at or past the log end that the cache dropped when the log was
        # opened (`open_cache`): the log writes the file before it appends any batch.
        self.stale_tail = False
        for epoch, offset in entries:
            self._assign(epoch, offset)

    # -- reading -------------------------------------------------------------------------------

    def entries(self) -> list[tuple[int, int]]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def latest_entry(self) -> tuple[int, int] | None:
        entries = self._entries
        return entries[-1] if entries else None

    def earliest_entry(self) -> tuple[int, int] | None:
        entries = self._entries
        return entries[0] if entries else None

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(epoch, end offset) as OffsetForLeaderEpoch answers it; see the module function."""
        return end_offset_for(self._entries, requested_epoch, log_end_offset)

    def epoch_for_offset(self, offset: int) -> int | None:
        """The epoch of the entry with the largest start offset at or below ``offset``; None if
        ``offset`` is below the first entry (or the cache is empty)."""
        entries = self._entries
        i = bisect.bisect_right([start for _, start in entries], offset)
        return entries[i - 1][0] if i else None

    # -- changing ------------------------------------------------------------------------------

    def assign(self, epoch: int, start_offset: int, *, defer_if_absent: bool = False) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; True (and the file written) if the
        cache changed.

        ``defer_if_absent``: while there is no file yet, leave the write (and its two fsyncs) to a
        later one (`write_if_dirty`: clean close, retention, the next epoch's append). Safe: a log
        opened without the file rebuilds the whole cache from its batch headers. Becoming leader
        of a new partition takes this path, so creating 10,000 partitions does not cost 20,000
        fsyncs on the event loop.

        Nothing changes when ``epoch`` is the latest epoch and ``start_offset`` is not below its
        start. Otherwise every entry from the end with an epoch at or above ``epoch`` or a start
        offset at or above ``start_offset`` is removed first (Kafka: a non-monotonic entry means
        the log was truncated), then the entry is added. Negative values raise ValueError.
        """
        if not self._assign(epoch, start_offset):
            return False
        if defer_if_absent and self.path is not None and not self.path.exists():
            self._dirty = True
            return True
        self.write()
        return True

    def _assign(self, epoch: int, start_offset: int) -> bool:
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid partition leader epoch entry ({epoch}, {start_offset})")
        entries = self._entries
        if entries and entries[-1][0] == epoch and start_offset >= entries[-1][1]:
            return False
        keep = len(entries)
        while keep and (entries[keep - 1][0] >= epoch or entries[keep - 1][1] >= start_offset):
            keep -= 1
        removed = entries[keep:]
        if len(removed) > 1 or (removed and removed[0][1] != start_offset):
            logger.warning(
                "leader epoch entry (%d, %d) truncated the conflicting entries %s in %s",
                epoch, start_offset, removed, self.path,
            )
        self._entries = [*entries[:keep], (epoch, start_offset)]
        self.latest_epoch = epoch
        return True

    def assign_if_newer(self, epoch: int, start_offset: int) -> bool:
        """Recovery's rule (Kafka's ``LogSegment.recover``): assign only an epoch above the
        latest one; no file write (the caller writes once at the end)."""
        if epoch > self.latest_epoch:
            self._assign(epoch, start_offset)
            self._dirty = True
            return True
        return False

    def truncate_from_end(self, end_offset: int, *, write: bool = True) -> bool:
        """Remove every entry whose start offset is at or above ``end_offset`` (the log was cut
        there). True if anything was removed."""
        entries = self._entries
        keep = len(entries)
        while keep and end_offset >= 0 and entries[keep - 1][1] >= end_offset:
            keep -= 1
        if keep == len(entries):
            return False
        self._set(entries[:keep])
        if write:
            self.write()
        return True

    def truncate_from_start(self, start_offset: int, *, write: bool = True) -> bool:
        """The log start moved to ``start_offset``: drop the entries whose start offset is at or
        below it and re-add the last of them starting at ``start_offset``. True if changed.

        Retention calls this with ``write=False`` and writes later (`write_if_dirty`): a stale
        file only has entries below the log start, which opening cuts again.
        """
        entries = self._entries
        i = 0
        while i < len(entries) and entries[i][1] <= start_offset:
            i += 1
        if i == 0 or (i == 1 and entries[0][1] == start_offset):
            return False
        self._set([(entries[i - 1][0], start_offset), *entries[i:]])
        if write:
            self.write()
        return True

    def clear(self, *, write: bool = True) -> None:
        self._set([])
        if write:
            self.write()

    def _set(self, entries: list[tuple[int, int]]) -> None:
        self._entries = entries
        self.latest_epoch = entries[-1][0] if entries else UNDEFINED_EPOCH
        self._dirty = True

    # -- the file ------------------------------------------------------------------------------

    def write(self) -> None:
        """Write the current entries to the file atomically (a no-op without a path, or when the
        file already holds these entries)."""
        if self.path is None:
            return
        with self._write_lock:
            self._dirty = False
            entries = self._entries
            if entries != self._on_disk:
                write_checkpoint_file(self.path, entries)
                self._on_disk = entries  # (never changed in place: every change sets a new list)
            self.stale_tail = False

    def write_if_dirty(self) -> None:
        if self._dirty:
            self.write()


def write_checkpoint_file(path: Path, entries: list[tuple[int, int]]) -> None:
    """tmp + fsync + rename + directory fsync, so a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(format_checkpoint(entries))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SCAN_CHUNK = 1 << 20


def _scan_epochs(fd: int, size: int, cache: LeaderEpochCache) -> None:
    """Assign the epochs above the latest one of the batches in the first ``size`` bytes of the
    segment file ``fd`` (already loaded or recovered: whole batches). Reads 1 MiB at a time and
    unpacks only the first three fields of each batch."""
    unpack = PREFIX.unpack_from
    pos = 0
    chunk = b""
    chunk_start = 0
    while pos + PREFIX.size <= size:
        rel = pos - chunk_start
        if rel + PREFIX.size > len(chunk):
            chunk = os.pread(fd, min(_SCAN_CHUNK, size - pos), pos)
            chunk_start, rel = pos, 0
            if len(chunk) < PREFIX.size:
                return
        base, length, epoch = unpack(chunk, rel)
        if length <= 0:
            return
        if epoch > cache.latest_epoch:
            cache.assign_if_newer(epoch, base)
        pos += length + LOG_OVERHEAD


def open_cache(
    directory: Path,
    segments: Sequence[LogSegment],
    first_recovered: int | None,
    log_start: int,
    log_end: int,
) -> LeaderEpochCache:
    """The cache of a log being opened (Kafka's ``LogLoader`` steps, plus a rebuild).

    ``segments`` are the log's segments (their ``handle()`` and ``size``: the valid bytes);
    ``first_recovered`` is the index of the first one recovery scanned (None after a clean
    shutdown). A missing or damaged file is rebuilt from every batch header (the epoch of the
    first batch of each new, higher epoch); a good file gets the epochs of the recovered segments
    that are above its latest one (appends write the file before the batch, so these are rare).
    Then entries at or past the log end go, and the first entry is moved up to the log start.
    """
    path = directory / CHECKPOINT_FILE
    damaged = False
    try:
        entries = read_checkpoint_file(path)
    except (EpochCheckpointError, OSError) as exc:
        logger.warning("rebuilding unreadable %s from the log: %s", path, exc)
        entries = None
        damaged = True
    scan_from: int | None
    if entries is None:
        cache = LeaderEpochCache(path)
        scan_from = 0
    else:
        cache = LeaderEpochCache(path, entries)
        cache._on_disk = cache._entries if cache._entries == entries else None
        scan_from = first_recovered
    if scan_from is not None:
        for seg in segments[scan_from:]:
            if not seg.size:
                continue  # (nothing to scan; a new log's first segment has no file yet)
            file = seg.handle()  # held while its descriptor is read (the fd budget may release it)
            _scan_epochs(file.fileno(), seg.size, cache)
    scanned = cache._dirty
    cache.truncate_from_end(log_end, write=False)
    cache.truncate_from_start(log_start, write=False)
    # A new, empty partition writes nothing (creating partitions does no fsync).
    if damaged or scanned:
        cache.write()
    elif cache._dirty and cache._on_disk is not None:
        # Only entries at or past the log end (or below the log start) went: as Kafka's
        # truncateFromEndAsyncFlush, the file is not rewritten now. Entries below the log start
        # are cut again by the next open; entries at or past the log end would describe batches
        # appended later, so the log rewrites the file before its first append (`stale_tail`).
        # A replica becoming leader again in the same epoch at the log end (every partition of
        # a restarted single-node broker) puts the cache back to what the file holds: no write.
        cache.stale_tail = True
    return cache
