"""When a connection reads: backpressure and the broker-wide budgets (:class:`FlowControl`, a part of
:class:`~kbroker.server.connection.KafkaConnection`).

The connection stops reading from the socket while the transport's write buffer is past its
high-water mark, while too many of its requests are in flight, while a failed authentication's
answer waits, and while a client quota throttles it (KIP-219). Broker-wide bounds
(``queued.max.request.bytes``, ``queued.max.requests``: see :mod:`kbroker.server.limits`) also
stop reading: the request bytes this connection holds (a partly received frame, and the frames of
requests not yet answered) are counted in the broker's budget and given back as requests are
answered and when the connection closes.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from kbroker_protocol.framing import FrameDecoder

if TYPE_CHECKING:
    from kbroker.config import Endpoint
    from kbroker.server.limits import ConnectionLimits

MAX_IN_FLIGHT = 256
# Bytes a connection may deliver before it lets the event loop go round once: past them it stops
# reading until the callbacks already scheduled have run (one loop iteration), so that other
# connections' requests and the timers (a long-polling Fetch's deadline) are served in between.
# uvloop (libuv) reads a readable socket up to 32 times in one go while each read fills its
# buffer, so a connection with a backlog (librdkafka pipelines Produce requests without limit)
# could otherwise be served megabytes at a time, for seconds on a busy machine, while the
# consumers' Fetches waited unread. 256 KiB is what asyncio's own loop reads per socket per turn.
READ_BURST_BYTES = 256 * 1024
# A request this small (size prefix included) is read even when the broker-wide request-byte
# budget is used up, so clients keep being served while others hold the budget.
SMALL_REQUEST_BYTES = 64 * 1024


class FlowControl:
    """The reading side's pauses of a connection; the connection provides the state below."""

    transport: asyncio.Transport | None
    endpoint: Endpoint
    limits: ConnectionLimits
    decoder: FrameDecoder
    last_active: float
    frame_started: float
    _admitted: str | None
    _held: int
    _request_bytes: int
    _reserved: int
    _in_flight: int
    _write_paused: bool
    _read_paused: bool
    _closed: bool
    _hold_output: bool
    _throttled: asyncio.TimerHandle | None
    _throttled_until: float
    _burst: int
    _yielding: bool

    def release_all(self) -> None:
        """Give back everything this connection holds in the broker-wide budgets (once)."""
        limits = self.limits
        limits.forget(self)
        for _ in range(self._in_flight):
            limits.request_finished()
        self._in_flight = 0
        self._request_bytes = 0
        self._reserved = 0
        self.decoder = FrameDecoder(0)  # drop a partly received frame
        limits.hold(-self._held)
        self._held = 0
        if self._admitted is not None:
            limits.release_connection(self._admitted, self.endpoint.listener)
            self._admitted = None

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def _has_room(self) -> bool:
        """Whether the frame being received may be read further: it has its size reserved in the
        broker's request-byte budget (taken as soon as its size prefix is in, when the budget is
        not used up, or whatever the budget for a small request), as Kafka's memory pool does."""
        expected = self.decoder.expected
        if expected is None or self._reserved:
            return True
        size = expected + 4
        if size <= SMALL_REQUEST_BYTES or not self.limits.bytes_exhausted:
            self._reserved = size
            self._account()
            return True
        return False

    def _account(self) -> None:
        """Bring this connection's share of the broker's request-byte budget up to date."""
        if self._closed:
            return
        held = self._reserved + self._request_bytes
        if held != self._held:
            self.limits.hold(held - self._held)
            self._held = held

    def throttle(self, throttle_ms: int) -> None:
        """Kafka's channel throttling (KIP-219): the response goes out at once, and nothing more is
        read from the connection until ``throttle_ms`` has passed."""
        loop = asyncio.get_running_loop()
        until = loop.time() + throttle_ms / 1000
        if until <= self._throttled_until:
            return
        self._throttled_until = until
        # the time muted is the broker's, not the client's: the idle and request-receive timers
        # (connections.max.idle.ms, kbroker.request.receive.timeout.ms) count from its end
        ends = time.monotonic() + throttle_ms / 1000
        self.last_active = max(self.last_active, ends)
        if self.decoder.buffered:
            self.frame_started = max(self.frame_started, ends)
        if self._throttled is not None:
            self._throttled.cancel()
        self._throttled = loop.call_at(until, self._throttle_done)
        self._update_reading()

    def _throttle_done(self) -> None:
        self._throttled = None
        self._update_reading()

    @property
    def throttled(self) -> bool:
        return self._throttled is not None

    def _count_read(self, n: int) -> None:
        """Count ``n`` bytes read; past READ_BURST_BYTES since the last pause, stop reading until
        the loop has run the callbacks already scheduled (:meth:`_burst_done`)."""
        self._burst += n
        if self._burst >= READ_BURST_BYTES and not self._yielding:
            self._burst = 0
            self._yielding = True
            asyncio.get_running_loop().call_soon(self._burst_done)

    def _burst_done(self) -> None:
        self._yielding = False
        self._update_reading()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self._closed:
            return
        should_pause = (self._write_paused or self._in_flight >= MAX_IN_FLIGHT or self._hold_output
                        or self._throttled is not None or self._yielding)
        if not should_pause:
            limits = self.limits
            # Broker-wide: a large frame begun when the request-byte budget is used up waits
            # for room; at queued.max.requests, a connection with a request in flight waits.
            if not self._has_room() or (limits.requests_exhausted and self._in_flight):
                should_pause = True
                limits.wait(self)
        if should_pause and not self._read_paused:
            self._read_paused = True
            transport.pause_reading()
        elif not should_pause and self._read_paused:
            self._read_paused = False
            transport.resume_reading()

    def limits_changed(self) -> None:
        """A broker-wide budget this connection waited for has room again."""
        self._update_reading()
