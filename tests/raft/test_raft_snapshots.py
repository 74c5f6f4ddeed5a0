"""Snapshots: the log prefix they replace, Fetch answered with a snapshot id, FetchSnapshot."""

from __future__ import annotations

import random

import pytest

from kbroker.raft import (
    ElectionState,
    Entry,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    MemoryLog,
    RaftConfig,
    RaftNode,
    Role,
    Snapshot,
    VoteRequest,
    VoteResponse,
)
from kbroker.raft.state_store import MemoryQuorumStateStore
from kbroker_protocol.errors import ErrorCode

CFG = RaftConfig()
E1, E3 = Entry(1, "a"), Entry(3, "b")


def test_memory_log_snapshot_moves_the_start_and_keeps_epochs():
    log = MemoryLog()
    log.append([E1, E1, E3, E3, Entry(4, "c")])
    with pytest.raises(ValueError, match="durable"):
        log.take_snapshot(2, "s")  # not flushed yet
    log.flush()
    snap = log.take_snapshot(3, "s")
    assert snap == Snapshot(3, 3, "s") and log.snapshot is snap
    assert (log.start_offset, log.end_offset, log.last_epoch) == (3, 5, 4)
    assert log.epoch_at(3) == 3 and log.read(3, 10) == (E3, Entry(4, "c"))
    assert log.end_offset_for_epoch(3) == (3, 4)
    assert log.end_offset_for_epoch(1) == (-1, 3)
    with pytest.raises(IndexError):
        log.entry(2)
    with pytest.raises(ValueError, match="below the log start"):
        log.truncate_to(2)
    log.truncate_to(3)
    assert (log.end_offset, log.last_epoch, log.end_offset_for_epoch(9)) == (3, 3, (3, 3))
    log.append([Entry(5, "d")])
    assert log.end_offset_for_epoch(5) == (5, 4)


def test_install_snapshot_replaces_the_log():
    log = MemoryLog()
    log.append([E1, E1, Entry(2, "x")])
    log.install_snapshot(Snapshot(10, 3, "s"))
    assert (log.start_offset, log.end_offset, log.flushed_end, log.last_epoch) == (10, 10, 10, 3)
    assert log.epoch_at(10) == 3


def leader_with_snapshot():
    """Leader of epoch 5 whose log is [snapshot(0..3, epoch 3)] E3 LeaderChange(5)."""
    log = MemoryLog()
    log.append([E1, E1, E3, E3])
    log.flush()
    store = MemoryQuorumStateStore()
    store.write(ElectionState(4, voted_id=1))
    node = RaftNode(1, (1, 2, 3), log, store, random.Random(1), CFG)
    pre = node.tick(0)
    votes = []
    for m in pre:
        votes += node.handle(VoteResponse(m.dst, 1, m.request_id, 0, -1, 4, True), 0)
    for m in [v for v in votes if isinstance(v, VoteRequest)]:
        node.handle(VoteResponse(m.dst, 1, m.request_id, 0, -1, 5, True), 0)
    assert node.role is Role.LEADER
    node.tick(CFG.append_linger_ms)
    node.handle(FetchRequest(2, 1, 1, 5, 5, 5), 30)
    assert node.high_watermark == 5
    node.snapshot(3, "state@3")
    return node


@pytest.mark.parametrize(
    ("fetch_offset", "last_epoch", "expect_snapshot"),
    [
        (0, 0, True),  # below the log start
        (2, 1, True),
        (3, 1, True),  # at the start, but not the snapshot's epoch
        (4, 1, True),  # last epoch older than the snapshot's
        (3, 3, False),  # at the start with the snapshot's epoch: records
        (4, 3, False),
    ],
)
def test_leader_sends_a_snapshot_id_to_fetchers_behind_its_log_start(fetch_offset, last_epoch, expect_snapshot):
    node = leader_with_snapshot()
    (resp,) = node.handle(FetchRequest(3, 1, 7, 5, fetch_offset, last_epoch), 40)
    assert resp.error == 0 and resp.diverging_epoch == -1
    if expect_snapshot:
        assert (resp.snapshot_end_offset, resp.snapshot_epoch, resp.records) == (3, 3, ())
    else:
        assert resp.snapshot_end_offset == -1 and resp.base_offset == fetch_offset
        assert resp.records == node.log.read(fetch_offset, 10)


def test_fetch_snapshot_on_the_leader():
    node = leader_with_snapshot()
    (resp,) = node.handle(FetchSnapshotRequest(3, 1, 8, 5, 3, 3), 40)
    assert (resp.error, resp.snapshot_end_offset, resp.snapshot_epoch, resp.data) == (0, 3, 3, "state@3")
    (resp,) = node.handle(FetchSnapshotRequest(3, 1, 9, 5, 2, 1), 40)
    assert resp.error == ErrorCode.SNAPSHOT_NOT_FOUND and resp.data is None
    (resp,) = node.handle(FetchSnapshotRequest(3, 1, 9, 4, 3, 3), 40)
    assert resp.error == ErrorCode.FENCED_LEADER_EPOCH


def test_snapshot_must_be_committed():
    node = leader_with_snapshot()
    node.propose(["x"], 50)
    with pytest.raises(ValueError, match="high watermark"):
        node.snapshot(node.log.end_offset, "too far")


def follower_behind():
    store = MemoryQuorumStateStore()
    store.write(ElectionState(5, leader_id=2))
    log = MemoryLog()
    log.append([E1])
    log.flush()
    node = RaftNode(1, (1, 2, 3), log, store, random.Random(1), CFG)
    (fetch,) = node.tick(0)
    assert isinstance(fetch, FetchRequest) and fetch.fetch_offset == 1
    return node, fetch


def test_follower_fetches_and_installs_the_snapshot_then_fetches_after_it():
    node, fetch = follower_behind()
    (req,) = node.handle(FetchResponse(2, 1, fetch.request_id, 0, 2, 5, 4, 1, (), -1, -1, 3, 3), 1)
    assert isinstance(req, FetchSnapshotRequest)
    assert (req.dst, req.current_leader_epoch, req.snapshot_end_offset, req.snapshot_epoch) == (2, 5, 3, 3)
    assert node.poll_committed() == []  # nothing committed is known yet
    out = node.handle(FetchSnapshotResponse(2, 1, req.request_id, 0, 2, 5, 3, 3, "state@3"), 2)
    assert (node.log.start_offset, node.log.end_offset, node.high_watermark) == (3, 3, 3)
    (fetch,) = out
    assert isinstance(fetch, FetchRequest) and (fetch.fetch_offset, fetch.last_fetched_epoch) == (3, 3)
    assert node.poll_committed() == [(2, Snapshot(3, 3, "state@3"))]
    node.handle(FetchResponse(2, 1, fetch.request_id, 0, 2, 5, 5, 3, (E3, Entry(5, 2, True))), 3)
    assert [o for o, _ in node.poll_committed()] == [3, 4]


def test_snapshot_not_found_goes_back_to_fetch():
    node, fetch = follower_behind()
    (req,) = node.handle(FetchResponse(2, 1, fetch.request_id, 0, 2, 5, 4, 1, (), -1, -1, 3, 3), 1)
    (again,) = node.handle(FetchSnapshotResponse(2, 1, req.request_id, ErrorCode.SNAPSHOT_NOT_FOUND, 2, 5), 2)
    assert isinstance(again, FetchRequest) and again.fetch_offset == 1
    assert node.log.start_offset == 0


def test_a_restarted_node_delivers_its_snapshot_first():
    log = MemoryLog()
    log.append([E1, E1, E3])
    log.flush()
    log.take_snapshot(2, "state@2")
    store = MemoryQuorumStateStore()
    store.write(ElectionState(5, leader_id=2))
    node = RaftNode(1, (1, 2, 3), log, store, random.Random(1), CFG)
    assert node.high_watermark == 2
    assert node.poll_committed() == [(1, Snapshot(2, 1, "state@2"))]
    assert node.poll_committed() == []
