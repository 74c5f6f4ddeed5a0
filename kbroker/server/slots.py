"""A request's place in a connection's response order (:class:`Slot`), and the timing of its
handler while metrics are on (:func:`timed`, reported to :class:`RequestMetrics`)."""

from __future__ import annotations

import time
import types
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Protocol


class RequestMetrics(Protocol):
    """Per-request counting for the metrics endpoint (``kbroker.metrics.requests.RequestStats``).

    A connection reads ``broker.request_metrics`` once, when it is made: None (the default), the
    dispatcher pays one attribute check per request and nothing else."""

    def requests_sent(self, slots: Sequence[Slot], flushed: float, sent: float) -> None: ...

    def handler_failed(self, api_key: int) -> None: ...


class Slot:
    __slots__ = ("header", "parts", "done", "size", "started", "received", "busy", "ready")

    def __init__(self, header: Any, size: int = 0) -> None:
        self.header = header
        self.parts: list[Any] | None = None
        self.done = False
        self.size = size  # request bytes held until it is answered
        # While metrics are on, time.monotonic() points (kbroker.metrics.requests): when its
        # bytes came in, when its handler started, response ready; and the run time of a handler
        # that returned an awaitable (negative for one answered in its call: all its handling was
        # its own run time, not timed apart).
        self.started = 0.0
        self.received = 0.0
        self.busy = -1.0
        self.ready = 0.0


@types.coroutine
def timed(awaitable: Awaitable[object], slot: Slot, _clock: Callable[[], float] = time.monotonic,
          _coroutine: type = types.CoroutineType) -> Generator[Any, Any, object]:
    """Run a handler's awaitable, timing each step the event loop runs it (added to
    ``slot.busy``): the request's local time, while metrics are on. A generator-based coroutine,
    so the task runs it without another wrapper. Most handlers finish in their first step: that
    step is timed apart, before the loop the others need (the clock and the coroutine type bound
    as defaults: fast locals)."""
    inner: Any = awaitable if type(awaitable) is _coroutine else awaitable.__await__()
    send = inner.send
    t = _clock()
    try:
        step = send(None)
    except StopIteration as stop:
        slot.busy += _clock() - t
        return stop.value
    except BaseException:
        slot.busy += _clock() - t
        raise
    busy = _clock() - t
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                value, error = (yield step), None
            except GeneratorExit:
                inner.close()
                raise
            except BaseException as exc:
                value, error = None, exc
            t = _clock()
            try:
                step = send(value) if error is None else inner.throw(error)
            except StopIteration as stop:
                busy += _clock() - t
                return stop.value
            except BaseException:
                busy += _clock() - t
                raise
            busy += _clock() - t
    finally:
        slot.busy += busy


class SyntheticHeader:
    __slots__ = ("request_api_key", "request_api_version", "correlation_id", "client_id")

    def __init__(self, api_key: int, api_version: int, correlation_id: int) -> None:
        self.request_api_key = api_key
        self.request_api_version = api_version
        self.correlation_id = correlation_id
        self.client_id = None
