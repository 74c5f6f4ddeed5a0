"""Kafka's socket keys applied to sockets, as Kafka 4.4 applies them.

Server side (SocketServer's Acceptor and ServerSocketFactory): a listening socket gets
``socket.receive.buffer.bytes`` as its SO_RCVBUF *before* it binds, so the connections it accepts
inherit it from the start (the window scale a SYN-ACK offers is fixed by the receive buffer at that
moment; set later, a larger buffer could not be advertised), and listens with
``socket.listen.backlog.size``; each accepted connection gets TCP_NODELAY, SO_KEEPALIVE and
``socket.send.buffer.bytes`` as its SO_SNDBUF. A value of -1 (Kafka's
``Selectable.USE_DEFAULT_BUFFER_SIZE``) leaves a buffer to the operating system (Linux autotunes it).

Client side (the clients' Selector.configureSocketChannel): before it connects, a socket gets
SO_KEEPALIVE, the client's send and receive buffers unless -1, and TCP_NODELAY. The broker's
clients set only the receive buffer: the replica fetcher ``replica.socket.receive.buffer.bytes``
(BrokerBlockingSender), the Raft client, the transaction marker sender and the other
broker-to-broker clients ``socket.receive.buffer.bytes`` (KafkaRaftManager, NetworkUtils,
TransactionMarkerChannelManager).

Linux doubles the value set (for its bookkeeping) and reports the doubled value; it caps what it
grants at net.core.wmem_max / net.core.rmem_max, as it does for Kafka.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Any

from kbroker.config.values import USE_DEFAULT_BUFFER_SIZE

__all__ = ["USE_DEFAULT_BUFFER_SIZE", "configure_accepted", "connect_socket", "open_listening", "set_receive_buffer"]

AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """SO_RCVBUF ``size`` unless it is -1 (a listening socket: before it binds)."""
    if size != USE_DEFAULT_BUFFER_SIZE:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def open_listening(infos: Iterable[AddrInfo], port: int, receive_buffer: int, backlog: int) -> list[socket.socket]:
    """Listening, non-blocking sockets on the addresses ``infos`` (getaddrinfo's, passive) as
    Kafka's ServerSocketFactory opens one: SO_RCVBUF ``receive_buffer`` unless -1 *before* bind,
    then bind and listen with ``backlog``. Port 0 puts every address on the port the first one got.
    Raises OSError (none left open)."""
    sockets: list[socket.socket] = []
    try:
        for family, type_, proto, _name, address in dict.fromkeys(
            (i[0], i[1], i[2], i[3], i[4]) for i in infos
        ):
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            set_receive_buffer(sock, receive_buffer)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def configure_accepted(sock: socket.socket, send_buffer: int) -> None:
    """Kafka's Acceptor.configureAcceptedSocketChannel: TCP_NODELAY, SO_KEEPALIVE, and SO_SNDBUF
    ``send_buffer`` unless it is -1. Raises OSError (the connection is then closed)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if send_buffer != USE_DEFAULT_BUFFER_SIZE:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)


def _literal(host: str, port: int) -> list[AddrInfo]:
    """``host`` as getaddrinfo would give it when it is an IPv4 or IPv6 address literal, else []."""
    for family, address in ((socket.AF_INET, (host, port)), (socket.AF_INET6, (host, port, 0, 0))):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
    return []


async def connect_socket(host: str, port: int, *, receive_buffer: int = USE_DEFAULT_BUFFER_SIZE,
                         send_buffer: int = USE_DEFAULT_BUFFER_SIZE) -> socket.socket:
    """A connected, non-blocking TCP socket to ``host:port``, its options set before it connects as
    Kafka's Selector sets them (SO_KEEPALIVE, SO_SNDBUF and SO_RCVBUF unless -1, TCP_NODELAY). Each
    address ``host`` resolves to is tried in turn, as asyncio.open_connection does; the caller bounds
    the time. Raises OSError (the last address's) when none connects."""
    loop = asyncio.get_running_loop()
    # an address literal needs no resolver (asyncio.open_connection skips it too): no thread hop
    infos = _literal(host, port) or await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned an empty list")
    error: OSError | None = None
    for family, type_, proto, _name, address in infos:
        try:  # (a family the host cannot open, e.g. IPv6 disabled, moves on to the next address)
            sock = socket.socket(family, type_, proto)
        except OSError as exc:
            error = exc
            continue
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if send_buffer != USE_DEFAULT_BUFFER_SIZE:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
            set_receive_buffer(sock, receive_buffer)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    assert error is not None
    raise error
