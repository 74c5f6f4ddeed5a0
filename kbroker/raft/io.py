"""An asyncio driver for one ``RaftNode``: Kafka's KRaft RPCs over TCP, a timer, proposals.

``RaftDriver`` owns a ``RaftNode`` and runs it on the event loop:

- a listener speaking Kafka's framing (``size i32 | RequestHeader | body``) for Vote,
  BeginQuorumEpoch, EndQuorumEpoch, Fetch and FetchSnapshot (and ApiVersions, listing them),
  decoded with ``kbroker_protocol.api`` and converted with ``kbroker.raft.wire``; the answers on one connection go out in request order
  (as Kafka's muted channels do), a held Fetch delaying the answers queued behind it;
- one outbound connection per other voter, opened on the first request and reopened after a
  failure (after ``reconnect_backoff_ms``); requests that cannot be delivered, and those in flight
  on a connection that breaks, are reported to the node (``request_failed``) so that it retries;
- a timer task that ticks the node at ``next_deadline()`` and whenever something may have moved
  it earlier;
- ``propose(values)``, a coroutine that returns the offset of the last value once it is
  committed, or raises ``NotLeaderError`` (with ``leader_id``, the leader hint) at once;
- ``on_commit(offset, entry_or_snapshot)`` for every committed entry in order (control records
  included), a ``Snapshot`` first when the state must be loaded from one.

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
import ssl
import struct
from collections import ChainMap, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kbroker.raft.log import Entry, RaftLog, Snapshot
from kbroker.raft.messages import REQUESTS, FetchRequest, FetchResponse, Message
from kbroker.raft.node import NotLeaderError, RaftConfig, RaftNode, Role, VoterChange
from kbroker.raft.state_store import ElectionState, QuorumStateStore
from kbroker.raft.voters import KRAFT_VERSION_MAX, KRAFT_VERSION_MIN, Voter, snapshot_controls
from kbroker.raft.wire import WireError, from_wire, to_wire
from kbroker_protocol.api import decode_request, decode_response, encode_request, encode_response
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.messages import REQUESTS as REQUESTS_BY_KEY
from kbroker_protocol.messages import RESPONSES, RequestHeader
from kbroker_protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse

logger = logging.getLogger(__name__)

VOTE, BEGIN_QUORUM_EPOCH, END_QUORUM_EPOCH, FETCH, FETCH_SNAPSHOT = 52, 53, 54, 1, 59
API_VERSIONS = 18
RAFT_APIS = frozenset({VOTE, BEGIN_QUORUM_EPOCH, END_QUORUM_EPOCH, FETCH, FETCH_SNAPSHOT})
# the versions this driver sends (the highest of Kafka 4.4 the codec has); it answers any version
# the codec decodes
REQUEST_VERSIONS = {VOTE: 2, BEGIN_QUORUM_EPOCH: 1, END_QUORUM_EPOCH: 1, FETCH: 18, FETCH_SNAPSHOT: 1}
_SIZE = struct.Struct(">i")
_CORRELATION = struct.Struct(">i")
INCONSISTENT_CLUSTER_ID = int(ErrorCode.INCONSISTENT_CLUSTER_ID)
INVALID_REQUEST = int(ErrorCode.INVALID_REQUEST)
REQUEST_TIMED_OUT = int(ErrorCode.REQUEST_TIMED_OUT)
NOT_LEADER_OR_FOLLOWER = int(ErrorCode.NOT_LEADER_OR_FOLLOWER)
KRAFT_VERSION_FEATURE = "kraft.version"


class RaftStoppedError(Exception):
    """The driver stopped before a proposal was committed (its outcome is unknown)."""


class ProposalLostError(Exception):
    """Another entry was committed at the offset of a proposal: it was truncated away after its
    leader lost the leadership."""


class _CloseConnection(Exception):
    pass


@dataclass(eq=False)
class _Inbound:
    """An accepted connection and its answers, in request order."""

    writer: asyncio.StreamWriter
    slots: deque[list[Any]] = field(default_factory=deque)  # [correlation id, frame or None]
    closed: bool = False

    def add_slot(self, correlation_id: int) -> list[Any]:
        slot = [correlation_id, None]
        self.slots.append(slot)
        return slot

    def fill(self, slot: list[Any], frame: bytes) -> None:
        slot[1] = frame
        if self.closed:
            return
        while self.slots and self.slots[0][1] is not None:
            self.writer.write(self.slots.popleft()[1])


@dataclass
class _Peer:
    node_id: int
    writer: asyncio.StreamWriter | None = None
    reader_task: asyncio.Task | None = None
    connecting: asyncio.Task | None = None
    queue: list[Message] = field(default_factory=list)
    # correlation id -> (core request id, api key, api version, fetch offset)
    inflight: dict[int, tuple[int, int, int, int | None]] = field(default_factory=dict)
    next_correlation: int = 0
    retry_at: float = 0.0
    errors_logged: set[int] = field(default_factory=set)  # top-level errors already logged


def _frame(payload: bytes | Sequence[Any]) -> bytes:
    if isinstance(payload, bytes):
        return _SIZE.pack(len(payload)) + payload
    data = b"".join(p if isinstance(p, bytes) else bytes(p) for p in payload)
    return _SIZE.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    size = _SIZE.unpack(await reader.readexactly(4))[0]
    if size < 0 or size > max_bytes:
        raise _CloseConnection(f"frame of {size} bytes (limit {max_bytes})")
    return await reader.readexactly(size)


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


class RaftDriver:
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
        max_frame_bytes: int = 100 * 1024 * 1024,  # Kafka's socket.request.max.bytes
        reconnect_backoff_ms: int = 50,  # Kafka's reconnect.backoff.ms
        kraft_version: int = 0,
        directory_id: Any = None,
        listener_name: str = "CONTROLLER",
        bootstrap_servers: Sequence[tuple[str, int]] = (),
        read_snapshot_controls: Callable[[Snapshot], Any] | None = None,
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
        self._voter_set_seen: Any = None
        self._probing = False
        self.log = log
        self.store = store
        self.config = config or RaftConfig()
        self.cluster_id = cluster_id
        self.on_commit = on_commit
        self.host = host
        self.port = port
        self.rng = rng or random.Random()
        self.max_frame_bytes = max_frame_bytes
        self.reconnect_backoff_ms = reconnect_backoff_ms
        self.node: RaftNode | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._server: asyncio.Server | None = None
        self._timer: asyncio.Task | None = None
        self._wakeup = asyncio.Event()
        self._inbound: set[_Inbound] = set()
        self._inbound_tasks: set[asyncio.Task] = set()
        self._peers: dict[int, _Peer] = {}
        self._requests: dict[int, tuple[_Inbound, list[Any], int, int]] = {}  # id -> conn, slot, key, version
        self._next_inbound_id = 0
        self._proposals: dict[int, tuple[int, asyncio.Future[int]]] = {}
        self._running = False
        # Other APIs served on this listener (Kafka's controller APIs: DescribeQuorum, DescribeCluster,
        # BrokerRegistration, ...): api key -> async handler(header, body) -> response body.
        self.handlers: dict[int, Callable[[Any, Any], Any]] = {}
        # what observers (replicas outside the voter set) last fetched: id -> (fetch offset, time ms)
        self.observers: dict[int, tuple[int, int]] = {}
        self._handler_tasks: set[asyncio.Task] = set()
        # Security of the controller listener (issue 17, set by kbroker.security.internode before
        # listen()): the server's TLS context, the SASL exchange run on each accepted connection
        # before its requests (False: it failed and is closed), the factory of outbound connections.
        self.server_ssl: ssl.SSLContext | None = None
        self.authenticate: Callable[[asyncio.StreamReader, asyncio.StreamWriter, Callable[[bytes], None]],
                                    Awaitable[bool]] | None = None
        self.open_connection: Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = \
            asyncio.open_connection

    # ------------------------------------------------------------------ lifecycle

    async def listen(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._serve, self.host, self.port, ssl=self.server_ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

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
            for peer in self._peers.values():
                if peer.writer is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(peer.writer.drain(), self.config.request_timeout_ms / 1000)
        self._running = False
        tasks = [t for t in (self._timer,) if t is not None]
        if self._server is not None:
            self._server.close()
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

    async def propose(self, values: Sequence[Any], control: bool = False) -> int:
        """Append ``values`` on the leader; returns the offset of the last once committed.
        Raises ``NotLeaderError`` (``leader_id`` is the leader this node knows, -1 if none)."""
        if not self._running or self.node is None:
            raise RaftStoppedError(f"raft node {self.node_id} is not running")
        node = self.node
        offset = node.propose(values, self._now(), control=control)
        assert self._loop is not None
        fut: asyncio.Future[int] = self._loop.create_future()
        self._proposals[offset] = (node.epoch, fut)
        self._wakeup.set()
        return await fut

    def commit_now(self, values: Sequence[Any], control: bool = False) -> int:
        """A sole voter's synchronous commit: append ``values``, flush and commit them before
        returning the offset of the last (``on_commit`` has been called for them). Raises
        ``NotLeaderError`` on any other node (use ``propose``)."""
        if not self._running or self.node is None:
            raise RaftStoppedError(f"raft node {self.node_id} is not running")
        node = self.node
        if node.voters != frozenset({self.node_id}):
            raise NotLeaderError(self.node_id, node.epoch, node.leader_id)
        now = self._now()
        offset = node.propose(values, now, control=control)
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

    def snapshot(self, end_offset: int, data: bytes) -> Snapshot:
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
        try:
            out = fn(self._now())
        except Exception:
            logger.exception("raft node %d: the core failed on an input; ignored", self.node_id)
            return False
        self._learn_voter_addresses()
        for msg in out:
            if isinstance(msg, REQUESTS):
                self._send(msg)
            else:
                self._respond(msg)
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
        return self.addresses.get(self.node_id, (host, self.port))

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
        if supported is False:
            supported = (0, 0)
        voter = Voter(voter.node_id, voter.directory_id, voter.endpoints, supported[0], supported[1])
        change = node.add_voter(voter, self._now())
        return await self._finish_voter_change(node, change, ack_when_committed)

    async def remove_voter(self, node_id: int, directory_id: Any) -> VoterChange:
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

    async def _probe_kraft_version(self, address: tuple[str, int]) -> tuple[int, int] | bool | None:
        """ApiVersions to a new voter: its kraft.version range (False: it names none), None when it
        does not answer within the request timeout."""
        header = RequestHeader(request_api_key=API_VERSIONS, request_api_version=3, correlation_id=1,
                               client_id=f"raft-client-{self.node_id}")
        body = ApiVersionsRequest(client_software_name="kbroker-raft", client_software_version="1.0")
        writer = None
        try:
            async with asyncio.timeout(self.config.request_timeout_ms / 1000):
                reader, writer = await self.open_connection(*address)
                writer.write(_frame(encode_request(header, body)))
                frame = await _read_frame(reader, self.max_frame_bytes)
            _h, resp = decode_response(frame, API_VERSIONS, 3)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ProtocolError, _CloseConnection) as e:
            logger.info("raft node %d: the new voter at %s:%d did not answer ApiVersions: %s", self.node_id,
                        *address, e)
            return None
        finally:
            if writer is not None:
                writer.transport.abort()
        if resp.error_code != 0:
            return None
        for f in resp.supported_features or []:
            if f.name == KRAFT_VERSION_FEATURE:
                return f.min_version, f.max_version
        return False

    async def _run_timer(self) -> None:
        node = self.node
        assert node is not None
        while self._running:
            now = self._now()
            deadline = node.next_deadline()
            if deadline <= now:
                self._step(node.tick)
                await asyncio.sleep(0)
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout((deadline - now) / 1000):
                    await self._wakeup.wait()

    # ------------------------------------------------------------------ inbound

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if not self._running:
            writer.transport.abort()
            return
        assert task is not None
        self._inbound_tasks.add(task)
        conn = _Inbound(writer)
        self._inbound.add(conn)
        peer = writer.get_extra_info("peername")
        try:
            if self.authenticate is not None and not await self.authenticate(
                    reader, writer, lambda frame: self._on_request(conn, frame)):
                return
            while self._running:
                frame = await _read_frame(reader, self.max_frame_bytes)
                self._on_request(conn, frame)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            # CancelledError: stop() (a client_connected_cb task must not end cancelled)
            pass
        except _CloseConnection as e:
            logger.warning("raft node %d: closing the connection from %s: %s", self.node_id, peer, e)
        except Exception:
            logger.exception("raft node %d: closing the connection from %s", self.node_id, peer)
        finally:
            conn.closed = True
            self._inbound.discard(conn)
            self._inbound_tasks.discard(task)
            writer.transport.abort()

    def _on_request(self, conn: _Inbound, frame: bytes) -> None:
        try:
            header, body = decode_request(frame)
        except ProtocolError as e:
            raise _CloseConnection(f"undecodable request: {e}") from None
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
            conn.fill(slot, _frame(encode_response(slot[0], api_key, version, resp)))
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
            raise _CloseConnection(f"API key {api_key} is not served on the raft listener")
        slot = conn.add_slot(header.correlation_id)
        if self.cluster_id is not None and body.cluster_id is not None and body.cluster_id != self.cluster_id:
            self._error_answer(conn, slot, api_key, version, INCONSISTENT_CLUSTER_ID)
            return
        self._next_inbound_id += 1
        rid = self._next_inbound_id
        try:
            msg = from_wire(body, None, self.node_id, rid)
        except (WireError, ValueError) as e:
            logger.warning("raft node %d: invalid %s request: %s", self.node_id, type(body).__name__, e)
            self._error_answer(conn, slot, api_key, version, INVALID_REQUEST)
            return
        self._requests[rid] = (conn, slot, api_key, version)
        assert self.node is not None
        node = self.node
        if isinstance(msg, FetchRequest) and msg.src not in node.voters:
            self.observers[msg.src] = (msg.fetch_offset, self._now())
        if not self._step(lambda now: node.handle(msg, now)):
            # the core failed on it: no answer will come, and the answers behind it would wait
            self._requests.pop(rid, None)
            raise _CloseConnection(f"{type(msg).__name__} from node {msg.src} could not be handled")

    async def _run_handler(self, conn: _Inbound, slot: list[Any], header: Any, body: Any,
                           handler: Callable[[Any, Any], Any]) -> None:
        api_key, version = header.request_api_key, header.request_api_version
        try:
            resp = await handler(header, body)
            frame = _frame(encode_response(slot[0], api_key, version, resp))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("raft node %d: the handler of API %d failed; closing the connection", self.node_id,
                             api_key)
            conn.closed = True
            conn.writer.transport.abort()
            return
        conn.fill(slot, frame)

    def _error_answer(self, conn: _Inbound, slot: list[Any], api_key: int, version: int, code: int) -> None:
        body = RESPONSES[api_key](error_code=code)
        conn.fill(slot, _frame(encode_response(slot[0], api_key, version, body)))

    def _respond(self, msg: Message) -> None:
        entry = self._requests.pop(msg.request_id, None)
        if entry is None:
            logger.debug("raft node %d: answer %s to a request no longer open", self.node_id, type(msg).__name__)
            return
        conn, slot, api_key, version = entry
        body = to_wire(msg, self.cluster_id, self.voters)
        if isinstance(msg, FetchResponse) and msg.leader_id >= 0:
            # Kafka's NodeEndpoints (Fetch v16+): where the leader is, for a replica that does not know
            address = self.advertised_address() if msg.leader_id == self.node_id else self.addresses.get(msg.leader_id)
            if address is not None:
                body.node_endpoints = [type(body).NodeEndpoint(node_id=msg.leader_id, host=address[0], port=address[1],
                                                               rack=None)]
        conn.fill(slot, _frame(encode_response(slot[0], api_key, version, body)))

    # ------------------------------------------------------------------ outbound

    def _peer(self, node_id: int) -> _Peer:
        peer = self._peers.get(node_id)
        if peer is None:
            peer = self._peers[node_id] = _Peer(node_id)
        return peer

    def _send(self, msg: Message) -> None:
        peer = self._peer(msg.dst)
        assert self._loop is not None
        if peer.writer is not None:
            self._write_request(peer, msg)
        elif peer.connecting is not None:
            peer.queue.append(msg)
        elif self._loop.time() < peer.retry_at or msg.dst not in self.addresses:
            self._fail_soon(msg.dst, msg.request_id)
        else:
            peer.queue.append(msg)
            peer.connecting = self._loop.create_task(self._connect(peer), name=f"raft-connect-{self.node_id}-{msg.dst}")

    def _fail_soon(self, dst: int, request_id: int) -> None:
        assert self._loop is not None and self.node is not None
        node = self.node
        self._loop.call_soon(self._step, lambda now: node.request_failed(dst, request_id, now))

    async def _connect(self, peer: _Peer) -> None:
        assert self._loop is not None
        host, port = self.addresses[peer.node_id]
        try:
            async with asyncio.timeout(self.config.request_timeout_ms / 1000):
                reader, writer = await self.open_connection(host, port)
        except (OSError, TimeoutError) as e:
            # a refused login was logged by the security client already (once per 30 s): DEBUG here
            logger.log(logging.DEBUG if getattr(e, "logged", False) else logging.INFO,
                       "raft node %d: cannot connect to node %d at %s:%d: %s", self.node_id, peer.node_id, host, port, e)
            peer.connecting = None
            peer.retry_at = self._loop.time() + self.reconnect_backoff_ms / 1000
            queued, peer.queue = peer.queue, []
            for msg in queued:
                self._fail_soon(msg.dst, msg.request_id)
            return
        peer.connecting = None
        if not self._running:
            writer.transport.abort()
            return
        peer.writer = writer
        peer.errors_logged.clear()
        peer.reader_task = self._loop.create_task(self._read_responses(peer, reader, writer))
        queued, peer.queue = peer.queue, []
        for msg in queued:
            self._write_request(peer, msg)

    def _write_request(self, peer: _Peer, msg: Message) -> None:
        assert peer.writer is not None
        body = to_wire(msg, self.cluster_id, self.voters)
        api_key = body.API_KEY
        version = REQUEST_VERSIONS[api_key]
        peer.next_correlation = (peer.next_correlation + 1) & 0x7FFFFFFF
        cid = peer.next_correlation
        header = RequestHeader(
            request_api_key=api_key, request_api_version=version, correlation_id=cid,
            client_id=f"raft-client-{self.node_id}",
        )
        fetch_offset = msg.fetch_offset if isinstance(msg, FetchRequest) else None
        peer.inflight[cid] = (msg.request_id, api_key, version, fetch_offset)
        peer.writer.write(_frame(encode_request(header, body)))

    async def _read_responses(self, peer: _Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while self._running:
                frame = await _read_frame(reader, self.max_frame_bytes)
                if len(frame) < 4:
                    raise _CloseConnection(f"response frame of {len(frame)} bytes")
                cid = _CORRELATION.unpack_from(frame)[0]
                pending = peer.inflight.pop(cid, None)
                if pending is None:
                    raise _CloseConnection(f"response with unknown correlation id {cid}")
                rid, api_key, version, fetch_offset = pending
                try:
                    _header, body = decode_response(frame, api_key, version)
                except ProtocolError as e:
                    self._fail_soon(peer.node_id, rid)
                    raise _CloseConnection(f"undecodable response: {e}") from None
                for endpoint in getattr(body, "node_endpoints", None) or ():
                    if endpoint.node_id >= 0 and endpoint.node_id != self.node_id:
                        self.addresses[endpoint.node_id] = (endpoint.host, endpoint.port)
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
                    raise _CloseConnection(f"invalid response: {e}") from None
                node = self.node
                assert node is not None
                self._step(lambda now, m=msg, n=node: n.handle(m, now))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except _CloseConnection as e:
            logger.warning("raft node %d: closing the connection to node %d: %s", self.node_id, peer.node_id, e)
        except Exception:
            logger.exception("raft node %d: closing the connection to node %d", self.node_id, peer.node_id)
        finally:
            writer.transport.abort()
            if peer.writer is writer:
                peer.writer = None
                peer.reader_task = None
                assert self._loop is not None
                peer.retry_at = self._loop.time() + self.reconnect_backoff_ms / 1000
            lost, peer.inflight = peer.inflight, {}
            if self._running:
                for rid, *_ in lost.values():
                    self._fail_soon(peer.node_id, rid)
