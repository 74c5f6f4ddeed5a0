"""The group coordinators' timers on the event loop (a manual clock replaces them in tests:
``kbroker.control.clock``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from kbroker.coordinator.timer_keys import TimerKey, of_group

log = logging.getLogger("kbroker.coordinator.group_coordinator")  # the logger of the module before the split

class LoopTimer:
    """:class:`group_classic.Timer` on the running asyncio loop."""

    def __init__(self) -> None:
        self._handles: dict[TimerKey, asyncio.TimerHandle] = {}

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def schedule(self, key: TimerKey, delay_ms: int, fn: Callable[[], None]) -> None:
        self.cancel(key)

        def run() -> None:
            self._handles.pop(key, None)
            try:
                fn()
            except Exception:
                log.exception("group coordinator timer %s failed", key)

        self._handles[key] = asyncio.get_running_loop().call_later(max(delay_ms, 0) / 1000, run)

    def cancel(self, key: TimerKey) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def pending(self) -> list[TimerKey]:
        """The keys of the timers not yet run nor cancelled."""
        return list(self._handles)

    def cancel_group(self, group_id: str) -> None:
        """Cancel every timer of one group, whatever its kind (keys :class:`GroupTimerKey`)."""
        for key in [k for k in self.pending() if of_group(k, group_id)]:
            self.cancel(key)

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
