"""The HTTP endpoint (metrics, console API) answering a client that reset its connection while the
answer was being made, on uvloop (the loop kbroker runs on): once uvloop has seen the reset, a write
raises ``RuntimeError`` ("the handler is closed"), which ``_write`` did not expect; the answer is
dropped instead, as for a client that closed."""

from __future__ import annotations

import asyncio
import socket
import struct

import uvloop
from event_loops import reset_seen
from waiting import turns_until

from kbroker.server.http import HttpService


def test_an_answer_to_a_client_that_reset_is_dropped_not_raised() -> None:
    async def main() -> None:
        accepted: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append((reader, writer))

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        client = socket.create_connection((host, port))
        try:
            await turns_until(lambda: bool(accepted), "the connection accepted")
            reader, writer = accepted[0]
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # a reset
            await reset_seen(reader, writer)
            service = HttpService([])
            await service._write(writer, (200, "text/plain", b"metrics"))  # raised RuntimeError before
        finally:
            server.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
