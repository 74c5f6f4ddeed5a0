"""kbroker/server/writer.py: how a connection's responses reach the socket.

A fetch response at a low produce rate carries a few small record sets (one per partition with
new records). They are read and sent with the response's other bytes in one writelines (one
send, one wake-up of the client); only slices of SENDFILE_MIN_BYTES or more go out with sendfile.
"""

from __future__ import annotations

import os
import socket
import struct
from collections import deque
from pathlib import Path
from typing import Any

from kbroker.log.reads import FileSlice
from kbroker.server.slots import Slot
from kbroker.server.writer import SENDFILE_MIN_BYTES, ResponseWriter


class FakeTransport:
    """Records the writes; passes their bytes to ``sock`` when given (after sendfile's, in order)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock
        self.calls: list[tuple[str, bytes]] = []

    def writelines(self, parts: list[Any]) -> None:
        self._out("writelines", b"".join(bytes(p) for p in parts))

    def write(self, data: bytes) -> None:
        self._out("write", bytes(data))

    def _out(self, kind: str, data: bytes) -> None:
        self.calls.append((kind, data))
        if self.sock is not None:
            self.sock.sendall(data)

    def get_write_buffer_size(self) -> int:
        return 0


class Writer(ResponseWriter):
    def __init__(self, transport: FakeTransport, sock_fd: int = -1) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = "test"
        self._pending = deque()
        self._closed = False
        self._stalled = None
        self._watch_fd = -1
        self._sock_fd = sock_fd
        self._hold_output = False
        self._eof = False
        self._metrics = None

    def close(self) -> None:
        self._closed = True

    def _update_reading(self) -> None:
        pass


def _segment(tmp_path: Path, data: bytes) -> Any:
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(data)
    return open(path, "rb")


def _done(parts: list[Any]) -> Slot:
    slot = Slot(None)
    slot.parts = parts
    slot.done = True
    return slot


def _framed(*responses: bytes) -> bytes:
    return b"".join(struct.pack(">i", len(r)) + r for r in responses)


def test_small_record_sets_leave_with_the_response_in_one_writelines(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes of "records"
    with _segment(tmp_path, data) as f:
        slices = [FileSlice(f, 0, 100), FileSlice(f, 1000, 3000), FileSlice(f, 9000, 1240)]
        transport = FakeTransport()
        w = Writer(transport, sock_fd=99)  # a socket descriptor: sendfile would be possible
        parts: list[Any] = [b"head", slices[0], b"mid", slices[1], slices[2], b"tail"]
        w._pending.append(_done(parts))
        w._pending.append(_done([b"second response"]))
        w._flush()
    assert [kind for kind, _ in transport.calls] == ["writelines"]
    body = b"head" + data[0:100] + b"mid" + data[1000:4000] + data[9000:10240] + b"tail"
    assert transport.calls[0][1] == _framed(body, b"second response")


def test_a_large_slice_goes_by_sendfile_after_the_bytes_queued_before_it(tmp_path: Path) -> None:
    big = SENDFILE_MIN_BYTES + 1000
    data = os.urandom(big + 500)
    a, b = socket.socketpair()
    try:
        b.settimeout(10)
        with _segment(tmp_path, data) as f:
            transport = FakeTransport(a)
            w = Writer(transport, sock_fd=a.fileno())
            parts: list[Any] = [b"head", FileSlice(f, 0, 200), FileSlice(f, 500, big), b"tail"]
            w._pending.append(_done(parts))
            w._flush()
            body = b"head" + data[0:200] + data[500:500 + big] + b"tail"
            expected = _framed(body)
            got = b""
            while len(got) < len(expected):
                chunk = b.recv(1 << 20)
                assert chunk
                got += chunk
        assert got == expected
        # the large slice is not among the transport's writes: it went by sendfile
        written = b"".join(d for _, d in transport.calls)
        assert len(written) == len(expected) - big
        assert transport.calls[0] == ("writelines", struct.pack(">i", len(body)) + b"head" + data[0:200])
    finally:
        a.close()
        b.close()


def test_a_segment_shorter_than_its_slice_closes_the_connection(tmp_path: Path) -> None:
    with _segment(tmp_path, b"x" * 50) as f:
        transport = FakeTransport()
        w = Writer(transport)
        w._pending.append(_done([b"first response"]))
        w._pending.append(_done([b"head", FileSlice(f, 0, 80)]))
        w._pending.append(_done([b"after"]))
        w._flush()
    assert w._closed
    # the response before it is sent whole, nothing of it or after it
    assert transport.calls == [("writelines", _framed(b"first response"))]
