"""Three RaftDrivers in one process over TCP on 127.0.0.1, each with a FileRaftLog in a tmp dir."""

from __future__ import annotations

import asyncio
import struct

import pytest

from kbroker.raft.log import Snapshot
from kbroker.raft.node import NotLeaderError, Role
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages import vote as vo
from tests.raft.raft_io_helpers import CLUSTER_ID, VOTERS, WAIT, Cluster, _answer, _frame, wait_for

# Kafka's timeouts divided by five: elections take a few hundred ms


async def test_election_and_commit_on_all_three(tmp_path):
    async with Cluster(tmp_path) as c:
        leader = await c.wait_leader()
        values = [f"v{i}".encode() for i in range(30)]
        offsets = []
        for i in range(0, 30, 3):
            offsets.append(await c.propose(values[i : i + 3]))
        assert offsets == sorted(offsets)
        await c.wait_committed_everywhere(values)
        for n in VOTERS:
            assert c.values(n) == values
        # a follower refuses a proposal and names the leader
        follower = next(d for n, d in c.drivers.items() if n != leader.node_id)
        with pytest.raises(NotLeaderError) as e:
            await follower.propose([b"nope"])
        assert e.value.leader_id == leader.node_id
        # the committed entries are on disk: the first leader's control record, then the values
        assert c.logs[leader.node_id].flushed_end >= len(values) + 1


@pytest.mark.parametrize("graceful", [True, False], ids=["graceful", "abrupt"])
async def test_leader_stop_new_leader_nothing_lost_and_restart_catches_up(tmp_path, graceful):
    async with Cluster(tmp_path) as c:
        old = await c.wait_leader()
        old_epoch = old.node.epoch
        before = [f"before{i}".encode() for i in range(10)]
        for v in before:
            await c.propose([v])
        await c.wait_committed_everywhere(before)
        old_id = old.node_id
        old_log = c.logs[old_id]
        # what the restart must find: all it had (a graceful stop flushes), or exactly the flushed
        # prefix (an abrupt one loses the tail); stop() does not yield before it stops the node
        old_end = old_log.end_offset if graceful else old_log.flushed_end
        old_entries = old_log.read(0, old_end)

        await c.stop(old_id, graceful=graceful)
        new = await c.wait_leader()
        assert new.node_id != old_id and new.node.epoch > old_epoch
        after = [f"after{i}".encode() for i in range(10)]
        for i in range(0, 10, 2):
            await c.propose(after[i : i + 2])
        await c.wait_committed_everywhere(before + after)
        for n in c.drivers:
            assert c.values(n) == before + after

        # the old leader comes back (on another port): it opens its durable log (everything it had
        # flushed) and fetches what it missed
        restarted = await c.start(old_id)
        assert c.opened_end[old_id] == old_end >= len(before) + 1
        assert c.logs[old_id].read(0, old_end) == old_entries
        await c.wait_committed_everywhere(before + after)
        assert c.values(old_id) == before + after
        await wait_for(lambda: restarted.node.role is Role.FOLLOWER and restarted.node.leader_id == new.node_id,
                       "the restarted node following the new leader", details=c.roles)
        more = [b"last"]
        await c.propose(more)
        await c.wait_committed_everywhere(before + after + more)


async def test_follower_abrupt_restart_catches_up_from_its_log(tmp_path):
    async with Cluster(tmp_path) as c:
        leader = await c.wait_leader()
        first = [f"a{i}".encode() for i in range(20)]
        await c.propose(first)
        await c.wait_committed_everywhere(first)
        victim = next(n for n in VOTERS if n != leader.node_id)
        await wait_for(lambda: c.logs[victim].flushed_end >= 21, "the follower flushing what it fetched")
        await c.stop(victim, graceful=False)
        second = [f"b{i}".encode() for i in range(20)]
        await c.propose(second)  # two of three voters commit
        await c.start(victim)
        assert c.opened_end[victim] >= 21  # recovered from its own files, not refetched
        await c.wait_committed_everywhere(first + second)
        assert c.values(victim) == first + second


def _vote_request(cluster_id: str, topic: str = "__cluster_metadata") -> vo.VoteRequest:
    P = vo.VoteRequest.TopicData.PartitionData
    part = P(partition_index=0, replica_epoch=1, replica_id=99, last_offset_epoch=0, last_offset=0)
    return vo.VoteRequest(cluster_id=cluster_id, voter_id=1, topics=[vo.VoteRequest.TopicData(topic_name=topic, partitions=[part])])


async def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the node closes the connection (or 2 frames of answers)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


async def test_hostile_peer_cannot_crash_a_node(tmp_path):
    async with Cluster(tmp_path) as c:
        leader = await c.wait_leader()
        port = leader.port
        # garbage, a frame claiming 2 GB, an API the raft listener does not serve (Metadata), a
        # truncated body:
        # each gets the connection closed without an answer
        assert await _exchange(port, struct.pack(">i", 12) + b"\xff" * 12) == b""
        assert await _exchange(port, struct.pack(">i", 2**31 - 1) + b"abc") == b""
        assert await _exchange(port, _frame(REQUESTS[3](), 3, 12, 1)) == b""  # Metadata
        # ApiVersions lists the raft APIs (a Kafka client asks first)
        resp = await _answer(port, REQUESTS[18](client_software_name="t", client_software_version="1"), 18, 3)
        assert resp.error_code == 0
        assert {k.api_key: k.max_version for k in resp.api_keys} == {1: 18, 18: 5, 52: 2, 53: 1, 54: 1, 59: 1}
        good = _frame(_vote_request(CLUSTER_ID), 52, 2, 5)
        cut = good[4:-3]
        assert await _exchange(port, struct.pack(">i", len(cut)) + cut) == b""
        # another cluster id and another partition: answered with the error, as Kafka does
        resp = await _answer(port, _vote_request("other-cluster"), 52, 2)
        assert resp.error_code == ErrorCode.INCONSISTENT_CLUSTER_ID
        resp = await _answer(port, _vote_request(CLUSTER_ID, topic="not-metadata"), 52, 2)
        assert resp.error_code == ErrorCode.INVALID_REQUEST
        # a well-formed Vote from a stranger with a stale epoch is answered by the core
        resp = await _answer(port, _vote_request(CLUSTER_ID), 52, 2)
        assert resp.error_code == 0 and not resp.topics[0].partitions[0].vote_granted
        # the quorum is unharmed
        assert c.leader() is leader
        await c.propose([b"still working"])
        await c.wait_committed_everywhere([b"still working"])


async def test_lagging_follower_gets_the_leaders_snapshot(tmp_path):
    """Entries a stopped follower missed are dropped by the leader's snapshot: on restart it
    fetches the snapshot (FetchSnapshot over the wire), loads it, then the entries after it."""
    async with Cluster(tmp_path) as c:
        leader, victim, _state, snap = await c.snapshot_past_a_stopped_follower()
        end = snap.end_offset
        assert c.logs[leader.node_id].start_offset == end > c.opened_end[victim] + 40
        third = [b"after the snapshot"]
        await c.propose(third)
        await c.start(victim)
        await wait_for(lambda: c.logs[victim].snapshot == snap, "the follower installing the snapshot")
        await wait_for(lambda: third[0] in c.values(victim), "the follower committing past the snapshot")
        items = c.committed[victim]
        loaded = [i for i, (_o, item) in enumerate(items) if isinstance(item, Snapshot)]
        assert len(loaded) == 1 and items[loaded[0]] == (end - 1, snap)
        # before it (if the follower learnt a high watermark first) entries of its own log from 0,
        # after it exactly the entries that follow the snapshot
        before = [o for o, _item in items[: loaded[0]]]
        after = [o for o, _item in items[loaded[0] + 1 :]]
        assert before == list(range(len(before))) and len(before) < end
        assert after == list(range(end, end + len(after)))


async def test_hostile_voter_answers_do_not_crash_the_others(tmp_path, caplog):
    """Voter 3's address is a server answering with an unknown correlation id, an undecodable
    body, or a top-level error: nodes 1 and 2 close those connections, reconnect, and as a
    majority elect a leader and commit; the core never fails on any of it."""
    connections = 0

    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        kind = connections % 3
        connections += 1
        try:
            while True:
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                frame = await reader.readexactly(size)
                api_key, version, cid = struct.unpack_from(">hhi", frame)
                if kind == 0:
                    writer.write(struct.pack(">ii", 4, cid + 1000))
                elif kind == 1:
                    writer.write(struct.pack(">ii", 9, cid) + b"\xff" * 5)
                else:
                    from kbroker_protocol.api import encode_response
                    from kbroker_protocol.messages import RESPONSES

                    body = RESPONSES[api_key](error_code=ErrorCode.INCONSISTENT_CLUSTER_ID)
                    payload = b"".join(encode_response(cid, api_key, version, body))
                    writer.write(struct.pack(">i", len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(hostile, "127.0.0.1", 0)
    c = Cluster(tmp_path)
    c.addresses[3] = ("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        for n in (1, 2):
            await c.start(n)
        leader = await c.wait_leader()
        values = [b"majority of two"]
        await c.propose(values)
        await c.wait_committed_everywhere(values)
        assert leader.node_id in (1, 2)
        # the first two connections (one per node) got a bad answer and were closed: each node came back
        await wait_for(lambda: connections >= 3, "a node reconnecting to voter 3 after a bad answer")
    finally:
        await c.__aexit__(None, None, None)
        server.close()
    failures = [r for r in caplog.records if r.levelname == "ERROR" and r.name.startswith("kbroker.raft")]
    assert failures == []
