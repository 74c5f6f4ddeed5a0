"""A client listener's socket with Kafka's acceptor rules (SocketServer's Acceptor).

The listener is given what it uses (:class:`ListenerWiring`): the broker-wide connection limits,
the per-address connection-creation quotas, the listener's TLS context, how a connection is made,
how the broker sheds connections over max.connections, and the socket keys (:class:`SocketSettings`:
the listening socket's receive buffer, set before it binds, and backlog; each accepted connection's
send buffer, kbroker.config.socket_options).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.config.socket_options import configure_accepted, open_listening
from kbroker.security.quotas import IpConnectionQuotas
from kbroker.server.connection import KafkaConnection
from kbroker.server.limits import ConnectionLimits

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig, Endpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SocketSettings:
    """Kafka's socket keys as its Acceptor reads them, broker-wide (Kafka has no per-listener
    override of them) and at start-up only (they are not dynamic)."""

    send_buffer: int  # socket.send.buffer.bytes: SO_SNDBUF of each accepted connection (-1: the OS's)
    receive_buffer: int  # socket.receive.buffer.bytes: SO_RCVBUF of the listening socket (-1: the OS's)
    backlog: int  # socket.listen.backlog.size

    @classmethod
    def of(cls, config: BrokerConfig) -> SocketSettings:
        return cls(config["socket.send.buffer.bytes"], config["socket.receive.buffer.bytes"],
                   config["socket.listen.backlog.size"])


@dataclass(frozen=True, slots=True)
class ListenerWiring:
    """What a listener uses of the broker."""

    limits: ConnectionLimits
    ip_quotas: IpConnectionQuotas
    ssl_context: ssl.SSLContext | None
    make_connection: Callable[[Endpoint, str], KafkaConnection]  # (endpoint, admitted address)
    close_excess_connections: Callable[[], None]
    sockets: SocketSettings


class Listener:
    """A listening socket with Kafka's acceptor rules: a connection over its address's
    max.connections.per.ip is closed at once; at max.connections (broker-wide or the listener's)
    the listener stops accepting (connections wait in the listen backlog) until one closes; a
    connection over max.connection.creation.rate is held for its throttle time, the listener
    accepting nothing else meanwhile, then served (kbroker/server/limits.py)."""

    ACCEPTS_PER_WAKEUP = 1024  # connections accepted in one go before the loop runs other work

    def __init__(self, endpoint: Endpoint, sockets: list[socket.socket], wiring: ListenerWiring) -> None:
        self.endpoint = endpoint
        self.sockets = sockets
        self._limits = wiring.limits
        self._ip_quotas = wiring.ip_quotas
        self._ssl_context = wiring.ssl_context
        self._make_connection = wiring.make_connection
        self._close_excess = wiring.close_excess_connections
        self._sockets = wiring.sockets
        self._loop = asyncio.get_running_loop()
        self._serving = False
        self._accepting = False
        self._closed = False
        self._starting: set[asyncio.Task[object]] = set()
        # a connection held for max.connection.creation.rate, and one whose delay is over but
        # waits for a slot under max.connections
        self._held: asyncio.TimerHandle | None = None
        self._held_conn: socket.socket | None = None
        self._waiting_slot: tuple[socket.socket, str] | None = None

    @classmethod
    async def bind(cls, endpoint: Endpoint, wiring: ListenerWiring) -> Listener:
        """The listener of ``endpoint``. A wildcard port (0) is opened now, so that the port the OS
        chose can be advertised; a configured port is opened only by :meth:`start_serving`, once the
        broker is ready (Kafka's Acceptor: "defer opening the socket until we start the Acceptor
        ... so that systems which assume that the socket being open indicates readiness are not
        confused"). Until then a client's connection is refused and it asks another broker, instead
        of waiting in the listen backlog of a broker that is still registering."""
        listener = cls(endpoint, [], wiring)
        if endpoint.port == 0:
            await listener._open()
        return listener

    @property
    def port(self) -> int:
        """The port: the one opened, else the configured one."""
        return int(self.sockets[0].getsockname()[1]) if self.sockets else self.endpoint.port

    async def _open(self) -> None:
        endpoint = self.endpoint
        host = endpoint.host or None
        infos = await self._loop.getaddrinfo(host, endpoint.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        # Kafka's ServerSocketFactory: the receive buffer before bind (accepted connections inherit
        # it, and the window scale of their SYN-ACK is chosen by it), then the backlog
        settings = self._sockets
        sockets = open_listening(infos, endpoint.port, settings.receive_buffer, settings.backlog)
        self.sockets = sockets

    async def start_serving(self) -> None:
        """Open the socket if :meth:`bind` did not (a configured port), then accept."""
        if not self.sockets and not self._closed:
            await self._open()
        self._serving = True
        self.resume_accepting()

    def resume_accepting(self) -> None:
        if (not self._serving or self._closed or self._accepting or self._held is not None
                or self._waiting_slot is not None or not self._limits.slot_available(self.endpoint.listener)):
            return
        self._accepting = True
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._on_acceptable, sock)

    def _pause_accepting(self) -> None:
        if self._accepting:
            self._accepting = False
            for sock in self.sockets:
                self._loop.remove_reader(sock.fileno())

    def _on_acceptable(self, sock: socket.socket) -> None:
        limits = self._limits
        listener = self.endpoint.listener
        for _ in range(self.ACCEPTS_PER_WAKEUP):
            if not limits.slot_available(listener):
                self._pause_accepting()
                return
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, ...: let the loop come back to it
                log.warning("cannot accept a connection on %s: %s", self.endpoint, exc)
                return
            peer = str(address[0]) if isinstance(address, tuple) else str(address)
            throttle_ms = limits.record_connection(listener)
            if throttle_ms > 0:
                # Kafka's waitForConnectionSlot: over max.connection.creation.rate (broker-wide or
                # the listener's) the acceptor holds this connection for the throttle time and
                # accepts nothing else on this listener meanwhile; then it is served
                log.debug("delaying connection from %s on %s for %d ms", peer, listener, throttle_ms)
                self._pause_accepting()
                self._held_conn = conn
                self._held = self._loop.call_later(throttle_ms / 1000, self._release_held, conn, peer)
                return
            self._admit(conn, peer)

    def _release_held(self, conn: socket.socket, peer: str) -> None:
        self._held = self._held_conn = None
        if self._closed:
            conn.close()
            return
        if not self._limits.slot_available(self.endpoint.listener):
            # the delay is over but the listener or broker is at its max.connections: the
            # connection waits for a slot as well (Kafka waits for both)
            self._waiting_slot = (conn, peer)
            return
        self._admit(conn, peer)
        self.resume_accepting()

    def slot_freed(self) -> None:
        """A connection closed or a limit changed: a connection held for a slot may go on."""
        waiting = self._waiting_slot
        if waiting is not None and self._limits.slot_available(self.endpoint.listener):
            self._waiting_slot = None
            self._admit(*waiting)
        if self._waiting_slot is None:
            self.resume_accepting()

    def _admit(self, conn: socket.socket, peer: str) -> None:
        """The address checks, in Kafka's order after the slot: its connection_creation_rate, then
        max.connections.per.ip; then the connection is served."""
        limits = self._limits
        listener = self.endpoint.listener
        ip_quotas = self._ip_quotas
        if ip_quotas.enabled and (throttle_ms := ip_quotas.record(peer)) > 0:
            # Kafka's ConnectionQuotas: over its connection_creation_rate, the connection is
            # closed after the throttle time, never served, and taken out of the creation rates
            limits.unrecord_connection(listener)
            log.debug("delaying closing of connection from %s for %d ms", peer, throttle_ms)
            self._loop.call_later(throttle_ms / 1000, conn.close)
            return
        if not limits.admit(peer, listener):
            conn.close()
            return
        if limits.total > limits.max_connections:  # only the protected listener gets here
            self._close_excess()
        conn.setblocking(False)
        task = self._loop.create_task(self._serve(conn, peer))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _serve(self, conn: socket.socket, peer: str) -> None:
        protocol = self._make_connection(self.endpoint, peer)
        try:
            # Kafka's configureAcceptedSocketChannel, once the connection is admitted: TCP_NODELAY,
            # SO_KEEPALIVE, the send buffer (an error closes it, its slot released)
            configure_accepted(conn, self._sockets.send_buffer)
            await self._loop.connect_accepted_socket(lambda: protocol, conn, ssl=self._ssl_context)
        except BaseException as exc:
            conn.close()
            protocol.release_all()  # once, whether or not the transport got to connection_lost
            if not isinstance(exc, OSError):
                raise
            log.info("cannot serve a connection from %s: %s", peer, exc)

    def close(self) -> None:
        if self._closed:
            return
        self._pause_accepting()
        self._closed = True
        if self._held is not None:
            self._held.cancel()
            self._held = None
        if self._held_conn is not None:
            self._held_conn.close()
            self._held_conn = None
        if self._waiting_slot is not None:
            self._waiting_slot[0].close()
            self._waiting_slot = None
        for task in self._starting:
            task.cancel()
        for sock in self.sockets:
            sock.close()

    async def wait_closed(self) -> None:
        if self._starting:
            await asyncio.gather(*self._starting, return_exceptions=True)
