"""Deterministic simulation of a whole KRaft quorum (after Kafka's ``RaftEventSimulationTest``).

Voters and observers run ``RaftNode`` over an in-memory network driven by one seeded scheduler:
messages are dropped, delayed (hence reordered) and duplicated, the network is partitioned (both ways
or one way), nodes
crash (losing their unflushed log tail; the ``quorum-state`` survives because it is written with
fsync) or shut down gracefully, and restart; a request sent to a stopped node is sometimes reported
back to its sender as failed (a refused connection). After every event the invariants are checked:

- at most one leader per epoch;
- a node's epoch and vote are in its stored ``quorum-state`` whenever it acts on them;
- a node's epoch never decreases (across restarts: it is persisted);
- a node's high watermark never decreases while it runs;
- committed entries are never lost or changed: every node's committed prefix (what
  ``poll_committed`` returns) is a prefix of one global committed log, and the last committed entry
  is on the durable (flushed) log of a majority of voters;
- proposals are atomic: a proposal's entries are committed contiguously, and every node's
  delivered prefix (and every snapshot it takes or loads) ends at the end of a proposal;
- liveness: once the faults stop, a leader is elected and a new proposal is committed on every node
  within a bounded simulated time.

With ``voter_changes`` (KIP-853) the quorum starts as a dynamic one (kraft.version 1, a bootstrap
voter set with directory ids) and, while the faults go on, the leader is asked now and then to add
a replica outside the voter set or to remove a voter (sometimes with a stale directory id, which
must be refused with nothing written); the voter set in effect on each node is the latest in its
log. Then also, after every event:

- every node's voter set is the one of the latest VotersRecord in its log (or the bootstrap one);
- the committed voter sets change one voter at a time;
- the durability check counts a majority of the voter set the last committed entry was committed
  under: the committed set at that point, or one appended after it by a leader;
- at most one voter change is in flight on a leader.

A run is a pure function of its seed. ``run_seed(seed)`` returns ``None`` or a failure description.
"""

from __future__ import annotations

import heapq
import random
import uuid
from dataclasses import dataclass
from typing import cast

from kbroker.raft.log import Entry, LeaderChange, MemoryLog, Snapshot
from kbroker.raft.messages import REQUESTS, Message
from kbroker.raft.node import NONE, NotLeaderError, RaftConfig, RaftNode, RaftSafetyError, Role
from kbroker.raft.sim_checks import InvariantViolation, LogShapeChecks
from kbroker.raft.state_store import MemoryQuorumStateStore
from kbroker.raft.voters import Voter, control_of

__all__ = ["SCENARIOS", "InvariantViolation", "Scenario", "Simulation", "run_seed", "run_seed_with_stats"]


# Kafka's timeouts divided by 10: what matters is their ratio to the network delays and to the
# durations of faults, and shorter timeouts make a run cover more elections per event.
SIM_CONFIG = RaftConfig(
    election_timeout_ms=100,
    fetch_timeout_ms=200,
    election_backoff_max_ms=100,
    request_timeout_ms=200,
    retry_backoff_ms=2,
    fetch_max_wait_ms=50,
    append_linger_ms=3,
    # small, so that fetches often end inside a run of proposals and the leader must cut (or
    # extend) an answer at a proposal's end
    fetch_max_entries=5,
)


@dataclass(frozen=True)
class Scenario:
    voters: int = 3
    observers: int = 1
    fault_ms: int = 1_500  # how long faults are injected
    liveness_bound_ms: int = 3_000  # after the faults stop (15 fetch timeouts)
    drop: float = 0.05
    duplicate: float = 0.05
    max_delay_ms: int = 5
    fault_every_ms: int = 150  # mean time between fault events
    fault_min_ms: int = 20  # a partition or a node's downtime lasts between these two
    fault_max_ms: int = 400
    partitions: bool = True
    crashes: bool = True
    shutdowns: bool = True
    propose_every_ms: int = 15
    # a node snapshots its state (when it is this many entries past its log start, now and then)
    # and drops the log prefix, so that lagging and restarted replicas need FetchSnapshot; 0: never
    snapshot_every: int = 0
    # KIP-853: ask the leader to add or remove a voter this often (mean, ms); 0: a static quorum
    voter_changes_every_ms: int = 0
    max_voters: int = 5
    config: RaftConfig = SIM_CONFIG


SCENARIOS: dict[str, Scenario] = {
    "3-voters": Scenario(voters=3, observers=1, snapshot_every=25),
    "5-voters": Scenario(voters=5, observers=2, snapshot_every=25),
    "3-voters-lossy": Scenario(voters=3, observers=0, drop=0.25, duplicate=0.2, max_delay_ms=15),
    "5-voters-crashes": Scenario(voters=5, observers=1, partitions=False, fault_every_ms=60, snapshot_every=10),
    "1-voter": Scenario(voters=1, observers=1, partitions=False, snapshot_every=10),
    "voter-changes": Scenario(voters=3, observers=2, snapshot_every=25, voter_changes_every_ms=60),
    "voter-changes-crashes": Scenario(voters=3, observers=2, partitions=False, fault_every_ms=60,
                                      snapshot_every=10, voter_changes_every_ms=40),
    "voter-changes-from-1": Scenario(voters=1, observers=3, snapshot_every=25, voter_changes_every_ms=50),
}

_DELIVER, _TICK, _FAULT, _PROPOSE, _HEAL, _RESTART, _FAILED, _VOTERS = range(8)


class Simulation(LogShapeChecks):
    def __init__(self, seed: int, scenario: Scenario) -> None:
        self.seed = seed
        self.sc = scenario
        self.rng = random.Random(seed)
        self.now = 0
        self.voter_ids = list(range(1, scenario.voters + 1))
        self.observer_ids = list(range(100, 100 + scenario.observers))
        self.all_ids = self.voter_ids + self.observer_ids
        self.logs = {n: MemoryLog() for n in self.all_ids}
        self.stores = {n: MemoryQuorumStateStore() for n in self.all_ids}
        self.nodes: dict[int, RaftNode | None] = {}
        self.incarnation = dict.fromkeys(self.all_ids, 0)
        self.tick_at = dict.fromkeys(self.all_ids, -1)
        self.queue: list[tuple[int, int, int, object]] = []
        self.seq = 0
        self.faults_on = True
        self.blocked: set[tuple[int, int]] = set()  # (src, dst) links that drop everything
        # invariant state
        self.leader_of_epoch: dict[int, int] = {}
        self.max_epoch = dict.fromkeys(self.all_ids, 0)
        self.last_hw = dict.fromkeys(self.all_ids, 0)
        self.applied = dict.fromkeys(self.all_ids, 0)
        self.committed: list[Entry] = []
        self.next_value = 0
        # proposals hold 1 to 4 values (consecutive ints): the last value of each, for the
        # atomicity checks
        self.proposal_ends: set[int] = set()
        self.events = 0
        # statistics of the run
        self.recovery_ms: int | None = None  # from the end of the faults to the liveness check passing
        self.stops = 0  # crashes and graceful shutdowns
        self.partitions = 0
        self.snapshot_loads = 0
        self.voter_adds = 0
        self.voter_removals = 0
        self.voter_refusals = 0
        self.dynamic = scenario.voter_changes_every_ms > 0
        self.directory = {n: uuid.UUID(int=self.rng.getrandbits(128)) for n in self.all_ids}
        # voter sets a leader appended (offset, ids): the durability check may need one of them
        self.appended_sets: list[tuple[int, frozenset[int]]] = []
        for n in self.all_ids:
            self._start(n)

    # ------------------------------------------------------------------ scheduling

    def _push(self, t: int, kind: int, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (t, self.seq, kind, payload))

    def _start(self, n: int) -> None:
        self.incarnation[n] += 1
        if self.dynamic:
            node = RaftNode(
                n,
                {v: Voter(v, self.directory[v]) for v in self.voter_ids},
                self.logs[n],
                self.stores[n],
                random.Random(self.rng.getrandbits(64)),
                self.sc.config,
                now=self.now,
                kraft_version=1,
                directory_id=self.directory[n],
            )
            # each incarnation listens on another port: a leader whose voter set entry is stale writes
            # the updated set with its LeaderChangeMessage
            node.local_voter = Voter(n, self.directory[n], (("CONTROLLER", f"node{n}", 9000 + self.incarnation[n]),))
        else:
            node = RaftNode(
                n,
                self.voter_ids,
                self.logs[n],
                self.stores[n],
                random.Random(self.rng.getrandbits(64)),
                self.sc.config,
                now=self.now,
            )
        self.nodes[n] = node
        self.last_hw[n] = node.high_watermark
        self.applied[n] = 0
        self.tick_at[n] = -1
        self._after(n, [])

    def _after(self, n: int, out: list[Message]) -> None:
        """Send a node's output, check the invariants on it and schedule its next tick."""
        for m in out:
            self._send(m)
        node = self.nodes[n]
        if node is None:
            return
        self._check_node(n, node)
        d = max(node.next_deadline(), self.now + 1)
        if self.tick_at[n] <= self.now or d < self.tick_at[n]:
            self.tick_at[n] = d
            self._push(d, _TICK, (n, self.incarnation[n]))

    def _send(self, m: Message) -> None:
        if self.faults_on and self.rng.random() < self.sc.drop:
            return
        copies = 2 if self.faults_on and self.rng.random() < self.sc.duplicate else 1
        for _ in range(copies):
            self._push(self.now + 1 + self.rng.randrange(self.sc.max_delay_ms), _DELIVER, m)

    def _connected(self, a: int, b: int) -> bool:
        return (a, b) not in self.blocked

    # ------------------------------------------------------------------ faults

    def _fault(self) -> None:
        sc = self.sc
        kinds = []
        if sc.partitions and not self.blocked:
            kinds.append("partition")
        # at most a minority of the voters down at once (and one observer)
        voters = self._current_voters()
        observers = [n for n in self.all_ids if n not in voters]
        minority = max((len(voters) - 1) // 2, 1)
        running = [
            n
            for n in self.all_ids
            if self.nodes[n] is not None
            and (
                sum(self.nodes[v] is None for v in voters) < minority
                if n in voters
                else all(self.nodes[o] is not None for o in observers)
            )
        ]
        if running:
            if sc.crashes:
                kinds.append("crash")
            if sc.shutdowns:
                kinds.append("shutdown")
        if not kinds:
            return
        kind = self.rng.choice(kinds)
        if kind == "partition":
            self.partitions += 1
            r = self.rng.random()
            ids = self.all_ids
            if r < 0.7:
                # one node, or a random group, cut off from the others in both directions
                k = 1 if r < 0.35 else self.rng.randint(1, len(ids) // 2 or 1)
                isolated = set(self.rng.sample(ids, k))
                self.blocked = {(a, b) for a in ids for b in ids if (a in isolated) != (b in isolated)}
            else:
                # a one-way failure: one node can only send, or only receive
                x = self.rng.choice(ids)
                if r < 0.85:
                    self.blocked = {(x, b) for b in ids if b != x}
                else:
                    self.blocked = {(a, x) for a in ids if a != x}
            self._push(self.now + self.rng.randint(sc.fault_min_ms, sc.fault_max_ms), _HEAL, None)
            return
        # prefer the leader half of the time: that is where it hurts
        leaders = [n for n in running if self.nodes[n].role is Role.LEADER]  # type: ignore[union-attr]
        n = self.rng.choice(leaders) if leaders and self.rng.random() < 0.5 else self.rng.choice(running)
        node = self.nodes[n]
        assert node is not None
        self.stops += 1
        if kind == "shutdown":
            for m in node.resign(self.now):
                self._send(m)
        else:
            self.logs[n].crash()
        self.nodes[n] = None
        self._check_durable()
        self._push(self.now + self.rng.randint(sc.fault_min_ms, sc.fault_max_ms), _RESTART, n)

    def _stop_faults(self) -> None:
        self.faults_on = False
        self.blocked = set()
        for n in self.all_ids:
            if self.nodes[n] is None:
                self._start(n)

    # ------------------------------------------------------------------ invariants

    def _fail(self, what: str) -> None:
        raise InvariantViolation(f"t={self.now}: {what}")

    def _check_node(self, n: int, node: RaftNode) -> None:
        if self.dynamic:
            self._check_voters(n, node)
        stored = self.stores[n].read()
        if stored is None or (stored.epoch, stored.voted_id, stored.voted_directory_id) != (
                node.epoch, node.voted_id, node.voted_directory_id):
            # whatever the node answered in this step depends on its epoch and vote: durable first
            self._fail(f"node {n} acts in epoch {node.epoch} with vote {node.voted_id} "
                       f"({node.voted_directory_id}) but stored {stored}")
        if node.epoch < self.max_epoch[n]:
            self._fail(f"node {n} epoch went back from {self.max_epoch[n]} to {node.epoch}")
        self.max_epoch[n] = node.epoch
        if node.role is Role.LEADER:
            prev = self.leader_of_epoch.setdefault(node.epoch, n)
            if prev != n:
                self._fail(f"two leaders in epoch {node.epoch}: {prev} and {n}")
        hw = node.high_watermark
        if hw < self.last_hw[n]:
            self._fail(f"node {n} high watermark went back from {self.last_hw[n]} to {hw}")
        self.last_hw[n] = hw
        if hw > node.log.end_offset:
            self._fail(f"node {n} high watermark {hw} beyond its log end {node.log.end_offset}")
        committed = self.committed
        for off, entry in node.poll_committed():
            if isinstance(entry, Snapshot):
                end = entry.end_offset
                if end <= self.applied[n] or end > len(committed):
                    self._fail(f"node {n} loaded a snapshot ending at {end} after delivering {self.applied[n]}")
                if entry.data != tuple(committed[:end]):
                    self._fail(f"node {n} loaded a snapshot at {end} that differs from the committed log")
                self.applied[n] = end
                self.snapshot_loads += 1
                continue
            if off != self.applied[n]:
                self._fail(f"node {n} delivered offset {off}, expected {self.applied[n]}")
            self.applied[n] = off + 1
            if off < len(committed):
                if committed[off] != entry:
                    self._fail(f"node {n} committed {entry} at {off}, another node committed {committed[off]}")
            elif off == len(committed):
                if committed and not self._ends_proposal(committed[-1], entry) and not self._continues(
                        committed[-1], entry):
                    self._fail(f"proposal torn: {entry} committed at {off} after {committed[-1]}")
                if entry.control and isinstance(entry.value, LeaderChange):
                    self._check_leader_change(off, entry)
                new_voters, _ = control_of(entry)
                if new_voters is not None:
                    before = self._committed_voters(len(committed))
                    if len(before ^ frozenset(new_voters)) > 1:
                        self._fail(f"committed voter set went from {sorted(before)} to {sorted(new_voters)}")
                committed.append(entry)
            else:
                self._fail(f"gap in committed log at {len(committed)}")
        applied = self.applied[n]
        if applied > 0 and applied <= len(committed) and not self._ends_proposal(
                committed[applied - 1], self._entry_at(node, applied)):
            self._fail(f"node {n} delivered up to {applied}, inside the proposal of {committed[applied - 1]}")
        # whole proposals up to the high watermark: what is held back is the rest of one proposal
        start = max(applied, node.log.start_offset)
        held = node.log.read(start, max(0, hw - start))
        if applied > hw or any(self._ends_proposal(e, held[i + 1] if i + 1 < len(held) else self._entry_at(node, hw))
                               for i, e in enumerate(held)):
            self._fail(f"node {n} delivered up to {applied}, its high watermark is {hw}")
        every = self.sc.snapshot_every
        if every and applied - node.log.start_offset >= every and self.rng.random() < 0.2:
            node.snapshot(applied, tuple(committed[:applied]))

    def _check_durable(self) -> None:
        """The last committed entry is on the flushed log of a majority of voters."""
        c = len(self.committed)
        if c == 0:
            return
        entry = self.committed[c - 1]

        def durable_on(voters: frozenset[int] | list[int]) -> int:
            have = 0
            for v in voters:
                log = self.logs[v]
                # in the snapshot (checked against the committed log when it is loaded) or in the log
                if log.start_offset >= c or (log.flushed_end >= c and log.entry(c - 1) == entry):
                    have += 1
            return have

        if not self.dynamic:
            have = durable_on(self.voter_ids)
            if have < len(self.voter_ids) // 2 + 1:
                self._fail(f"committed offset {c - 1} is durable on only {have} voters")
            return
        # the set it was committed under: the committed one there, or one a leader appended after it
        candidates = [self._committed_voters(c)] + [ids for off, ids in self.appended_sets if off >= c - 1]
        if not any(durable_on(ids) >= len(ids) // 2 + 1 for ids in candidates):
            self._fail(f"committed offset {c - 1} is durable on no majority of the voter sets {candidates}")

    def _committed_voters(self, end: int) -> frozenset[int]:
        """The voter set after the committed entries ``[0, end)``."""
        found = frozenset(self.voter_ids)
        for e in self.committed[:end]:
            voters, _ = control_of(e)
            if voters is not None:
                found = frozenset(voters)
        return found

    def _current_voters(self) -> frozenset[int]:
        """The voters as the sim sees them: the committed set and any set a node holds now."""
        ids = set(self._committed_voters(len(self.committed)))
        for node in self.nodes.values():
            if node is not None:
                ids |= node.voters
        return frozenset(ids)

    def _check_voters(self, n: int, node: RaftNode) -> None:
        expect = None
        log = node.log
        for off in range(log.end_offset - 1, log.start_offset - 1, -1):
            voters, _ = control_of(log.entry(off))
            if voters is not None:
                expect = frozenset(voters)
                break
        if expect is not None and node.voters != expect:
            self._fail(f"node {n} acts with voters {sorted(node.voters)}, its log's latest set is {sorted(expect)}")
        if node.is_voter != (n in node.voters):
            self._fail(f"node {n} is_voter={node.is_voter} with voters {sorted(node.voters)}")

    def _change_voters(self) -> None:
        leaders = [n for n in self.all_ids
                   if (candidate := self.nodes[n]) is not None and candidate.role is Role.LEADER]
        if not leaders:
            return
        n = self.rng.choice(leaders)
        node = self.nodes[n]
        assert node is not None
        voters = sorted(node.voters)
        end = node.log.end_offset
        others = [m for m in self.all_ids if m not in node.voters]
        r = self.rng.random()
        if r < 0.1:
            # a stale directory id: refused, nothing written
            v = self.rng.choice(voters)
            change = node.remove_voter(v, uuid.UUID(int=self.rng.getrandbits(128)), self.now)
            if change.error == NONE or node.log.end_offset != end:
                self._fail(f"removal of voter {v} with a wrong directory id answered {change}")
            self.voter_refusals += 1
            return
        if r < 0.55 and others and len(voters) < self.sc.max_voters:
            m = self.rng.choice(others)
            change = node.add_voter(Voter(m, self.directory[m]), self.now)
            kind = "add"
        elif len(voters) > 2:
            # Never from two voters to one under faults: when the removed voter alone keeps the
            # uncommitted removal (its leader crashed and lost it, or was the removed one), the other
            # voter needs its vote and its longer log refuses it (a two-voter quorum tolerates no
            # failure; Kafka's quorum is stuck the same way). The last voter is never removed
            # (that refusal is checked with the stale directory ids above and in the unit tests).
            m = self.rng.choice(voters)
            change = node.remove_voter(m, self.directory[m], self.now)
            kind = "remove"
        else:
            return
        if change.error != NONE:
            if node.log.end_offset != end:
                self._fail(f"refused voter change {kind} {m} ({change}) wrote to the log")
            self.voter_refusals += 1
            return
        new = frozenset(node.voters)
        if len(new ^ frozenset(voters)) != 1:
            self._fail(f"voter change {kind} {m} went from {voters} to {sorted(new)}")
        self.appended_sets.append((change.offset, new))
        if kind == "add":
            self.voter_adds += 1
        else:
            self.voter_removals += 1
        again = node.remove_voter(voters[0], self.directory[voters[0]], self.now)
        if again.error == NONE:
            self._fail(f"a second voter change was accepted while {change} is in flight")
        self._after(n, [])

    # ------------------------------------------------------------------ main loop

    def run(self) -> None:
        sc = self.sc
        self._push(self.rng.randint(0, sc.fault_every_ms), _FAULT, None)
        self._push(sc.propose_every_ms, _PROPOSE, None)
        if sc.voter_changes_every_ms:
            self._push(sc.voter_changes_every_ms, _VOTERS, None)
        fault_end = sc.fault_ms
        stopped = False
        deadline = fault_end + sc.liveness_bound_ms
        target: int | None = None  # a value proposed after the faults stopped
        while self.queue:
            t, _, kind, payload = heapq.heappop(self.queue)
            if not stopped and t >= fault_end:
                self.now = fault_end
                self._stop_faults()
                stopped = True
                heapq.heappush(self.queue, (t, _, kind, payload))
                continue
            if t > deadline:
                self._fail(
                    f"no progress within {sc.liveness_bound_ms} ms after the faults stopped: "
                    + self.describe()
                )
            self.now = t
            self.events += 1
            if kind == _DELIVER:
                m = payload
                node = self.nodes[m.dst]  # type: ignore[attr-defined]
                if node is None or not self._connected(m.src, m.dst):  # type: ignore[attr-defined]
                    if node is None and isinstance(m, REQUESTS) and self.rng.random() < 0.5:
                        # a connection refused by a stopped node is noticed by the sender
                        self._push(t + 1 + self.rng.randrange(sc.max_delay_ms), _FAILED, m)
                    continue
                try:
                    out = node.handle(m, t)  # type: ignore[arg-type]
                except RaftSafetyError as e:
                    self._fail(str(e))
                self._after(m.dst, out)  # type: ignore[attr-defined]
            elif kind == _TICK:
                n, inc = cast("tuple[int, int]", payload)
                node = self.nodes[n]
                if node is None or inc != self.incarnation[n] or self.tick_at[n] != t:
                    continue
                self.tick_at[n] = -1
                try:
                    out = node.tick(t)
                except RaftSafetyError as e:
                    self._fail(str(e))
                self._after(n, out)
            elif kind == _PROPOSE:
                leaders = [
                    n for n in self.all_ids
                    if (candidate := self.nodes[n]) is not None and candidate.role is Role.LEADER
                ]
                if leaders:
                    n = self.rng.choice(leaders)
                    node = self.nodes[n]
                    assert node is not None
                    size = 1 if self.rng.random() < 0.5 else self.rng.randint(2, 4)
                    values = list(range(self.next_value + 1, self.next_value + 1 + size))
                    self.next_value += size
                    self.proposal_ends.add(values[-1])
                    try:
                        off = node.propose(values, t)
                    except NotLeaderError:
                        off = None
                    if stopped and target is None and off is not None:
                        target = off
                    self._after(n, [])
                if target is not None and all(
                    node is not None and node.high_watermark > target for node in self.nodes.values()
                ):
                    self._check_durable()
                    self.recovery_ms = t - fault_end
                    return
                self._push(t + sc.propose_every_ms, _PROPOSE, None)
            elif kind == _FAULT:
                if not stopped:
                    self._fault()
                    self._push(t + 1 + int(self.rng.expovariate(1 / sc.fault_every_ms)), _FAULT, None)
            elif kind == _FAILED:
                m = payload
                node = self.nodes[m.src]  # type: ignore[attr-defined]
                if node is not None:
                    out = node.request_failed(m.dst, m.request_id, t)  # type: ignore[attr-defined]
                    self._after(m.src, out)  # type: ignore[attr-defined]
            elif kind == _HEAL:
                self.blocked = set()
            elif kind == _VOTERS:
                if not stopped:
                    self._change_voters()
                    self._push(t + 1 + int(self.rng.expovariate(1 / sc.voter_changes_every_ms)), _VOTERS, None)
            elif kind == _RESTART:
                n = payload  # type: ignore[assignment]
                if self.nodes[n] is None:
                    self._start(n)
            self._check_durable()
        self._fail("event queue ran dry")

    def describe(self) -> str:
        parts = []
        for n in self.all_ids:
            node = self.nodes[n]
            if node is None:
                parts.append(f"{n}:down")
            else:
                parts.append(
                    f"{n}:{node.role.value}(e={node.epoch},l={node.leader_id},v={node.voted_id},"
                    f"end={node.log.end_offset},hw={node.high_watermark})"
                )
        return " ".join(parts)


def run_seed(seed: int, scenario: Scenario | str) -> str | None:
    """Run one seeded simulation; None when every invariant held, else what went wrong."""
    return run_seed_with_stats(seed, scenario)[0]


def run_seed_with_stats(seed: int, scenario: Scenario | str) -> tuple[str | None, Simulation]:
    """``run_seed``, also returning the simulation (for its statistics)."""
    sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    sim = Simulation(seed, sc)
    try:
        sim.run()
    except InvariantViolation as e:
        return str(e), sim
    except Exception as e:  # a crash of the core is a failure of the seed too
        return f"t={sim.now}: {type(e).__name__}: {e}", sim
    return None, sim
