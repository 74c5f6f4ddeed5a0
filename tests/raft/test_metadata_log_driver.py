"""Three RaftDrivers over TCP on 127.0.0.1 with MetadataLog underneath (Kafka's segment format):
elections, commits, an abrupt restart, and a snapshot shipped over FetchSnapshot as the bytes of
the leader's .checkpoint file."""

from __future__ import annotations

import random

from kbroker.metadata import metadata_records as mr
from kbroker.metadata.metadata_log import MetadataLog, decode_snapshot, snapshot_file_name
from kbroker.raft.io import RaftDriver
from kbroker.raft.log import Entry, Snapshot
from kbroker.raft.state_store import FileQuorumStateStore
from tests.raft.raft_io_helpers import CLUSTER_ID, CONFIG, VOTERS, Cluster, wait_for


class MetadataCluster(Cluster):
    async def start(self, node_id: int) -> RaftDriver:
        directory = self.tmp_path / f"node{node_id}"
        log = MetadataLog(directory / "__cluster_metadata-0", voters=VOTERS)
        self.opened_end[node_id] = log.end_offset
        # Kafka's layout: quorum-state in the partition directory, beside the segments
        store = FileQuorumStateStore(directory / "__cluster_metadata-0")
        self.committed[node_id] = []
        sink = self.committed[node_id]
        driver = RaftDriver(
            node_id, VOTERS, self.addresses, log, store, config=CONFIG, cluster_id=CLUSTER_ID,
            on_commit=lambda offset, item: sink.append((offset, item)), rng=random.Random(node_id),
        )
        self.addresses[node_id] = ("127.0.0.1", await driver.listen())
        driver.start()
        self.drivers[node_id] = driver
        self.logs[node_id] = log  # type: ignore[assignment]
        return driver


def frames(prefix: str, n: int) -> list[bytes]:
    return [mr.encode_frame(mr.ConfigRecord(resource_type=4, resource_name="", name=f"{prefix}{i}", value="v"))
            for i in range(n)]


async def test_commits_and_abrupt_restart_on_kafka_segments(tmp_path):
    async with MetadataCluster(tmp_path) as c:
        leader = await c.wait_leader()
        values = frames("a", 12)
        for i in range(0, 12, 4):
            await c.propose(values[i : i + 4])
        await c.wait_committed_everywhere(values)
        follower = next(n for n in VOTERS if n != leader.node_id)
        await c.stop(follower, graceful=False)  # its unflushed tail (if any) is lost
        more = frames("b", 6)
        await c.propose(more)
        await c.start(follower)
        await c.wait_committed_everywhere(values + more)
        for n in VOTERS:
            assert c.values(n) == values + more
        # on disk: segments of record batches, the first entry the leader's LeaderChangeMessage
        log = c.logs[leader.node_id]
        assert log.entry(0).control and log.entry(0).value == c.committed[leader.node_id][0][1].value
        partition_dir = tmp_path / f"node{leader.node_id}" / "__cluster_metadata-0"
        assert list(partition_dir.glob("*.log")) and (partition_dir / "quorum-state").exists()


async def test_lagging_follower_installs_the_leaders_checkpoint(tmp_path):
    async with MetadataCluster(tmp_path) as c:
        leader = await c.wait_leader()
        first = frames("s", 5)
        await c.propose(first)
        await c.wait_committed_everywhere(first)
        victim = next(n for n in VOTERS if n != leader.node_id)
        await c.stop(victim, graceful=True)
        second = frames("t", 30)
        await c.propose(second)
        end = leader.node.high_watermark
        state = first + second  # the state machine's records
        snap = leader.snapshot(end, state)
        assert decode_snapshot(snap.data).records == state
        assert c.logs[leader.node_id].start_offset == end
        third = frames("u", 1)
        await c.propose(third)
        await c.start(victim)
        await wait_for(lambda: c.logs[victim].snapshot == snap, "the follower installing the snapshot")
        await wait_for(lambda: third[0] in c.values(victim), "the follower committing past the snapshot")
        loaded = [item for _o, item in c.committed[victim] if isinstance(item, Snapshot)]
        assert loaded == [snap]
        name = snapshot_file_name(snap.end_offset, snap.epoch)
        leader_file = tmp_path / f"node{leader.node_id}" / "__cluster_metadata-0" / name
        victim_file = tmp_path / f"node{victim}" / "__cluster_metadata-0" / name
        assert victim_file.read_bytes() == leader_file.read_bytes() == snap.data
        assert c.logs[victim].read(end, 10)[-1] == Entry(leader.node.epoch, third[0])


async def test_proposals_reach_every_node_whole_across_a_restart(tmp_path, monkeypatch):
    """Proposals larger and smaller than a fetch (fetch_max_entries 3), over TCP and Kafka
    segments, a follower restarted abruptly in between: every node's committed stream marks
    exactly the proposals' ends (the boundaries cross the wire and the disk)."""
    import dataclasses

    monkeypatch.setitem(globals(), "CONFIG", dataclasses.replace(CONFIG, fetch_max_entries=3))
    sizes = [1, 5, 2, 7, 3, 1, 4]
    async with MetadataCluster(tmp_path) as c:
        leader = await c.wait_leader()
        ends: list[bytes] = []
        proposals = [frames(f"p{i}-", n) for i, n in enumerate(sizes)]
        for p in proposals[:4]:
            await c.propose(p)
            ends.append(p[-1])
        follower = next(n for n in VOTERS if n != leader.node_id)
        await c.stop(follower, graceful=False)
        for p in proposals[4:]:
            await c.propose(p)
            ends.append(p[-1])
        await c.start(follower)
        everything = [v for p in proposals for v in p]
        await c.wait_committed_everywhere(everything)
        for n in VOTERS:
            data = [(bytes(e.value), e.batch_end) for _o, e in c.committed[n] if isinstance(e, Entry) and not e.control]
            assert [v for v, _ in data] == everything
            assert [v for v, end in data if end] == ends, n
