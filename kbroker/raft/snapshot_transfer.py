"""FetchSnapshot in chunks, both sides, for the sockets of a ``RaftDriver`` (``kbroker/raft/transport.py``,
whose ``RaftTransport`` this is mixed into): the part of a snapshot an inbound FetchSnapshot asks for
(its position, at most its MaxBytes), and an outbound fetch asking for the next chunk until the
snapshot is whole (resuming from the bytes an earlier fetch of it holds).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from kbroker.raft.messages import FetchSnapshotRequest, Message
from kbroker.raft.peers import Peer
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import fetch_snapshot as fs
from kbroker_protocol.primitives import Message as WireMessage
from kbroker_protocol.primitives import received_records

logger = logging.getLogger("kbroker.raft.io")  # the driver's logger

POSITION_OUT_OF_RANGE = int(ErrorCode.POSITION_OUT_OF_RANGE)
# Kafka's KafkaRaftClient.MAX_BATCH_SIZE_BYTES: the most a FetchSnapshot answer carries, whatever
# the request's MaxBytes
MAX_SNAPSHOT_CHUNK_BYTES = 8 * 1024 * 1024


class SnapshotTransfer:
    """The snapshot-chunk part of ``RaftTransport`` (the attributes below are the driver's)."""

    node_id: int

    if TYPE_CHECKING:
        def _fail_soon(self, dst: int, request_id: int) -> None: ...

        def _write_request(self, peer: Peer, msg: Message) -> None: ...

    @staticmethod
    def _snapshot_slice(body: Any, read: tuple[int, int]) -> None:
        """The part of the snapshot a FetchSnapshot asked for (Kafka's ``handleFetchSnapshotRequest``):
        from its position, at most its MaxBytes (and MAX_SNAPSHOT_CHUNK_BYTES); a position outside
        the snapshot is POSITION_OUT_OF_RANGE."""
        position, max_bytes = read
        p = body.topics[0].partitions[0]
        if p.error_code != 0:
            return
        data = p.unaligned_records
        size = len(data)
        if size == 0 and position == 0:
            return  # an empty snapshot (a test log's): answered whole
        if position < 0 or position >= size:
            p.error_code = POSITION_OUT_OF_RANGE
            p.size, p.position, p.unaligned_records = 0, 0, b""
            return
        p.size, p.position = size, position
        p.unaligned_records = data[position:position + max(0, min(max_bytes, MAX_SNAPSHOT_CHUNK_BYTES))]


    def _snapshot_chunk(self, peer: Peer, rid: int, body: WireMessage) -> bool:
        """A FetchSnapshot answer: True when it is for the core (an error, or the snapshot whole, its
        chunks joined in ``body``), False when the next chunk was asked for (Kafka's follower
        fetches from the position it has until it has ``size`` bytes). An answer at another
        position than the bytes held, another snapshot or size, or no progress, fails the fetch
        (the core asks again)."""
        request = peer.snapshot_parts.get(rid)
        if not isinstance(body, fs.FetchSnapshotResponse) or len(body.topics) != 1 or len(body.topics[0].partitions) != 1:
            peer.snapshot_parts.pop(rid, None)
            return True  # from_wire refuses it
        p = body.topics[0].partitions[0]
        if body.error_code or p.error_code or request is None:
            peer.snapshot_parts.pop(rid, None)
            return True
        core_request, size, held = request
        chunk = bytes(received_records(p.unaligned_records) or b"")
        same = (p.snapshot_id.end_offset, p.snapshot_id.epoch) == (core_request.snapshot_end_offset,
                                                                    core_request.snapshot_epoch)
        if (p.position != len(held) or not same or (held and p.size != size) or len(held) + len(chunk) > p.size
                or (not chunk and p.size > 0)):
            logger.warning("raft node %d: FetchSnapshot answer from node %d at position %d (%d bytes of %d) does not "
                           "continue the %d bytes held of snapshot %s; fetching it again", self.node_id, peer.node_id,
                           p.position, len(chunk), p.size, len(held),
                           (core_request.snapshot_end_offset, core_request.snapshot_epoch))
            del peer.snapshot_parts[rid]
            self._fail_soon(peer.node_id, rid)
            return False
        held += chunk
        if len(held) == p.size:
            del peer.snapshot_parts[rid]
            p.position, p.unaligned_records = 0, bytes(held)
            return True
        peer.snapshot_parts[rid] = (core_request, p.size, held)
        self._write_request(peer, dataclasses.replace(core_request, position=len(held)))
        return False

    def _start_snapshot_fetch(self, peer: Peer, msg: FetchSnapshotRequest) -> FetchSnapshotRequest:
        """The core asks for a snapshot (position 0): the request to send. The core times out its one
        request after ``request_timeout_ms`` however many chunks the transfer has taken, and asks
        again; an earlier fetch of the same snapshot from this peer hands over the bytes it holds,
        so that the new one goes on from there (as Kafka's follower keeps its partial snapshot and
        fetches from its position) instead of starting over, and the earlier one stops."""
        key = (msg.snapshot_end_offset, msg.snapshot_epoch)
        resumed: tuple[int, bytearray] | None = None
        for rid, (earlier, size, held) in list(peer.snapshot_parts.items()):
            if (earlier.snapshot_end_offset, earlier.snapshot_epoch) == key:
                del peer.snapshot_parts[rid]
                if held and (resumed is None or len(held) > len(resumed[1])):
                    resumed = (size, held)
        if resumed is None:
            peer.snapshot_parts[msg.request_id] = (msg, 0, bytearray())
            return msg
        peer.snapshot_parts[msg.request_id] = (msg, resumed[0], resumed[1])
        return dataclasses.replace(msg, position=len(resumed[1]))
