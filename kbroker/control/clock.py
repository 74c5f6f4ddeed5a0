"""A manual clock for tests: time the broker sees moves only when the test says.

``kbroker.clock=manual`` (``EmbeddedBroker(clock="manual")``) gives the broker a
:class:`ManualClock` that starts at the wall-clock time of start-up and moves only on
:meth:`ManualClock.advance` (``POST /clock/advance``). The broker hands it to what keeps Kafka
time (an injected object, ``broker.clock``; None, the default, is the real clock and leaves every
path as it was). On it run:

- the group coordinator's timers and timestamps: classic groups (session timeouts, rebalance and
  initial-rebalance delays), KIP-848 consumer groups and KIP-1071 streams groups (heartbeat
  session and revocation timeouts), offsets retention; so ``advance(45_000)`` expires a member
  whose session is 45 s at once;
- share groups (KIP-932): member session timeouts and the acquisition locks of share partitions
  (``group.share.record.lock.duration.ms``), so ``advance(30_000)`` makes acquired records
  available again (or archives them at the delivery count limit);
- the transaction coordinator: transactions are stamped with the clock's time; its abort of
  timed-out transactions runs every ``transaction.abort.timed.out.transaction.cleanup.interval.ms``
  and transactional-id expiration (``transactional.id.expiration.ms``) every
  ``transaction.remove.expired.transaction.cleanup.interval.ms``, both of clock time;
- the replica manager's producer-id expiration in the partitions (``producer.id.expiration.ms``)
  every ``producer.id.expiration.check.interval.ms`` of clock time;
- log retention: time-based deletion (``retention.ms``) and compaction's delete horizons
  (``delete.retention.ms``) measure age against the clock, and the retention check runs every
  ``log.retention.check.interval.ms`` of clock time, on the advance that reaches it;
- waits: delayed produce (acks=all, the request's ``timeout_ms``), delayed fetch and share fetch
  long polls (``max_wait_ms``): they end when data comes or when an advance passes their deadline;
- the ISR expiration check (``replica.lag.time.max.ms``) and LogAppendTime stamps.

Record timestamps a client writes (CreateTime) come from the client's own clock: the manual clock
starts at the wall-clock time of start-up, so advancing it by ``retention.ms`` plus the seconds
the test ran ages them past it.

The log manager's ``flush.ms`` and recovery-point checkpoint intervals measure time on it too
(its maintenance thread still wakes every second of real time). Not on it (real time):
connection idle timeouts, follower fetches (replication, not a client's long poll) and the
replica fetchers' backoffs.
Timers due at or before now (a zero initial-rebalance delay) still run at once, on the loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kbroker.coordinator.loop_timer import LoopTimer
from kbroker.coordinator.timer_keys import TimerKey

if TYPE_CHECKING:
    from kbroker.log import LogManager

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


class _Periodic:
    """A timer run every ``period_ms`` of clock time until cancelled."""

    __slots__ = ("clock", "period_ms", "fn", "cancelled", "_next")

    def __init__(self, clock: ManualClock, period_ms: int, fn: Callable[[], None]) -> None:
        self.clock = clock
        self.period_ms = max(1, period_ms)
        self.fn = fn
        self.cancelled = False
        self._next = clock.call_at(clock.now_ms() + self.period_ms, self._run)

    def _run(self) -> None:
        if self.cancelled:
            return
        self._next = self.clock.call_at(self.clock.now_ms() + self.period_ms, self._run)
        self.fn()

    def cancel(self) -> None:
        self.cancelled = True
        self._next.cancel()


class ManualClock:
    manual = True

    def __init__(self, start_ms: int | None = None) -> None:
        self._now_ms = int(time.time() * 1000) if start_ms is None else start_ms
        self._heap: list[tuple[int, int, _Handle]] = []
        self._seq = itertools.count()
        self.advanced_ms = 0

    def now_ms(self) -> int:
        return self._now_ms

    def time(self) -> float:
        """The clock's time in seconds (``time.time``'s shape, for the log manager)."""
        return self._now_ms / 1000

    def call_at(self, due_ms: int, fn: Callable[[], None]) -> _Handle:
        """Run ``fn`` (on the loop, inside :meth:`advance`) once the clock reaches ``due_ms``."""
        handle = _Handle(due_ms, fn)
        heapq.heappush(self._heap, (due_ms, next(self._seq), handle))
        return handle

    def call_every(self, period_ms: int, fn: Callable[[], None]) -> _Periodic:
        """Run ``fn`` every ``period_ms`` of clock time (first after one period) until cancelled."""
        return _Periodic(self, period_ms, fn)

    async def wait(self, fut: asyncio.Future[Any], due_ms: int) -> None:
        """Wait until ``fut`` is done or an advance brings the clock to ``due_ms``, whichever
        comes first (``fut`` is not cancelled)."""
        if self._now_ms >= due_ms or fut.done():
            return
        timer = asyncio.get_running_loop().create_future()
        handle = self.call_at(due_ms, lambda: None if timer.done() else timer.set_result(None))
        try:
            await asyncio.wait((fut, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            handle.cancel()
            timer.cancel()

    @property
    def pending(self) -> int:
        """Timers waiting for the clock (cancelled ones not counted)."""
        return sum(1 for _due, _seq, h in self._heap if not h.cancelled)

    def advance(self, ms: int) -> int:
        """Move time forward by ``ms``, running every timer that falls due, in due order, each
        at its own time (a timer scheduled by one that ran runs too if due). Returns timers run."""
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
        log.info("clock advanced %d ms (to %d): %d timers ran", ms, target, ran)
        return ran

    def run_log_retention(self, log_manager: LogManager, interval_ms: int) -> _Periodic:
        """Kafka's kafka-log-retention task on this clock: every ``interval_ms`` of clock time
        (``log.retention.check.interval.ms``) a maintenance round with retention and compaction,
        measuring age against this clock (the log manager's own rounds skip them)."""
        def check() -> None:
            log.info("log retention check at %d", self._now_ms)
            log_manager.run_maintenance(retention=True)

        return self.call_every(interval_ms, check)

    def group_timer(self) -> ManualTimer:
        return ManualTimer(self)


class ManualTimer(LoopTimer):
    """The group coordinator's timer (``group_classic.Timer``) on a :class:`ManualClock`."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock
        self._manual: dict[TimerKey, _Handle] = {}

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def schedule(self, key: TimerKey, delay_ms: int, fn: Callable[[], None]) -> None:
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

    def cancel(self, key: TimerKey) -> None:
        handle = self._manual.pop(key, None)
        if handle is not None:
            handle.cancel()
        super().cancel(key)

    def pending(self) -> list[TimerKey]:
        return [*self._manual, *super().pending()]

    def cancel_all(self) -> None:
        for handle in self._manual.values():
            handle.cancel()
        self._manual.clear()
        super().cancel_all()


def make_clock(kind: str) -> ManualClock | None:
    if kind == "manual":
        return ManualClock()
    return None
