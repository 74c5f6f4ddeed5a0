"""Writing a connection's responses: in request order, batched in one writelines, segment file
slices with ``os.sendfile`` (zero-copy), and a response the socket cannot take at once continued
when it drains (:class:`ResponseWriter`, a part of :class:`~kbroker.server.connection.KafkaConnection`)."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from collections import deque
from typing import TYPE_CHECKING, Any, BinaryIO

from kbroker.server.slots import RequestMetrics, Slot

log = logging.getLogger("kbroker.server.connection")

_SIZE = struct.Struct(">i")
_clock = time.monotonic  # the request metrics' clock (kbroker.metrics.requests)
SENDFILE_MIN_BYTES = 32 * 1024


class ResponseWriter:
    """The response side of a connection; the connection provides the state below."""

    transport: asyncio.Transport | None
    peer: str
    _pending: deque[Slot]
    _closed: bool
    _stalled: deque[Any] | None
    _watch_fd: int
    _sock_fd: int
    _hold_output: bool
    _eof: bool
    _metrics: RequestMetrics | None

    if TYPE_CHECKING:

        def close(self) -> None: ...

        def _update_reading(self) -> None: ...

    def _flush(self) -> None:
        """Write every response that is ready and next in request order, in one writelines
        (interrupted only by segment file slices, which go out with sendfile)."""
        pending = self._pending
        transport = self.transport
        if transport is None or self._closed or self._stalled is not None or self._hold_output:
            return
        out: list[Any] = []
        # While metrics are on, the requests this write answers, and when it started (no clock
        # reading when nothing is ready to go: a flush after a read whose requests all wait).
        timed: list[Slot] | None = None
        flushed = 0.0
        if self._metrics is not None and pending and pending[0].done:
            timed = []
            flushed = _clock()
        while pending and pending[0].done:
            slot = pending.popleft()
            if timed is not None and slot.started:
                timed.append(slot)
            parts = slot.parts
            if parts:
                out = self._write_parts(transport, parts, out)
                if self._closed:
                    return  # (a segment file shorter than its slice: nothing more is sent)
                if self._stalled is not None:
                    break  # the rest waits until the socket takes more (see _on_writable)
        if out and self._stalled is None:
            transport.writelines(out)
        if timed and self._metrics is not None:
            self._metrics.requests_sent(timed, flushed, _clock())
        if self._stalled is not None:
            return
        if self._eof and not pending:
            self.close()

    def _write_parts(self, transport: asyncio.Transport, parts: list[Any], out: list[Any]) -> list[Any]:
        """Queue one response's size prefix and parts on ``out``; returns the list to continue.

        A file slice smaller than SENDFILE_MIN_BYTES (or any, when sendfile cannot be used: TLS)
        is read and queued with the bytes around it, so that a response of small record sets
        leaves in the one writelines of the flush: one send, one wake-up of the client (and of
        its next request). Larger slices go to the socket at once with sendfile, after what is
        queued before them. When the socket's buffer is full mid-slice, the rest of this response
        is kept in ``_stalled`` and sent, still zero-copy, when the socket becomes writable again.
        """
        size = 0
        for p in parts:
            size += len(p)
        start = len(out)  # the responses queued before this one end here
        out.append(_SIZE.pack(size))
        for i, part in enumerate(parts):
            if isinstance(part, (bytes, bytearray, memoryview)):
                out.append(part)
                continue
            # Segment file slices: a FileSlice, or a log ReadResult holding one per segment.
            slices = list(getattr(part, "slices", (part,)))
            for j, file_slice in enumerate(slices):
                if file_slice.size < SENDFILE_MIN_BYTES or self._sock_fd < 0:
                    data = self._read_slice(file_slice.file, file_slice.position, file_slice.size)
                    if data is None:
                        if start:
                            transport.writelines(out[:start])  # the complete responses before it
                        self._segment_short()
                        return []
                    out.append(data)
                    continue
                if out:
                    transport.writelines(out)
                    out = []
                    start = 0  # (what was before this response is sent now)
                left = self._write_file_slice(transport, file_slice.file, file_slice.position, file_slice.size)
                if self._closed:
                    return []  # (the file was short: nothing after the gap)
                if left is not None:
                    rest: deque[Any] = deque([(file_slice.file, *left)])
                    rest.extend((s.file, s.position, s.size) for s in slices[j + 1 :])
                    for later in parts[i + 1 :]:
                        if isinstance(later, (bytes, bytearray, memoryview)):
                            rest.append(later)
                        else:  # another partition's file regions
                            rest.extend((s.file, s.position, s.size) for s in getattr(later, "slices", (later,)))
                    self._stall(rest)
                    return []
        return out

    def _write_file_slice(self, transport: asyncio.Transport, file: BinaryIO, position: int,
                          remaining: int) -> tuple[int, int] | None:
        """Send ``remaining`` bytes of ``file`` from ``position``; returns what is left when the
        socket is full (to be sent with sendfile when it drains), else None."""
        if (
            remaining >= SENDFILE_MIN_BYTES
            and self._sock_fd >= 0
            and transport.get_write_buffer_size() == 0
        ):
            fd = file.fileno()
            try:
                while remaining > 0:
                    sent = os.sendfile(self._sock_fd, fd, position, remaining)
                    if sent == 0:
                        break
                    position += sent
                    remaining -= sent
            except (BlockingIOError, InterruptedError):
                return position, remaining
            except OSError as exc:
                log.info("sendfile to %s failed: %s", self.peer, exc)
        if remaining > 0:
            data = self._read_slice(file, position, remaining)
            if data is None:
                self._segment_short()
                return None
            transport.write(data)
        return None

    @staticmethod
    def _read_slice(file: BinaryIO, position: int, size: int) -> bytes | None:
        """``size`` bytes of a segment file from ``position``; None when the file is shorter."""
        data = os.pread(file.fileno(), size, position)
        return data if len(data) == size else None

    def _segment_short(self) -> None:
        log.error("segment file shorter than expected while serving %s", self.peer)
        self.close()

    def _stall(self, rest: deque[Any]) -> None:
        """Wait for the socket to take more; a duplicate of its descriptor is watched, since the
        transport owns the original."""
        self._stalled = rest
        self._watch_fd = os.dup(self._sock_fd)
        asyncio.get_running_loop().add_writer(self._watch_fd, self._on_writable)

    def _on_writable(self) -> None:
        """Continue a stalled response: ``_stalled`` holds bytes (written to the transport) and
        ``(file, position, size)`` file regions (sent with sendfile once the bytes before them
        have left the transport's buffer)."""
        rest = self._stalled
        transport = self.transport
        if rest is None or transport is None or self._closed:
            self._unwatch()
            return
        while rest:
            item = rest[0]
            if isinstance(item, tuple):
                if transport.get_write_buffer_size():
                    return  # bytes queued before this slice go first
                file, position, remaining = item
                try:
                    sent = os.sendfile(self._sock_fd, file.fileno(), position, remaining)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    log.info("sendfile to %s failed: %s", self.peer, exc)
                    self.close()
                    return
                if sent == 0:
                    log.error("segment file shorter than expected while serving %s", self.peer)
                    self.close()
                    return
                if sent < remaining:
                    rest[0] = (file, position + sent, remaining - sent)
                else:
                    rest.popleft()
            else:
                transport.write(rest.popleft())
        self._unwatch()
        self._stalled = None
        self._flush()
        self._update_reading()

    def _unwatch(self) -> None:
        if self._watch_fd >= 0:
            try:
                asyncio.get_running_loop().remove_writer(self._watch_fd)
            except RuntimeError:
                pass
            os.close(self._watch_fd)
            self._watch_fd = -1
