"""A ``RaftDriver``'s outbound connection to one peer and what is in flight on it (its own module:
the transport, ``kbroker/raft/transport.py``, and the snapshot transfer, ``snapshot_transfer.py``,
both use it)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from kbroker.config.connection_backoff import ConnectionBackoff
from kbroker.raft.messages import FetchSnapshotRequest, Message


@dataclass
class Peer:
    node_id: int
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None  # the connection's reader (the request timer looks in it)
    reader_task: asyncio.Task[object] | None = None
    connecting: asyncio.Task[object] | None = None
    queue: list[Message] = field(default_factory=list)
    # correlation id -> (core request id, api key, api version, fetch offset)
    inflight: dict[int, tuple[int, int, int, int | None]] = field(default_factory=dict)
    next_correlation: int = 0
    retry_at: float = 0.0
    # Kafka's ClusterConnectionStates for this peer: the connection setup timeout of the next
    # attempt and the reconnect backoff (set by the transport when it first needs the peer)
    backoff: ConnectionBackoff | None = None
    # when each request in flight was written (loop time), by correlation id; the timer that closes
    # the connection when the oldest has had no answer in the request timeout (Kafka's NetworkClient)
    sent_at: dict[int, float] = field(default_factory=dict)
    timeout_timer: asyncio.TimerHandle | None = None
    request_timeouts: int = 0  # connections closed for a request timeout
    # when each request queued while the connection is being set up was queued (loop time), by the
    # core's request id: one older than the request timeout once connected is failed, not sent
    queued_at: dict[int, float] = field(default_factory=dict)
    errors_logged: set[int] = field(default_factory=set)  # top-level errors already logged
    # KIP-368: while the connection re-authenticates, new requests wait in ``queue``; the exchange's
    # responses (by correlation id) go to these futures instead of the raft core
    reauthenticating: bool = False
    auth_waiters: dict[int, asyncio.Future[bytes]] = field(default_factory=dict)
    # FetchSnapshot in chunks (Kafka's position / MaxBytes): core request id -> (its request, the
    # snapshot's size, the bytes received so far); answered to the core once whole
    snapshot_parts: dict[int, tuple[FetchSnapshotRequest, int, bytearray]] = field(default_factory=dict)
