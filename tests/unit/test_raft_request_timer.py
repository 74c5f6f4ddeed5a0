"""The Raft client's request timer (Kafka's NetworkClient.handleTimedOutRequests) does not close a
connection whose answer has arrived but is not read yet: NetworkClient.poll handles completed
receives before it looks for timed-out requests. After a stall of the node's event loop the timer
can run before the reader task; the answer waits in the reader's buffer or in the socket."""

from __future__ import annotations

import asyncio
import functools
import select
from types import SimpleNamespace
from typing import Any

from kbroker.raft.peers import Peer
from kbroker.raft.transport import RaftTransport
from tests.replication.harness import wait_for


class _Answerer:
    """A server that writes the bytes it is told to on the one connection it accepts."""

    def __init__(self) -> None:
        self.writer: asyncio.StreamWriter | None = None
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> tuple[str, int]:
        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writer = writer

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def _transport(loop: asyncio.AbstractEventLoop) -> Any:
    """The parts of a RaftTransport the timer uses (its config's request timeout: 1 ms)."""
    t = SimpleNamespace(_loop=loop, config=SimpleNamespace(request_timeout_ms=1), node_id=1)
    t._check_request_timeout = functools.partial(RaftTransport._check_request_timeout, t)
    t._arm_request_timeout = functools.partial(RaftTransport._arm_request_timeout, t)
    return t


async def _connected_peer(answerer: _Answerer) -> Peer:
    host, port = await answerer.start()
    reader, writer = await asyncio.open_connection(host, port)
    await wait_for(lambda: answerer.writer is not None, 10)
    peer = Peer(2, writer=writer, reader=reader)
    loop = asyncio.get_running_loop()
    peer.sent_at = {1: loop.time() - 10}  # a request long past its timeout
    return peer


async def test_an_answer_in_the_readers_buffer_keeps_the_connection_until_read() -> None:
    loop = asyncio.get_running_loop()
    answerer = _Answerer()
    peer = await _connected_peer(answerer)
    reader, writer = peer.reader, peer.writer
    assert reader is not None and writer is not None
    try:
        assert answerer.writer is not None
        answerer.writer.write(b"\x00\x00\x00\x04abcd")
        await wait_for(lambda: len(getattr(reader, "_buffer", b"")) == 8, 10)
        t = _transport(loop)
        t._check_request_timeout(peer)
        assert peer.request_timeouts == 0 and not writer.is_closing()
        assert peer.timeout_timer is not None  # it looks again
        peer.timeout_timer.cancel()
        peer.timeout_timer = None
        await reader.readexactly(8)  # the reader task has read it: the request is still unanswered
        t._check_request_timeout(peer)
        assert peer.request_timeouts == 1 and writer.is_closing()
    finally:
        writer.transport.abort()
        await answerer.close()


async def test_an_answer_in_the_socket_keeps_the_connection() -> None:
    loop = asyncio.get_running_loop()
    answerer = _Answerer()
    peer = await _connected_peer(answerer)
    writer = peer.writer
    assert writer is not None
    peer.reader = None
    writer.transport.pause_reading()  # the loop has not read the socket yet (as after a stall)
    try:
        assert answerer.writer is not None
        answerer.writer.write(b"\x00\x00\x00\x04abcd")
        await answerer.writer.drain()
        t = _transport(loop)
        sock = writer.get_extra_info("socket")
        await wait_for(lambda: bool(select.select([sock.fileno()], [], [], 0)[0]), 10)
        t._check_request_timeout(peer)
        assert peer.request_timeouts == 0 and not writer.is_closing()
        assert peer.timeout_timer is not None
        peer.timeout_timer.cancel()
    finally:
        writer.transport.abort()
        await answerer.close()


async def test_no_answer_closes_the_connection() -> None:
    loop = asyncio.get_running_loop()
    answerer = _Answerer()
    peer = await _connected_peer(answerer)
    writer = peer.writer
    assert writer is not None
    try:
        _transport(loop)._check_request_timeout(peer)
        assert peer.request_timeouts == 1 and writer.is_closing()
    finally:
        writer.transport.abort()
        await answerer.close()
