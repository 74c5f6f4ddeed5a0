"""When a delayed operation gives up: a deadline on the loop's clock or on the broker's manual clock.

Kafka's purgatories (DelayedProduce, DelayedFetch, the share fetch long poll) expire an operation
at a deadline. kbroker waits on asyncio futures; :class:`Deadline` is the one place such a wait
reads time. With ``clock`` None (the default, real time) it is the event loop's monotonic clock
and ``asyncio.wait_for``, as before; with the broker's manual clock (``kbroker.clock=manual``,
:mod:`kbroker.control.clock`, injected by the caller) the deadline is in that clock's
milliseconds and passes only when a test advances it. Deadlines are made only on the slow path
(an operation that must wait), never per request.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Protocol


class WaitClock(Protocol):
    """What a deadline needs of a manual clock."""

    def now_ms(self) -> int: ...

    async def wait(self, fut: asyncio.Future[Any], due_ms: int) -> None: ...


class Deadline:
    __slots__ = ("clock", "due", "_loop")

    def __init__(self, timeout_ms: float, clock: WaitClock | None = None) -> None:
        self.clock = clock
        self._loop = asyncio.get_running_loop()
        now = self._loop.time() * 1000 if clock is None else clock.now_ms()
        self.due = now + max(timeout_ms, 0)  # ms on the loop's clock or on ``clock``

    def remaining_ms(self) -> float:
        now = self._loop.time() * 1000 if self.clock is None else self.clock.now_ms()
        return self.due - now

    @property
    def passed(self) -> bool:
        return self.remaining_ms() <= 0

    async def wait(self, fut: asyncio.Future[Any]) -> None:
        """Wait until ``fut`` is done or the deadline passes (no TimeoutError; a real-clock wait
        cancels ``fut`` when it times out, as ``asyncio.wait_for`` does: shield it to keep it)."""
        if self.clock is not None:
            await self.clock.wait(fut, math.ceil(self.due))
            return
        remaining = self.remaining_ms()
        if remaining <= 0:
            return
        # A timer that cancels ``fut``, not asyncio.wait_for: the waiting task resumes in the loop
        # iteration after ``fut`` completes, where wait_for's inner waiter adds one more (a held
        # fetch woken by an append answers one iteration sooner, ahead of the I/O read meanwhile).
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            fut.cancel()

        timer = self._loop.call_later(remaining / 1000, expire)
        try:
            await fut
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not expired or (task is not None and task.cancelling()):
                raise  # the waiting task itself is cancelled
        finally:
            timer.cancel()
