"""Kbroker's outgoing request clients on a connection that the peer has reset (SO_LINGER 0 close)
while it was idle, on uvloop (the loop kbroker runs on): uvloop closes the transport as soon as it
reads the reset (a write is then dropped) and, once the protocol's connection_lost has run (a loop
turn later), a write to it raises ``RuntimeError`` ("the handler is closed"), which no caller
expected (they catch OSError and the like). A client with no reader task between its requests
meets the second state whenever a connection is reset while idle. Such a connection is a disconnected one, as
Kafka's NetworkClient treats it: the controller channel sends the request on a new connection; a
broker-to-broker request fails with a connection error, which its callers retry on a new one."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from waiting import turns_until

from kbroker.metadata.channel import ControllerChannel
from kbroker.replication.broker_connection import BrokerConnection
from kbroker_protocol.api import decode_request, encode_response
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kbroker_protocol.messages.broker_heartbeat import BrokerHeartbeatRequest, BrokerHeartbeatResponse

API_VERSIONS = 18
BROKER_HEARTBEAT = 63


def _run_on_uvloop(main: Callable[[], Awaitable[None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


class FakeController:
    """Answers ApiVersions (ApiVersions and BrokerHeartbeat at every version) and BrokerHeartbeat
    (NONE); keeps each connection's writer so that a test can reset it."""

    def __init__(self) -> None:
        self.connections: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeController:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.connections:
            w.transport.abort()

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(writer)
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                header, _body = decode_request(await reader.readexactly(size))
                body: Any
                if header.request_api_key == API_VERSIONS:
                    keys = [ApiVersionsResponse.ApiVersion(api_key=k, min_version=REQUESTS[k].MIN_VERSION,
                                                           max_version=REQUESTS[k].MAX_VERSION)
                            for k in (API_VERSIONS, BROKER_HEARTBEAT)]
                    body = ApiVersionsResponse(error_code=ErrorCode.NONE, api_keys=keys)
                else:
                    body = BrokerHeartbeatResponse(error_code=ErrorCode.NONE)
                parts = encode_response(header.correlation_id, header.request_api_key, header.request_api_version,
                                        body)
                data = b"".join(bytes(p) for p in parts)
                writer.write(struct.pack(">i", len(data)) + data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    def reset(self, index: int) -> None:
        """Close connection ``index`` with a reset (SO_LINGER 0), as a killed or faulty peer does."""
        writer = self.connections[index]
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()




def _heartbeat() -> BrokerHeartbeatRequest:
    return BrokerHeartbeatRequest(broker_id=1, broker_epoch=7, current_metadata_offset=0, want_fence=False,
                                  want_shut_down=False)


def test_the_controller_channel_sends_on_a_new_connection_after_an_idle_one_was_reset() -> None:
    """A heartbeat after the controller reset the channel's idle connection is answered, over a new
    connection (before the fix the write raised RuntimeError out of ``send``: the broker's
    lifecycle task, its only caller for heartbeats, ended and the heartbeats stopped)."""

    async def main() -> None:
        async with FakeController() as controller:
            channel = ControllerChannel(lambda: 1, {1: controller.address}, request_timeout_ms=10_000)
            try:
                first = await channel.send(BROKER_HEARTBEAT, _heartbeat())
                assert first.error_code == ErrorCode.NONE and len(controller.connections) == 1
                conn = channel._connection
                assert conn is not None
                controller.reset(0)
                await turns_until(lambda: conn.reader.exception() is not None, "the reset seen (connection_lost)")
                assert conn.writer.transport.is_closing()
                second = await channel.send(BROKER_HEARTBEAT, _heartbeat())
                assert second.error_code == ErrorCode.NONE
                assert len(controller.connections) == 2 and channel._connection is not conn
            finally:
                await channel.close()

    _run_on_uvloop(main)


def test_a_broker_connection_reset_while_idle_fails_its_request_with_a_connection_error() -> None:
    """A broker-to-broker request (the replica fetcher's, the markers', the share persister's...)
    on a connection the other broker reset fails with ConnectionResetError, an OSError that every
    caller handles by dropping the connection and retrying on a new one (the replica fetcher at
    INFO, after replica.fetch.backoff.ms); before the fix it raised RuntimeError, which the replica
    fetcher logged as a bug (ERROR) and the others as an unexpected failure."""

    async def main() -> None:
        async with FakeController() as peer:
            conn = BrokerConnection(*peer.address, "broker-1-test", 1 << 20)
            await conn.open(10.0)
            try:
                response = await conn.request(ApiVersionsRequest(), 3, 10.0)
                assert response.error_code == ErrorCode.NONE
                writer = conn._writer
                assert writer is not None
                peer.reset(0)
                reader = conn._reader
                assert reader is not None
                await turns_until(lambda: reader.exception() is not None, "the reset seen (connection_lost)")
                assert writer.transport.is_closing()
                try:
                    await conn.request(ApiVersionsRequest(), 3, 10.0)
                except ConnectionResetError:
                    pass
                else:
                    raise AssertionError("a request on a reset connection succeeded")
            finally:
                conn.close()
            again = BrokerConnection(*peer.address, "broker-1-test", 1 << 20)
            await again.open(10.0)
            try:
                assert (await again.request(ApiVersionsRequest(), 3, 10.0)).error_code == ErrorCode.NONE
            finally:
                again.close()

    _run_on_uvloop(main)


# -- the long-lived tasks that use these clients: an unexpected failure is logged, not their end ----


def test_the_voter_updater_goes_on_after_a_round_raised(caplog) -> None:
    """UpdateRaftVoter's poll raising what its handler does not expect (a version mismatch, a bug)
    is logged and the next poll runs (an updater ended there never sent this voter's endpoints)."""
    import logging
    from types import SimpleNamespace

    from kbroker.raft.voter_update import VoterUpdater

    config = SimpleNamespace(fetch_timeout_ms=4, request_timeout_ms=1000)
    raft = SimpleNamespace(config=config, node_id=3, running=True, addresses={}, connection_setup_timeout_ms=1000,
                           connection_setup_timeout_max_ms=1000, open_connection=None)
    rounds: list[int] = []

    async def main() -> None:
        updater = VoterUpdater(raft, "cluster", None)  # type: ignore[arg-type]

        async def step() -> None:
            rounds.append(len(rounds))
            if len(rounds) == 1:
                raise RuntimeError("injected")
            raft.running = False

        updater.step = step  # type: ignore[method-assign]
        await updater.run()

    _run_on_uvloop(main)
    assert rounds == [0, 1]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == \
        ["raft node 3: the voter update failed; going on"]


def test_a_background_task_of_the_broker_that_ends_on_an_exception_is_logged(caplog) -> None:
    """The broker's background tasks (lifecycle, controller registration, voter update...) retry
    their failures; one that ends on an exception anyway is logged as an error with its name when
    it ends (asyncio says "Task exception was never retrieved" only when the task is collected,
    if ever; the death is otherwise found as a missing heartbeat, later)."""
    import logging
    from types import SimpleNamespace

    from kbroker.broker import Broker

    async def failing() -> None:
        raise RuntimeError("injected")

    async def ending() -> None:
        return None

    async def main() -> None:
        host = SimpleNamespace(_background=set())
        tasks = [Broker.run_in_background(host, failing(), "broker-lifecycle"),  # type: ignore[arg-type]
                 Broker.run_in_background(host, ending(), "done")]  # type: ignore[arg-type]
        await asyncio.wait(tasks)
        assert host._background == set()

    _run_on_uvloop(main)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["background task broker-lifecycle ended on an exception"]
    assert errors[0].exc_info is not None and str(errors[0].exc_info[1]) == "injected"
