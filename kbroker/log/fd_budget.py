"""The file-descriptor budget of the log layer: how many segment files stay open at once.

A broker with many partitions (or many small segments) would otherwise hold one descriptor per
segment ``.log`` file and run out of them (``EMFILE``) under the usual 1,024 limit, after which
creating topics, accepting connections and committing metadata all fail. Kafka keeps every
segment open and relies on a large limit; kbroker keeps a bounded set instead:

* Each `LogSegment` registers its open ``.log`` file here. When more than ``capacity`` are
  registered, the least recently used one is *released*: the segment drops its reference to
  the file object, and the segment reopens its file on the next use (a read, an append, a flush).
  Active segments are released too (a producer that comes back reopens the file: one ``open``).
* Recency is a second-chance ("clock") bit the segment sets on each use: the append hot path
  pays one attribute store, never this module's lock.
* A file still in use is never closed under its user: whoever uses a descriptor holds the
  `SegmentFile` object (a `FileSlice` waiting for ``sendfile``, an append in progress, the
  cleaner), and the descriptor closes only when the last reference goes. Files referenced
  elsewhere are skipped by the eviction, since releasing them would not give a descriptor back;
  the budget is then exceeded by the files in use, until the next open or `trim` (each log
  maintenance round) releases them.
* The index files (``.index``, ``.timeindex``, ``.txnindex``) hold no descriptor between
  operations: each write opens and closes its file (see index.py and txn_index.py).
* An ``open`` that fails with ``EMFILE``/``ENFILE`` releases half of the open segment files and
  tries once more; the capacity is then lowered to what could be held, so the log layer adapts
  to a limit lower than it was told. A second failure is raised (`OSError`) to the operation.

The budget is process-wide (the descriptor limit is): `configure` sets it, by default half of
the soft ``RLIMIT_NOFILE`` (`default_capacity`), leaving the other half for sockets and other
files; `raise_nofile_limit` lifts the soft limit to the hard one (the JVM does the same for
Kafka, ``-XX:+MaxFDLimit``).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import resource
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

_FD_EXHAUSTED = (errno.EMFILE, errno.ENFILE)
_MIN_CAPACITY = 8


class SegmentFile(io.FileIO):
    """A raw file that closes itself quietly when the last reference goes away."""

    def __del__(self) -> None:
        if not self.closed:
            self.close()


def nofile_limits() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def raise_nofile_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (if allowed); returns the soft limit."""
    soft, hard = nofile_limits()
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard
        if hard == resource.RLIM_INFINITY:
            target = 1 << 20  # Linux refuses more than nr_open (1M by default)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open file limit from %d to %d: %s", soft, target, exc)
    return soft


def default_capacity(soft_limit: int | None = None) -> int:
    """Half of the soft descriptor limit (the rest is left to sockets and other files)."""
    if soft_limit is None:
        soft_limit = nofile_limits()[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit <= 0:
        soft_limit = 1 << 20
    return max(_MIN_CAPACITY, soft_limit // 2)


def _exhausted(exc: OSError) -> bool:
    return exc.errno in _FD_EXHAUSTED


class BudgetedSegment(Protocol):
    """What the budget reads and sets of a segment (kbroker.log.segment.LogSegment)."""

    file: SegmentFile | None  # None: released (or closed)
    used: bool  # the second-chance bit

    @property
    def log_path(self) -> Path: ...


class FdBudget:
    """Open segment files, least recently used first, at most ``capacity`` of them."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._open: OrderedDict[BudgetedSegment, None] = OrderedDict()  # LogSegment -> None, oldest first
        self.releases = 0  # segment files released to stay within the budget (for tests, logs)
        self.reopens = 0  # segment files reopened after a release

    def __len__(self) -> int:
        return len(self._open)

    def is_open(self, segment: BudgetedSegment) -> bool:
        return segment in self._open

    # -- opening -------------------------------------------------------------------------------

    def open_fd(self, path: Path | str, flags: int, mode: int = 0o644) -> int:
        """``os.open`` that, when descriptors run out, releases segment files and tries again."""
        try:
            return os.open(path, flags, mode)
        except OSError as exc:
            if not _exhausted(exc):
                raise
            with self._lock:
                self._make_room(exc)
        return os.open(path, flags, mode)

    def open_segment(self, segment: BudgetedSegment, *, create: bool) -> SegmentFile:
        """Open ``segment.log_path`` read-write (``create``: creating it), register it, and set
        ``segment.file``. Returns the file object: hold it while using its descriptor."""
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        with self._lock:
            file = segment.file
            if file is not None:
                return file
            try:
                fd = os.open(segment.log_path, flags, 0o644)
            except OSError as exc:
                if not _exhausted(exc):
                    raise
                self._make_room(exc)
                fd = os.open(segment.log_path, flags, 0o644)
            file = SegmentFile(fd, "r+")
            segment.file = file
            segment.used = True
            self._open[segment] = None
            if not create:
                self.reopens += 1
            if len(self._open) > self.capacity:
                self._release_to(self.capacity, keep=segment)
            return file

    def forget(self, segment: BudgetedSegment) -> None:
        """The segment closed its file itself (closed, deleted, replaced)."""
        with self._lock:
            self._open.pop(segment, None)

    # -- releasing -----------------------------------------------------------------------------

    def _release_to(self, target: int, *, keep: BudgetedSegment | None = None, second_chance: bool = True) -> int:
        """Release segment files, least recently used first, until ``target`` remain (or every
        candidate was looked at). Files in use elsewhere and ``keep`` are skipped. Lock held."""
        released = 0
        looked = 0
        limit = 2 * len(self._open)
        while len(self._open) > target and looked < limit:
            looked += 1
            segment = next(iter(self._open))
            if segment is keep:
                self._open.move_to_end(segment)
                continue
            if second_chance and segment.used:
                segment.used = False
                self._open.move_to_end(segment)
                continue
            file = segment.file
            # References: segment.file, `file` here and getrefcount's argument. More means a
            # reader or writer holds it: releasing it would not give a descriptor back.
            if file is not None and sys.getrefcount(file) > 3:
                self._open.move_to_end(segment)
                continue
            del self._open[segment]
            segment.file = None
            del file  # the last reference: the descriptor closes here
            released += 1
        self.releases += released
        return released

    def _make_room(self, exc: OSError) -> None:
        """Descriptors ran out (``exc``): release half the open segment files, lower the budget
        to what is left, or raise ``exc`` if there was nothing to release. Lock held."""
        held = len(self._open)
        released = self._release_to(held // 2, second_chance=False)
        if not released:
            raise exc
        new_capacity = max(1, held - released)
        if new_capacity < self.capacity:
            logger.warning(
                "out of file descriptors (%s): released %d segment files; open segment budget lowered from %d to %d",
                exc.strerror, released, self.capacity, new_capacity,
            )
            self.capacity = new_capacity

    def trim(self) -> int:
        """Release files beyond the budget: those skipped while they were in use (called by the
        log maintenance each round). Returns how many were released."""
        with self._lock:
            if len(self._open) <= self.capacity:
                return 0
            return self._release_to(self.capacity)

    def resize(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        with self._lock:
            self.capacity = capacity
            self._release_to(capacity)


BUDGET = FdBudget(default_capacity())


def configure(capacity: int | None) -> int:
    """Set the process-wide budget (None: `default_capacity`); returns it."""
    value = default_capacity() if capacity is None else capacity
    BUDGET.resize(value)
    return value
