"""The messages a ``RaftNode`` exchanges: thin, immutable views of Kafka's KRaft RPCs.

Each class carries exactly the fields of the single-partition ``__cluster_metadata`` request or
response that the core reads or writes (see ``kbroker.raft.wire`` for the conversion to the generated
codec classes). ``src``/``dst`` are node ids; ``request_id`` pairs a response with its request
(the IO layer maps it to the correlation id) so that a node ignores responses it no longer expects,
as Kafka's ``RequestManager.isResponseExpected`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kbroker.raft.log import Entry

NO_LEADER = -1


@dataclass(frozen=True, slots=True)
class VoteRequest:
    src: int
    dst: int
    request_id: int
    replica_epoch: int  # candidate: its new epoch; prospective (pre_vote): its current epoch
    last_offset_epoch: int
    last_offset: int  # log end offset of the sender
    pre_vote: bool


@dataclass(frozen=True, slots=True)
class VoteResponse:
    src: int
    dst: int
    request_id: int
    error: int
    leader_id: int
    leader_epoch: int
    vote_granted: bool


@dataclass(frozen=True, slots=True)
class BeginQuorumEpochRequest:
    src: int
    dst: int
    request_id: int
    leader_id: int
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class BeginQuorumEpochResponse:
    src: int
    dst: int
    request_id: int
    error: int
    leader_id: int
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class EndQuorumEpochRequest:
    src: int
    dst: int
    request_id: int
    leader_id: int
    leader_epoch: int
    preferred_successors: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EndQuorumEpochResponse:
    src: int
    dst: int
    request_id: int
    error: int
    leader_id: int
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class FetchRequest:
    src: int  # the replica id (a voter or an observer)
    dst: int
    request_id: int
    current_leader_epoch: int
    fetch_offset: int  # the sender's (flushed) log end offset
    last_fetched_epoch: int  # epoch of the entry at fetch_offset - 1 (0 when fetch_offset == 0)
    # how long the leader may hold the request while it has nothing new (Kafka's MaxWaitMs)
    max_wait_ms: int = 0
    # the high watermark the fetcher knows (Kafka 4.4's FetchPartition.HighWatermark, KIP-1166):
    # the leader answers at once when its own differs; -1: unknown
    high_watermark: int = -1
    # the fetcher's metadata directory id (Fetch v17+ ReplicaDirectoryId, KIP-853); None: unknown
    replica_directory_id: Any = None


@dataclass(frozen=True, slots=True)
class FetchResponse:
    src: int
    dst: int
    request_id: int
    error: int
    leader_id: int
    leader_epoch: int
    high_watermark: int
    base_offset: int  # offset of records[0]
    records: tuple[Entry, ...] = ()
    diverging_epoch: int = -1  # Kafka's DivergingEpoch.epoch; -1: none
    diverging_end_offset: int = -1
    snapshot_end_offset: int = -1  # Kafka's SnapshotId: fetch this snapshot first; -1: none
    snapshot_epoch: int = -1


@dataclass(frozen=True, slots=True)
class FetchSnapshotRequest:
    src: int
    dst: int
    request_id: int
    current_leader_epoch: int
    snapshot_end_offset: int
    snapshot_epoch: int
    position: int = 0


@dataclass(frozen=True, slots=True)
class FetchSnapshotResponse:
    """The snapshot in one piece (``position`` 0, ``size`` its length): chunking by
    ``max_bytes`` is the IO layer's."""

    src: int
    dst: int
    request_id: int
    error: int
    leader_id: int
    leader_epoch: int
    snapshot_end_offset: int = -1
    snapshot_epoch: int = -1
    data: Any = None


Message = (
    VoteRequest
    | VoteResponse
    | BeginQuorumEpochRequest
    | BeginQuorumEpochResponse
    | EndQuorumEpochRequest
    | EndQuorumEpochResponse
    | FetchRequest
    | FetchResponse
    | FetchSnapshotRequest
    | FetchSnapshotResponse
)

REQUESTS = (VoteRequest, BeginQuorumEpochRequest, EndQuorumEpochRequest, FetchRequest, FetchSnapshotRequest)
