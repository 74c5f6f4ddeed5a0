"""In-memory raft network shared by the voter change tests (moved from test_raft_voter_changes)."""

from __future__ import annotations

import random
import uuid

from kbroker.raft.log import MemoryLog
from kbroker.raft.node import RaftConfig, RaftNode, Role
from kbroker.raft.state_store import MemoryQuorumStateStore
from kbroker.raft.voters import Voter

CFG = RaftConfig(election_timeout_ms=100, fetch_timeout_ms=200, election_backoff_max_ms=100,
                 request_timeout_ms=200, retry_backoff_ms=2, fetch_max_wait_ms=20, append_linger_ms=2)


DIRS = {n: uuid.UUID(int=n * 1000 + 7) for n in range(1, 10)}


class Net:
    """Nodes on a lossless in-memory network with a shared clock (one message per ms)."""

    def __init__(self, voters: list[int], others: list[int] = (), kraft_version: int = 1) -> None:
        self.now = 0
        self.initial = {v: Voter(v, DIRS[v], (("CONTROLLER", "localhost", 9000 + v),)) for v in voters}
        self.kraft_version = kraft_version
        self.logs = {n: MemoryLog() for n in [*voters, *others]}
        self.stores = {n: MemoryQuorumStateStore() for n in self.logs}
        self.nodes: dict[int, RaftNode] = {}
        self.down: set[int] = set()
        self.queue: list = []
        for n in self.logs:
            self.start(n)

    def start(self, n: int) -> RaftNode:
        self.nodes[n] = RaftNode(n, self.initial, self.logs[n], self.stores[n], random.Random(n), CFG, now=self.now,
                                 kraft_version=self.kraft_version, directory_id=DIRS[n])
        self.down.discard(n)
        return self.nodes[n]

    def run(self, until, limit_ms: int = 5000) -> None:
        end = self.now + limit_ms
        while self.now < end:
            if until():
                return
            self.now += 1
            for n, node in self.nodes.items():
                if n not in self.down:
                    self.queue += node.tick(self.now)
            pending, self.queue = self.queue, []
            for m in pending:
                if m.dst in self.nodes and m.dst not in self.down and m.src not in self.down:
                    self.queue += self.nodes[m.dst].handle(m, self.now)
        raise AssertionError(f"condition not reached by t={self.now}")

    def leader(self) -> RaftNode | None:
        leaders = [n for n in self.nodes.values() if n.role is Role.LEADER and n.node_id not in self.down]
        return leaders[0] if len(leaders) == 1 else None

    def settled_leader(self) -> RaftNode:
        """A leader whose epoch (and any voter change before it) is committed."""
        self.run(lambda: (lead := self.leader()) is not None and lead.high_watermark > lead.epoch_start_offset
                 and lead.controls.voters_offset < lead.high_watermark)
        lead = self.leader()
        assert lead is not None
        return lead

    def commit(self, offset: int) -> None:
        self.run(lambda: all(n.high_watermark > offset for i, n in self.nodes.items() if i not in self.down))
