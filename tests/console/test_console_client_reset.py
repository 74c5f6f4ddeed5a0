"""The console's Kafka client (kbroker/console/client.py) on a connection the broker reset between
its opening (and SASL authentication, when the console logs in) and the request's write: on uvloop
(the loop kbroker runs on), a write to a connection the loop has seen reset raises
``RuntimeError`` ("the handler is closed"), which the client did not expect and which reached the
HTTP endpoint as a failed request (logged with a traceback, answered 500); it is an unreachable
broker, as a refused connection is (BrokerUnreachable, which the console's pages report), on
either loop.

Deterministic as tests/raft/test_raft_probe_after_reset.py: the connection is handed to the client
only once its end has seen the reset."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from event_loops import LOOPS, reset_seen

from kbroker.console.client import BrokerUnreachable, _Connection
from kbroker_protocol.messages.api_versions import ApiVersionsRequest


async def _call_on_a_connection_the_broker_reset() -> object:
    """What the client's call gave (or raised) on a connection reset before its request."""

    def reset(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # closed with SO_LINGER 0: a reset

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    conn = _Connection(host, port)

    async def open_after_the_reset() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port)
        await reset_seen(reader, writer)
        return reader, writer

    conn._open = open_after_the_reset  # type: ignore[method-assign]
    try:
        return await conn.call(ApiVersionsRequest(client_software_name="t", client_software_version="1"), 3, 30.0)
    except Exception as exc:  # noqa: BLE001 - what the console's route would have got
        return exc
    finally:
        conn.close()
        server.close()


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_request_on_a_connection_the_broker_reset_finds_it_unreachable(loop_name: str) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        result = runner.run(_call_on_a_connection_the_broker_reset())
    assert isinstance(result, BrokerUnreachable), f"the call gave {result!r}"
