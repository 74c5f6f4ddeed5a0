"""In-process three-node raft cluster and wire helpers shared by the raft I/O tests (moved from test_raft_io)."""

from __future__ import annotations

import asyncio
import random
import struct

from kbroker.raft.file_log import FileRaftLog
from kbroker.raft.io import ProposalLostError, RaftDriver, RaftStoppedError
from kbroker.raft.log import Entry, Snapshot
from kbroker.raft.node import NotLeaderError, RaftConfig, Role
from kbroker.raft.state_store import FileQuorumStateStore
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.messages import RequestHeader
from tests.integration.waiting import async_wait_until

VOTERS = (1, 2, 3)


CLUSTER_ID = "raft-io-test-cluster"


CONFIG = RaftConfig(
    election_timeout_ms=200,
    fetch_timeout_ms=400,
    election_backoff_max_ms=200,
    request_timeout_ms=400,
    retry_backoff_ms=20,
    fetch_max_wait_ms=100,
    append_linger_ms=5,
)


WAIT = 15.0


async def wait_for(predicate, what: str, timeout: float = WAIT, details=None):
    """Poll ``predicate`` until it holds or the deadline passes (the sleep is the polling interval)."""
    return await async_wait_until(predicate, timeout, 0.01, message=what, details=details)


class Cluster:
    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        self.addresses: dict[int, tuple[str, int]] = {}
        self.drivers: dict[int, RaftDriver] = {}
        self.logs: dict[int, FileRaftLog] = {}
        self.committed: dict[int, list[tuple[int, Entry | Snapshot]]] = {}
        self.opened_end: dict[int, int] = {}

    async def start(self, node_id: int) -> RaftDriver:
        directory = self.tmp_path / f"node{node_id}"
        log = FileRaftLog(directory)
        self.opened_end[node_id] = log.end_offset
        store = FileQuorumStateStore(directory)
        self.committed[node_id] = []
        sink = self.committed[node_id]
        driver = RaftDriver(
            node_id,
            VOTERS,
            self.addresses,
            log,
            store,
            config=CONFIG,
            cluster_id=CLUSTER_ID,
            on_commit=lambda offset, item: sink.append((offset, item)),
            rng=random.Random(node_id),
        )
        self.addresses[node_id] = ("127.0.0.1", await driver.listen())
        driver.start()
        self.drivers[node_id] = driver
        self.logs[node_id] = log
        return driver

    async def stop(self, node_id: int, graceful: bool) -> None:
        driver = self.drivers.pop(node_id)
        await driver.stop(graceful=graceful)
        self.logs.pop(node_id).close()  # without a flush: an abrupt stop loses the unflushed tail

    async def __aenter__(self) -> Cluster:
        for n in VOTERS:
            await self.start(n)
        return self

    async def __aexit__(self, *exc) -> None:
        for n in list(self.drivers):
            await self.stop(n, graceful=True)

    def leader(self) -> RaftDriver | None:
        """The leader that every running node follows, if there is one."""
        leaders = [d for d in self.drivers.values() if d.node.role is Role.LEADER]
        if len(leaders) != 1:
            return None
        leader = leaders[0]
        if all(d.node.leader_id == leader.node_id and d.node.epoch == leader.node.epoch for d in self.drivers.values()):
            return leader
        return None

    def roles(self) -> str:
        return ", ".join(f"{n}: {d.node.role.value} e{d.node.epoch} leader {d.node.leader_id}" for n, d in self.drivers.items())

    async def wait_leader(self) -> RaftDriver:
        return await wait_for(self.leader, "a leader followed by every running node", details=self.roles)

    async def propose(self, values: list[bytes]) -> int:
        """Propose on the leader until it is committed (retrying across leader changes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while loop.time() < deadline:
            leader = await self.wait_leader()
            try:
                return await asyncio.wait_for(leader.propose(values), WAIT)
            except (NotLeaderError, ProposalLostError, RaftStoppedError):
                await asyncio.sleep(0.01)
        raise AssertionError(f"could not commit {values}")

    def values(self, node_id: int) -> list[bytes]:
        return [bytes(e.value) for _o, e in self.committed[node_id] if isinstance(e, Entry) and not e.control]

    def check_consistent(self) -> None:
        """Every running node's committed entries are one sequence (offsets contiguous from 0)."""
        seqs = [[(o, e.epoch, e.control, e.value if e.control else bytes(e.value)) for o, e in self.committed[n]]
                for n in self.drivers]
        for s in seqs:
            assert [o for o, *_ in s] == list(range(len(s)))
        longest = max(seqs, key=len)
        for s in seqs:
            assert s == longest[: len(s)]

    async def wait_committed_everywhere(self, values: list[bytes]) -> None:
        def done():
            return all(set(values) <= set(self.values(n)) for n in self.drivers)

        await wait_for(done, f"{len(values)} values committed on every running node",
                       details=lambda: {n: len(self.values(n)) for n in self.drivers})
        self.check_consistent()

    async def snapshot_past_a_stopped_follower(self) -> tuple[RaftDriver, int, bytes, Snapshot]:
        """Five values committed everywhere, a follower stopped (gracefully), forty values more,
        then the leader's snapshot at its high watermark, whose state is every value so far joined
        by ``|``: the stopped follower can catch up only by fetching it. Returns the leader, the
        stopped follower's id, the state and the snapshot."""
        leader = await self.wait_leader()
        first = [f"s{i}".encode() for i in range(5)]
        await self.propose(first)
        await self.wait_committed_everywhere(first)
        victim = next(n for n in VOTERS if n != leader.node_id)
        await self.stop(victim, graceful=True)
        second = [f"t{i}".encode() for i in range(40)]
        await self.propose(second)
        state = b"|".join(first + second)
        return leader, victim, state, leader.snapshot(leader.node.high_watermark, state)


def _frame(body, api_key: int, version: int, cid: int) -> bytes:
    header = RequestHeader(request_api_key=api_key, request_api_version=version, correlation_id=cid, client_id="x")
    payload = encode_request(header, body)
    return struct.pack(">i", len(payload)) + payload


async def _answer(port: int, body, api_key: int, version: int) -> object:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_frame(body, api_key, version, 7))
        size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), WAIT))[0]
        header, resp = decode_response(await reader.readexactly(size), api_key, version)
        assert header.correlation_id == 7
        return resp
    finally:
        writer.close()
