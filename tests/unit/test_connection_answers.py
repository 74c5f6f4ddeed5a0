"""kbroker/server/connection.py: when an awaitable handler's answer is written, and in which order.

A handler that waits (a long-polling Fetch, a Produce waiting for its append) runs in a task. Its
answer is queued and written in the step in which the handler finishes, not from the task's done
callback one loop iteration later; answers still leave in request order, and those that became
ready behind an earlier request go out with it in one writelines.

And when a connection stops reading to let the event loop go round (READ_BURST_BYTES).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from kbroker.api import install_handlers
from kbroker.config import BrokerConfig, Endpoint
from kbroker.server.connection import KafkaConnection
from kbroker.server.limits import ConnectionLimits
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.messages.api_versions import ApiVersionsResponse

API_VERSIONS = 18


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.reading: list[str] = []  # pause / resume, in order

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 4242)}.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def writelines(self, parts: list[Any]) -> None:
        self.writes.append(b"".join(bytes(p) for p in parts))

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def pause_reading(self) -> None:
        self.reading.append("pause")

    def resume_reading(self) -> None:
        self.reading.append("resume")

    def close(self) -> None:
        self.closed = True


class Hooks:
    """Replaces every request's handler with ``handlers[correlation id]``."""

    def __init__(self) -> None:
        self.handlers: dict[int, Callable[[Any, Any], Any]] = {}

    def intercept(self, ctx: Any, body: Any, handler: Any, size: int) -> Any:
        return self.handlers[ctx.header.correlation_id]

    def refused(self, *args: Any) -> None:
        pass


class Host:
    def __init__(self) -> None:
        self.config = BrokerConfig({"node.id": "1"}, warn=False)
        self.limits = ConnectionLimits(self.config)
        self.request_hooks = Hooks()
        self.request_metrics = None
        self.listener_security: dict[str, Any] = {}
        self.client_quotas = None
        self.connections: set[KafkaConnection] = set()
        self.connection_listeners: list[Any] = []


def _connection() -> tuple[KafkaConnection, FakeTransport, Hooks]:
    install_handlers()  # (the registry's table, as a broker has it)
    host = Host()
    conn = KafkaConnection(host, Endpoint("PLAINTEXT", "127.0.0.1", 0))  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, host.request_hooks


def _request(correlation_id: int, client_id: str = "test") -> bytes:
    header = RequestHeader(request_api_key=API_VERSIONS, request_api_version=3, correlation_id=correlation_id,
                           client_id=client_id)
    payload = encode_request(header, REQUESTS[API_VERSIONS]())
    return struct.pack(">i", len(payload)) + payload


def _answers(written: bytes) -> list[tuple[int, int]]:
    """(correlation id, error code) of each size-prefixed response in ``written``."""
    out = []
    while written:
        (size,) = struct.unpack_from(">i", written)
        header, response = decode_response(written[4:4 + size], API_VERSIONS, 3)
        out.append((header.correlation_id, response.error_code))
        written = written[4 + size:]
    return out


def _held(fut: asyncio.Future[None]) -> Callable[[Any, Any], Awaitable[ApiVersionsResponse]]:
    def handler(ctx: Any, body: Any) -> Awaitable[ApiVersionsResponse]:
        async def answer() -> ApiVersionsResponse:
            await fut
            return ApiVersionsResponse(error_code=0)
        return answer()
    return handler


def test_a_held_answer_is_written_in_the_step_its_handler_finishes() -> None:
    async def main() -> list[bytes]:
        conn, transport, hooks = _connection()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        hooks.handlers[1] = _held(fut)
        conn.data_received(_request(1))
        await asyncio.sleep(0)
        assert transport.writes == []  # held
        fut.set_result(None)
        # One iteration: the handler's task resumes and finishes (ahead of this task, woken
        # after it); a done callback would have run in the iteration after.
        await asyncio.sleep(0)
        return list(transport.writes)  # (a copy: the loop's shutdown runs what is still queued)

    writes = asyncio.run(main())
    assert [_answers(w) for w in writes] == [[(1, 0)]]


def test_answers_ready_out_of_order_leave_in_request_order_in_one_write() -> None:
    async def main() -> tuple[list[bytes], list[bytes]]:
        conn, transport, hooks = _connection()
        loop = asyncio.get_running_loop()
        first: asyncio.Future[None] = loop.create_future()
        third: asyncio.Future[None] = loop.create_future()
        hooks.handlers[1] = _held(first)
        hooks.handlers[2] = lambda ctx, body: ApiVersionsResponse(error_code=0)  # answered at once
        hooks.handlers[3] = _held(third)
        conn.data_received(_request(1) + _request(2) + _request(3))
        third.set_result(None)
        for _ in range(3):
            await asyncio.sleep(0)
        before = list(transport.writes)  # 2 and 3 are ready, behind 1
        first.set_result(None)
        for _ in range(3):
            await asyncio.sleep(0)
        return before, list(transport.writes)

    before, writes = asyncio.run(main())
    assert before == []
    assert [_answers(w) for w in writes] == [[(1, 0), (2, 0), (3, 0)]]


def test_a_held_handler_that_fails_gets_its_error_answer_in_its_place() -> None:
    async def main() -> tuple[list[bytes], bool]:
        conn, transport, hooks = _connection()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def failing(ctx: Any, body: Any) -> Awaitable[ApiVersionsResponse]:
            async def answer() -> ApiVersionsResponse:
                await fut
                raise RuntimeError("boom")
            return answer()

        hooks.handlers[1] = failing
        hooks.handlers[2] = lambda ctx, body: ApiVersionsResponse(error_code=0)
        conn.data_received(_request(1) + _request(2))
        fut.set_result(None)
        for _ in range(3):
            await asyncio.sleep(0)
        return list(transport.writes), transport.closed

    writes, closed = asyncio.run(main())
    assert [_answers(w) for w in writes] == [[(1, ErrorCode.UNKNOWN_SERVER_ERROR), (2, 0)]]
    assert not closed


def _answered_at_once(ctx: Any, body: Any) -> ApiVersionsResponse:
    return ApiVersionsResponse(error_code=0)


def test_a_connection_that_delivers_a_burst_stops_reading_until_the_loop_has_gone_round() -> None:
    """A client with a backlog (pipelined requests, READ_BURST_BYTES of them and more, delivered
    in reads one after another, as uvloop reads a socket while each read fills its buffer) is
    not read further once the burst is in: reading resumes only after the callbacks the loop
    had already scheduled have run, so other connections and the timers get their turn."""
    from kbroker.server.flow import READ_BURST_BYTES

    async def main() -> tuple[list[str], list[str], list[str], int]:
        conn, transport, hooks = _connection()
        loop = asyncio.get_running_loop()
        pad = "x" * 30_000  # ~30 KB a request (client id): a burst is about nine of them
        chunks = []
        for cid in range(1, READ_BURST_BYTES // 30_000 + 3):
            hooks.handlers[cid] = _answered_at_once
            chunks.append(_request(cid, pad))
        seen: list[str] = []
        loop.call_soon(lambda: seen.extend(transport.reading))  # scheduled before the reads
        for chunk in chunks:
            conn.data_received(chunk)
        during = list(transport.reading)
        await asyncio.sleep(0)  # one turn of the loop (this task runs after _burst_done)
        after = list(transport.reading)
        answered = sum(len(_answers(w)) for w in transport.writes)
        return during, seen, after, answered

    during, seen, after, answered = asyncio.run(main())
    assert during == ["pause"]  # past the burst: not read further within this turn
    assert seen == ["pause"]  # still paused when the callbacks scheduled before it ran
    assert after == ["pause", "resume"]  # and reading again after them
    assert answered == READ_BURST_BYTES // 30_000 + 2  # every request delivered was answered


def test_a_connection_below_the_burst_keeps_reading() -> None:
    async def main() -> list[str]:
        conn, transport, hooks = _connection()
        for cid in range(1, 4):
            hooks.handlers[cid] = _answered_at_once
            conn.data_received(_request(cid))
        await asyncio.sleep(0)
        return list(transport.reading)

    assert asyncio.run(main()) == []
