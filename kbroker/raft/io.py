"""An asyncio driver for one ``RaftNode``: Kafka's KRaft RPCs over TCP, a timer, proposals.

``RaftDriver`` owns a ``RaftNode`` and runs it on the event loop:

- a listener speaking Kafka's framing (``size i32 | RequestHeader | body``) for Vote,
  BeginQuorumEpoch, EndQuorumEpoch, Fetch and FetchSnapshot (and ApiVersions, listing them),
  decoded with ``kbroker_protocol.api`` and converted with ``kbroker.raft.wire``; the answers on one connection go out in request order
  (as Kafka's muted channels do), a held Fetch delaying the answers queued behind it;
- one outbound connection per other voter, opened on the first request and reopened after a
  failure (after the reconnect backoff, Kafka's 50 ms growing to 500 with jitter over consecutive
  failures); an attempt is abandoned after the connection setup timeout
  (``socket.connection.setup.timeout.ms``, growing to its ``.max.ms``), and a request with no answer
  in ``controller.quorum.request.timeout.ms`` closes its connection, as Kafka's NetworkClient does; requests that cannot be delivered, and those in flight
  on a connection that breaks, are reported to the node (``request_failed``) so that it retries;
- a timer task that ticks the node at ``next_deadline()`` and whenever something may have moved
  it earlier;
- ``propose(values)``, a coroutine that returns the offset of the last value once it is
  committed, or raises ``NotLeaderError`` (with ``leader_id``, the leader hint) at once;
- ``on_commit(offset, entry_or_snapshot)`` for every committed entry in order (control records
  included), a ``Snapshot`` first when the state must be loaded from one;
- ``on_append(last_offset)``, given to ``propose``/``commit_now``, called once the values are
  appended to the leader's log and before they are committed (the active controller applies its
  records there, as Kafka's QuorumController does between ``prepareAppend`` and
  ``schedulePreparedAppend``);
- ``on_resign()`` when this node stops being the leader (Kafka's ``handleLeaderChange`` to
  another leader), before what that step committed is delivered.

Nothing a peer sends stops the node: an unreadable frame, an unknown API, a response with an
unknown correlation id or a message the core refuses closes that connection (logged); requests
for another cluster id get INCONSISTENT_CLUSTER_ID and those for another partition
INVALID_REQUEST, as top-level errors.

The node's own writes (``quorum-state``, log flushes with fsync) run on the event loop thread,
synchronously; Kafka runs its raft client on a thread of its own. ``stop(graceful=True)`` resigns
(a leader sends EndQuorumEpoch, best effort) and flushes; ``stop(graceful=False)`` drops every
socket and task at once, as a crash would, leaving the log's unflushed tail unwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import uuid
from collections import ChainMap
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from kbroker.config import BROKER_DEFAULTS
from kbroker.config.socket_options import connect_socket, open_listening
from kbroker.raft.connections import CloseConnection, Inbound, InboundSession, Slot, frame_of, read_frame
from kbroker.raft.kraft_upgrade import local_voter
from kbroker.raft.log import Entry, RaftLog, Snapshot
from kbroker.raft.messages import REQUESTS, Message
from kbroker.raft.node import NotLeaderError, RaftConfig, RaftNode, Role, VoterChange
from kbroker.raft.peers import Peer
from kbroker.raft.state_store import ElectionState, QuorumStateStore
from kbroker.raft.transport import (
    API_VERSIONS,
    KRAFT_VERSION_FEATURE,
    ErrorResponder,
    RaftGate,
    RaftTransport,
)
from kbroker.raft.voters import Voter, snapshot_controls
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.messages import RequestHeader
from kbroker_protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse

logger = logging.getLogger(__name__)

REQUEST_TIMED_OUT = int(ErrorCode.REQUEST_TIMED_OUT)
NOT_LEADER_OR_FOLLOWER = int(ErrorCode.NOT_LEADER_OR_FOLLOWER)


class RaftStoppedError(Exception):
    """The driver stopped before a proposal was committed (its outcome is unknown)."""


class ProposalLostError(Exception):
    """Another entry was committed at the offset of a proposal: it was truncated away after its
    leader lost the leadership."""


class _SoleVoterStore(QuorumStateStore):
    """The quorum-state store of a sole voter while it elects itself at start: a state other than
    its own leadership is held (the next one replaces it); its leadership, and whatever is held when
    `release` is called, are written through, and so is every later state."""

    def __init__(self, store: QuorumStateStore, node_id: int) -> None:
        self.store = store
        self.node_id = node_id
        self._holding = True
        self._held: ElectionState | None = None

    def read(self) -> ElectionState | None:
        return self.store.read()

    def write(self, state: ElectionState) -> None:
        if self._holding and state.leader_id != self.node_id:
            self._held = state
            return
        self._holding = False
        self._held = None
        self.store.write(state)

    def release(self) -> None:
        held, self._held, self._holding = self._held, None, False
        if held is not None:
            self.store.write(held)


class RaftDriver(RaftTransport):
    """Runs one ``RaftNode`` with real sockets and a real clock.

    ``addresses`` maps every voter id to its ``(host, port)``; it is read on every connection
    attempt, so the owner may fill it in after the listeners are bound (ephemeral ports) and update
    it when a node comes back elsewhere. Call ``await listen()`` (binds, sets ``port``), then
    ``start()``.
    """

    def __init__(
        self,
        node_id: int,
        voters: Sequence[int] | Mapping[int, Voter],
        addresses: Mapping[int, tuple[str, int]],
        log: RaftLog,
        store: QuorumStateStore,
        *,
        config: RaftConfig | None = None,
        cluster_id: str | None = None,
        on_commit: Callable[[int, Entry | Snapshot], None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rng: random.Random | None = None,
        max_frame_bytes: int = BROKER_DEFAULTS["socket.request.max.bytes"],
        reconnect_backoff_ms: int = 50,  # KafkaRaftManager's reconnect backoff: 50 ms growing to 500
        reconnect_backoff_max_ms: int = 500,
        kraft_version: int = 0,
        directory_id: uuid.UUID | None = None,
        listener_name: str = "CONTROLLER",
        bootstrap_servers: Sequence[tuple[str, int]] = (),
        read_snapshot_controls: Callable[[Snapshot], tuple[dict[int, Voter] | None, int | None]] | None = None,
    ) -> None:
        self.node_id = node_id
        # the initial voters: ids (a static quorum) or the bootstrap voter set of a dynamic one
        self.initial_voters: Sequence[int] | Mapping[int, Voter] = voters
        self.voters = tuple(sorted(voters))
        # every node's address this driver knows: the configured voters', the voter set's endpoints
        # on ``listener_name``, the leaders named in Fetch answers (NodeEndpoints) and the bootstrap
        # servers under the negative ids -2, -3, ... (Kafka's bootstrap server ids)
        # (the owner's mapping is read, never copied: it may fill it in after binding; what the driver
        # learns goes in front of it)
        self.addresses: ChainMap[int, tuple[str, int]] = ChainMap({}, addresses)  # type: ignore[arg-type]
        self.bootstrap_ids = tuple(-2 - i for i in range(len(bootstrap_servers)))
        for i, address in zip(self.bootstrap_ids, bootstrap_servers, strict=True):
            self.addresses[i] = address
        self.kraft_version = kraft_version
        self.directory_id = directory_id
        self.listener_name = listener_name
        self.read_snapshot_controls = read_snapshot_controls or snapshot_controls
        self._voter_set_seen: dict[int, Voter] | None = None
        self._probing = False
        self.log = log
        self.store = store
        self.config = config or RaftConfig()
        self.cluster_id = cluster_id
        self.on_commit = on_commit
        # called when this node stops leading (the active controller reverts what it applied but
        # was not committed: Kafka's QuorumController.renounce)
        self.on_resign: Callable[[], None] | None = None
        self.host = host
        self.port = port
        self.rng = rng or random.Random()
        self.max_frame_bytes = max_frame_bytes
        self.reconnect_backoff_ms = reconnect_backoff_ms
        self.reconnect_backoff_max_ms = reconnect_backoff_max_ms
        # socket.connection.setup.timeout.ms / .max.ms of the Raft client (set by the owner before start)
        self.connection_setup_timeout_ms: int = BROKER_DEFAULTS["socket.connection.setup.timeout.ms"]
        self.connection_setup_timeout_max_ms: int = BROKER_DEFAULTS["socket.connection.setup.timeout.max.ms"]
        self.node: RaftNode | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._servers: list[asyncio.Server] = []
        # Kafka's socket keys on the controller listener (its Acceptor, as any listener's) and the
        # Raft client's receive buffer (KafkaRaftManager: socket.receive.buffer.bytes), set by the
        # owner before listen(): kbroker.config.socket_options
        self.socket_send_buffer: int = BROKER_DEFAULTS["socket.send.buffer.bytes"]
        self.socket_receive_buffer: int = BROKER_DEFAULTS["socket.receive.buffer.bytes"]
        self.listen_backlog: int = BROKER_DEFAULTS["socket.listen.backlog.size"]
        self._timer: asyncio.Task[object] | None = None
        self._wakeup = asyncio.Event()
        self._inbound: set[Inbound] = set()
        self._inbound_tasks: set[asyncio.Task[object]] = set()
        self._peers: dict[int, Peer] = {}
        self._requests: dict[int, tuple[Inbound, Slot, int, int]] = {}  # id -> conn, slot, key, version
        self._next_inbound_id = 0
        self._proposals: dict[int, tuple[int, asyncio.Future[int]]] = {}
        self._running = False
        # Other APIs served on this listener (Kafka's controller APIs: DescribeQuorum, DescribeCluster,
        # BrokerRegistration, ...): api key -> async handler(header, body) -> response body.
        self.handlers: dict[int, Callable[[Any, Any], Any]] = {}
        # the error response of a request this listener failed on (a handler raised, or the core on
        # a Raft RPC), set with the handlers (kbroker.api.controller_apis); None: the connection closes
        self.error_responder: ErrorResponder | None = None
        # the authorization of the Raft RPCs (the refusal of one the connection's principal may not
        # send), set with the handlers (kbroker.api.controller_apis); None: every one is served
        self.raft_gate: RaftGate | None = None
        # what observers (replicas outside the voter set) last fetched: id -> (fetch offset, time ms)
        self.observers: dict[int, tuple[int, int]] = {}
        self.fetch_snapshot_max_bytes: int = BROKER_DEFAULTS["controller.quorum.fetch.snapshot.max.bytes"]
        self._snapshot_reads: dict[int, tuple[int, int]] = {}
        self._handler_tasks: set[asyncio.Task[object]] = set()
        # Security of the controller listener (issue 17, set by kbroker.security.internode before
        # listen()): the server's TLS context, the SASL exchange run on each accepted connection
        # before its requests (None: it failed and is closed; else the session that sees each later
        # frame first, for re-authentication), the factory of outbound connections.
        self.server_ssl: ssl.SSLContext | None = None
        # This voter's controller endpoint as advertised.listeners names it (None: the one it binds).
        self.advertised_endpoint: tuple[str, int] | None = None
        self.authenticate: Callable[[asyncio.StreamReader, asyncio.StreamWriter, Callable[[bytes], None]],
                                    Awaitable[InboundSession | None]] | None = None
        # an SSL listener without SASL: the client certificate's principal (None: refused, closed)
        self.tls_principal: Callable[[asyncio.StreamWriter], str | None] | None = None
        self.open_connection: Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = \
            self._open_plaintext

    # ------------------------------------------------------------------ lifecycle

    async def listen(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host or None, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        # as Kafka's ServerSocketFactory: the receive buffer before bind, the listen backlog
        sockets = open_listening(infos, self.port, self.socket_receive_buffer, self.listen_backlog)
        try:
            for sock in sockets:
                self._servers.append(await asyncio.start_server(self._serve, sock=sock, ssl=self.server_ssl,
                                                                backlog=self.listen_backlog))
        except BaseException:
            for server in self._servers:
                server.close()
            self._servers.clear()
            for sock in sockets:
                sock.close()
            raise
        self.port = sockets[0].getsockname()[1]
        return self.port

    async def _open_plaintext(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A plain TCP connection of the Raft client, its receive buffer set before it connects."""
        sock = await connect_socket(host, port, receive_buffer=self.socket_receive_buffer)
        try:
            return await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise

    def start(self) -> None:
        """Create the node and its timer. Without ``listen()`` first, the node takes no requests
        (a sole voter, or an observer: both only send)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        sole = set(self.voters) == {self.node_id}
        # A sole voter goes from its stored state to leader in the synchronous steps below, sending
        # nothing: the states it passes through (unattached, candidate) are written only as the
        # leader's, which supersedes them, still before the epoch's first record (one durable
        # write, two fsyncs, instead of up to three).
        store: QuorumStateStore = _SoleVoterStore(self.store, self.node_id) if sole else self.store
        self.node = RaftNode(self.node_id, self.initial_voters, self.log, store, self.rng, self.config, now=0,
                             kraft_version=self.kraft_version, directory_id=self.directory_id,
                             read_snapshot_controls=self.read_snapshot_controls,
                             bootstrap_targets=self.bootstrap_ids)
        self._running = True
        # this voter as it runs: a new leader whose voter set entry differs writes the updated set
        # with its LeaderChangeMessage (Kafka's appendStartOfEpochControlRecords)
        self.node.local_voter = local_voter(self, self.directory_id)
        self._learn_voter_addresses()
        node = self.node
        if isinstance(store, _SoleVoterStore) and node.voters != frozenset({self.node_id}):
            store.release()  # the log's voter set has others: every state is durable before it is acted on
        try:
            self._step(node.tick)  # a sole voter elects itself now
        finally:
            if isinstance(store, _SoleVoterStore):
                store.release()
        if node.voters == frozenset({self.node_id}) and node.role is Role.LEADER:
            # and commits its log at once (its LeaderChange record flushed): on_commit replays it
            node.log.flush()
            self._step(node.tick)
        self._timer = self._loop.create_task(self._run_timer(), name=f"raft-timer-{self.node_id}")

    async def stop(self, graceful: bool = True) -> None:
        """Stop the node. Graceful: a leader resigns (EndQuorumEpoch to the other voters, sent
        before the sockets close) and the log is flushed. Not graceful: everything is dropped as
        in a crash (nothing is flushed)."""
        if not self._running:
            return
        node = self.node
        assert node is not None
        if graceful:
            self._step(lambda now: node.resign(now))
            with contextlib.suppress(Exception):
                node.log.flush()
            for peer in list(self._peers.values()):  # a peer may connect while one drains
                if peer.writer is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(peer.writer.drain(), self.config.request_timeout_ms / 1000)
        self._running = False
        tasks = [t for t in (self._timer,) if t is not None]
        for server in self._servers:
            server.close()
        for conn in list(self._inbound):
            conn.closed = True
            conn.writer.transport.abort() if not graceful else conn.writer.close()
        for peer in self._peers.values():
            if peer.writer is not None:
                peer.writer.transport.abort() if not graceful else peer.writer.close()
            tasks += [t for t in (peer.reader_task, peer.connecting) if t is not None]
        tasks += list(self._inbound_tasks) + list(self._handler_tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _offset, (_epoch, fut) in self._proposals.items():
            if not fut.done():
                fut.set_exception(RaftStoppedError(f"raft node {self.node_id} stopped"))
        self._proposals.clear()
        logger.info("raft node %d stopped (%s)", self.node_id, "graceful" if graceful else "abrupt")

    @property
    def running(self) -> bool:
        return self._running

    # ------------------------------------------------------------------ API

    async def propose(self, values: Sequence[object], control: bool = False,
                      on_append: Callable[[int], None] | None = None) -> int:
        """Append ``values`` on the leader; returns the offset of the last once committed.
        Raises ``NotLeaderError`` (``leader_id`` is the leader this node knows, -1 if none).
        ``on_append(last offset)`` runs once they are appended, before anything else runs."""
        if not self._running or self.node is None:
            raise RaftStoppedError(f"raft node {self.node_id} is not running")
        node = self.node
        offset = node.propose(values, self._now(), control=control)
        if on_append is not None:
            on_append(offset)
        assert self._loop is not None
        fut: asyncio.Future[int] = self._loop.create_future()
        self._proposals[offset] = (node.epoch, fut)
        self._wakeup.set()
        return await fut

    def commit_now(self, values: Sequence[object], control: bool = False,
                   on_append: Callable[[int], None] | None = None) -> int:
        """A sole voter's synchronous commit: append ``values``, flush and commit them before
        returning the offset of the last (``on_commit`` has been called for them). Raises
        ``NotLeaderError`` on any other node (use ``propose``). ``on_append(last offset)`` runs
        once they are appended, before they are flushed and committed."""
        if not self._running or self.node is None:
            raise RaftStoppedError(f"raft node {self.node_id} is not running")
        node = self.node
        if node.voters != frozenset({self.node_id}):
            raise NotLeaderError(self.node_id, node.epoch, node.leader_id)
        now = self._now()
        offset = node.propose(values, now, control=control)
        if on_append is not None:
            on_append(offset)
        node.log.flush()
        if not self._step(node.tick) or node.high_watermark <= offset:
            raise RaftStoppedError(f"raft node {self.node_id} could not commit offset {offset}")
        return offset

    @property
    def leader_id(self) -> int:
        return self.node.leader_id if self.node is not None else -1

    @property
    def epoch(self) -> int:
        return self.node.epoch if self.node is not None else 0

    @property
    def is_leader(self) -> bool:
        return self.node is not None and self.node.role is Role.LEADER

    @property
    def high_watermark(self) -> int:
        return self.node.high_watermark if self.node is not None else 0

    def now_ms(self) -> int:
        """The driver's clock (ms since start)."""
        return self._now()

    def snapshot(self, end_offset: int, data: object) -> Snapshot:
        """Record the state machine's snapshot after the committed entries ``[0, end_offset)``
        (``RaftNode.snapshot``): the log drops them; a replica that needs them fetches the
        snapshot (FetchSnapshot) instead."""
        if not self._running or self.node is None:
            raise RaftStoppedError(f"raft node {self.node_id} is not running")
        return self.node.snapshot(end_offset, data)

    # ------------------------------------------------------------------ the node

    def _now(self) -> int:
        assert self._loop is not None
        return int((self._loop.time() - self._t0) * 1000)

    def _step(self, fn: Callable[[int], list[Message]]) -> bool:
        """Run one call into the node, send what it returns, deliver what got committed; False
        when the core raised (logged: the input is dropped, the node goes on)."""
        if not self._running:
            return False
        assert self.node is not None
        was_leader = self.node.role is Role.LEADER
        try:
            out = fn(self._now())
        except Exception:
            logger.exception("raft node %d: the core failed on an input; ignored", self.node_id)
            return False
        if was_leader and self.node.role is not Role.LEADER and self.on_resign is not None:
            try:
                self.on_resign()
            except Exception:
                logger.exception("raft node %d: on_resign failed", self.node_id)
        self._learn_voter_addresses()
        for msg in out:
            try:
                if isinstance(msg, REQUESTS):
                    self._send(msg)
                else:
                    self._respond(msg)
            except Exception:
                # the node's state has moved already: the other messages still go, a request that
                # could not go is reported failed (retried), an answer is lost as on a broken connection
                logger.exception("raft node %d: sending %s to node %d failed", self.node_id,
                                 type(msg).__name__, msg.dst)
                if isinstance(msg, REQUESTS):
                    self._fail_soon(msg.dst, msg.request_id)
        self._deliver()
        self._wakeup.set()
        return True

    def _deliver(self) -> None:
        assert self.node is not None
        for offset, item in self.node.poll_committed():
            if isinstance(item, Snapshot):
                for o in [o for o in self._proposals if o <= offset]:
                    _epoch, fut = self._proposals.pop(o)
                    if not fut.done():
                        fut.set_exception(ProposalLostError(f"offset {o} was replaced by a snapshot; outcome unknown"))
            else:
                p = self._proposals.pop(offset, None)
                if p is not None and not p[1].done():
                    if p[0] == item.epoch:
                        p[1].set_result(offset)
                    else:
                        p[1].set_exception(
                            ProposalLostError(f"offset {offset} committed in epoch {item.epoch}, not {p[0]}")
                        )
            if self.on_commit is not None:
                try:
                    self.on_commit(offset, item)
                except Exception:
                    logger.exception("raft node %d: on_commit failed at offset %d", self.node_id, offset)

    def _learn_voter_addresses(self) -> None:
        """The voter set's endpoints on the controller listener (when it changed)."""
        node = self.node
        if node is None or node.voter_set is self._voter_set_seen:
            return
        self._voter_set_seen = node.voter_set
        self.voters = tuple(sorted(node.voters))
        for v in node.voter_set.values():
            address = v.address(self.listener_name)
            if address is not None and v.node_id != self.node_id:
                self.addresses[v.node_id] = address

    def advertised_address(self) -> tuple[str, int]:
        """This node's controller endpoint as others reach it."""
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "localhost"
        return self.addresses.get(self.node_id) or self.advertised_endpoint or (host, self.port)

    # ------------------------------------------------------------------ voter changes (KIP-853)

    async def add_voter(self, voter: Voter, ack_when_committed: bool = True) -> VoterChange:
        """AddRaftVoter on the leader, as Kafka's ``AddVoterHandler``: the core's first checks, then
        an ApiVersions request to the new voter (its supported kraft.version range; no answer:
        REQUEST_TIMED_OUT), then the core's append of the new voter set; answered once it is
        committed (``ack_when_committed``) or appended."""
        node = self._running_node()
        if self._probing:
            return VoterChange(REQUEST_TIMED_OUT,
                               "Request timed out waiting for leader to handle previous voter change request")
        check = node.check_add_voter(voter, self._now())
        if check is not None:
            return check
        address = voter.address(self.listener_name)
        assert address is not None  # the handler checked the listener
        self._probing = True
        try:
            supported = await self._probe_kraft_version(address)
        finally:
            self._probing = False
        if supported is None:
            return VoterChange(REQUEST_TIMED_OUT, f"New voter ReplicaKey(id={voter.node_id}) is not ready to receive "
                                                  "requests")
        voter = Voter(voter.node_id, voter.directory_id, voter.endpoints, supported[0], supported[1])
        change = node.add_voter(voter, self._now())
        return await self._finish_voter_change(node, change, ack_when_committed)

    async def remove_voter(self, node_id: int, directory_id: uuid.UUID | None) -> VoterChange:
        node = self._running_node()
        if self._probing:
            return VoterChange(REQUEST_TIMED_OUT,
                               "Request timed out waiting for leader to handle previous voter change request")
        change = node.remove_voter(node_id, directory_id, self._now())
        return await self._finish_voter_change(node, change, True)

    def update_voter(self, voter: Voter) -> VoterChange:
        node = self._running_node()
        change = node.update_voter(voter, self._now())
        self._wakeup.set()
        return change

    def _running_node(self) -> RaftNode:
        if not self._running or self.node is None:
            raise RaftStoppedError(f"raft node {self.node_id} is not running")
        return self.node

    async def _finish_voter_change(self, node: RaftNode, change: VoterChange, wait: bool) -> VoterChange:
        if change.error != 0:
            return change
        self._wakeup.set()
        if not wait:
            return change
        assert self._loop is not None
        fut: asyncio.Future[int] = self._loop.create_future()
        self._proposals[change.offset] = (node.epoch, fut)
        try:
            async with asyncio.timeout(self.config.request_timeout_ms / 1000):
                await fut
        except TimeoutError:
            return VoterChange(REQUEST_TIMED_OUT, "Request timed out waiting for the new voter set to be committed")
        except (ProposalLostError, RaftStoppedError):
            return VoterChange(NOT_LEADER_OR_FOLLOWER)
        return change

    async def _probe_kraft_version(self, address: tuple[str, int]) -> tuple[int, int] | None:
        """ApiVersions to a new voter: its kraft.version range ((0, 0) when it names none), None when it
        does not answer within the request timeout."""
        header = RequestHeader(request_api_key=API_VERSIONS, request_api_version=3, correlation_id=1,
                               client_id=f"raft-client-{self.node_id}")
        body = ApiVersionsRequest(client_software_name="kbroker-raft", client_software_version="1.0")
        writer = None
        try:
            async with asyncio.timeout(self.config.request_timeout_ms / 1000):
                reader, writer = await self.open_connection(*address)
                if writer.is_closing():  # reset already (uvloop raises RuntimeError on a write to it)
                    raise ConnectionResetError("the connection was closed before the request was sent")
                writer.write(frame_of(encode_request(header, body)))
                frame = await read_frame(reader, self.max_frame_bytes)
            _h, resp = decode_response(frame, API_VERSIONS, 3)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ProtocolError, CloseConnection) as e:
            logger.info("raft node %d: the new voter at %s:%d did not answer ApiVersions: %s", self.node_id,
                        *address, e)
            return None
        finally:
            if writer is not None:
                writer.transport.abort()
        assert isinstance(resp, ApiVersionsResponse)  # (what decode_response gives for API_VERSIONS)
        if resp.error_code != 0:
            return None
        return next(((f.min_version, f.max_version) for f in resp.supported_features or []  # (first listed)
                     if f.name == KRAFT_VERSION_FEATURE), (0, 0))  # none listed: kraft.version 0 only

    async def _run_timer(self) -> None:
        node = self.node
        assert node is not None
        while self._running:
            try:
                now = self._now()
                deadline = node.next_deadline()
                if deadline <= now:
                    self._step(node.tick)
                    await asyncio.sleep(0)
                    continue
            except Exception:
                # Kafka's raft IO thread treats this as fatal; a timer that ended here would leave
                # the node moving only when a message comes (no fetch, no election, no resend): it
                # goes on after the retry backoff
                logger.exception("raft node %d: the timer's round failed; going on", self.node_id)
                await asyncio.sleep(self.config.retry_backoff_ms / 1000)
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout((deadline - now) / 1000):
                    await self._wakeup.wait()
