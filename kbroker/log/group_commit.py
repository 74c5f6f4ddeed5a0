"""Group commit: one fsync for every append waiting on it, off the event loop.

With ``flush.messages=1`` Kafka fsyncs each append before acknowledging it, in the request handler
thread. kbroker appends on its event loop; an fsync there would stop every other connection for
the length of the disk's flush. Instead a client append that reaches ``flush.messages`` is written
without its fsync (``PartitionLog.append(..., sync=False)``) and waits here for one:

- if no fsync of that log is running, one starts on a worker thread (`PartitionLog.sync_appended`:
  it covers everything appended before it started);
- appends arriving while it runs wait for the next one, which starts as soon as it returns and
  covers all of them at once;
- each waiter is released only when an fsync whose start saw its last offset has returned (the
  log's recovery point has passed it): an acknowledged record is on disk. If the fsync fails, every
  waiter gets the error; a waiter whose records were truncated away meanwhile gets
  :class:`NotDurableError`.

At most one fsync per log runs at a time; fsyncs of different logs run in parallel on a small
pool of threads of their own (the default executor stays free for the rest of the broker).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from .errors import LogError
from .thread_names import name_os_thread

FSYNC_THREADS = 4

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


class NotDurableError(LogError):
    """The records waited on are no longer in the log (truncated before an fsync covered them)."""


class SyncableLog(Protocol):
    @property
    def log_end_offset(self) -> int: ...

    def sync_appended(self) -> int: ...


def executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="kbroker-fsync",
                                           initializer=name_os_thread)
        return _executor


class GroupCommit:
    """The fsyncs of one partition log and the appends waiting on them."""

    __slots__ = ("_log", "_waiters", "_running", "fsyncs")

    def __init__(self, log: Callable[[], SyncableLog]) -> None:
        self._log = log  # the partition's current log, looked up at each fsync
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._running = False
        self.fsyncs = 0  # fsyncs started (for tests and metrics)

    def wait(self, end_offset: int) -> asyncio.Future[None]:
        """A future done once every offset below ``end_offset`` is on disk."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append((end_offset, fut))
        if not self._running:
            self._start(loop)
        return fut

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._running = True
        self.fsyncs += 1
        log = self._log()
        try:
            done = loop.run_in_executor(executor(), log.sync_appended)
        except RuntimeError as exc:  # the executor was shut down (broker closing)
            self._running = False
            self._fail(exc)
            return
        done.add_done_callback(lambda f: self._done(f, log, loop))

    def _done(self, f: asyncio.Future[int], log: SyncableLog, loop: asyncio.AbstractEventLoop) -> None:
        self._running = False
        if f.cancelled():
            self._fail(asyncio.CancelledError())
            return
        exc = f.exception()
        if exc is not None:
            self._fail(exc)
            return
        durable = f.result()
        end = log.log_end_offset
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for offset, fut in self._waiters:
            if fut.done():
                continue
            if offset <= durable:
                fut.set_result(None)
            elif offset > end or log is not self._log():
                fut.set_exception(NotDurableError(f"offsets below {offset} are no longer in the log"))
            else:
                keep.append((offset, fut))
        self._waiters = keep
        if keep:  # appended while that fsync ran: the next one covers them all
            self._start(loop)

    def _fail(self, exc: BaseException) -> None:
        waiters, self._waiters = self._waiters, []
        for _offset, fut in waiters:
            if not fut.done():
                fut.set_exception(exc)
