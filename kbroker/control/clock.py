"""A manual clock for tests: time the broker's coordinators see moves only when the test says.

``kbroker.clock=manual`` (``EmbeddedBroker(clock="manual")``) gives the broker a
:class:`ManualClock` that starts at the wall-clock time of start-up and moves only on
:meth:`ManualClock.advance` (``POST /clock/advance``). On it run:

- the group coordinator's timers and timestamps (classic groups: session timeouts, rebalance
  and initial-rebalance delays; KIP-848 groups: session and revocation timeouts; offsets
  retention), so ``advance(45_000)`` expires a member whose session is 45 s at once;
- share groups (KIP-932): member session timeouts and the acquisition locks of share partitions
  (``group.share.record.lock.duration.ms``), so ``advance(30_000)`` makes acquired records
  available again (or archives them at the delivery count limit);
- the transaction coordinator's timeout checks: each advance runs its abort of timed-out
  transactions, transactional-id expiration and producer-id expiration at once, counting real
  time plus all the time advanced (the coordinator stamps transactions with wall-clock time and
  keeps its real-time periodic check), so ``advance(transaction_timeout)`` aborts at once.

Not on it (real time): log retention and delete-records horizons, delayed produce/fetch and
long polls, connection idle timeouts.

Timers due at or before now (a zero initial-rebalance delay) still run at once, on the loop.
The default is the real clock (``broker.clock`` is None): nothing changes on any path then.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from kbroker.coordinator.group_coordinator import LoopTimer

log = logging.getLogger("kbroker.clock")

CLOCKS = ("real", "manual")
# Timers that watch the broker itself rather than model Kafka time (the group coordinator's
# shutdown watch): they stay on the real clock.
REAL_TIME_KEYS = frozenset({"shutdown-watch"})


class _Handle:
    __slots__ = ("due_ms", "fn", "cancelled")

    def __init__(self, due_ms: int, fn: Callable[[], None]) -> None:
        self.due_ms = due_ms
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    manual = True

    def __init__(self, broker: Any = None, start_ms: int | None = None) -> None:
        self.broker = broker
        self._now_ms = int(time.time() * 1000) if start_ms is None else start_ms
        self._heap: list[tuple[int, int, _Handle]] = []
        self._seq = itertools.count()
        self.advanced_ms = 0
        self._txn_tasks: set[asyncio.Task] = set()

    def now_ms(self) -> int:
        return self._now_ms

    def call_at(self, due_ms: int, fn: Callable[[], None]) -> _Handle:
        handle = _Handle(due_ms, fn)
        heapq.heappush(self._heap, (due_ms, next(self._seq), handle))
        return handle

    def advance(self, ms: int) -> int:
        """Move time forward by ``ms``, running every timer that falls due, in due order, each
        at its own time; then the transaction coordinator's timeout checks. Returns timers run."""
        if ms < 0:
            raise ValueError(f"ms: must be >= 0, got {ms}")
        target = self._now_ms + ms
        ran = 0
        while self._heap and self._heap[0][0] <= target:
            due, _seq, handle = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            self._now_ms = max(self._now_ms, due)
            ran += 1
            try:
                handle.fn()
            except Exception:
                log.exception("timer failed at %d", due)
        self._now_ms = target
        self.advanced_ms += ms
        txn = getattr(self.broker, "txn_coordinator", None)
        if txn is not None and getattr(txn, "loaded", False):
            # The transaction coordinator stamps transactions with wall-clock time: its timeouts
            # count real time plus all the time advanced.
            txn_now = int(time.time() * 1000) + self.advanced_ms
            # (The aborts and expirations write the transaction log and wait for its replication:
            # they run as a task on the broker's loop, which advance() is called on.)
            task = asyncio.get_running_loop().create_task(self._txn_timeouts(txn, txn_now, target))
            self._txn_tasks.add(task)
            task.add_done_callback(self._txn_tasks.discard)
        log.info("clock advanced %d ms (to %d): %d timers ran", ms, target, ran)
        return ran

    @staticmethod
    async def _txn_timeouts(txn: Any, txn_now: int, target: int) -> None:
        try:
            await txn.abort_timed_out(now_ms=txn_now)
            await txn.expire_transactional_ids(now_ms=txn_now)
            txn.expire_producers(now_ms=txn_now)
        except Exception:
            log.exception("transaction timeouts at %d failed", target)

    def group_timer(self) -> ManualTimer:
        return ManualTimer(self)


class ManualTimer(LoopTimer):
    """The group coordinator's timer (``group_classic.Timer``) on a :class:`ManualClock`."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock
        self._manual: dict[str, _Handle] = {}

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def schedule(self, key: str, delay_ms: int, fn: Callable[[], None]) -> None:
        if key in REAL_TIME_KEYS:
            super().schedule(key, delay_ms, fn)
            return
        self.cancel(key)

        def run() -> None:
            if self._manual.get(key) is handle:
                del self._manual[key]
            try:
                fn()
            except Exception:
                log.exception("group coordinator timer %s failed", key)

        if delay_ms <= 0:  # due now: run on the loop, as the real timer would
            handle = _Handle(self.clock.now_ms(), run)
            asyncio.get_running_loop().call_soon(lambda: None if handle.cancelled else run())
        else:
            handle = self.clock.call_at(self.clock.now_ms() + delay_ms, run)
        self._manual[key] = handle

    def cancel(self, key: str) -> None:
        handle = self._manual.pop(key, None)
        if handle is not None:
            handle.cancel()
        super().cancel(key)

    def cancel_all(self) -> None:
        for handle in self._manual.values():
            handle.cancel()
        self._manual.clear()
        super().cancel_all()


def make_clock(broker: Any, kind: str) -> ManualClock | None:
    if kind == "manual":
        return ManualClock(broker)
    return None
