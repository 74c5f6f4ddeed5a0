"""The node-to-controller channel (Kafka's ``NodeToControllerChannelManager``).

A broker sends the active controller its forwarded admin requests (Envelope), its producer-id block
requests (AllocateProducerIds), its registration and heartbeats, and AlterPartition. The channel
finds the active controller with a callable (the node id the broker currently knows, or None), looks
its address up in the controller endpoints (``controller.quorum.voters`` / the metadata's controller
registrations) and talks Kafka's framing to it: size-prefixed RequestHeader + body, ApiVersions
first on every new connection so that each request goes at the highest version both ends speak.

``await channel.send(api_key, request)`` returns the response body. Until the request's deadline
(``request_timeout_ms``, Kafka's ``request.timeout.ms``, 30 s by default) it retries, as Kafka's
``NodeToControllerRequestThread`` does, after a short backoff and with the active controller
resolved again:

- when no controller is known, or its address is not;
- when the connection cannot be opened, breaks, or a response does not come in time (the
  connection is then closed: a late answer cannot be matched to a newer request);
- when the response's top-level error is NOT_CONTROLLER (the node is no longer, or not yet, the
  active controller; the connection is closed, as Kafka does, so the next attempt reconnects).

Each attempt is bounded as Kafka's channel bounds it (NodeToControllerChannelManagerImpl's
NetworkClient): connecting (TCP, TLS, SASL) by the connection setup timeout
(``socket.connection.setup.timeout.ms``, growing with jitter over consecutive failed attempts to
``socket.connection.setup.timeout.max.ms``, reset once connected: Kafka's ClusterConnectionStates,
kbroker.config.connection_backoff), the response by ``controller.socket.timeout.ms`` (never beyond
the request's deadline); the connection is then closed and the request retried. The socket gets
SO_KEEPALIVE and TCP_NODELAY before it connects, as Kafka's Selector sets them
(kbroker.config.socket_options.connect_socket); the reconnect backoff is Kafka's fixed 50 ms.

After the deadline it raises :class:`~kbroker.metadata.client.ControllerUnavailable`. If the
controller does not serve the API at any version this node can send,
:class:`ControllerVersionMismatch` is raised at once (Kafka's ``versionMismatch``).

One request is in flight at a time (Kafka's channel has one in flight per connection too); a user
that must not queue behind another (heartbeats behind a slow CreateTopics) uses its own channel.

**Retries and idempotence.** A request whose response is lost (the connection broke after the
controller applied it) is sent again; nothing here deduplicates it. As in Kafka, each operation is
safe to repeat because the controller decides on its current state:

- CreateTopics: the repeat answers TOPIC_ALREADY_EXISTS (the topic exists once);
- DeleteTopics: the repeat answers UNKNOWN_TOPIC_OR_PARTITION / UNKNOWN_TOPIC_ID;
- CreatePartitions: the count is absolute, the repeat answers INVALID_PARTITIONS ("Topic already has
  N partition(s).") and adds nothing;
- AlterConfigs replaces the overrides with the same set; IncrementalAlterConfigs SET/DELETE write
  the same value, APPEND adds only missing items and SUBTRACT removes absent ones: the same state;
- UpdateFeatures sets absolute levels: the same levels again;
- ElectLeaders: the repeat answers ELECTION_NOT_NEEDED for the partitions already elected;
- AllocateProducerIds is not idempotent: the repeat reserves a second block and the first is never
  used, so ids are wasted but never handed out twice (as in Kafka);
- BrokerRegistration with the same incarnation id and BrokerHeartbeat are idempotent in Kafka's
  controller (their owners document them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kbroker.config.connection_backoff import ConnectionBackoff
from kbroker.config.socket_options import connect_socket
from kbroker.metadata.client import ControllerUnavailable
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.messages.api_versions import ApiVersionsRequest

log = logging.getLogger(__name__)

API_VERSIONS = 18
API_VERSIONS_VERSION = 3  # flexible, served by Kafka 2.4+ and kbroker
MAX_RESPONSE_BYTES = 100 * 1024 * 1024
_SIZE = struct.Struct(">i")


class ControllerVersionMismatch(Exception):
    """The controller serves no version of an API that this node can send."""

    def __init__(self, api_key: int, node_id: int) -> None:
        super().__init__(f"controller {node_id} serves no version of api {api_key} that this node can send")
        self.api_key = api_key
        self.node_id = node_id


def channel_timeouts(config: Any) -> dict[str, int]:
    """The keyword arguments of :class:`ControllerChannel` that a node's configuration (a
    BrokerConfig) sets: controller.socket.timeout.ms and the connection setup timeouts."""
    return {"socket_timeout_ms": config["controller.socket.timeout.ms"],
            "setup_timeout_ms": config["socket.connection.setup.timeout.ms"],
            "setup_timeout_max_ms": config["socket.connection.setup.timeout.max.ms"]}


async def open_plaintext(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain TCP connection, SO_KEEPALIVE and TCP_NODELAY set before it connects (Kafka's
    Selector.configureSocketChannel; the OS's buffers, as Kafka's channel leaves them)."""
    sock = await connect_socket(host, port)
    try:
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


class _Retry(Exception):
    """One attempt failed in a way the next attempt may not (logged, then retried)."""


class _Connection:
    def __init__(self, node_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.node_id = node_id
        self.reader = reader
        self.writer = writer
        self.versions: dict[int, tuple[int, int]] = {}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class ControllerChannel:
    """Requests to the active controller, retried until their deadline (see the module docstring).

    ``active_controller()`` returns the node id of the active controller as this node knows it
    (None when unknown); ``controllers`` maps controller node ids to (host, port) of their
    controller listener (a mapping read at each attempt, or a callable returning one)."""

    def __init__(
        self,
        active_controller: Callable[[], int | None],
        controllers: Mapping[int, tuple[str, int]] | Callable[[], Mapping[int, tuple[str, int]]],
        *,
        client_id: str = "kbroker",
        request_timeout_ms: int = 30_000,
        retry_backoff_ms: int = 50,
        socket_timeout_ms: int = 30_000,
        setup_timeout_ms: int = 10_000,
        setup_timeout_max_ms: int = 30_000,
        open_connection: Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
        | None = None,
    ) -> None:
        self.active_controller = active_controller
        self._controllers = controllers
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.retry_backoff_ms = retry_backoff_ms
        # controller.socket.timeout.ms: how long one attempt waits for its response
        self.socket_timeout_ms = socket_timeout_ms
        # the connection setup timeout of the next attempt to each controller (and the failed attempts
        # behind it), by node id, as Kafka's ClusterConnectionStates keeps them per node
        self._backoff_args = (setup_timeout_ms, setup_timeout_max_ms, retry_backoff_ms, retry_backoff_ms)
        self._backoffs: dict[int, ConnectionBackoff] = {}
        # the controller listener's security (kbroker.security.internode): TLS, SASL; plain TCP by default
        self._open = open_connection or open_plaintext
        # An opener of kbroker.security.client (a Connector) also re-authenticates the SASL sessions of
        # its connections (KIP-368): before each request, as Kafka's client does (one request at a time here).
        self._reauthenticate: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] | None = \
            getattr(open_connection, "reauthenticate_if_due", None)
        self._connection: _Connection | None = None
        self._lock = asyncio.Lock()
        self._correlation = itertools.count(1)
        self._closed = False

    def controllers(self) -> Mapping[int, tuple[str, int]]:
        return self._controllers() if callable(self._controllers) else self._controllers

    async def send(self, api_key: int, request: Any, *, timeout_ms: int | None = None) -> Any:
        """Send ``request`` to the active controller and return its response body (see the module
        docstring for retries); raises ControllerUnavailable after ``timeout_ms`` (default
        ``request_timeout_ms``)."""
        deadline = time.monotonic() + (self.request_timeout_ms if timeout_ms is None else timeout_ms) / 1000
        async with self._lock:
            last = "no attempt made"
            while True:
                if self._closed:
                    raise ControllerUnavailable("the controller channel is closed")
                try:
                    return await self._attempt(api_key, request, deadline)
                except _Retry as exc:
                    last = str(exc)
                    log.debug("request api %d to the controller: %s; retrying", api_key, last)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ControllerUnavailable(f"no answer from the active controller to api {api_key} "
                                                f"in time (last: {last})")
                await asyncio.sleep(min(self.retry_backoff_ms / 1000, remaining))

    async def close(self) -> None:
        self._closed = True
        self._disconnect()

    def connection_backoff(self, node_id: int) -> ConnectionBackoff:
        """The connection state of controller ``node_id`` (its setup timeout grows over consecutive
        failed attempts to it, not to another controller)."""
        backoff = self._backoffs.get(node_id)
        if backoff is None:
            backoff = self._backoffs[node_id] = ConnectionBackoff(*self._backoff_args)
        return backoff

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self.connection_backoff(self._connection.node_id).disconnected()
            self._connection = None

    async def _attempt(self, api_key: int, request: Any, deadline: float) -> Any:
        node_id = self.active_controller()
        if node_id is None:
            raise _Retry("no active controller known")
        address = self.controllers().get(node_id)
        if address is None:
            raise _Retry(f"no address known for controller {node_id}")
        conn = self._connection
        if conn is not None and (conn.node_id != node_id or conn.writer.transport.is_closing()):
            # another controller, or a connection that broke while idle (a reset closes the
            # transport at once): the request goes on a new one, as Kafka's NetworkClient, having
            # seen the disconnect, connects again
            self._disconnect()
            conn = None
        try:
            if conn is None:
                conn = await self._connect(node_id, address, deadline)
            version = self._version(conn, api_key)
            # Kafka's request timeout: min(controller.socket.timeout.ms, the channel's retry timeout)
            attempt_deadline = min(deadline, time.monotonic() + self.socket_timeout_ms / 1000)
            response = await self._roundtrip(conn, api_key, version, request, attempt_deadline)
        except asyncio.CancelledError:
            self._disconnect()  # a response may be half read: the next request starts afresh
            raise
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ProtocolError) as exc:
            self._disconnect()
            raise _Retry(f"controller {node_id} at {address[0]}:{address[1]}: {type(exc).__name__} {exc}") from None
        if getattr(response, "error_code", ErrorCode.NONE) == ErrorCode.NOT_CONTROLLER:
            self._disconnect()
            raise _Retry(f"node {node_id} is not the active controller")
        return response

    async def _connect(self, node_id: int, address: tuple[str, int], deadline: float) -> _Connection:
        remaining = max(0.0, deadline - time.monotonic())
        backoff = self.connection_backoff(node_id)
        setup_s = backoff.setup_timeout_ms / 1000
        try:
            reader, writer = await asyncio.wait_for(self._open(*address), min(setup_s, remaining))
        except BaseException as exc:
            # an attempt cut short by the request's own deadline, or cancelled, is no failed setup
            cut_short = isinstance(exc, asyncio.CancelledError) or (isinstance(exc, TimeoutError)
                                                                    and setup_s > remaining)
            if not cut_short:
                backoff.connect_failed()
            if isinstance(exc, TimeoutError) and not cut_short:
                log.info("disconnecting from controller %d at %s:%d: socket connection setup timeout "
                         "(%d ms)", node_id, address[0], address[1], int(setup_s * 1000))
            raise
        backoff.connected()
        conn = _Connection(node_id, reader, writer)
        self._connection = conn
        request = ApiVersionsRequest(client_software_name="kbroker", client_software_version="1")
        attempt_deadline = min(deadline, time.monotonic() + self.socket_timeout_ms / 1000)
        response = await self._roundtrip(conn, API_VERSIONS, API_VERSIONS_VERSION, request, attempt_deadline)
        if response.error_code != ErrorCode.NONE:
            raise ConnectionError(f"ApiVersions answered {ErrorCode(response.error_code).name}")
        conn.versions = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        return conn

    def _version(self, conn: _Connection, api_key: int) -> int:
        cls = REQUESTS[api_key]
        theirs = conn.versions.get(api_key)
        if theirs is None or theirs[0] > cls.MAX_VERSION or theirs[1] < cls.MIN_VERSION:
            raise ControllerVersionMismatch(api_key, conn.node_id)
        return min(theirs[1], cls.MAX_VERSION)

    async def _roundtrip(self, conn: _Connection, api_key: int, version: int, request: Any, deadline: float) -> Any:
        correlation_id = next(self._correlation)
        header = RequestHeader(request_api_key=api_key, request_api_version=version, correlation_id=correlation_id,
                               client_id=self.client_id)
        payload = encode_request(header, request)
        if self._reauthenticate is not None:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await self._reauthenticate(conn.reader, conn.writer)
        if conn.writer.transport.is_closing():
            # the connection broke (a reset) and nothing has read since: a disconnect, retried on a
            # new connection (uvloop raises RuntimeError on a write to it, which no caller expects)
            raise ConnectionResetError(f"the connection to controller {conn.node_id} is closed")
        conn.writer.write(_SIZE.pack(len(payload)) + payload)
        remaining = max(0.0, deadline - time.monotonic())
        async with asyncio.timeout(remaining):
            await conn.writer.drain()
            (size,) = _SIZE.unpack(await conn.reader.readexactly(4))
            if size < 0 or size > MAX_RESPONSE_BYTES:
                raise ConnectionError(f"response of {size} bytes")
            frame = await conn.reader.readexactly(size)
        response_header, body = decode_response(frame, api_key, version)
        if response_header.correlation_id != correlation_id:
            raise ConnectionError(f"response for correlation id {response_header.correlation_id}, "
                                  f"expected {correlation_id}")
        return body
