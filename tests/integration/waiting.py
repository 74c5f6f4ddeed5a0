"""Waiting on a condition in tests: poll it until it holds or a deadline passes, from a thread
(``wait_until``) or from a coroutine on the event loop (``async_wait_until``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _timed_out(message: str, details: Callable[[], Any] | None) -> AssertionError:
    return AssertionError(f"timed out waiting for {message}" + (f": {details()}" if details else ""))


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.02, message: str = "condition",
               details: Callable[[], Any] | None = None) -> T:
    """Poll ``predicate`` until it returns a truthy value (returned) or the deadline passes.

    The sleep is the polling interval of a loop bounded by the deadline, never synchronisation.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(message, details)
        time.sleep(interval)


async def async_wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.02,
                           message: str = "condition", details: Callable[[], Any] | None = None) -> T:
    """``wait_until`` for a coroutine: the polling interval is an ``asyncio.sleep``, so the event loop
    (and the tasks whose progress ``predicate`` looks at) runs meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(message, details)
        await asyncio.sleep(interval)
