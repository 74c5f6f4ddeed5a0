"""Kafka's connection keys on kbroker's own outgoing connections, as Kafka 4.4's NetworkClients
apply them: an attempt that does not connect in the connection setup timeout
(socket.connection.setup.timeout.ms, growing over consecutive failures to its .max.ms) is
abandoned and retried; a request with no answer in the client's request timeout closes the
connection and is retried on a new one (the Raft client: controller.quorum.request.timeout.ms, the
broker-to-controller channels: controller.socket.timeout.ms, the replica fetcher:
request.timeout.ms); the broker-to-controller channel's sockets get SO_KEEPALIVE and TCP_NODELAY.

The peers never answer (tests/integration/unanswering_peers.py): a black hole drops the SYNs, a
silent server accepts and reads but does not answer. Each test waits for the client to have given
up and tried again (counted by the client, or by the server's accepted connections), never for a
time.
"""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path
from typing import Any

import pytest

from kbroker.metadata.channel import ControllerChannel
from kbroker.metadata.client import ControllerUnavailable
from kbroker.raft.file_log import FileRaftLog
from kbroker.raft.io import RaftDriver
from kbroker.raft.node import RaftConfig
from kbroker.raft.state_store import FileQuorumStateStore
from kbroker.replication.replica_fetcher import ReplicaFetcher
from kbroker_protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from tests.integration.unanswering_peers import BlackHole, SilentServer
from tests.replication.harness import Cluster, wait_for

BROKER_HEARTBEAT = 63


def _heartbeat() -> BrokerHeartbeatRequest:
    return BrokerHeartbeatRequest(broker_id=1, broker_epoch=1, current_metadata_offset=0, want_fence=False,
                                  want_shut_down=False)


# -- the Raft client ------------------------------------------------------------------------------

async def test_the_raft_client_abandons_a_connect_in_the_setup_timeout_growing_it_and_times_out_requests(
        tmp_path: Path) -> None:
    """Voter 1 of (1, 2, 3) stands for election: voter 2's address drops SYNs (each attempt is
    abandoned after the setup timeout, which grows: KafkaRaftManager passes the keys to its
    NetworkClient), voter 3 accepts and never answers (the Vote times out after
    controller.quorum.request.timeout.ms, the connection is closed and a new one opened)."""
    silent = await SilentServer().start()
    with BlackHole() as hole:
        config = RaftConfig(election_timeout_ms=200, fetch_timeout_ms=400, election_backoff_max_ms=200,
                            request_timeout_ms=300, retry_backoff_ms=20)
        driver = RaftDriver(1, (1, 2, 3), {2: hole.address, 3: silent.address}, FileRaftLog(tmp_path / "log"),
                            FileQuorumStateStore(tmp_path / "log"), config=config, cluster_id="timeouts",
                            rng=random.Random(1))
        driver.connection_setup_timeout_ms = 100
        driver.connection_setup_timeout_max_ms = 100_000
        await driver.listen()
        driver.start()
        try:
            await wait_for(lambda: 2 in driver._peers and driver._peers[2].backoff.failed_connect_attempts >= 2,
                           message="two abandoned attempts to connect to the black hole")
            backoff = driver._peers[2].backoff
            assert backoff is not None and backoff.setup_timeout_ms >= 2 * 100 * 0.8  # grown: 100 * 2**n, +/-20%
            # (a stall of the loop during the 100-ms connect could also make a second connection:
            # wait for both, the request timeout and the reconnection)
            await wait_for(lambda: silent.accepted >= 2 and driver._peers[3].request_timeouts >= 1,
                           message="a request timeout and a second connection to the silent voter")
            assert silent.requests and set(silent.requests) == {52}  # Vote, sent again on the new connection
        finally:
            await driver.stop(graceful=False)
            driver.log.close()
            await silent.close()


# -- the broker-to-controller channel ---------------------------------------------------------------

async def test_the_controller_channels_setup_timeout_grows_per_controller(caplog: Any) -> None:
    """Attempts to a black-holed controller grow its setup timeout; the first attempt to another
    controller starts from the configured one (Kafka's ClusterConnectionStates keeps it per node)."""
    active = [1]
    with BlackHole() as first, BlackHole() as second:
        channel = ControllerChannel(lambda: active[0], {1: first.address, 2: second.address},
                                    request_timeout_ms=60_000, setup_timeout_ms=100, setup_timeout_max_ms=100_000)
        send = asyncio.ensure_future(channel.send(BROKER_HEARTBEAT, _heartbeat()))
        try:
            with caplog.at_level("INFO", logger="kbroker.metadata.channel"):
                await wait_for(lambda: channel.connection_backoff(1).failed_connect_attempts >= 3,
                               message="three abandoned attempts to connect to controller 1")
                active[0] = 2
                await wait_for(lambda: channel.connection_backoff(2).failed_connect_attempts >= 1,
                               message="an abandoned attempt to connect to controller 2")
            timeouts = [int(r.getMessage().rsplit("(", 1)[1].split()[0]) for r in caplog.records
                        if "socket connection setup timeout" in r.getMessage() and "controller 2 " in r.getMessage()]
            assert timeouts and timeouts[0] <= 100 * 1.2  # the configured 100 ms (+/-20 %), not controller 1's
            assert channel.connection_backoff(1).setup_timeout_ms >= 4 * 100 * 0.8
        finally:
            send.cancel()
            await asyncio.gather(send, return_exceptions=True)
            await channel.close()


async def test_the_controller_channel_abandons_a_connect_in_the_setup_timeout_and_grows_it() -> None:
    with BlackHole() as hole:
        channel = ControllerChannel(lambda: 1, {1: hole.address}, request_timeout_ms=60_000,
                                    setup_timeout_ms=100, setup_timeout_max_ms=100_000)
        send = asyncio.ensure_future(channel.send(BROKER_HEARTBEAT, _heartbeat()))
        try:
            await wait_for(lambda: channel.connection_backoff(1).failed_connect_attempts >= 3,
                           message="three abandoned attempts to connect to the black hole")
            assert not send.done()  # retried within the request's deadline
            assert channel.connection_backoff(1).setup_timeout_ms >= 4 * 100 * 0.8  # 100 * 2**n, +/-20%
        finally:
            send.cancel()
            await asyncio.gather(send, return_exceptions=True)
            await channel.close()


async def test_the_controller_channel_gives_up_at_its_deadline_when_nothing_connects() -> None:
    with BlackHole() as hole:
        channel = ControllerChannel(lambda: 1, {1: hole.address}, setup_timeout_ms=100_000)
        with pytest.raises(ControllerUnavailable, match="TimeoutError"):
            await channel.send(BROKER_HEARTBEAT, _heartbeat(), timeout_ms=300)
        await channel.close()


async def test_a_controller_request_with_no_answer_in_controller_socket_timeout_is_retried_on_a_new_connection(
        ) -> None:
    """controller.socket.timeout.ms bounds each attempt (Kafka's NetworkClient request timeout, at
    most the channel's retry timeout): the connection is closed, the request sent again on a new
    one, until the request's own deadline."""
    silent = await SilentServer(api_versions=[(BROKER_HEARTBEAT, 0, 1)]).start()
    channel = ControllerChannel(lambda: 1, {1: silent.address}, request_timeout_ms=60_000, socket_timeout_ms=200)
    send = asyncio.ensure_future(channel.send(BROKER_HEARTBEAT, _heartbeat()))
    try:
        await wait_for(lambda: silent.accepted >= 2 and silent.requests.count(BROKER_HEARTBEAT) >= 2,
                       message="the heartbeat sent again on a second connection")
        assert not send.done()
    finally:
        send.cancel()
        await asyncio.gather(send, return_exceptions=True)
        await channel.close()
        await silent.close()


async def test_the_controller_channel_sets_keepalive_and_nodelay() -> None:
    """Kafka's Selector.configureSocketChannel on every client connection."""
    silent = await SilentServer(api_versions=[(BROKER_HEARTBEAT, 0, 1)]).start()
    channel = ControllerChannel(lambda: 1, {1: silent.address}, request_timeout_ms=60_000)
    send = asyncio.ensure_future(channel.send(BROKER_HEARTBEAT, _heartbeat()))
    try:
        await wait_for(lambda: BROKER_HEARTBEAT in silent.requests, message="the heartbeat to be sent")
        assert channel._connection is not None
        sock: Any = channel._connection.writer.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        send.cancel()
        await asyncio.gather(send, return_exceptions=True)
        await channel.close()
        await silent.close()


# -- the replica fetcher ------------------------------------------------------------------------------

def _redirect_fetchers(monkeypatch: pytest.MonkeyPatch, where: dict[str, tuple[str, int]]) -> None:
    """The fetchers connect to ``where["to"]`` while it is set, else to the leader's endpoint."""
    original = ReplicaFetcher._endpoint
    monkeypatch.setattr(ReplicaFetcher, "_endpoint", lambda self: where.get("to") or original(self))


async def test_the_replica_fetcher_abandons_a_connect_in_the_setup_timeout_and_connects_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    where: dict[str, tuple[str, int]] = {}
    _redirect_fetchers(monkeypatch, where)
    with BlackHole() as hole:
        where["to"] = hole.address
        async with Cluster(2, config={"socket.connection.setup.timeout.ms": "100"}) as cluster:
            cluster.create_topic("t", [[1, 2]])
            fetchers = cluster.nodes[2].broker.replica_manager.fetchers.fetchers
            await wait_for(lambda: any(f.connect_failures >= 2 for f in fetchers.values()),
                           message="two abandoned attempts to connect to the black hole")
            del where["to"]
            await wait_for(lambda: any(f._conn is not None for f in fetchers.values()),
                           message="the fetcher to connect to the leader")


async def test_a_fetch_with_no_answer_in_request_timeout_is_sent_again_on_a_new_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """BrokerBlockingSender's NetworkClient: request.timeout.ms (not replica.socket.timeout.ms)
    bounds the Fetch; the connection is closed and the fetcher retries after its backoff."""
    silent = await SilentServer().start()
    where = {"to": silent.address}
    _redirect_fetchers(monkeypatch, where)
    try:
        async with Cluster(2, config={"request.timeout.ms": "300"}) as cluster:
            cluster.create_topic("t", [[1, 2]])
            await wait_for(lambda: silent.accepted >= 2 and silent.requests.count(1) >= 2,
                           message="a Fetch sent again on a second connection")
    finally:
        await silent.close()


async def test_a_raft_request_queued_past_the_request_timeout_while_connecting_is_failed_not_sent(
        tmp_path: Path) -> None:
    """Kafka's InterBrokerSendThread fails a request it could not send within its request timeout;
    the core has retried it meanwhile. Voter 1's connection to voter 2 is held up (the opener
    waits for the test); once it connects, the Votes queued longer than
    controller.quorum.request.timeout.ms are reported failed to the core and not written."""
    release: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    server = await SilentServer().start()

    async def held_open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        await release
        return await asyncio.open_connection(host, port)

    config = RaftConfig(election_timeout_ms=200, fetch_timeout_ms=400, election_backoff_max_ms=200,
                        request_timeout_ms=300, retry_backoff_ms=20)
    driver = RaftDriver(1, (1, 2, 3), {2: server.address}, FileRaftLog(tmp_path / "log"),
                        FileQuorumStateStore(tmp_path / "log"), config=config, cluster_id="timeouts",
                        rng=random.Random(1))
    driver.open_connection = held_open
    failed: list[int] = []
    await driver.listen()
    driver.start()
    node = driver.node
    assert node is not None
    original = node.request_failed

    def spy(dst: int, request_id: int, now: int) -> Any:
        if dst == 2:
            failed.append(request_id)
        return original(dst, request_id, now)

    node.request_failed = spy  # type: ignore[method-assign]
    try:
        await wait_for(lambda: 2 in driver._peers and len(driver._peers[2].queue) >= 2,
                       message="two Votes queued behind the connection being set up")
        peer = driver._peers[2]
        stale = {m.request_id for m in peer.queue}
        for rid in stale:  # queued longer ago than the request timeout
            peer.queued_at[rid] -= 1.0
        release.set_result(None)
        # the queue is sent (or failed) in the step that connects: look then, before any request timeout
        await wait_for(lambda: peer.writer is not None, message="the connection to voter 2")
        assert not stale & {entry[0] for entry in peer.inflight.values()}
        await wait_for(lambda: stale <= set(failed), message="the stale Votes reported failed to the core")
    finally:
        await driver.stop(graceful=False)
        driver.log.close()
        await server.close()
