"""The network side of a ``RaftDriver`` (``kbroker/raft/io.py``): Kafka's framing on the raft
listener (inbound requests, answered in request order, and the other APIs served there) and one
outbound connection per peer (requests, their answers, and failures reported to the node).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
from collections import ChainMap
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from kbroker.config.connection_backoff import ConnectionBackoff
from kbroker.config.socket_options import configure_accepted
from kbroker.raft.connections import (
    ANONYMOUS,
    CloseConnection,
    Inbound,
    InboundSession,
    Slot,
    frame_of,
    read_frame,
)
from kbroker.raft.messages import FetchRequest, FetchSnapshotRequest, FetchSnapshotResponse, Message
from kbroker.raft.node import RaftConfig, RaftNode
from kbroker.raft.peers import Peer
from kbroker.raft.request_timer import RequestTimer
from kbroker.raft.snapshot_transfer import MAX_SNAPSHOT_CHUNK_BYTES, SnapshotTransfer
from kbroker.raft.voters import KRAFT_VERSION_MAX, KRAFT_VERSION_MIN
from kbroker.raft.wire import WireError, from_wire, to_wire
from kbroker_protocol.api import decode_request, decode_response, encode_request, encode_response
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.messages import REQUESTS as REQUESTS_BY_KEY
from kbroker_protocol.messages import RESPONSES, RequestHeader
from kbroker_protocol.messages import begin_quorum_epoch as bqe
from kbroker_protocol.messages import end_quorum_epoch as eqe
from kbroker_protocol.messages import fetch as fe
from kbroker_protocol.messages import fetch_snapshot as fs
from kbroker_protocol.messages import vote as vo
from kbroker_protocol.messages.api_versions import ApiVersionsResponse
from kbroker_protocol.primitives import Message as WireMessage

logger = logging.getLogger("kbroker.raft.io")  # the driver's logger, as before the split

VOTE, BEGIN_QUORUM_EPOCH, END_QUORUM_EPOCH, FETCH, FETCH_SNAPSHOT = 52, 53, 54, 1, 59
API_VERSIONS = 18
RAFT_APIS = frozenset({VOTE, BEGIN_QUORUM_EPOCH, END_QUORUM_EPOCH, FETCH, FETCH_SNAPSHOT})
# the versions this driver sends (the highest of Kafka 4.4 the codec has); it answers any version
# the codec decodes
REQUEST_VERSIONS = {VOTE: 2, BEGIN_QUORUM_EPOCH: 1, END_QUORUM_EPOCH: 1, FETCH: 18, FETCH_SNAPSHOT: 1}
# the request classes of RAFT_APIS (what ``decode_request`` gives for them)
_RAFT_REQUESTS = (vo.VoteRequest, bqe.BeginQuorumEpochRequest, eqe.EndQuorumEpochRequest, fe.FetchRequest,
                  fs.FetchSnapshotRequest)
_CORRELATION = struct.Struct(">i")
# Kafka's ``request.getErrorResponse(e)`` (ControllerApis' ``requestHelper.handleError``), set by the API
# layer: (api key, version, request, exception) -> the request's error response; None: there is none
ErrorResponder = Callable[[int, int, WireMessage, BaseException], WireMessage | None]
# Kafka's ControllerApis authorizes each Raft RPC before its raft client sees it
# (``authHelper.authorizeClusterOperation(request, CLUSTER_ACTION)``), set by the API layer with the
# handlers: (api key, version, request) -> the refusal to answer (the request's error response), or
# None when the connection's principal (:func:`request_identity`) may send it
RaftGate = Callable[[int, int, WireMessage], WireMessage | None]


# Who sent the request a handler of :attr:`RaftTransport.handlers` serves: its connection's
# principal and host (set in the handler's own task; read through :func:`request_identity`).
_IDENTITY: ContextVar[tuple[str, str]] = ContextVar("controller_listener_identity", default=(ANONYMOUS, ""))


def request_identity() -> tuple[str, str]:
    """(principal, client host) of the connection whose request the running handler serves, as
    Kafka's ControllerApis reads ``request.context.principal``: the SASL principal, the client
    certificate's on an SSL listener, else ``User:ANONYMOUS``."""
    return _IDENTITY.get()
INCONSISTENT_CLUSTER_ID = int(ErrorCode.INCONSISTENT_CLUSTER_ID)
INVALID_REQUEST = int(ErrorCode.INVALID_REQUEST)
KRAFT_VERSION_FEATURE = "kraft.version"
# The first version of each response that names the leader's endpoint (NodeEndpoints, KIP-853), as
# Kafka's RaftUtil builds them: the leader's address on the listener the request came in on
NODE_ENDPOINTS_SINCE = {FETCH: 16, VOTE: 1, BEGIN_QUORUM_EPOCH: 1, END_QUORUM_EPOCH: 1, FETCH_SNAPSHOT: 1}


class RaftTransport(SnapshotTransfer, RequestTimer):
    """The sockets of a ``RaftDriver``, which it is mixed into (the attributes below are the
    driver's)."""

    node_id: int
    node: RaftNode | None
    cluster_id: str | None
    listener_name: str
    voters: tuple[int, ...]
    addresses: ChainMap[int, tuple[str, int]]
    config: RaftConfig
    max_frame_bytes: int
    reconnect_backoff_ms: int
    reconnect_backoff_max_ms: int
    # socket.connection.setup.timeout.ms and its .max.ms (Kafka's KafkaRaftManager passes them on)
    connection_setup_timeout_ms: int
    connection_setup_timeout_max_ms: int
    handlers: dict[int, Callable[[Any, Any], Any]]
    error_responder: ErrorResponder | None
    raft_gate: RaftGate | None
    observers: dict[int, tuple[int, int]]
    # controller.quorum.fetch.snapshot.max.bytes: the MaxBytes of this node's FetchSnapshot requests
    fetch_snapshot_max_bytes: int
    # an inbound FetchSnapshot's (position, MaxBytes), by request id, for its answer
    _snapshot_reads: dict[int, tuple[int, int]]
    _loop: asyncio.AbstractEventLoop | None
    _running: bool
    _inbound: set[Inbound]
    _inbound_tasks: set[asyncio.Task[object]]
    _handler_tasks: set[asyncio.Task[object]]
    _peers: dict[int, Peer]
    _requests: dict[int, tuple[Inbound, Slot, int, int]]
    _next_inbound_id: int
    authenticate: Callable[[asyncio.StreamReader, asyncio.StreamWriter, Callable[[bytes], None]],
                           Awaitable[InboundSession | None]] | None
    tls_principal: Callable[[asyncio.StreamWriter], str | None] | None
    open_connection: Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
    socket_send_buffer: int  # socket.send.buffer.bytes, set on each accepted connection

    if TYPE_CHECKING:
        def _now(self) -> int: ...

        def _step(self, fn: Callable[[int], list[Message]]) -> bool: ...

        def advertised_address(self) -> tuple[str, int]: ...

    # ------------------------------------------------------------------ inbound

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if not self._running:
            writer.transport.abort()
            return
        sock = writer.get_extra_info("socket")
        try:  # Kafka's Acceptor.configureAcceptedSocketChannel, on every listener
            if sock is not None:
                configure_accepted(sock, self.socket_send_buffer)
        except OSError as exc:
            logger.info("raft node %d: closing a connection it cannot configure: %s", self.node_id, exc)
            writer.transport.abort()
            return
        assert task is not None
        self._inbound_tasks.add(task)
        conn = Inbound(writer)
        self._inbound.add(conn)
        peer = writer.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            conn.host = str(peer[0])
        # who sends this connection's requests, for the Raft RPCs' gate (this task's context: the
        # connection's own; its handlers' tasks set it again, _run_handler)
        _IDENTITY.set((conn.principal, conn.host))
        try:
            session: InboundSession | None = None
            if self.authenticate is not None:
                session = await self.authenticate(reader, writer, lambda frame: self._on_request(conn, frame))
                if session is None:
                    return
                conn.principal = session.principal
            elif self.tls_principal is not None:
                principal = self.tls_principal(writer)
                if principal is None:
                    return  # a certificate that no principal mapping rule matches (logged)
                conn.principal = principal
            _IDENTITY.set((conn.principal, conn.host))
            respond = functools.partial(self._respond_in_order, conn)
            while self._running:
                frame = await read_frame(reader, self.max_frame_bytes)
                if session is not None and await session.on_frame(reader, frame, respond):
                    continue
                self._on_request(conn, frame)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            # CancelledError: stop() (a client_connected_cb task must not end cancelled)
            pass
        except CloseConnection as e:
            logger.warning("raft node %d: closing the connection from %s: %s", self.node_id, peer, e)
        except Exception:
            logger.exception("raft node %d: closing the connection from %s", self.node_id, peer)
        finally:
            conn.closed = True
            self._inbound.discard(conn)
            self._inbound_tasks.discard(task)
            writer.transport.abort()

    @staticmethod
    def _respond_in_order(conn: Inbound, correlation_id: int, frame: bytes) -> None:
        conn.fill(conn.add_slot(correlation_id), frame)

    def _on_request(self, conn: Inbound, frame: bytes) -> None:
        try:
            header, body = decode_request(frame)
        except ProtocolError as e:
            raise CloseConnection(f"undecodable request: {e}") from None
        api_key, version = header.request_api_key, header.request_api_version
        if api_key == API_VERSIONS:
            # a Kafka client (NetworkClient) asks before its first request
            slot = conn.add_slot(header.correlation_id)
            keys = sorted(RAFT_APIS | {API_VERSIONS} | set(self.handlers))
            resp = ApiVersionsResponse(
                api_keys=[
                    ApiVersionsResponse.ApiVersion(
                        api_key=k, min_version=REQUESTS_BY_KEY[k].MIN_VERSION, max_version=REQUESTS_BY_KEY[k].MAX_VERSION
                    )
                    for k in keys
                ],
                supported_features=[ApiVersionsResponse.SupportedFeatureKey(
                    name=KRAFT_VERSION_FEATURE, min_version=KRAFT_VERSION_MIN, max_version=KRAFT_VERSION_MAX)],
            )
            conn.fill(slot, frame_of(encode_response(slot.correlation_id, api_key, version, resp)))
            return
        handler = self.handlers.get(api_key)
        if handler is not None:
            slot = conn.add_slot(header.correlation_id)
            assert self._loop is not None
            task = self._loop.create_task(self._run_handler(conn, slot, header, body, handler))
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_tasks.discard)
            return
        if api_key not in RAFT_APIS:
            raise CloseConnection(f"API key {api_key} is not served on the raft listener")
        slot = conn.add_slot(header.correlation_id)
        assert isinstance(body, _RAFT_REQUESTS)  # (the decoder's class for each of RAFT_APIS)
        if self.raft_gate is not None:  # (authorized before the raft client looks at it, as Kafka's)
            try:
                refusal = self.raft_gate(api_key, version, body)
            except Exception as exc:  # the authorization failed (logged): its error response, as a core failure's
                logger.exception("raft node %d: authorizing API %d v%d failed", self.node_id, api_key, version)
                answer = self._error_frame(slot, api_key, version, body, exc)
                if answer is None:
                    raise CloseConnection(f"API {api_key} v{version} could not be authorized") from None
                conn.fill(slot, answer)
                return
            if refusal is not None:
                conn.fill(slot, frame_of(encode_response(slot.correlation_id, api_key, version, refusal)))
                return
        if self.cluster_id is not None and body.cluster_id is not None and body.cluster_id != self.cluster_id:
            self._error_answer(conn, slot, api_key, version, INCONSISTENT_CLUSTER_ID)
            return
        self._learn_leader_endpoints(body)
        self._next_inbound_id += 1
        rid = self._next_inbound_id
        try:
            msg = from_wire(body, None, self.node_id, rid)
        except (WireError, ValueError) as e:
            logger.warning("raft node %d: invalid %s request: %s", self.node_id, type(body).__name__, e)
            self._error_answer(conn, slot, api_key, version, INVALID_REQUEST)
            return
        self._requests[rid] = (conn, slot, api_key, version)
        if isinstance(msg, FetchSnapshotRequest):
            assert isinstance(body, fs.FetchSnapshotRequest)  # (from_wire's source of a FetchSnapshotRequest)
            self._snapshot_reads[rid] = (msg.position, body.max_bytes)
        assert self.node is not None
        node = self.node
        if isinstance(msg, FetchRequest) and msg.src not in node.voters:
            self.observers[msg.src] = (msg.fetch_offset, self._now())
        if not self._step(lambda now: node.handle(msg, now)):
            # the core failed on it (logged): no answer of its own will come; its error response instead
            self._requests.pop(rid, None)
            self._snapshot_reads.pop(rid, None)
            failure = CloseConnection(f"{type(msg).__name__} from node {msg.src} could not be handled")
            answer = self._error_frame(slot, api_key, version, body, failure) if self._running else None
            if answer is None:
                raise failure
            conn.fill(slot, answer)

    async def _run_handler(self, conn: Inbound, slot: Slot, header: RequestHeader, body: WireMessage,
                           handler: Callable[[Any, Any], Any]) -> None:
        api_key, version = header.request_api_key, header.request_api_version
        _IDENTITY.set((conn.principal, conn.host))  # (this task's context only)
        try:
            resp = await handler(header, body)
            frame: bytes | None = frame_of(encode_response(slot.correlation_id, api_key, version, resp))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("raft node %d: unexpected error handling API %d v%d", self.node_id, api_key, version)
            frame = self._error_frame(slot, api_key, version, body, exc)
        if frame is None:
            conn.closed = True
            conn.writer.transport.abort()
            return
        conn.fill(slot, frame)

    def _error_frame(self, slot: Slot, api_key: int, version: int, body: WireMessage, exc: BaseException) -> bytes | None:
        """Kafka's ``RequestHandlerHelper.handleError``: the request's error response (its code from
        ``Errors.forException``), the connection kept; None (logged) when there is none: it closes."""
        try:
            response = None if self.error_responder is None else self.error_responder(api_key, version, body, exc)
            if response is not None:
                return frame_of(encode_response(slot.correlation_id, api_key, version, response))
        except Exception:
            logger.exception("raft node %d: no error response for API %d v%d", self.node_id, api_key, version)
        logger.warning("raft node %d: closing a connection: API %d v%d failed without an error response",
                       self.node_id, api_key, version)
        return None

    def _error_answer(self, conn: Inbound, slot: Slot, api_key: int, version: int, code: int) -> None:
        response_class: Any = RESPONSES[api_key]  # a generated class: its fields are keyword arguments
        body = response_class(error_code=code)
        conn.fill(slot, frame_of(encode_response(slot.correlation_id, api_key, version, body)))

    def _learn_leader_endpoints(self, body: WireMessage) -> None:
        """A BeginQuorumEpoch or EndQuorumEpoch request's LeaderEndpoints (v1+): where its leader
        is on this node's listener (Kafka's ``Endpoints.fromBeginQuorumEpochRequest``)."""
        if not isinstance(body, bqe.BeginQuorumEpochRequest | eqe.EndQuorumEpochRequest):
            return
        parts = [p for t in body.topics for p in t.partitions]
        if len(parts) != 1 or parts[0].leader_id < 0 or parts[0].leader_id == self.node_id:
            return
        for endpoint in body.leader_endpoints:
            if endpoint.name == self.listener_name and endpoint.host and 0 < endpoint.port < 65536:
                self.addresses[parts[0].leader_id] = (endpoint.host, endpoint.port)

    def _leader_address(self, leader_id: int) -> tuple[str, int] | None:
        return self.advertised_address() if leader_id == self.node_id else self.addresses.get(leader_id)

    def response_body(self, msg: Message, api_key: int, version: int) -> WireMessage:
        """The wire response for ``msg``: Kafka's NodeEndpoints name the leader's address (Fetch
        v16+, Vote, BeginQuorumEpoch, EndQuorumEpoch and FetchSnapshot v1+), for a replica that
        does not know where it is."""
        body = to_wire(msg, self.cluster_id, self.voters)
        if isinstance(msg, FetchSnapshotResponse):
            self._snapshot_slice(body, self._snapshot_reads.pop(msg.request_id, (0, MAX_SNAPSHOT_CHUNK_BYTES)))
        leader_id = getattr(msg, "leader_id", -1)
        if leader_id >= 0 and version >= NODE_ENDPOINTS_SINCE.get(api_key, version + 1):
            address = self._leader_address(leader_id)
            if address is not None:
                endpoint_class: Any = type(body).NodeEndpoint  # type: ignore[attr-defined]
                extra = {"rack": None} if api_key == FETCH else {}
                body.node_endpoints = [  # type: ignore[attr-defined]
                    endpoint_class(node_id=leader_id, host=address[0], port=address[1], **extra)]
        return body

    def request_body(self, msg: Message) -> WireMessage:
        """The wire request for ``msg``: a leader's BeginQuorumEpoch names its endpoint on the
        controller listener (LeaderEndpoints, as Kafka's ``singletonBeginQuorumEpochRequest``)."""
        body = to_wire(msg, self.cluster_id, self.voters)
        if isinstance(body, fs.FetchSnapshotRequest):
            body.max_bytes = self.fetch_snapshot_max_bytes
        if isinstance(body, bqe.BeginQuorumEpochRequest):
            host, port = self.advertised_address()
            body.leader_endpoints = [bqe.BeginQuorumEpochRequest.LeaderEndpoint(
                name=self.listener_name, host=host, port=port)]
        return body

    def _respond(self, msg: Message) -> None:
        entry = self._requests.pop(msg.request_id, None)
        if entry is None:
            logger.debug("raft node %d: answer %s to a request no longer open", self.node_id, type(msg).__name__)
            return
        conn, slot, api_key, version = entry
        body = self.response_body(msg, api_key, version)
        conn.fill(slot, frame_of(encode_response(slot.correlation_id, api_key, version, body)))

    # ------------------------------------------------------------------ outbound

    def _peer(self, node_id: int) -> Peer:
        peer = self._peers.get(node_id)
        if peer is None:
            peer = self._peers[node_id] = Peer(node_id, backoff=ConnectionBackoff(
                self.connection_setup_timeout_ms, self.connection_setup_timeout_max_ms, self.reconnect_backoff_ms,
                self.reconnect_backoff_max_ms))
        return peer

    def _send(self, msg: Message) -> None:
        peer = self._peer(msg.dst)
        assert self._loop is not None
        if peer.writer is not None:
            self._write_request(peer, msg)
        elif peer.connecting is not None:
            peer.queue.append(msg)
            peer.queued_at[msg.request_id] = self._loop.time()
        elif self._loop.time() < peer.retry_at or msg.dst not in self.addresses:
            self._fail_soon(msg.dst, msg.request_id)
        else:
            peer.queue.append(msg)
            peer.queued_at[msg.request_id] = self._loop.time()
            peer.connecting = self._loop.create_task(self._connect(peer), name=f"raft-connect-{self.node_id}-{msg.dst}")

    def _fail_soon(self, dst: int, request_id: int) -> None:
        assert self._loop is not None and self.node is not None
        node = self.node
        self._loop.call_soon(self._step, lambda now: node.request_failed(dst, request_id, now))

    async def _connect(self, peer: Peer) -> None:
        assert self._loop is not None
        host, port = self.addresses[peer.node_id]
        backoff = peer.backoff
        assert backoff is not None
        # Kafka's NetworkClient abandons an attempt (TCP, TLS, SASL) after the connection setup timeout,
        # which grows over consecutive failed attempts (ClusterConnectionStates)
        setup_ms = backoff.setup_timeout_ms
        try:
            async with asyncio.timeout(setup_ms / 1000):
                reader, writer = await self.open_connection(host, port)
        except (OSError, TimeoutError) as e:
            if isinstance(e, TimeoutError):
                logger.info("raft node %d: disconnecting from node %d at %s:%d due to socket connection setup "
                            "timeout; the timeout value is %d ms", self.node_id, peer.node_id, host, port, setup_ms)
            else:  # a refused login was logged by the security client already (once per 30 s): DEBUG here
                logger.log(logging.DEBUG if getattr(e, "logged", False) else logging.INFO,
                           "raft node %d: cannot connect to node %d at %s:%d: %s", self.node_id, peer.node_id, host,
                           port, e)
            backoff.connect_failed()
            peer.connecting = None
            peer.retry_at = self._loop.time() + backoff.reconnect_backoff_ms / 1000
            queued, peer.queue = peer.queue, []
            peer.queued_at.clear()
            for msg in queued:
                self._fail_soon(msg.dst, msg.request_id)
            return
        peer.connecting = None
        if not self._running:
            writer.transport.abort()
            return
        backoff.connected()
        peer.writer = writer
        peer.errors_logged.clear()
        peer.reader = reader
        peer.reader_task = self._loop.create_task(self._read_responses(peer, reader, writer))
        queued, peer.queue = peer.queue, []
        queued_at, peer.queued_at = peer.queued_at, {}
        now = self._loop.time()
        for msg in queued:
            if now - queued_at.get(msg.request_id, now) >= self.config.request_timeout_ms / 1000:
                # Kafka's InterBrokerSendThread fails a request not sent within its request timeout
                # (the core has retried it already): it is not sent late
                self._fail_soon(msg.dst, msg.request_id)
            else:
                self._write_request(peer, msg)

    def _write_request(self, peer: Peer, msg: Message) -> None:
        assert peer.writer is not None
        if peer.writer.transport.is_closing():
            # the connection broke (a reset closes the transport at once; so does a request timeout)
            # and its reader task has not seen it yet: the request is lost with the connection, as
            # Kafka's NetworkClient fails a request to a disconnected node; the node retries it
            # (writing would raise on uvloop, out of the step that sent it: the timer's, say)
            logger.debug("raft node %d: %s to node %d not sent: the connection is closing", self.node_id,
                         type(msg).__name__, peer.node_id)
            self._fail_soon(msg.dst, msg.request_id)
            return
        if peer.reauthenticating:
            peer.queue.append(msg)
            return
        due = getattr(self.open_connection, "reauthentication_due", None)
        if due is not None and due(peer.writer):
            # the SASL session is due (a Connector of kbroker.security.client): re-authenticate in band
            # first, as Kafka's client does before its next send; the request follows it
            peer.reauthenticating = True
            peer.queue.append(msg)
            assert self._loop is not None
            self._loop.create_task(self._reauthenticate(peer, peer.writer),
                                   name=f"raft-reauth-{self.node_id}-{peer.node_id}")
            return
        if isinstance(msg, FetchSnapshotRequest) and msg.position == 0:
            msg = self._start_snapshot_fetch(peer, msg)
        body = self.request_body(msg)
        api_key = body.API_KEY
        assert api_key is not None  # to_wire makes requests, which have an API key
        version = REQUEST_VERSIONS[api_key]
        peer.next_correlation = (peer.next_correlation + 1) & 0x7FFFFFFF
        cid = peer.next_correlation
        header = RequestHeader(
            request_api_key=api_key, request_api_version=version, correlation_id=cid,
            client_id=f"raft-client-{self.node_id}",
        )
        fetch_offset = msg.fetch_offset if isinstance(msg, FetchRequest) else None
        peer.inflight[cid] = (msg.request_id, api_key, version, fetch_offset)
        peer.writer.write(frame_of(encode_request(header, body)))
        assert self._loop is not None
        peer.sent_at[cid] = self._loop.time()
        self._arm_request_timeout(peer)

    async def _reauthenticate(self, peer: Peer, writer: asyncio.StreamWriter) -> None:
        """Re-authenticate the connection to ``peer`` (its reader task hands the responses back),
        then send the requests that waited."""
        assert self._loop is not None
        loop = self._loop

        async def call(api_key: int, version: int, body: WireMessage) -> Any:
            peer.next_correlation = (peer.next_correlation + 1) & 0x7FFFFFFF
            cid = peer.next_correlation
            header = RequestHeader(request_api_key=api_key, request_api_version=version, correlation_id=cid,
                                   client_id=f"raft-client-{self.node_id}")
            waiter: asyncio.Future[bytes] = loop.create_future()
            peer.auth_waiters[cid] = waiter
            writer.write(frame_of(encode_request(header, body)))
            frame = await waiter
            return decode_response(frame, api_key, version)[1]

        opener: Any = self.open_connection  # a Connector: the only opener whose sessions fall due
        try:
            async with asyncio.timeout(self.config.request_timeout_ms / 1000):
                await opener.reauthenticate_with(writer, call)
        except (OSError, TimeoutError, ProtocolError, asyncio.IncompleteReadError, RuntimeError) as e:
            # RuntimeError: uvloop's write on a transport that closed meanwhile
            logger.log(logging.DEBUG if getattr(e, "logged", False) else logging.INFO,
                       "raft node %d: re-authentication to node %d failed: %s", self.node_id, peer.node_id, e)
            writer.transport.abort()  # the reader task ends, failing what was in flight
        finally:
            peer.reauthenticating = False
            peer.auth_waiters.clear()
        queued, peer.queue = peer.queue, []
        for msg in queued:
            if peer.writer is writer and not writer.is_closing():
                self._write_request(peer, msg)
            else:  # the connection failed: the core retries these as it retries any lost request
                self._fail_soon(msg.dst, msg.request_id)

    async def _read_responses(self, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while self._running:
                frame = await read_frame(reader, self.max_frame_bytes)
                if len(frame) < 4:
                    raise CloseConnection(f"response frame of {len(frame)} bytes")
                cid = _CORRELATION.unpack_from(frame)[0]
                waiter = peer.auth_waiters.pop(cid, None)
                if waiter is not None:  # a response of the re-authentication exchange
                    if not waiter.done():
                        waiter.set_result(frame)
                    continue
                pending = peer.inflight.pop(cid, None)
                peer.sent_at.pop(cid, None)
                if pending is None:
                    raise CloseConnection(f"response with unknown correlation id {cid}")
                rid, api_key, version, fetch_offset = pending
                try:
                    _header, body = decode_response(frame, api_key, version)
                except ProtocolError as e:
                    self._fail_soon(peer.node_id, rid)
                    raise CloseConnection(f"undecodable response: {e}") from None
                for endpoint in getattr(body, "node_endpoints", None) or ():
                    if endpoint.node_id >= 0 and endpoint.node_id != self.node_id:
                        self.addresses[endpoint.node_id] = (endpoint.host, endpoint.port)
                if api_key == FETCH_SNAPSHOT and not self._snapshot_chunk(peer, rid, body):
                    continue  # the next chunk is asked for; the core hears of the snapshot once whole
                top_error = getattr(body, "error_code", 0)
                try:
                    msg = from_wire(body, peer.node_id, self.node_id, rid, fetch_base_offset=fetch_offset)
                except (WireError, ValueError) as e:
                    self._fail_soon(peer.node_id, rid)
                    if top_error:
                        # logged once per connection: the node retries every retry.backoff.ms
                        level = logging.DEBUG if top_error in peer.errors_logged else logging.WARNING
                        peer.errors_logged.add(top_error)
                        logger.log(
                            level, "raft node %d: node %d answered with error %s", self.node_id, peer.node_id,
                            ErrorCode(top_error).name if top_error in ErrorCode._value2member_map_ else top_error,
                        )
                        continue
                    raise CloseConnection(f"invalid response: {e}") from None
                node = self.node
                assert node is not None
                self._step(functools.partial(node.handle, msg))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except CloseConnection as e:
            logger.warning("raft node %d: closing the connection to node %d: %s", self.node_id, peer.node_id, e)
        except Exception:
            logger.exception("raft node %d: closing the connection to node %d", self.node_id, peer.node_id)
        finally:
            writer.transport.abort()
            for waiter in peer.auth_waiters.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("the connection closed during re-authentication"))
            if peer.writer is writer:
                peer.writer = None
                peer.reader = None
                peer.reader_task = None
                assert self._loop is not None and peer.backoff is not None
                peer.backoff.disconnected()
                peer.retry_at = self._loop.time() + peer.backoff.reconnect_backoff_ms / 1000
            peer.sent_at.clear()
            if peer.timeout_timer is not None:
                peer.timeout_timer.cancel()
                peer.timeout_timer = None
            lost, peer.inflight = peer.inflight, {}
            peer.snapshot_parts.clear()
            if self._running:
                for rid, *_ in lost.values():
                    self._fail_soon(peer.node_id, rid)
