"""Waiting on a condition in tests: poll it until it holds or a deadline passes."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.02, message: str = "condition",
               details=None):
    """Poll ``predicate`` until it returns a truthy value (returned) or the deadline passes.

    The sleep is the polling interval of a loop bounded by the deadline, never synchronisation.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}" + (f": {details()}" if details else ""))
        time.sleep(interval)
