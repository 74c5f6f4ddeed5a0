"""Waiting on a condition in tests: poll it until it holds or a deadline passes, from a thread
(``wait_until``) or from a coroutine on the event loop (``async_wait_until``), or, for what the
event loop's own callbacks bring about, until it holds within a number of loop turns, no clock
(``turns_until``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Poll(Generic[T]):
    """One wait: ``done()`` calls the predicate, keeps its value, and fails once the deadline passed."""

    def __init__(self, predicate: Callable[[], T], timeout: float, message: str,
                 details: Callable[[], Any] | None) -> None:
        self.predicate, self.message, self.details = predicate, message, details
        self.deadline = time.monotonic() + timeout

    def done(self) -> bool:
        self.value = self.predicate()
        if self.value:
            return True
        if time.monotonic() > self.deadline:
            raise AssertionError(f"timed out waiting for {self.message}"
                                 + (f": {self.details()}" if self.details else ""))
        return False


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.02, message: str = "condition",
               details: Callable[[], Any] | None = None) -> T:
    """Poll ``predicate`` until it returns a truthy value (returned) or the deadline passes.

    The sleep is the polling interval of a loop bounded by the deadline, never synchronisation.
    """
    poll = _Poll(predicate, timeout, message, details)
    while not poll.done():
        time.sleep(interval)
    return poll.value


async def async_wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.02,
                           message: str = "condition", details: Callable[[], Any] | None = None) -> T:
    """``wait_until`` for a coroutine: the polling interval is an ``asyncio.sleep``, so the event loop
    (and the tasks whose progress ``predicate`` looks at) runs meanwhile."""
    poll = _Poll(predicate, timeout, message, details)
    while not poll.done():
        await asyncio.sleep(interval)
    return poll.value


async def turns_until(condition: Callable[[], object], what: str, turns: int = 10_000) -> None:
    """Let the event loop run one turn at a time (``asyncio.sleep(0)``) until ``condition()`` holds;
    fail after ``turns`` turns. For a state the loop reaches by itself in a few turns (a reset read
    from a socket in one or two): no deadline, no polling interval."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never: {what}")
