"""The messages a ``RaftNode`` exchanges: thin, immutable views of Kafka's KRaft RPCs.

Each class carries exactly the fields of the single-partition ``__cluster_metadata`` request or
response that the core reads or writes (see ``kbroker.raft.wire`` for the conversion to the generated
codec classes). ``src``/``dst`` are node ids; ``request_id`` pairs a response with its request
(the IO layer maps it to the correlation id) so that a node ignores responses it no longer expects,
as Kafka's ``RequestManager.isResponseExpected`` does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from kbroker.raft.log import Entry

NO_LEADER = -1


@dataclass(frozen=True, slots=True)
class _Addressed:
    """What every message carries: its sender, its destination and the request id."""

    src: int
    dst: int
    request_id: int


@dataclass(frozen=True, slots=True)
class _EpochAnswer(_Addressed):
    """A response's error code and the leader and epoch the responder knows."""

    error: int
    leader_id: int
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class _LeaderAnnouncement(_Addressed):
    """A leader's BeginQuorumEpoch or EndQuorumEpoch: which leader, of which epoch."""

    leader_id: int
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class VoteRequest(_Addressed):
    replica_epoch: int  # candidate: its new epoch; prospective (pre_vote): its current epoch
    last_offset_epoch: int
    last_offset: int  # log end offset of the sender
    pre_vote: bool
    # the candidate's metadata directory id and that of the voter it asks (Kafka's ReplicaKeys,
    # KIP-853); None: unknown (a static quorum)
    replica_directory_id: uuid.UUID | None = None
    voter_directory_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class VoteResponse(_EpochAnswer):
    vote_granted: bool


@dataclass(frozen=True, slots=True)
class BeginQuorumEpochRequest(_LeaderAnnouncement):
    voter_directory_id: uuid.UUID | None = None  # of the voter it is sent to; None: unknown


@dataclass(frozen=True, slots=True)
class BeginQuorumEpochResponse(_EpochAnswer):
    pass


@dataclass(frozen=True, slots=True)
class EndQuorumEpochRequest(_LeaderAnnouncement):
    preferred_successors: tuple[int, ...]
    # their directory ids, in the same order (PreferredCandidates' CandidateDirectoryId); () or
    # None entries: unknown
    successor_directory_ids: tuple[uuid.UUID | None, ...] = ()


@dataclass(frozen=True, slots=True)
class EndQuorumEpochResponse(_EpochAnswer):
    pass


@dataclass(frozen=True, slots=True)
class FetchRequest(_Addressed):  # src: the replica id (a voter or an observer)
    current_leader_epoch: int
    fetch_offset: int  # the sender's (flushed) log end offset
    last_fetched_epoch: int  # epoch of the entry at fetch_offset - 1 (0 when fetch_offset == 0)
    # how long the leader may hold the request while it has nothing new (Kafka's MaxWaitMs)
    max_wait_ms: int = 0
    # the high watermark the fetcher knows (Kafka 4.4's FetchPartition.HighWatermark, KIP-1166):
    # the leader answers at once when its own differs; -1: unknown
    high_watermark: int = -1
    # the fetcher's metadata directory id (Fetch v17+ ReplicaDirectoryId, KIP-853); None: unknown
    replica_directory_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class FetchResponse(_EpochAnswer):
    high_watermark: int
    base_offset: int  # offset of records[0]
    records: tuple[Entry, ...] = ()
    diverging_epoch: int = -1  # Kafka's DivergingEpoch.epoch; -1: none
    diverging_end_offset: int = -1
    snapshot_end_offset: int = -1  # Kafka's SnapshotId: fetch this snapshot first; -1: none
    snapshot_epoch: int = -1


@dataclass(frozen=True, slots=True)
class FetchSnapshotRequest(_Addressed):
    current_leader_epoch: int
    snapshot_end_offset: int
    snapshot_epoch: int
    position: int = 0


@dataclass(frozen=True, slots=True)
class FetchSnapshotResponse(_EpochAnswer):
    """The snapshot in one piece (``position`` 0, ``size`` its length): chunking by
    ``max_bytes`` is the IO layer's."""

    snapshot_end_offset: int = -1
    snapshot_epoch: int = -1
    data: object = None  # the state machine's (opaque here); bytes on the wire


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
