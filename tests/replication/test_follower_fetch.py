"""Followers replicate their leader's log byte for byte (the replica fetcher and the leader's Fetch)."""

from __future__ import annotations

from tests.replication.harness import Cluster, batch, produce, wait_for


def _replicated(cluster: Cluster, topic: str, nodes: list[int]) -> bool:
    leader = cluster.partition(nodes[0], topic)
    return all(cluster.partition(n, topic).log.log_end_offset == leader.log.log_end_offset for n in nodes[1:])


async def test_follower_catches_up_byte_for_byte():
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        leader, follower = cluster.partition(1, "t"), cluster.partition(2, "t")
        assert leader.is_leader and not follower.is_leader
        assert follower.leader_id == 1 and follower.leader_epoch == 0
        conn = await cluster.connect(1)
        try:
            for i in range(5):
                resp = await produce(conn, "t", batch([b"v%d-%d" % (i, j) for j in range(3)]), acks=1)
                assert resp.responses[0].partition_responses[0].error_code == 0
        finally:
            conn.close()
        await wait_for(lambda: _replicated(cluster, "t", [1, 2]), message="the follower to reach the leader's end")
        assert follower.log.log_end_offset == 15
        assert cluster.log_bytes(2, "t") == cluster.log_bytes(1, "t")
        # The follower learns the leader's high watermark from the next fetch answer.
        await wait_for(lambda: leader.log.high_watermark == 15 and follower.log.high_watermark == 15,
                       message="both high watermarks at 15")
        # The leader epoch cache of the follower holds the leader's epoch from the batches.
        assert follower.log.leader_epochs.entries() == [(0, 0)]
        assert leader.followers[2].log_end_offset == 15


async def test_follower_keeps_the_leaders_log_append_times():
    # A LogAppendTime topic: the leader stamps the time; the follower stores the leader's bytes.
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]], configs={"message.timestamp.type": "LogAppendTime"})
        conn = await cluster.connect(1)
        try:
            for i in range(3):
                resp = await produce(conn, "t", batch([b"x%d" % i, b"y%d" % i]), acks=-1)
                part = resp.responses[0].partition_responses[0]
                assert part.error_code == 0 and part.log_append_time_ms > 0
        finally:
            conn.close()
        assert cluster.partition(2, "t").log.log_end_offset == 6
        assert cluster.log_bytes(2, "t") == cluster.log_bytes(1, "t")


async def test_follower_keeps_producer_state_and_aborted_transactions():
    from kbroker.replication.producer_manager import partition_state
    from kbroker_protocol.records import Record, build_batch

    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        leader, follower = cluster.partition(1, "t"), cluster.partition(2, "t")
        rm = cluster.broker(1).replica_manager
        pid, epoch = 4242, 3

        def txn_batch(values: list[bytes], seq: int) -> bytes:
            return build_batch([Record(key=None, value=v, timestamp=1_700_000_000_000) for v in values],
                               producer_id=pid, producer_epoch=epoch, base_sequence=seq, transactional=True)

        # A transaction aborted, then one committed, as the leader's transaction layer writes them.
        for seq, values, commit in ((0, [b"a1", b"a2"], False), (2, [b"c1"], True)):
            info = leader.log.append(txn_batch(values, seq), leader_epoch=leader.leader_epoch)
            partition_state(leader).update(_header(leader, info.first_offset), info.first_offset, info.last_offset)
            rm.on_leader_append(leader)
            assert rm.producer_state.write_marker(rm, leader, pid, epoch, commit, 0) == 0
        await wait_for(lambda: follower.log.log_end_offset == leader.log.log_end_offset == 5,
                       message="the follower has the transactions and their markers")
        assert cluster.log_bytes(2, "t") == cluster.log_bytes(1, "t")
        assert follower.aborted_transactions(0, 5) == leader.aborted_transactions(0, 5) == [(pid, 0)]
        # The follower's producer state knows the producer's last sequence, for dedupe as leader.
        entry = partition_state(follower).producers[pid]
        assert entry.epoch == epoch and entry.last_seq == 2
        assert partition_state(follower).first_unstable_offset() is None


def _header(partition, offset: int):
    for header, _data in partition.log.iter_batches(offset):
        return header
    raise AssertionError(offset)


async def test_follower_behind_the_leaders_log_start_starts_over_there():
    from kbroker_protocol.messages import REQUESTS
    from tests.replication.leadership import block_follower, blocked

    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]], isr=[[1]])
        leader, follower = cluster.partition(1, "t"), cluster.partition(2, "t")
        rule = block_follower(cluster, 1, 2)
        await blocked(cluster, 1, rule)
        conn = await cluster.connect(1)
        try:
            for i in range(5):
                await produce(conn, "t", batch([b"r%d" % i]), acks=1)
            assert leader.log.high_watermark == 5  # the ISR is the leader alone
            Req = REQUESTS[21]
            resp = await conn.request(Req(topics=[Req.DeleteRecordsTopic(name="t", partitions=[
                Req.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=0, offset=3)])], timeout_ms=5000), 2, 10)
            assert resp.topics[0].partitions[0].error_code == 0
        finally:
            conn.close()
        assert leader.log.log_start_offset == 3 and follower.log.log_end_offset == 0
        cluster.nodes[1].remove_fault(rule)
        # Fetching at 0 is out of range: the follower asks the leader's start and end, starts at 3.
        await wait_for(lambda: follower.log.log_end_offset == 5, message="the follower caught up from 3",
                       details=lambda: (follower.log.log_start_offset, follower.log.log_end_offset))
        assert follower.log.log_start_offset == 3
        assert cluster.log_bytes(2, "t") == cluster.log_bytes(1, "t")
        await wait_for(lambda: leader.isr == [1, 2], message="the follower rejoined the ISR")


async def test_follower_fetches_in_an_incremental_session_and_recovers_a_lost_one():
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        cluster.create_topic("u", [[1, 2]])
        leader_sessions = cluster.broker(1).fetch_sessions.sessions
        conn = await cluster.connect(1)
        try:
            for i in range(3):
                for topic in ("t", "u"):
                    await produce(conn, topic, batch([b"%s%d" % (topic.encode(), i)]), acks=-1)
            # One session on the leader holds both partitions, and it is past its first (full) fetch.
            await wait_for(lambda: len(leader_sessions) == 1, message="one replica fetch session")
            session = next(iter(leader_sessions.values()))
            assert len(session.partitions) == 2 and session.epoch > 2
            # The leader loses the session (evicted, restarted): the follower starts a new one.
            leader_sessions.clear()
            for topic in ("t", "u"):
                assert (await produce(conn, topic, batch([b"after"]), acks=-1)).responses[0] \
                    .partition_responses[0].error_code == 0
        finally:
            conn.close()
        assert cluster.log_bytes(2, "t") == cluster.log_bytes(1, "t")
        assert cluster.log_bytes(2, "u") == cluster.log_bytes(1, "u")
        await wait_for(lambda: len(leader_sessions) == 1, message="a new session")
