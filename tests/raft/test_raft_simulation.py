"""Deterministic simulation of whole quorums (kbroker/raft/simulation.py), thousands of seeds.

Each run injects message drop, delay, reordering and duplication, partitions, crashes that lose the
unflushed log tail, graceful shutdowns and restarts, checks the safety invariants after every event
and checks liveness after the faults stop. ``scripts/raft_sim.py`` runs more seeds.
"""

from __future__ import annotations

import pytest

from kbroker.raft import node as raft_node
from kbroker.raft.simulation import SCENARIOS, Simulation, run_seed

# seeds per scenario, in chunks of 100 so that a failure names few seeds
SEEDS = {"3-voters": 800, "5-voters": 600, "3-voters-lossy": 800, "5-voters-crashes": 600, "1-voter": 200}
CHUNK = 100
CASES = [(name, start) for name, n in SEEDS.items() for start in range(0, n, CHUNK)]


@pytest.mark.parametrize(("scenario", "start"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_simulation_seeds(scenario, start):
    failures = []
    for seed in range(start, start + CHUNK):
        problem = run_seed(seed, scenario)
        if problem is not None:
            failures.append(f"seed {seed}: {problem}")
    assert not failures, "\n".join(failures)


def test_a_run_is_a_function_of_its_seed():
    a, b, c = (Simulation(s, SCENARIOS["5-voters"]) for s in (42, 42, 43))
    for sim in (a, b, c):
        sim.run()
    assert a.committed == b.committed and a.events == b.events and a.now == b.now
    assert a.leader_of_epoch == b.leader_of_epoch
    assert (c.committed, c.events) != (a.committed, a.events)


def test_runs_elect_leaders_and_commit():
    sims = [Simulation(s, SCENARIOS["5-voters"]) for s in range(10)]
    for sim in sims:
        sim.run()
    # faults make several epochs happen, and records commit throughout
    assert sum(len(s.leader_of_epoch) for s in sims) >= 20
    assert all(len(s.committed) > 10 for s in sims)
    assert all(any(not e.control for e in s.committed) for s in sims)


def _failures(scenario, seeds):
    return [p for p in (run_seed(s, scenario) for s in seeds) if p is not None]


def test_the_simulation_catches_a_node_that_votes_twice_in_an_epoch(monkeypatch):
    original = raft_node.RaftNode._can_grant

    def forgetful(self, candidate, directory_id, up_to_date, pre_vote):
        saved, self.voted_id = self.voted_id, raft_node.NO_LEADER
        try:
            return original(self, candidate, directory_id, up_to_date, pre_vote)
        finally:
            self.voted_id = saved

    monkeypatch.setattr(raft_node.RaftNode, "_can_grant", forgetful)
    problems = _failures("5-voters", range(60))
    assert any("two leaders in epoch" in p for p in problems), problems


def test_the_simulation_catches_a_leader_counting_its_unflushed_entries(monkeypatch):
    def eager(self):
        ends = sorted([self.log.end_offset, *self._voter_end.values()], reverse=True)
        candidate = ends[self._majority - 1]
        if candidate > self.epoch_start_offset and candidate > self.high_watermark:
            self.high_watermark = candidate

    monkeypatch.setattr(raft_node.RaftNode, "_update_high_watermark", eager)
    problems = _failures("1-voter", range(40))
    assert any("durable on only" in p for p in problems), problems


def test_the_simulation_catches_a_vote_answered_before_it_is_stored(monkeypatch):
    original = raft_node.RaftNode._persist

    def lazy(self):
        if self.role is raft_node.Role.UNATTACHED and self.voted_id not in (raft_node.NO_LEADER, self.node_id):
            return  # "the write would be flushed later"
        original(self)

    monkeypatch.setattr(raft_node.RaftNode, "_persist", lazy)
    problems = _failures("3-voters", range(5))
    assert any("but stored" in p for p in problems), problems


def test_the_simulation_catches_a_proposal_applied_in_part(monkeypatch):
    # the leader serves any number of entries, the follower keeps them, and committed entries are
    # delivered up to the high watermark: a fetch that ends inside a proposal commits part of it
    monkeypatch.setattr(raft_node.RaftNode, "_read_batches",
                        lambda self, offset: self.log.read(offset, self.config.fetch_max_entries))
    monkeypatch.setattr(raft_node.RaftNode, "_whole_proposals", staticmethod(lambda records: records))
    monkeypatch.setattr(raft_node.RaftNode, "applicable_end", lambda self: self.high_watermark)
    problems = _failures("3-voters", range(20))
    assert any("inside the proposal of" in p for p in problems), problems
