"""KIP-853 voter changes in the Raft core: AddVoter / RemoveVoter / UpdateVoter as Kafka 4.4's
handlers answer them, the voter set taken from the log (and reverted by truncation, rebuilt on
restart, carried by snapshots), and the simulation's voter-change scenarios."""

from __future__ import annotations

import uuid

import pytest

from kbroker.raft import node as raft_node
from kbroker.raft.node import RaftNode, Role
from kbroker.raft.simulation import run_seed
from kbroker.raft.voters import Voter, control_of, decode_voters, encode_voters, snapshot_controls
from kbroker_protocol.errors import ErrorCode as E
from tests.raft.voter_change_helpers import DIRS, Net


def test_the_first_leader_writes_the_bootstrap_voter_set_and_kraft_version():
    net = Net([1, 2, 3])
    lead = net.settled_leader()
    controls = [control_of(e) for e in lead.log.read(0, 3)]
    assert controls[1] == (None, 1)
    assert controls[2][0] == net.initial
    assert lead.controls.voters_offset == 2
    # a later leader does not write them again
    net.down.add(lead.node_id)
    net.run(lambda: (n := net.leader()) is not None and n.node_id != lead.node_id)
    new = net.leader()
    assert new is not None
    start = new.epoch_start_offset
    assert [control_of(e) for e in new.log.read(start, new.log.end_offset - start)] == [(None, None)]


def test_add_a_caught_up_observer_then_remove_a_voter():
    net = Net([1, 2, 3], others=[4])
    lead = net.settled_leader()
    net.run(lambda: lead.replica_caught_up(4, DIRS[4], net.now))
    change = lead.add_voter(Voter(4, DIRS[4], (("CONTROLLER", "localhost", 9004),)), net.now)
    assert change.error == 0 and change.offset == lead.log.end_offset - 1
    assert lead.voters == {1, 2, 3, 4}  # in effect once appended
    net.commit(change.offset)
    assert all(n.voters == {1, 2, 3, 4} for n in net.nodes.values())
    assert net.nodes[4].is_voter
    lead = net.settled_leader()
    victim = next(v for v in (1, 2, 3) if v != lead.node_id)
    change = lead.remove_voter(victim, DIRS[victim], net.now)
    assert change.error == 0
    net.commit(change.offset)
    assert all(n.voters == {1, 2, 3, 4} - {victim} for n in net.nodes.values())
    assert not net.nodes[victim].is_voter
    # the removed voter goes on as an observer: it still replicates
    lead = net.settled_leader()
    offset = lead.propose([b"after"], net.now)
    net.commit(offset)


def test_a_leader_that_removes_itself_resigns_once_that_is_committed():
    net = Net([1, 2, 3])
    lead = net.settled_leader()
    change = lead.remove_voter(lead.node_id, DIRS[lead.node_id], net.now)
    assert change.error == 0 and not lead.is_voter and lead.role is Role.LEADER
    net.run(lambda: lead.role is not Role.LEADER)
    new = net.settled_leader()
    assert new.node_id != lead.node_id and new.voters == {1, 2, 3} - {lead.node_id}
    net.run(lambda: lead.role is Role.FOLLOWER and lead.leader_id == new.node_id)


def _written(node: RaftNode, fn):
    end = node.log.end_offset
    result = fn()
    assert node.log.end_offset == end, "a refused voter change wrote to the log"
    return result


def test_voter_changes_refused_as_kafka_does_with_nothing_written():
    net = Net([1, 2, 3], others=[4, 5])
    lead = net.settled_leader()
    follower = next(n for n in net.nodes.values() if n.voters and n.node_id in (1, 2, 3) and n is not lead)
    now = net.now
    # not the leader
    assert _written(follower, lambda: follower.add_voter(Voter(4, DIRS[4]), now)).error == E.NOT_LEADER_OR_FOLLOWER
    assert _written(follower, lambda: follower.remove_voter(1, DIRS[1], now)).error == E.NOT_LEADER_OR_FOLLOWER
    # a voter already there (whatever its directory)
    dup = _written(lead, lambda: lead.add_voter(Voter(2, uuid.uuid4()), now))
    assert dup.error == E.DUPLICATE_VOTER
    assert dup.message.startswith("The voter id for ReplicaKey(id=2, directoryId=")
    # an unknown replica, and a known one with another directory id: not caught up
    net.run(lambda: lead.replica_caught_up(4, DIRS[4], net.now))
    lag = _written(lead, lambda: lead.add_voter(Voter(9, DIRS[9]), net.now))
    assert lag.error == E.REQUEST_TIMED_OUT and lag.message.endswith("since it is lagging behind")
    assert _written(lead, lambda: lead.add_voter(Voter(4, uuid.uuid4()), net.now)).error == E.REQUEST_TIMED_OUT
    # a kraft.version range without the finalized level
    bad = _written(lead, lambda: lead.add_voter(Voter(4, DIRS[4], kraft_min=0, kraft_max=0), net.now))
    assert bad.error == E.INVALID_REQUEST
    # a stale directory id, an unknown voter
    stale = _written(lead, lambda: lead.remove_voter(2, uuid.uuid4(), net.now))
    assert stale.error == E.VOTER_NOT_FOUND and stale.message.startswith("Cannot remove voter ReplicaKey(id=2")
    assert _written(lead, lambda: lead.remove_voter(7, DIRS[7], net.now)).error == E.VOTER_NOT_FOUND
    # one change at a time: the second waits for the first to commit
    first = lead.add_voter(Voter(4, DIRS[4]), net.now)
    assert first.error == 0
    busy = _written(lead, lambda: lead.remove_voter(2, DIRS[2], net.now))
    assert busy.error == E.REQUEST_TIMED_OUT
    assert busy.message == "Request timed out waiting for leader to handle previous voter change request"
    assert _written(lead, lambda: lead.add_voter(Voter(5, DIRS[5]), net.now)).error == E.REQUEST_TIMED_OUT
    net.commit(first.offset)


def test_the_last_voter_cannot_be_removed():
    net = Net([1])
    lead = net.settled_leader()
    change = _written(lead, lambda: lead.remove_voter(1, DIRS[1], net.now))
    assert change.error == E.VOTER_NOT_FOUND


def test_a_static_quorum_does_not_support_voter_changes():
    net = Net([1, 2, 3], others=[4], kraft_version=0)
    lead = net.settled_leader()
    assert all(not e.control or control_of(e) == (None, None) for e in lead.log.read(0, lead.log.end_offset))
    add = _written(lead, lambda: lead.add_voter(Voter(4, DIRS[4]), net.now))
    assert add.error == E.UNSUPPORTED_VERSION
    assert add.message == "Cluster doesn't support adding voter because the kraft.version feature is 0"
    assert _written(lead, lambda: lead.remove_voter(2, DIRS[2], net.now)).error == E.UNSUPPORTED_VERSION


def test_a_new_leader_answers_voter_changes_only_once_its_epoch_is_committed():
    net = Net([1, 2, 3], others=[4])
    net.run(lambda: net.leader() is not None)
    lead = net.leader()
    assert lead is not None and lead.high_watermark <= lead.epoch_start_offset
    early = _written(lead, lambda: lead.remove_voter(2, DIRS[2], net.now))
    assert early.error == E.REQUEST_TIMED_OUT
    assert early.message == "Request timed out waiting for leader to establish HWM and fence previous voter changes"


def test_update_voter_replaces_the_endpoints():
    net = Net([1, 2, 3])
    lead = net.settled_leader()
    other = next(v for v in (1, 2, 3) if v != lead.node_id)
    moved = Voter(other, DIRS[other], (("CONTROLLER", "elsewhere", 1234),))
    assert _written(lead, lambda: lead.update_voter(Voter(other, uuid.uuid4()), net.now)).error == E.VOTER_NOT_FOUND
    change = lead.update_voter(moved, net.now)
    assert change.error == 0
    net.commit(change.offset)
    assert all(n.voter_set[other].endpoints == (("CONTROLLER", "elsewhere", 1234),) for n in net.nodes.values())


def test_truncation_brings_the_previous_voter_set_back_and_a_restart_rebuilds_it():
    net = Net([1, 2, 3], others=[4])
    lead = net.settled_leader()
    net.run(lambda: lead.replica_caught_up(4, DIRS[4], net.now))
    others = [v for v in (1, 2, 3) if v != lead.node_id]
    net.down.update(others)  # the leader alone appends the change: never committed
    change = lead.add_voter(Voter(4, DIRS[4]), net.now)
    assert change.error == 0 and lead.voters == {1, 2, 3, 4}
    old = lead.node_id
    net.down.discard(others[0])
    net.down.discard(others[1])
    net.down.add(old)
    net.run(lambda: (n := net.leader()) is not None and n.node_id != old and n.high_watermark > n.epoch_start_offset)
    # the old leader restarts from its log (voters with the uncommitted change) and is truncated
    restarted = net.start(old)
    assert restarted.voters == {1, 2, 3, 4}
    net.run(lambda: restarted.log.end_offset <= change.offset or restarted.log.entry(change.offset) !=
            net.logs[old].entry(change.offset) or restarted.voters == {1, 2, 3})
    net.run(lambda: restarted.voters == {1, 2, 3} and restarted.role is Role.FOLLOWER)


def test_a_snapshot_carries_the_voter_set():
    net = Net([1, 2, 3], others=[4])
    lead = net.settled_leader()
    net.run(lambda: lead.replica_caught_up(4, DIRS[4], net.now))
    change = lead.add_voter(Voter(4, DIRS[4]), net.now)
    net.commit(change.offset)
    offset = lead.propose([b"x"], net.now)
    net.commit(offset)
    end = lead.high_watermark
    records = lead.voters_control_at(end)
    assert [control_of(r) for r in records] == [(None, 1), (lead.voter_set, None)]
    snap = lead.snapshot(end, [b"state", *records])
    assert snapshot_controls(snap) == (lead.voter_set, 1)
    assert lead.log.start_offset == end
    # restart from the snapshot alone: the voter set is the snapshot's, not the bootstrap one
    n = lead.node_id
    net.down.add(n)
    again = net.start(n)
    assert again.voters == {1, 2, 3, 4}


def test_voters_record_round_trip():
    vs = {1: Voter(1, DIRS[1], (("CONTROLLER", "h", 1),), 0, 1), 2: Voter(2)}
    assert decode_voters(encode_voters(vs).value) == vs


# ---------------------------------------------------------------- the simulation

SEEDS = {"voter-changes": 100, "voter-changes-crashes": 100, "voter-changes-from-1": 100}
CHUNK = 100
CASES = [(name, start) for name, n in SEEDS.items() for start in range(0, n, CHUNK)]


@pytest.mark.parametrize(("scenario", "start"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_simulation_seeds_with_voter_changes(scenario, start):
    failures = [f"seed {s}: {p}" for s in range(start, start + CHUNK) if (p := run_seed(s, scenario)) is not None]
    assert not failures, "\n".join(failures)


def test_the_simulation_catches_a_majority_not_following_the_voter_set(monkeypatch):
    original = RaftNode._voters_changed

    def stale_majority(self, now):
        keep = getattr(self, "_majority", None)
        original(self, now)
        if keep is not None:
            self._majority = keep

    monkeypatch.setattr(RaftNode, "_voters_changed", stale_majority)
    failures = [p for p in (run_seed(s, "voter-changes-from-1") for s in range(20)) if p is not None]
    assert failures and any("durable on no majority" in f for f in failures)


def test_the_simulation_catches_two_voter_changes_in_flight(monkeypatch):
    monkeypatch.setattr(RaftNode, "_voter_change_pending", lambda self, now: False)
    monkeypatch.setattr(raft_node.ControlHistory, "voters_offset", property(lambda self: -1))
    failures = [p for p in (run_seed(s, "voter-changes") for s in range(30)) if p is not None]
    assert failures

