"""A proposal is atomic (Kafka's record batch): served, appended, persisted, delivered and
snapshotted whole, on the leader, followers and observers, across restarts."""

from __future__ import annotations

import random

import pytest

from kbroker.metadata.metadata_log import MetadataLog
from kbroker.raft import (
    ElectionState,
    Entry,
    FetchRequest,
    FetchResponse,
    MemoryLog,
    RaftConfig,
    RaftNode,
    Role,
    VoteResponse,
)
from kbroker.raft.file_log import FileRaftLog
from kbroker.raft.state_store import MemoryQuorumStateStore

CFG = RaftConfig(fetch_max_entries=4)


def proposal(epoch: int, values: list[bytes]) -> list[Entry]:
    return [Entry(epoch, v, batch_end=i == len(values) - 1) for i, v in enumerate(values)]


def leader() -> RaftNode:
    """Node 1 elected leader of epoch 5 by pre-votes and votes of 2 and 3."""
    store = MemoryQuorumStateStore()
    store.write(ElectionState(4, voted_id=1))
    n = RaftNode(1, (1, 2, 3), MemoryLog(), store, random.Random(7), RaftConfig(), now=0)
    votes = []
    for m in n.tick(0):  # pre-votes in epoch 4
        votes += n.handle(VoteResponse(m.dst, 1, m.request_id, 0, -1, 4, True), 0)
    for m in votes:  # votes in epoch 5
        n.handle(VoteResponse(m.dst, 1, m.request_id, 0, -1, 5, True), 0)
    assert n.role is Role.LEADER and n.epoch == 5
    return n


def values(items) -> list[bytes]:
    return [e.value for _o, e in items if isinstance(e, Entry) and not e.control]


def test_propose_marks_the_end_of_each_proposal():
    n = leader()
    n.propose([b"a", b"b", b"c"], 0)
    n.propose([b"d"], 0)
    entries = n.log.read(1, 10)
    assert [e.batch_end for e in entries] == [False, False, True, True]


def test_the_leader_serves_whole_proposals_only():
    n = leader()
    n.config = CFG
    n.propose([b"a", b"b"], 0)                                  # offsets 1, 2
    n.propose([bytes([i]) for i in range(6)], 0)                # 3..8: larger than fetch_max_entries
    n.propose([b"x", b"y"], 0)                                  # 9, 10
    out = n.handle(FetchRequest(2, 1, 11, 5, 0, 0), 0)
    [resp] = [m for m in out if isinstance(m, FetchResponse)]
    # four entries would cut the second proposal: the answer ends after the first
    assert len(resp.records) == 3 and resp.records[-1].batch_end
    out = n.handle(FetchRequest(2, 1, 12, 5, 3, 5), 0)
    [resp] = [m for m in out if isinstance(m, FetchResponse)]
    # a proposal larger than fetch_max_entries is served whole
    assert resp.base_offset == 3 and len(resp.records) == 6 and resp.records[-1].batch_end


def _follower(log) -> RaftNode:
    store = MemoryQuorumStateStore()
    store.write(ElectionState(5, leader_id=2))
    return RaftNode(1, (1, 2, 3), log, store, random.Random(3), CFG, now=0)


_clock = [0]


def _fetch_answer(node: RaftNode, records, hw: int) -> None:
    _clock[0] += 50  # past append_linger_ms: the follower fetches again
    now = _clock[0]
    out = node.tick(now)
    [req] = [m for m in out if isinstance(m, FetchRequest)]
    node.handle(FetchResponse(2, 1, req.request_id, 0, 2, 5, hw, req.fetch_offset, tuple(records)), now)


@pytest.mark.parametrize("kind", ["memory", "metadata", "file"])
def test_a_fetch_ending_inside_a_proposal_is_applied_only_whole(tmp_path, kind):
    def open_log():
        if kind == "memory":
            return mem
        if kind == "metadata":
            return MetadataLog(tmp_path / "__cluster_metadata-0", voters=(1, 2, 3))
        return FileRaftLog(tmp_path / "raft")

    mem = MemoryLog()
    log = open_log()
    node = _follower(log)
    assert node.role is Role.FOLLOWER
    p1 = proposal(5, [b"a", b"b"])
    p2 = proposal(5, [b"c", b"d", b"e"])
    # the answer ends inside p2 (an older leader, another implementation): the follower keeps p1
    # only, and the high watermark the leader names (inside p2) delivers p1 only
    _fetch_answer(node, p1 + p2[:2], hw=4)
    assert log.end_offset == 2
    assert node.high_watermark == 2 and values(node.poll_committed()) == [b"a", b"b"]
    # the rest comes whole; a high watermark inside p2 delivers nothing of it
    _fetch_answer(node, p2, hw=4)
    assert log.end_offset == 5 and node.high_watermark == 4
    assert node.poll_committed() == []
    log.flush()
    if kind != "memory":  # a restart keeps the proposal boundaries
        log.close()
        log = open_log()
        assert [e.batch_end for e in log.read(0, 10)] == [False, True, False, False, True]
        node = _follower(log)
        node.high_watermark = 4  # as a fetch would teach it
        out = node.poll_committed()
        assert len(out) == 2 and values(out) == [b"a", b"b"]
    node.high_watermark = 5
    assert values(node.poll_committed()) == [b"c", b"d", b"e"]
    # and a snapshot falls only at a proposal's end
    state = [] if kind == "metadata" else b"state"  # MetadataLog takes the snapshot's records
    with pytest.raises(ValueError, match="end of a proposal"):
        node.snapshot(4, state)
    assert node.snapshot(5, state).end_offset == 5
    if kind != "memory":
        log.close()


def test_a_torn_write_of_a_proposal_leaves_none_of_it_after_a_restart(tmp_path):
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog(d, voters=(1,))
    log.append(proposal(1, [b"a", b"b"]))
    log.flush()
    log.append(proposal(1, [b"c" * 100, b"d" * 100, b"e" * 100]))
    log.flush()
    log.close()
    [segment] = sorted(d.glob("*.log"))
    segment.write_bytes(segment.read_bytes()[:-150])  # the crash cut the last batch in the middle
    log = MetadataLog(d, voters=(1,))
    assert [e.value for e in log.read(0, 10)] == [b"a", b"b"] and log.entry(1).batch_end
    log.close()


def test_a_torn_write_of_a_proposal_in_the_file_log_drops_all_of_it(tmp_path):
    log = FileRaftLog(tmp_path)
    log.append(proposal(1, [b"a", b"b"]))
    log.flush()
    log.append(proposal(1, [b"c" * 100, b"d" * 100, b"e" * 100]))
    log.flush()
    log.close()
    path = tmp_path / "raft-entries.log"
    path.write_bytes(path.read_bytes()[:-150])  # the frames of c and d are whole, e's is torn
    log = FileRaftLog(tmp_path)
    assert [e.value for e in log.read(0, 10)] == [b"a", b"b"] and log.flushed_end == 2
    log.close()
