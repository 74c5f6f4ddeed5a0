"""Outgoing connections' socket options (kbroker.config.socket_options.connect_socket and the
security Connector): every address is tried, and SO_KEEPALIVE / TCP_NODELAY are set whatever the
receive buffer, as Kafka's Selector.configureSocketChannel sets them."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from kbroker.config import socket_options
from kbroker.config.socket_options import USE_DEFAULT_BUFFER_SIZE, connect_socket
from kbroker.security.client import ClientSecurity, Connector


class _SocketModule:
    """The socket module as socket_options sees it, with ``socket()`` replaced (the real module stays
    untouched for everything else in the process)."""

    def __init__(self, opener) -> None:  # type: ignore[no-untyped-def]
        self.socket = opener

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(socket, name)


async def _server() -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_an_address_family_the_host_cannot_open_moves_on_to_the_next_address(monkeypatch) -> None:
    real = socket.socket

    def no_ipv6(family: int = socket.AF_INET, *args, **kwargs):  # type: ignore[no-untyped-def]
        if family == socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return real(family, *args, **kwargs)

    async def run() -> tuple[int, str]:
        server, port = await _server()
        v6 = (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("::1", port, 0, 0))
        v4 = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))
        monkeypatch.setattr(socket_options, "_literal", lambda host, p: [v6, v4])
        monkeypatch.setattr(socket_options, "socket", _SocketModule(no_ipv6))
        try:
            sock = await connect_socket("localhost", port)
            try:
                return sock.family, sock.getpeername()[0]
            finally:
                sock.close()
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(run()) == (socket.AF_INET, "127.0.0.1")


def test_no_address_opening_raises_the_last_error(monkeypatch) -> None:
    def nothing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")

    info = (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("::1", 9, 0, 0))
    monkeypatch.setattr(socket_options, "_literal", lambda host, p: [info])
    monkeypatch.setattr(socket_options, "socket", _SocketModule(nothing))
    with pytest.raises(OSError) as raised:
        asyncio.run(connect_socket("localhost", 9))
    assert raised.value.errno == errno.EAFNOSUPPORT


@pytest.mark.parametrize("receive_buffer", [USE_DEFAULT_BUFFER_SIZE, 65536])
def test_the_connector_sets_keepalive_and_nodelay_whatever_the_receive_buffer(receive_buffer: int) -> None:
    async def run() -> tuple[int, int]:
        server, port = await _server()
        connector = Connector(ClientSecurity(listener="PLAINTEXT"), "test-client", receive_buffer)
        try:
            _reader, writer = await connector("127.0.0.1", port)
            try:
                sock = writer.get_extra_info("socket")
                return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            finally:
                writer.close()
        finally:
            server.close()
            await server.wait_closed()

    keepalive, nodelay = asyncio.run(run())
    assert keepalive != 0 and nodelay != 0
