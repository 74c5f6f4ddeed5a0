"""Kafka's socket keys on the broker's sockets, as Kafka 4.4 applies them (SocketServer's Acceptor,
ServerSocketFactory, the clients' Selector): socket.receive.buffer.bytes on a listening socket
before it binds (its accepted connections inherit it), socket.send.buffer.bytes on each accepted
connection, socket.listen.backlog.size as the listen backlog, -1 leaving a buffer to the OS; the
replica fetcher's connection with replica.socket.receive.buffer.bytes, the Raft client's and the
controller listener's with the broker-wide keys.

What the kernel reports is read on the broker's own socket objects (getsockopt) and, for the
backlog, through the kernel's socket diagnostics (NETLINK_SOCK_DIAG, what ``ss`` reads). Linux
doubles a buffer size set with setsockopt and caps it at net.core.wmem_max / rmem_max.
"""

from __future__ import annotations

import asyncio
import io
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from kbroker.cluster import free_ports
from kbroker.config import BrokerConfig, ConfigError
from kbroker.storage import format_storage, random_uuid
from kbroker.testing import BrokerThread, EmbeddedBroker
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from tests.integration.transactions_helpers import RawClient
from tests.integration.waiting import async_wait_until
from tests.replication.harness import Cluster, wait_for


def _kernel_max(name: str) -> int:
    return int(Path(f"/proc/sys/net/core/{name}").read_text())


def _linux_reports(value: int, cap: str) -> int:
    """What getsockopt returns after setsockopt(``value``): Linux doubles it, capped at net.core.``cap``."""
    return 2 * min(value, _kernel_max(cap))


def _buffers(sock: Any) -> tuple[int, int]:
    return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


async def _accepted_socket(embedded: EmbeddedBroker) -> tuple[socket.socket, Any]:
    """A client connection to ``embedded`` and the broker's socket of it (no byte sent yet)."""
    broker = embedded.broker
    host, port = embedded.bootstrap_servers.split(",")[0].rsplit(":", 1)
    before = set(broker.connections)
    client = socket.create_connection((host, int(port)), timeout=10)
    client.setblocking(False)
    await async_wait_until(lambda: len(set(broker.connections) - before) == 1, 10, 0.01,
                           message="the broker to take the connection")
    (conn,) = set(broker.connections) - before
    return client, conn.transport.get_extra_info("socket")


def _listen_backlog(port: int) -> int:
    """The backlog of the TCP listening socket on ``port`` (IPv4), as the kernel's socket
    diagnostics report it: ``inet_diag_msg.idiag_wqueue`` of a listening socket."""
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)  # NETLINK_SOCK_DIAG
    try:
        # inet_diag_req_v2: family, protocol, ext, pad, states (TCP_LISTEN = 10), then the socket id
        # (sport, dport, src, dst, interface, cookie) left zero: every listening TCP socket
        req = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 1 << 10) + bytes(48)
        header = struct.pack("=IHHII", 16 + len(req), 20, 0x1 | 0x300, 1, 0)  # SOCK_DIAG_BY_FAMILY, REQUEST|DUMP
        nl.sendall(header + req)
        while True:
            data = nl.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == 3:  # NLMSG_DONE
                    raise AssertionError(f"no listening socket on port {port}")
                if kind == 2:  # NLMSG_ERROR
                    raise AssertionError("sock_diag refused the request")
                msg = offset + 16
                sport = struct.unpack_from("!H", data, msg + 4)[0]
                if sport == port:
                    return int(struct.unpack_from("=I", data, msg + 4 + 48 + 8)[0])  # after expires, rqueue
                offset += (length + 3) & ~3
    finally:
        nl.close()


def _reference_accepted() -> tuple[int, int]:
    """The buffers of a connection accepted on a listener no option was set on, nothing sent:
    what the OS gives when kbroker is told -1."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=10) as _client:
            accepted, _ = server.accept()
            with accepted:
                return _buffers(accepted)


async def test_accepted_connections_get_the_configured_buffers_and_the_listener_its_backlog(tmp_path: Path) -> None:
    config = {"listeners": "PLAINTEXT://127.0.0.1:0", "socket.send.buffer.bytes": "50000",
              "socket.receive.buffer.bytes": "60000", "socket.listen.backlog.size": "7"}
    async with EmbeddedBroker(config, str(tmp_path / "data")) as embedded:
        (listener,) = embedded.broker.servers
        # the receive buffer was set on the listening socket itself (before bind)
        assert listener.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == _linux_reports(60000, "rmem_max")
        assert _listen_backlog(listener.port) == 7
        client, accepted = await _accepted_socket(embedded)
        try:
            assert _buffers(accepted) == (_linux_reports(50000, "wmem_max"), _linux_reports(60000, "rmem_max"))
            assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            client.close()


async def test_kafkas_defaults_are_applied(tmp_path: Path) -> None:
    async with EmbeddedBroker({"listeners": "PLAINTEXT://127.0.0.1:0"}, str(tmp_path / "data")) as embedded:
        (listener,) = embedded.broker.servers
        assert _listen_backlog(listener.port) == 50
        client, accepted = await _accepted_socket(embedded)
        try:
            assert _buffers(accepted) == (_linux_reports(102400, "wmem_max"), _linux_reports(102400, "rmem_max"))
        finally:
            client.close()


async def test_minus_one_leaves_the_buffers_to_the_os(tmp_path: Path) -> None:
    config = {"listeners": "PLAINTEXT://127.0.0.1:0", "socket.send.buffer.bytes": "-1",
              "socket.receive.buffer.bytes": "-1"}
    async with EmbeddedBroker(config, str(tmp_path / "data")) as embedded:
        client, accepted = await _accepted_socket(embedded)
        try:
            assert _buffers(accepted) == _reference_accepted()
            assert _buffers(accepted) != (_linux_reports(102400, "wmem_max"), _linux_reports(102400, "rmem_max"))
        finally:
            client.close()


@pytest.mark.parametrize("key", ["socket.send.buffer.bytes", "socket.receive.buffer.bytes",
                                 "replica.socket.receive.buffer.bytes"])
@pytest.mark.parametrize("value", ["0", "-2"])
def test_a_buffer_size_below_one_other_than_minus_one_stops_start_up(key: str, value: str) -> None:
    # Kafka's ConfigDef takes any INT here, but Java's setSendBufferSize/setReceiveBufferSize
    # throw on it when the socket is set up, so Kafka cannot serve with it; kbroker says so at start
    with pytest.raises(ConfigError, match=f"Invalid value {value} for configuration {key}"):
        BrokerConfig({key: value}, warn=False)
    with pytest.raises(ConfigError, match=f"configuration {key}: Not a number of type INT"):
        BrokerConfig({key: "lots"}, warn=False)


def test_the_backlog_is_at_least_one() -> None:
    with pytest.raises(ConfigError, match="Invalid value 0 for configuration socket.listen.backlog.size: "
                                          "Value must be at least 1"):
        BrokerConfig({"socket.listen.backlog.size": "0"}, warn=False)


def test_describe_configs_lists_them_read_only_with_kafkas_defaults() -> None:
    entries = {e.name: e for e in BrokerConfig({"socket.send.buffer.bytes": "-1"}, warn=False).describe_broker()}
    expected = {"socket.send.buffer.bytes": "-1", "socket.receive.buffer.bytes": "102400",
                "socket.listen.backlog.size": "50", "replica.socket.receive.buffer.bytes": "65536"}
    for name, value in expected.items():
        entry = entries[name]
        assert entry.value == value and entry.read_only, name
        # Kafka's ConfigSource: STATIC_BROKER_CONFIG (4) for the one set, DEFAULT_CONFIG (5) for the others
        assert entry.source == (4 if name == "socket.send.buffer.bytes" else 5), name


async def test_the_replica_fetcher_connects_with_its_receive_buffer() -> None:
    async with Cluster(2, config={"replica.socket.receive.buffer.bytes": "70000",
                                  "socket.receive.buffer.bytes": "90000"}) as cluster:
        cluster.create_topic("t", [[1, 2]])
        fetchers = cluster.nodes[2].broker.replica_manager.fetchers.fetchers
        await wait_for(lambda: any(f._conn is not None for f in fetchers.values()), message="the fetcher to connect")
        conn = next(f._conn for f in fetchers.values() if f._conn is not None)
        assert conn._writer is not None
        sock = conn._writer.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == _linux_reports(70000, "rmem_max")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


async def test_the_controller_listener_and_the_raft_client_use_the_broker_wide_keys(tmp_path: Path) -> None:
    """Two controllers: each one's listener (an Acceptor like any other in Kafka) and its Raft
    client (KafkaRaftManager: socket.receive.buffer.bytes, the OS's send buffer)."""
    ports = free_ports(2)
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports))
    cluster_id = random_uuid()
    nodes = []
    for i, port in enumerate(ports):
        config = {"process.roles": "controller", "node.id": str(i + 1), "controller.quorum.voters": voters,
                  "listeners": f"CONTROLLER://127.0.0.1:{port}", "controller.listener.names": "CONTROLLER",
                  "socket.send.buffer.bytes": "40000", "socket.receive.buffer.bytes": "80000",
                  "socket.listen.backlog.size": "9", "log.dirs": str(tmp_path / f"data{i}")}
        format_storage(BrokerConfig(config, warn=False), cluster_id, out=io.StringIO())
        nodes.append(EmbeddedBroker(config, str(tmp_path / f"data{i}")))
    try:
        await asyncio.gather(*(n.start() for n in nodes))
        raft = nodes[0].broker.raft
        assert _listen_backlog(ports[0]) == 9
        await wait_for(lambda: raft._inbound and any(p.writer is not None for p in raft._peers.values()),
                       message="the two voters to be connected both ways")
        inbound = next(iter(raft._inbound)).writer.get_extra_info("socket")
        assert _buffers(inbound) == (_linux_reports(40000, "wmem_max"), _linux_reports(80000, "rmem_max"))
        peer = next(p for p in raft._peers.values() if p.writer is not None)
        outbound = peer.writer.get_extra_info("socket")
        assert outbound.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == _linux_reports(80000, "rmem_max")
    finally:
        for n in nodes:
            await n.stop()


def test_they_are_not_dynamic(tmp_path: Path) -> None:
    """Kafka's SocketServer reconfigures only the connection limits (and num.network.threads);
    the socket keys are read at start-up, so IncrementalAlterConfigs refuses them, per broker and
    cluster-wide."""
    with BrokerThread({"listeners": "PLAINTEXT://127.0.0.1:0"}, data_dir=str(tmp_path / "data")) as b:
        raw = RawClient(b.bootstrap_servers)
        try:
            R = IncrementalAlterConfigsRequest.AlterConfigsResource
            for key in ("socket.send.buffer.bytes", "socket.receive.buffer.bytes", "socket.listen.backlog.size",
                        "replica.socket.receive.buffer.bytes"):
                for resource in (str(b.broker.node_id), ""):
                    request = IncrementalAlterConfigsRequest(validate_only=False, resources=[R(
                        resource_type=4, resource_name=resource,
                        configs=[R.AlterableConfig(name=key, config_operation=0, value="65536")])])
                    (result,) = raw.call(request, IncrementalAlterConfigsResponse, 1).responses
                    assert (result.error_code, result.error_message) == (
                        ErrorCode.INVALID_REQUEST, f"Cannot update these configs dynamically: [{key}]"), (key, resource)
        finally:
            raw.close()
