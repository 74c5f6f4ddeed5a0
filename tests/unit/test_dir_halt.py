"""HaltAfterAnswers (kbroker/wiring/dir_halt.py): the halt of a broker whose every log dir failed
waits for the requests in flight at that moment, not for those that come later, and not beyond its
grace; from another thread it is handed to the loop."""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from kbroker.wiring.dir_halt import HaltAfterAnswers


class _Transport:
    def __init__(self) -> None:
        self.buffered = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered


class _Conn:
    def __init__(self) -> None:
        self._pending: deque[object] = deque()
        self._stalled = None
        self.transport = _Transport()
        self.closed = False

    @property
    def in_flight(self) -> tuple[object, ...]:
        return tuple(self._pending)

    @property
    def output_stalled(self) -> bool:
        return self._stalled is not None


def test_the_halt_waits_for_the_requests_in_flight_and_their_bytes():
    async def main() -> list[str]:
        events: list[str] = []
        done = asyncio.Event()
        conn, other = _Conn(), _Conn()
        first, second = object(), object()
        conn._pending.extend([first, second])

        def halt() -> None:
            events.append("halt")
            done.set()

        stopper = HaltAfterAnswers({conn, other}, grace=3600, halt=halt)  # type: ignore[arg-type]
        stopper.bind(asyncio.get_running_loop())
        stopper()
        await asyncio.sleep(0)
        other._pending.append(object())  # came after the failure: not waited for
        conn._pending.popleft()
        events.append("first written")
        await asyncio.sleep(0.01)
        assert not done.is_set()
        conn._pending.popleft()
        conn.transport.buffered = 10  # written to the transport, not yet to the socket
        await asyncio.sleep(0.01)
        assert not done.is_set()
        conn.transport.buffered = 0
        events.append("second sent")
        await done.wait()
        return events

    assert asyncio.run(main()) == ["first written", "second sent", "halt"]


def test_a_request_parked_past_the_grace_does_not_hold_the_halt():
    async def main() -> int:
        halts: list[int] = []
        done = asyncio.Event()
        conn = _Conn()
        conn._pending.append(object())  # a long poll that is never answered

        def halt() -> None:
            halts.append(1)
            done.set()

        stopper = HaltAfterAnswers([conn], grace=0, halt=halt)  # type: ignore[list-item]
        stopper.bind(asyncio.get_running_loop())
        stopper()
        stopper()  # (once)
        await done.wait()
        await asyncio.sleep(0.01)
        return len(halts)

    assert asyncio.run(main()) == 1


def test_a_failure_in_another_thread_is_handled_on_the_loop():
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        on_loop = asyncio.Event()
        seen: list[bool] = []

        def halt() -> None:
            seen.append(threading.current_thread() is threading.main_thread())
            on_loop.set()

        stopper = HaltAfterAnswers([], halt=halt)
        stopper.bind(loop)
        worker = threading.Thread(target=stopper)
        worker.start()
        await on_loop.wait()
        worker.join()
        return seen == [True]

    assert asyncio.run(main())


def test_without_a_loop_the_halt_is_at_once():
    halts: list[int] = []
    HaltAfterAnswers([], halt=lambda: halts.append(1))()
    assert halts == [1]
