"""The quorum-state file: Kafka's JSON, written atomically, and bad files refused clearly."""

from __future__ import annotations

import json
import random

import pytest

from kbroker.raft import ElectionState, FileQuorumStateStore, MemoryLog, RaftNode, Role, VoteRequest
from kbroker.raft.state_store import QuorumStateError


def test_missing_file_reads_as_nothing(tmp_path):
    assert FileQuorumStateStore(tmp_path).read() is None


def test_round_trip_in_kafka_format(tmp_path):
    store = FileQuorumStateStore(tmp_path)
    store.write(ElectionState(7, leader_id=2, voted_id=3))
    doc = json.loads((tmp_path / "quorum-state").read_text())
    assert doc == {
        "leaderId": 2,
        "leaderEpoch": 7,
        "votedId": 3,
        "votedDirectoryId": "AAAAAAAAAAAAAAAAAAAAAA",
        "data_version": 1,
    }
    assert store.read() == ElectionState(7, 2, 3)
    store.write(ElectionState(8))
    assert store.read() == ElectionState(8, -1, -1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quorum-state"]


def test_reads_a_version_0_file_written_by_kafka_3(tmp_path):
    (tmp_path / "quorum-state").write_text(
        '{"clusterId":"","leaderId":1,"leaderEpoch":5,"votedId":-1,"appliedOffset":0,'
        '"currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],"data_version":0}'
    )
    assert FileQuorumStateStore(tmp_path).read() == ElectionState(5, 1, -1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"leaderId":1,"leaderEpoch":5,"votedId":-1,"data_version":9}', "unsupported data_version 9"),
        ('{"leaderId":1,"leaderEpoch":"5","votedId":-1,"data_version":1}', "leaderEpoch must be a 32-bit"),
        ('{"leaderId":1,"votedId":-1,"data_version":1}', "leaderEpoch must be a 32-bit"),
        ('{"leaderId":1,"leaderEpoch":-3,"votedId":-1,"data_version":1}', "negative leaderEpoch"),
    ],
)
def test_bad_files_are_refused_and_left_alone(tmp_path, content, message):
    path = tmp_path / "quorum-state"
    path.write_text(content)
    with pytest.raises(QuorumStateError, match=message):
        FileQuorumStateStore(tmp_path).read()
    assert path.read_text() == content


def test_a_node_on_a_file_store_keeps_its_vote_across_restarts(tmp_path):
    def start():
        return RaftNode(1, (1, 2, 3), MemoryLog(), FileQuorumStateStore(tmp_path), random.Random(1))

    node = start()
    (resp,) = node.handle(VoteRequest(2, 1, 1, 4, 0, 0, False), 0)
    assert resp.vote_granted
    restarted = start()
    assert (restarted.role, restarted.epoch, restarted.voted_id) == (Role.UNATTACHED, 4, 2)
    (resp,) = restarted.handle(VoteRequest(3, 1, 1, 4, 0, 0, False), 0)
    assert not resp.vote_granted
