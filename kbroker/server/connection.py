"""One client connection: framing, dispatch, in-order responses, backpressure, zero-copy writes.

Clients pipeline requests. Every request takes a slot in ``_pending`` in arrival order; handlers
may finish out of order (a long-polling Fetch behind a Metadata request), but responses leave
strictly in request order. A Produce with acks=0 takes a slot that is dropped without output.

Backpressure: when the transport's write buffer passes its high-water mark, or too many requests
are in flight, the connection stops reading from the socket until both drain; the broker-wide
bounds and client-quota throttling also stop it (:class:`~kbroker.server.flow.FlowControl`).

Fetch responses carry :class:`~kbroker.log.FileSlice` parts (one or more per partition); they
go from the segment file to the socket with ``os.sendfile`` when nothing else is queued on the
transport. When the socket is full part-way through a response, the rest of it (bytes and every
later partition's file regions) waits in order and goes out as the socket drains: file regions
still with sendfile, bytes through the transport. Small regions, and regions behind bytes still
queued on the transport, are written from a positional read.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from kbroker.api.context import RequestContext
from kbroker.api.error_response import builder_for, error_response
from kbroker.api.registry import HANDLERS, LATEST_VERSION_UNSTABLE, Handler
from kbroker.security.quotas import principal_user
from kbroker.security.sasl import SaslAuthenticator
from kbroker.security.tls import PrincipalMapper, certificate_principal
from kbroker.server.flow import FlowControl
from kbroker.server.slots import RequestMetrics
from kbroker.server.slots import Slot as _Slot
from kbroker.server.slots import SyntheticHeader as _SyntheticHeader
from kbroker.server.slots import timed as _timed
from kbroker.server.writer import ResponseWriter
from kbroker_protocol.api import decode_request, encode_response, unsupported_request
from kbroker_protocol.exceptions import ProtocolError, UnsupportedVersionError
from kbroker_protocol.framing import Frame, FrameDecoder
from kbroker_protocol.message import Message

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig, Endpoint
    from kbroker.security.listeners import ListenerSecurity
    from kbroker.security.quotas import ClientQuotas
    from kbroker.security.scram import ScramCredentials
    from kbroker.server.limits import ConnectionLimits
    from kbroker_protocol.messages import RequestHeader
    from kbroker_protocol.primitives import Message

__all__ = ["KafkaConnection", "RequestHooks", "RequestMetrics", "ServerHost"]

log = logging.getLogger(__name__)

_KEY_VERSION = struct.Struct(">hh")
_NO_RESPONSE = object()
_PRODUCE = 0  # api key
_clock = time.monotonic  # the request metrics' clock (a module global: one lookup per reading)


class RequestHooks(Protocol):
    """The test controls' hooks around dispatch (``kbroker.control.plane.ControlPlane``)."""

    def intercept(self, ctx: RequestContext[object], body: Message, handler: Handler, size: int) -> Handler | None: ...

    def refused(self, connection: KafkaConnection, api_key: int, api_version: int, correlation_id: int | None,
                client_id: str | None, reason: str) -> None: ...


class ServerHost(Protocol):
    """The broker as the server uses it (``kbroker.broker.Broker``): its configuration, the
    connection set, the broker-wide limits, the listeners' security and the client quotas, and the
    dispatch hooks. Each request's context offers it to the handler, which is typed on the part
    it uses (``kbroker.api.context.RequestContext``; the composition root checks that the broker
    provides each handler's services, ``kbroker.wiring.handler_services``)."""

    config: BrokerConfig
    connections: set[KafkaConnection]
    limits: ConnectionLimits
    request_hooks: RequestHooks | None
    request_metrics: RequestMetrics | None
    listener_security: dict[str, ListenerSecurity]
    client_quotas: ClientQuotas
    scram_credentials: ScramCredentials
    # called with each connection that closes (Kafka's ConnectionDisconnectListener)
    connection_listeners: list[Callable[[KafkaConnection], None]]


class KafkaConnection(ResponseWriter, FlowControl, asyncio.Protocol):
    def __init__(self, broker: ServerHost, endpoint: Endpoint, admitted: str | None = None) -> None:
        self.broker = broker
        self.endpoint = endpoint
        self.limits = broker.limits
        self._admitted = admitted  # the address counted in the connection quotas, released on close
        self._held = 0  # request bytes counted in the broker's budget for this connection
        self._request_bytes = 0  # of which: requests received and not yet answered
        self._reserved = 0  # and: the size of the frame being received, once it has room
        self.frame_started = 0.0  # when the first byte of the partly received frame came in
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder(broker.config["socket.request.max.bytes"])
        self._pending: deque[_Slot] = deque()
        self._in_flight = 0
        self._write_paused = False
        self._read_paused = False
        self._burst = 0  # bytes read since the connection last let the loop go round (READ_BURST_BYTES)
        self._yielding = False
        self._closed = False
        self._stalled: deque[Any] | None = None  # the rest of a response waiting for the socket
        self._watch_fd = -1
        self._batching = False
        self._eof = False
        self._sock_fd = -1
        self.peer = "?"
        self.last_active = time.monotonic()
        self.tasks: set[asyncio.Task[object]] = set()
        self.client_software: tuple[str, str] | None = None
        self._metrics: RequestMetrics | None = broker.request_metrics
        self._received = 0.0  # while metrics are on: when the bytes being handled came in
        # Security (kbroker/security): the listener's settings, the authenticated principal, and on
        # SASL listeners the authenticator every request passes until authentication completes.
        self.security = broker.listener_security.get(endpoint.listener)
        self.principal = "User:ANONYMOUS"
        self.tls = False
        self.authenticator: SaslAuthenticator | None = None
        self._hold_output = False  # a failed authentication's answer waits for the failure delay
        # Client quotas (kbroker/security/quotas.py): checked per request only while some are set;
        # a throttled connection is not read until its throttle time has passed (KIP-219).
        self._quotas: ClientQuotas | None = broker.client_quotas
        self._throttled: asyncio.TimerHandle | None = None
        self._throttled_until = 0.0
        self.quota_exempt = False  # a follower's connection (replica fetches): no request quota
        if self.security is not None and self.security.sasl:
            self.authenticator = SaslAuthenticator(self, self.security, broker.scram_credentials, _error_response)
            self.decoder.max_frame_size = self.security.max_receive_size

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass but has the same interface.
        tcp = cast(asyncio.Transport, transport)
        self.transport = tcp
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            self._sock_fd = sock.fileno()
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            # TLS: bytes must go through the TLS transport, so fetches copy instead of sendfile
            # (the raw socket's descriptor would carry plaintext into the TLS stream).
            self.tls = True
            self._sock_fd = -1
            if self.security is not None and self.security.principal_mapper is not None:
                self._ssl_principal(ssl_object, self.security.principal_mapper)
        tcp.set_write_buffer_limits(high=4 * 1024 * 1024)
        self.broker.connections.add(self)

    def _ssl_principal(self, ssl_object: ssl.SSLObject, mapper: PrincipalMapper) -> None:
        """SSL listener: the client certificate's subject DN through ssl.principal.mapping.rules."""
        try:
            principal = certificate_principal(ssl_object, mapper)
            if principal is not None:  # (no client certificate: ANONYMOUS)
                self.principal = principal
        except LookupError as exc:
            log.info("closing connection from %s: %s", self.peer, exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._eof:
            self._log_unanswered("lost")
        self._closed = True
        self._unwatch()
        self._stalled = None
        self.broker.connections.discard(self)
        for task in list(self.tasks):
            task.cancel()
        self._pending.clear()
        self.release_all()
        for listener in self.broker.connection_listeners:
            listener(self)  # e.g. share sessions of this connection end (Kafka's ConnectionDisconnectListener)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        now = time.monotonic()
        if self._metrics is not None:
            self._received = now  # (the metrics' clock: _clock)
        self.last_active = now
        partial = self.decoder.buffered
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as exc:
            log.info("closing connection from %s: %s", self.peer, exc)
            self.close()
            return
        if frames:
            self._reserved = 0  # the frame it was for is complete: its slot holds its bytes now
        if (frames or not partial) and self.decoder.buffered:
            self.frame_started = now
        # Requests answered while handling this chunk are written together, in one writev,
        # after the loop (clients pipeline several requests per connection).
        self._batching = True
        try:
            for frame in frames:
                if self._closed:
                    return
                self._handle_frame(frame)
        finally:
            self._batching = False
        self._account()
        self._flush()
        self._count_read(len(data))
        self._update_reading()

    def eof_received(self) -> bool | None:
        # Half-close from the client: answer what is in flight, then close.
        self._eof = True
        if not self._pending:
            return None
        self._log_unanswered("closed by the client")
        return True

    def _log_unanswered(self, how: str) -> None:
        """A connection that ends with produce requests unanswered: their batches may be in the log
        (or still be written), and the client cannot know. A fault run's node log shows it
        (librdkafka closes a connection whose request timed out)."""
        unanswered = [slot.header for slot in self._pending
                      if slot.header is not None and slot.header.request_api_key == _PRODUCE]
        if unanswered:
            log.info("connection from %s (client %s) %s with %d produce requests unanswered (correlation ids %s)",
                     self.peer, unanswered[0].client_id, how, len(unanswered),
                     [h.correlation_id for h in unanswered[:10]])

    # -- requests -----------------------------------------------------------------------------

    def _handle_frame(self, frame: Frame) -> None:
        auth = self.authenticator
        if auth is not None:
            if auth.state == "failed":
                return
            if auth.raw_tokens:  # after a v0 SaslHandshake: raw SASL tokens
                auth.on_raw_token(frame)
                return
        try:
            if len(frame) >= 8:
                api_key, api_version = _KEY_VERSION.unpack_from(frame, 0)
                if api_key == 18 and api_version > HANDLERS[18].enabled_max(
                    self.broker.config["unstable.api.versions.enable"]
                ):
                    # An ApiVersions newer than we serve is answered as Kafka does even when the codec
                    # could decode it; its body is not parsed (it may hold fields we do not serve).
                    raise unsupported_request(frame)
            header, body = decode_request(frame)
        except UnsupportedVersionError as exc:
            self._unsupported(exc)
            return
        except ProtocolError as exc:
            log.info("closing connection from %s: malformed request: %s", self.peer, exc)
            self.close()
            return
        entry = HANDLERS.get(header.request_api_key)
        version = header.request_api_version
        if entry is None or not entry.min_version <= version <= entry.max_version or (
            entry.api_key in LATEST_VERSION_UNSTABLE
            and not entry.enabled(version, self.broker.config["unstable.api.versions.enable"])
        ):
            # Kafka closes the connection on an API or version it does not serve.
            if self.broker.request_hooks is not None:
                self.broker.request_hooks.refused(self, header.request_api_key, header.request_api_version,
                                                  header.correlation_id, header.client_id, "connection closed")
            log.info(
                "closing connection from %s: unsupported api %s version %s",
                self.peer, header.request_api_key, header.request_api_version,
            )
            self.close()
            return
        if auth is not None and auth.wants(header.request_api_key):
            if not self._closed:
                auth.on_request(header, body)
            return
        slot = _Slot(header, len(frame) + 4)
        quotas = self._quotas
        # handler time is measured for the metrics and for request_percentage quotas
        metrics = self._metrics is not None or (quotas is not None and quotas.request.enabled)
        if metrics:
            slot.received = self._received
            slot.started = _clock()
        self._pending.append(slot)
        self._in_flight += 1
        self._request_bytes += slot.size
        self.limits.request_started()
        ctx = RequestContext(self.broker, self, header)
        handler = entry.handler
        hooks = self.broker.request_hooks  # faults, pause, trace (kbroker.control): None unless set
        if hooks is not None and (handler := hooks.intercept(ctx, body, handler, len(frame))) is None:  # type: ignore[assignment]
            return
        try:
            result: object = handler(ctx, body)
        except Exception as exc:
            self._handler_failed(slot, body, exc)
            return
        # (a response message or None, the common case, skips isawaitable's ABC check)
        if not isinstance(result, Message) and result is not None and inspect.isawaitable(result):
            if metrics:  # its call, then each step of its task (the step timer), is its local time
                slot.busy = _clock() - slot.started
                result = _timed(result, slot)
            task = asyncio.ensure_future(self._answer_after(result, slot, body))
            self.tasks.add(task)
            task.add_done_callback(functools.partial(self._task_done, slot=slot, body=body))
        else:
            # Answered in the call: its handling up to the encoded response (slot.ready) is all
            # local time, no clock reading for the call's end (slot.busy stays negative).
            self._complete(slot, result)

    async def _answer_after(self, awaitable: Awaitable[object], slot: _Slot, body: Message) -> None:
        """Await a handler's answer and queue it in the same step, not from the task's done
        callback, which the loop runs an iteration later: a long poll woken by an append is
        written in the step that read the records, ahead of the I/O the loop polls meanwhile."""
        try:
            response = await awaitable
        except Exception as exc:
            if not self._closed:
                self._handler_failed(slot, body, exc)
            return
        if not self._closed:
            self._complete(slot, response)

    def _task_done(self, task: asyncio.Task[object], slot: _Slot, body: Message) -> None:
        self.tasks.discard(task)
        if task.cancelled() or self._closed:
            return
        exc = task.exception()
        if exc is not None:  # KeyboardInterrupt, SystemExit ... (a handler's Exception is answered)
            log.error("handler for api %s v%s failed", slot.header.request_api_key,
                      slot.header.request_api_version, exc_info=exc)
            self.close()

    def _handler_failed(self, slot: _Slot, body: Message, exc: Exception) -> None:
        """Answer a request whose handler raised, as Kafka does: with the request type's error
        response (UNKNOWN_SERVER_ERROR wherever the response has an error code), in the request's
        place in the response order. Without such a response (a Produce with acks=0), or when it
        cannot be built, the connection is closed. A protocol error (bytes inside the request
        that do not decode) is not a handler failure: the connection is closed, as for a request
        that does not decode at all."""
        header = slot.header
        api_key, api_version = header.request_api_key, header.request_api_version
        if isinstance(exc, ProtocolError):
            log.info("closing connection from %s: malformed api %s v%s request: %s",
                     self.peer, api_key, api_version, exc)
            self.close()
            return
        log.error("handler for api %s v%s from %s failed", api_key, api_version, self.peer, exc_info=exc)
        if self._metrics is not None:
            self._metrics.handler_failed(api_key)
        if self._closed:
            return
        try:
            response = error_response(api_key, api_version, body, exc)
        except Exception:
            log.exception("cannot build the error response to api %s v%s; closing connection from %s",
                          api_key, api_version, self.peer)
            self.close()
            return
        if response is None:
            log.info("closing connection from %s: api %s v%s failed and has no response",
                     self.peer, api_key, api_version)
            self.close()
            return
        self._complete(slot, response)

    def _complete(self, slot: _Slot, response: Any) -> None:
        if self._closed:
            return
        header = slot.header
        quotas = self._quotas
        # Not counted: what is answered before authentication completes (Kafka's
        # SaslServerAuthenticator answers ApiVersions and the SASL requests before KafkaApis), and
        # synthetic answers (a slot of size 0)
        if quotas is not None and quotas.active and slot.size and (
                self.authenticator is None or self.authenticator.state == "complete"):
            busy = slot.busy
            if busy < 0.0:  # answered in the handler's call: its time up to now, for a request quota
                busy = _clock() - slot.started if slot.started and quotas.request.enabled else 0.0
            throttle = quotas.response_throttle(
                header.request_api_key, principal_user(self.principal), header.client_id or "", slot.size - 4,
                busy, response, self.quota_exempt)
            if throttle > 0:
                self.throttle(throttle)
        if response is None:
            slot.parts = []  # acks=0 produce: nothing goes back
        else:
            try:
                slot.parts = encode_response(
                    header.correlation_id, header.request_api_key, header.request_api_version, response
                )
            except Exception:
                log.exception("cannot encode response to api %s v%s", header.request_api_key,
                              header.request_api_version)
                self.close()
                return
        slot.done = True
        if slot.started:
            slot.ready = _clock()
        self._in_flight -= 1
        self._request_bytes -= slot.size
        self.limits.request_finished()
        if not self._batching:
            self._account()
            self._flush()
            self._update_reading()

    def _unsupported(self, exc: UnsupportedVersionError) -> None:
        if self.broker.request_hooks is not None:  # the trace records what a client was refused
            header = getattr(exc, "header", None)
            self.broker.request_hooks.refused(self, exc.api_key, exc.api_version,
                                              getattr(exc, "correlation_id", None),
                                              getattr(header, "client_id", None), str(exc))
        correlation_id = exc.correlation_id
        if exc.api_key == 18 and correlation_id is not None:
            # An ApiVersions version we do not know: answer with a v0 body carrying
            # UNSUPPORTED_VERSION and our ApiVersions range, as Kafka does.
            from kbroker.api.api_versions import unsupported_version_response

            header = _SyntheticHeader(18, 0, correlation_id)
            slot = _Slot(header)
            self._pending.append(slot)
            self._in_flight += 1
            self.limits.request_started()
            self._complete(slot, unsupported_version_response())
            return
        log.info("closing connection from %s: %s", self.peer, exc)
        self.close()

    # -- authentication (kbroker.security.sasl) -------------------------------------------------

    def send_response(self, header: RequestHeader, response: Message) -> None:
        """Answer a request the authenticator took, in its place in the response order."""
        slot = _Slot(header)
        self._pending.append(slot)
        self._in_flight += 1
        self.limits.request_started()
        self._complete(slot, response)

    def send_raw(self, payload: bytes) -> None:
        """A raw size-prefixed SASL token (after a v0 SaslHandshake)."""
        slot = _Slot(None)
        slot.parts = [payload]
        slot.done = True
        self._pending.append(slot)
        if not self._batching:
            self._flush()

    def authenticated(self, principal: str | None) -> None:
        if principal is not None:
            self.principal = principal
        self.decoder.max_frame_size = self.broker.config["socket.request.max.bytes"]

    def fail_authentication(self, header: RequestHeader | None, response: Message | None, delay_ms: int) -> None:
        """Kafka's failed authentication: the answer (if any) and the close wait delay_ms
        (connection.failed.authentication.delay.ms); nothing more is read meanwhile."""
        self._hold_output = True
        if header is not None and response is not None:
            self.send_response(header, response)
        if self.transport is not None and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()
        asyncio.get_running_loop().call_later(delay_ms / 1000, self._failed_authentication_done)

    def _failed_authentication_done(self) -> None:
        self._hold_output = False
        self._flush()
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._throttled is not None:
            self._throttled.cancel()
        for task in list(self.tasks):
            task.cancel()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def idle(self) -> bool:
        return not self._pending and self._stalled is None

    @property
    def in_flight(self) -> tuple[object, ...]:
        """The requests read and not yet written out, in order (each an opaque token)."""
        return tuple(self._pending)

    @property
    def output_stalled(self) -> bool:
        """The rest of a response waits for the socket to become writable."""
        return self._stalled is not None

    @property
    def closed(self) -> bool:
        return self._closed


def _error_response(api_key: int, api_version: int, request: Message, code: int) -> Message | None:
    """The request type's error response with ``code`` (None without a builder)."""
    builder = builder_for(api_key)
    return builder(request, api_version, code) if builder is not None else None
