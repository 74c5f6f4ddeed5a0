"""Replica keys (id + metadata directory id, KIP-853) in elections, as Kafka 4.4's KafkaRaftClient:
Vote requests name the candidate's directory id and the asked voter's, BeginQuorumEpoch the
voter's; a request for another directory id of this node's id gets INVALID_VOTER_KEY; a vote is
for a candidate's id and directory id (the quorum-state's votedDirectoryId), so another directory
under the same id is refused in that epoch, across a restart too."""

from __future__ import annotations

import base64
import json
import random
import uuid

import pytest

from kbroker.raft.log import MemoryLog
from kbroker.raft.messages import BeginQuorumEpochRequest, BeginQuorumEpochResponse, VoteRequest, VoteResponse
from kbroker.raft.node import RaftConfig, RaftNode, Role
from kbroker.raft.state_store import ElectionState, FileQuorumStateStore, QuorumStateError
from kbroker.raft.voters import Voter
from kbroker.raft.wire import from_wire, to_wire
from kbroker_protocol.errors import ErrorCode as E

CFG = RaftConfig(election_timeout_ms=100, fetch_timeout_ms=200, election_backoff_max_ms=100)
D = {n: uuid.UUID(int=n * 1111 + 5) for n in (1, 2, 3)}
OTHER = uuid.UUID(int=424242)
VOTERS = {n: Voter(n, D[n], (("CONTROLLER", "localhost", 9000 + n),)) for n in D}


def _node(tmp_path, log: MemoryLog | None = None) -> RaftNode:
    return RaftNode(1, VOTERS, log or MemoryLog(), FileQuorumStateStore(tmp_path), random.Random(1), CFG, now=0,
                    kraft_version=1, directory_id=D[1])


def _vote(node: RaftNode, candidate_dir: uuid.UUID | None, voter_dir: uuid.UUID | None = D[1],
          epoch: int = 1) -> VoteResponse:
    [resp] = node.handle(VoteRequest(2, 1, 9, epoch, 0, 0, False, candidate_dir, voter_dir), 1)
    assert isinstance(resp, VoteResponse)
    return resp


def test_requests_name_both_directory_ids_on_the_wire():
    net_node = RaftNode(1, VOTERS, MemoryLog(), _MemoryStore(), random.Random(1), CFG, now=0, kraft_version=1,
                        directory_id=D[1])
    out = net_node.tick(10_000)  # the election timeout passed: pre-votes to 2 and 3
    votes = [m for m in out if isinstance(m, VoteRequest)]
    assert sorted(m.dst for m in votes) == [2, 3]
    for m in votes:
        assert (m.replica_directory_id, m.voter_directory_id) == (D[1], D[m.dst])
        wire = to_wire(m, "cluster")
        p = wire.topics[0].partitions[0]
        assert (p.replica_directory_id, p.voter_directory_id) == (D[1], D[m.dst])
        assert from_wire(wire, None, m.dst, 1) == VoteRequest(1, m.dst, 1, m.replica_epoch, m.last_offset_epoch,
                                                              m.last_offset, m.pre_vote, D[1], D[m.dst])
    begin = BeginQuorumEpochRequest(1, 2, 3, 1, 4, D[2])
    wire = to_wire(begin, "cluster")
    assert wire.topics[0].partitions[0].voter_directory_id == D[2]
    assert from_wire(wire, None, 2, 3) == begin
    # a static quorum's voters have none: the zero UUID, read back as none
    static = to_wire(VoteRequest(1, 2, 3, 4, 0, 0, False), "cluster")
    assert static.topics[0].partitions[0].voter_directory_id == uuid.UUID(int=0)
    assert from_wire(static, None, 2, 3).voter_directory_id is None


def test_a_request_for_another_directory_of_this_id_is_refused(tmp_path):
    node = _node(tmp_path)
    resp = _vote(node, D[2], voter_dir=OTHER)
    assert (resp.error, resp.vote_granted) == (E.INVALID_VOTER_KEY, False)
    assert node.voted_id == -1
    # (the leader is learnt first, as Kafka's handleBeginQuorumEpochRequest does, then the key checked)
    [begin] = [m for m in node.handle(BeginQuorumEpochRequest(2, 1, 10, 2, 3, OTHER), 2)
               if isinstance(m, BeginQuorumEpochResponse)]
    assert begin.error == E.INVALID_VOTER_KEY and node.leader_id == 2
    [begin] = [m for m in node.handle(BeginQuorumEpochRequest(2, 1, 11, 2, 3, D[1]), 3)
               if isinstance(m, BeginQuorumEpochResponse)]
    assert begin.error == E.NONE and node.leader_id == 2


def test_a_vote_is_for_a_candidates_id_and_directory_across_a_restart(tmp_path):
    log = MemoryLog()
    node = _node(tmp_path, log)
    assert _vote(node, D[2]).vote_granted
    assert (node.voted_id, node.voted_directory_id) == (2, D[2])
    doc = json.loads((tmp_path / "quorum-state").read_text())
    assert doc["votedId"] == 2
    assert doc["votedDirectoryId"] == base64.urlsafe_b64encode(D[2].bytes).rstrip(b"=").decode()
    for n in (node, _node(tmp_path, log)):  # and after a restart from the quorum-state
        assert n.epoch == 1 and n.role is Role.UNATTACHED
        assert not _vote(n, OTHER).vote_granted  # the same id, another directory: not the voted candidate
        assert _vote(n, D[2]).vote_granted  # the voted candidate again
    # a vote recorded without a directory id (kraft.version 0) is for that id whatever its directory
    (tmp_path / "v0").mkdir()
    FileQuorumStateStore(tmp_path / "v0").write(ElectionState(1, -1, 2))
    fresh = _node(tmp_path / "v0", MemoryLog())
    assert fresh.voted_directory_id is None and _vote(fresh, OTHER).vote_granted


def test_the_quorum_state_directory_id_round_trip_and_refusal(tmp_path):
    store = FileQuorumStateStore(tmp_path)
    store.write(ElectionState(4, -1, 3, D[3]))
    assert store.read() == ElectionState(4, -1, 3, D[3])
    for bad in ("not-a-uuid", 7, "AAAA"):
        doc = json.loads((tmp_path / "quorum-state").read_text())
        doc["votedDirectoryId"] = bad
        (tmp_path / "quorum-state").write_text(json.dumps(doc))
        with pytest.raises(QuorumStateError, match="votedDirectoryId"):
            store.read()


class _MemoryStore(FileQuorumStateStore):
    """A store that keeps the state in memory (the node never reads it back here)."""

    def __init__(self) -> None:
        self.state: ElectionState | None = None

    def read(self) -> ElectionState | None:
        return self.state

    def write(self, state: ElectionState) -> None:
        self.state = state


def test_the_quorum_state_form_follows_the_kraft_version(tmp_path):
    """Kafka's ``KRaftVersion.quorumStateVersion``: at kraft.version 0 data_version 0 with the voter
    ids, at 1 data_version 1 with the votedDirectoryId; each read back."""
    (tmp_path / "static").mkdir()
    static = RaftNode(1, (1, 2, 3), MemoryLog(), FileQuorumStateStore(tmp_path / "static"), random.Random(1), CFG,
                      now=0)
    [resp] = static.handle(VoteRequest(2, 1, 9, 1, 0, 0, False), 1)
    assert resp.vote_granted
    doc = json.loads((tmp_path / "static" / "quorum-state").read_text())
    assert doc == {"clusterId": "", "leaderId": -1, "leaderEpoch": 1, "votedId": 2, "appliedOffset": 0,
                   "currentVoters": [{"voterId": 1}, {"voterId": 2}, {"voterId": 3}], "data_version": 0}
    back = FileQuorumStateStore(tmp_path / "static").read()
    assert back == ElectionState(1, -1, 2) and (back.kraft_version, back.voters) == (0, (1, 2, 3))
    node = _node(tmp_path)  # a dynamic quorum (kraft.version 1)
    assert _vote(node, D[2]).vote_granted
    doc = json.loads((tmp_path / "quorum-state").read_text())
    assert doc["data_version"] == 1 and "currentVoters" not in doc
    bad = dict(doc, data_version=0, currentVoters=[{"voterId": "x"}])
    (tmp_path / "quorum-state").write_text(json.dumps(bad))
    with pytest.raises(QuorumStateError, match="currentVoters"):
        FileQuorumStateStore(tmp_path).read()


def test_a_resigning_leader_names_its_successors_directories():
    from tests.raft.voter_change_helpers import DIRS, Net

    net = Net([1, 2, 3])
    lead = net.settled_leader()
    ends = [m for m in lead.resign(net.now) if type(m).__name__ == "EndQuorumEpochRequest"]
    assert sorted(m.dst for m in ends) == sorted({1, 2, 3} - {lead.node_id})
    for m in ends:
        assert m.successor_directory_ids == tuple(DIRS[s] for s in m.preferred_successors)
        wire = to_wire(m, "cluster")
        p = wire.topics[0].partitions[0]
        assert [(c.candidate_id, c.candidate_directory_id) for c in p.preferred_candidates] == [
            (s, DIRS[s]) for s in m.preferred_successors]
        assert from_wire(wire, None, m.dst, m.request_id) == m
