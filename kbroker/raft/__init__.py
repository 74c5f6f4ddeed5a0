"""A KRaft quorum core with no IO (issue 16), modelled on Kafka's ``org.apache.kafka.raft``.

``RaftNode`` takes messages and a clock in and gives messages out; it writes to an injected
``RaftLog`` and an injected ``QuorumStateStore``. See docs/raft.md.
"""

from kbroker.raft.log import Entry, MemoryLog, RaftLog, Snapshot
from kbroker.raft.messages import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    Message,
    VoteRequest,
    VoteResponse,
)
from kbroker.raft.node import NotLeaderError, RaftConfig, RaftNode, Role
from kbroker.raft.state_store import ElectionState, FileQuorumStateStore, MemoryQuorumStateStore

__all__ = [
    "BeginQuorumEpochRequest",
    "BeginQuorumEpochResponse",
    "ElectionState",
    "EndQuorumEpochRequest",
    "EndQuorumEpochResponse",
    "Entry",
    "FetchRequest",
    "FetchResponse",
    "FetchSnapshotRequest",
    "FetchSnapshotResponse",
    "FileQuorumStateStore",
    "MemoryLog",
    "MemoryQuorumStateStore",
    "Message",
    "NotLeaderError",
    "RaftConfig",
    "RaftLog",
    "RaftNode",
    "Role",
    "Snapshot",
    "VoteRequest",
    "VoteResponse",
]
