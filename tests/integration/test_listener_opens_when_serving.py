"""A client listener on a configured port opens only once the broker serves, as Kafka 4.4's
(SocketServer's Acceptor: with a port other than 0 it "defer[s] opening the socket until we start
the Acceptor", which BrokerServer does after the broker is unfenced, in enableRequestProcessing).

Found by the fault runs (docs/faults.md, tenth session): a kbroker node started again after a kill -9
or a full disk listened while it waited to register (DUPLICATE_BROKER_REGISTRATION until its old
session expired). librdkafka's connection sat in the listen backlog for 2-8 s, its ApiVersions
unanswered, the partition's messages queued for that node and its metadata stale; when the node
answered at last, they were refused NOT_LEADER_OR_FOLLOWER. A Kafka node refuses the connection
until then, and the client asks another broker.

Port 0 is opened at once (its port must be known to be advertised), as in Kafka.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from kbroker.broker import Broker
from kbroker.errors import StartupError
from kbroker.testing import EmbeddedBroker
from kbroker_protocol.errors import ErrorCode
from tests.integration.wire import Wire


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _api_versions(port: int) -> int:
    wire = Wire(f"127.0.0.1:{port}", timeout=30)
    try:
        return int(wire.call(18, 3, client_software_name="t", client_software_version="1").error_code)
    finally:
        wire.close()


def test_a_configured_port_refuses_connections_until_the_broker_serves(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()

    async def main() -> None:
        registered = asyncio.Event()
        release = asyncio.Event()
        register = Broker._register

        async def held_register(self: Broker) -> None:  # registered, not yet serving
            await register(self)
            registered.set()
            await release.wait()

        monkeypatch.setattr(Broker, "_register", held_register)
        embedded = EmbeddedBroker({"listeners": f"PLAINTEXT://127.0.0.1:{port}"}, str(tmp_path / "data"))
        start = asyncio.create_task(embedded.start())
        waiting = asyncio.create_task(registered.wait())
        await asyncio.wait({start, waiting}, return_when=asyncio.FIRST_COMPLETED)
        assert registered.is_set(), f"the broker did not get to its registration: {start}"
        try:
            with pytest.raises(ConnectionRefusedError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()  # (reached only without the fix: the socket was listening)
            release.set()
            await start
            assert await asyncio.to_thread(_api_versions, port) == ErrorCode.NONE
            assert embedded.bootstrap_servers.endswith(f":{port}")
        finally:
            release.set()
            if not start.done():
                start.cancel()
            await embedded.stop()

    asyncio.run(main())


def test_a_wildcard_port_is_open_before_registration_and_advertised(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        seen: list[str] = []
        register = Broker._register

        async def watched_register(self: Broker) -> None:
            seen.append(self.bootstrap_servers)  # what it registers with
            await register(self)

        monkeypatch.setattr(Broker, "_register", watched_register)
        async with EmbeddedBroker(None, str(tmp_path / "data")) as embedded:
            assert seen == [embedded.bootstrap_servers]
            port = int(seen[0].rsplit(":", 1)[1])
            assert port != 0
            assert await asyncio.to_thread(_api_versions, port) == ErrorCode.NONE

    asyncio.run(main())


def test_a_configured_port_in_use_fails_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]

        async def main() -> None:
            embedded = EmbeddedBroker({"listeners": f"PLAINTEXT://127.0.0.1:{port}"}, str(tmp_path / "data"))
            with pytest.raises(StartupError, match=f"cannot listen on .*{port}"):
                await embedded.start()

        asyncio.run(main())
