"""FetchSnapshot by position and MaxBytes, as Kafka 4.4's KafkaRaftClient: the leader answers the
part of the snapshot from the request's position, at most MaxBytes (POSITION_OUT_OF_RANGE outside
it); a follower asks chunk after chunk (``controller.quorum.fetch.snapshot.max.bytes``) and installs
the snapshot once it has all of it."""

from __future__ import annotations

from kbroker.raft.messages import FetchSnapshotRequest
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import fetch_snapshot as fs
from tests.raft.raft_io_helpers import Cluster, _answer, wait_for


def _fetch_snapshot(end: int, epoch: int, leader_epoch: int, position: int, max_bytes: int) -> fs.FetchSnapshotRequest:
    S = fs.FetchSnapshotRequest.TopicSnapshot
    part = S.PartitionSnapshot(partition=0, current_leader_epoch=leader_epoch, position=position,
                               snapshot_id=S.PartitionSnapshot.SnapshotId(end_offset=end, epoch=epoch))
    return fs.FetchSnapshotRequest(cluster_id=None, replica_id=77, max_bytes=max_bytes,
                                   topics=[S(name="__cluster_metadata", partitions=[part])])


async def test_a_follower_fetches_the_snapshot_in_chunks(tmp_path):
    async with Cluster(tmp_path) as c:
        leader, victim, state, snap = await c.snapshot_past_a_stopped_follower()
        # the leader's core sees each chunk's request (and answers the snapshot; the transport slices it)
        positions: list[int] = []
        handle = leader.node.handle

        def spy(msg, now):
            if isinstance(msg, FetchSnapshotRequest):
                positions.append(msg.position)
            return handle(msg, now)

        leader.node.handle = spy
        await c.propose([b"after"])
        follower = await c.start(victim)
        follower.fetch_snapshot_max_bytes = 50
        await wait_for(lambda: c.logs[victim].snapshot == snap, "the follower installing the snapshot")
        await wait_for(lambda: b"after" in c.values(victim), "the follower committing past the snapshot")
        chunks = -(-len(state) // 50)
        assert chunks > 3 and positions[-chunks:] == [i * 50 for i in range(chunks)]

        # a raw FetchSnapshot: the part asked for, then a position outside the snapshot
        epoch = leader.node.epoch
        resp = await _answer(leader.port, _fetch_snapshot(snap.end_offset, snap.epoch, epoch, 7, 20), 59, 1)
        p = resp.topics[0].partitions[0]
        assert (p.error_code, p.position, p.size, bytes(p.unaligned_records)) == (0, 7, len(state), state[7:27])
        resp = await _answer(leader.port, _fetch_snapshot(snap.end_offset, snap.epoch, epoch, len(state) - 3, 20), 59, 1)
        p = resp.topics[0].partitions[0]
        assert (p.error_code, p.position, p.size, bytes(p.unaligned_records)) == (0, len(state) - 3, len(state),
                                                                                  state[-3:])
        for position in (len(state), -1):
            resp = await _answer(leader.port, _fetch_snapshot(snap.end_offset, snap.epoch, epoch, position, 20), 59, 1)
            assert resp.topics[0].partitions[0].error_code == ErrorCode.POSITION_OUT_OF_RANGE


def _chunk(end: int, position: int, size: int, data: bytes) -> fs.FetchSnapshotResponse:
    S = fs.FetchSnapshotResponse.TopicSnapshot
    P = S.PartitionSnapshot
    part = P(index=0, snapshot_id=P.SnapshotId(end_offset=end, epoch=2), size=size, position=position,
             unaligned_records=data)
    return fs.FetchSnapshotResponse(topics=[S(name="__cluster_metadata", partitions=[part])])


def test_chunks_that_do_not_continue_the_snapshot_fail_the_fetch(tmp_path):
    from kbroker.raft.file_log import FileRaftLog
    from kbroker.raft.io import RaftDriver
    from kbroker.raft.peers import Peer
    from kbroker.raft.state_store import FileQuorumStateStore

    log = FileRaftLog(tmp_path)
    driver = RaftDriver(1, (1, 2, 3), {}, log, FileQuorumStateStore(tmp_path))
    failed: list[tuple[int, int]] = []
    sent: list[FetchSnapshotRequest] = []
    driver._fail_soon = lambda dst, rid: failed.append((dst, rid))
    driver._write_request = lambda peer, msg: sent.append(msg)
    peer = Peer(2)
    request = FetchSnapshotRequest(1, 2, 5, 3, 40, 2)
    try:
        for bad in (_chunk(40, 4, 10, b"abcd"),  # a first chunk not at position 0
                    _chunk(41, 0, 10, b"abcd"),  # another snapshot
                    _chunk(40, 0, 3, b"abcd"),  # more bytes than its size
                    _chunk(40, 0, 10, b"")):  # no progress
            peer.snapshot_parts[5] = (request, 0, bytearray())
            assert driver._snapshot_chunk(peer, 5, bad) is False
            assert 5 not in peer.snapshot_parts and failed.pop() == (2, 5)
        # good chunks: the next one asked for from where the held bytes end, then the whole to the core
        peer.snapshot_parts[5] = (request, 0, bytearray())
        assert driver._snapshot_chunk(peer, 5, _chunk(40, 0, 10, b"abcd")) is False
        assert [m.position for m in sent] == [4]
        assert driver._snapshot_chunk(peer, 5, _chunk(40, 4, 11, b"efg")) is False  # its size changed
        assert failed.pop() == (2, 5)
        peer.snapshot_parts[5] = (request, 0, bytearray())
        assert driver._snapshot_chunk(peer, 5, _chunk(40, 0, 10, b"abcd")) is False
        whole = _chunk(40, 4, 10, b"efghij")
        assert driver._snapshot_chunk(peer, 5, whole) is True and not failed
        p = whole.topics[0].partitions[0]
        assert (p.position, p.unaligned_records) == (0, b"abcdefghij") and 5 not in peer.snapshot_parts
    finally:
        log.close()


def test_a_fetch_asked_again_goes_on_from_the_bytes_held(tmp_path):
    """The core times out its one FetchSnapshot after request_timeout_ms, however many chunks the
    transfer took, and asks again from position 0: the new fetch takes over the bytes the earlier
    one holds and asks from there (Kafka's follower keeps its partial snapshot), the earlier one
    stops; a fetch of another snapshot starts at 0."""
    from kbroker.raft.file_log import FileRaftLog
    from kbroker.raft.io import RaftDriver
    from kbroker.raft.peers import Peer
    from kbroker.raft.state_store import FileQuorumStateStore

    log = FileRaftLog(tmp_path)
    driver = RaftDriver(1, (1, 2, 3), {}, log, FileQuorumStateStore(tmp_path))
    driver._write_request = lambda peer, msg: None  # (the next chunk's request, not sent here)
    peer = Peer(2)
    try:
        first = driver._start_snapshot_fetch(peer, FetchSnapshotRequest(1, 2, 5, 3, 40, 2))
        assert first.position == 0 and peer.snapshot_parts[5][2] == bytearray()
        assert driver._snapshot_chunk(peer, 5, _chunk(40, 0, 10, b"abcd")) is False  # 4 of 10 held
        again = driver._start_snapshot_fetch(peer, FetchSnapshotRequest(1, 2, 9, 3, 40, 2))
        assert again.position == 4 and 5 not in peer.snapshot_parts
        assert peer.snapshot_parts[9][1:] == (10, bytearray(b"abcd"))
        whole = _chunk(40, 4, 10, b"efghij")
        assert driver._snapshot_chunk(peer, 9, whole) is True
        assert whole.topics[0].partitions[0].unaligned_records == b"abcdefghij"
        other = driver._start_snapshot_fetch(peer, FetchSnapshotRequest(1, 2, 11, 3, 50, 2))
        assert other.position == 0
    finally:
        log.close()


async def test_a_fetch_snapshot_the_core_fails_on_leaves_no_read_behind(tmp_path):
    """An inbound FetchSnapshot's position and MaxBytes are kept for its answer; when the core fails
    on the request (no answer comes, the connection is closed) they go with it."""
    import asyncio
    import random

    import pytest

    from kbroker.raft.file_log import FileRaftLog
    from kbroker.raft.io import RaftDriver
    from kbroker.raft.state_store import FileQuorumStateStore

    log = FileRaftLog(tmp_path)
    driver = RaftDriver(1, [1], {}, log, FileQuorumStateStore(tmp_path), rng=random.Random(1))
    port = await driver.listen()
    driver.start()
    try:
        assert driver.node is not None
        handle = driver.node.handle

        def failing(msg, now):
            if isinstance(msg, FetchSnapshotRequest):
                raise RuntimeError("the core failed")
            return handle(msg, now)

        driver.node.handle = failing  # type: ignore[method-assign]
        for _ in range(3):
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                await _answer(port, _fetch_snapshot(1, 1, driver.epoch, 0, 20), 59, 1)
        assert driver._snapshot_reads == {} and driver._requests == {}
        # answered: its read is used and dropped too
        driver.node.handle = handle  # type: ignore[method-assign]
        resp = await _answer(port, _fetch_snapshot(1, 1, driver.epoch, 0, 20), 59, 1)
        assert resp.topics[0].partitions[0].error_code != 0  # no such snapshot
        assert driver._snapshot_reads == {}
    finally:
        await driver.stop(graceful=True)
        log.close()
