"""The leader's side of replication: high watermark, acks=all, min.insync.replicas and the ISR
changes it asks of the controller with AlterPartition."""

from __future__ import annotations

from kbroker_protocol.errors import ErrorCode
from tests.replication.harness import Cluster, batch, fetch, produce, wait_for
from tests.replication.leadership import block_follower, blocked, connected, produce_awaiting_follower

E = ErrorCode


def _error(resp) -> int:
    return resp.responses[0].partition_responses[0].error_code


async def test_acks_all_answers_once_every_follower_has_the_batch():
    async with Cluster(3) as cluster:
        cluster.create_topic("t", [[1, 2, 3]])
        # Slow followers: each of their fetches is answered 100 ms late, so an answer that did not
        # wait for them would come before they have the batch.
        for follower in (2, 3):
            cluster.nodes[1].add_fault(api="Fetch", client_id=f"broker-{follower}-fetcher-0", action="delay",
                                       delay_ms=100)
        conn = await cluster.connect(1)
        try:
            for i in range(3):
                resp = await produce(conn, "t", batch([b"a%d" % i] * 10), acks=-1)
                assert _error(resp) == E.NONE
                assert resp.responses[0].partition_responses[0].base_offset == 10 * i
                # Answered only once the high watermark passed the batch: both followers had it.
                for node in (2, 3):
                    assert cluster.partition(node, "t").log.log_end_offset >= 10 * (i + 1)
                assert cluster.partition(1, "t").log.high_watermark >= 10 * (i + 1)
        finally:
            conn.close()


async def test_acks_all_times_out_while_an_isr_follower_does_not_fetch():
    async with Cluster(3) as cluster:
        cluster.create_topic("t", [[1, 2, 3]])
        rule = block_follower(cluster, 1, 3)
        await blocked(cluster, 1, rule)
        conn = await cluster.connect(1)
        try:
            resp = await produce(conn, "t", batch([b"x"] * 4), acks=-1, timeout_ms=300)
            assert _error(resp) == E.REQUEST_TIMED_OUT
            leader = cluster.partition(1, "t")
            assert leader.log.log_end_offset == 4  # appended, not committed
            assert leader.log.high_watermark == 0
            assert cluster.partition(3, "t").log.log_end_offset == 0
            # acks=1 answers at once; consumers still see nothing above the high watermark.
            assert _error(await produce(conn, "t", batch([b"y"] * 2), acks=1)) == E.NONE
            resp = await fetch(conn, "t", 0)
            part = resp.responses[0].partitions[0]
            assert part.error_code == E.NONE and part.high_watermark == 0 and not part.records
            # The follower comes back: it catches up and the records become visible.
            cluster.nodes[1].remove_fault(rule)
            await wait_for(lambda: leader.log.high_watermark == 6, message="the high watermark at 6")
            resp = await fetch(conn, "t", 0)
            part = resp.responses[0].partitions[0]
            assert part.high_watermark == 6 and len(part.records) > 0
        finally:
            conn.close()


async def test_min_insync_replicas_refuses_acks_all_when_the_isr_is_too_small():
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]], isr=[[1]], configs={"min.insync.replicas": "2"})
        # Keep the follower out of the ISR: it may not rejoin during this test.
        block_follower(cluster, 1, 2)
        conn = await cluster.connect(1)
        try:
            resp = await produce(conn, "t", batch([b"x"]), acks=-1)
            assert _error(resp) == E.NOT_ENOUGH_REPLICAS
            assert cluster.partition(1, "t").log.log_end_offset == 0  # refused before the append
            assert _error(await produce(conn, "t", batch([b"x"]), acks=1)) == E.NONE
            # Under min ISR the high watermark does not move (KIP-966), so consumers see nothing yet.
            assert cluster.partition(1, "t").log.high_watermark == 0
        finally:
            conn.close()


async def test_stopped_follower_leaves_the_isr_and_rejoins_when_caught_up():
    lag = 10_000
    async with Cluster(2, config={"replica.lag.time.max.ms": str(lag)},
                       per_node={1: {"kbroker.clock": "manual"}}) as cluster:
        cluster.create_topic("t", [[1, 2]])
        leader = cluster.partition(1, "t")
        conn = await cluster.connect(1)
        try:
            assert _error(await produce(conn, "t", batch([b"a"] * 3), acks=-1)) == E.NONE
            rule = block_follower(cluster, 1, 2)
            await blocked(cluster, 1, rule)
            assert _error(await produce(conn, "t", batch([b"b"] * 2), acks=1)) == E.NONE
            assert leader.isr == [1, 2] and leader.log.high_watermark == 3
            cluster.nodes[1].advance(lag // 2)  # not yet out of sync
            assert cluster.controller.requests == []
            cluster.nodes[1].advance(lag)  # the follower last caught up more than lag ago
            await wait_for(lambda: all(cluster.partition(n, "t").isr == [1] for n in (1, 2)),
                           message="the ISR shrunk to [1] on both brokers")
            shrink = cluster.controller.requests[0]
            sent = shrink.topics[0].partitions[0]
            assert [b.broker_id for b in sent.new_isr_with_epochs] == [1]
            assert sent.partition_epoch == 0 and sent.leader_epoch == 0
            assert leader.partition_epoch == 1 and leader.leader_epoch == 0
            # With the ISR [1] the high watermark reaches the leader's end.
            assert leader.log.high_watermark == 5
            # The follower comes back: once caught up it is added again, at the new partition epoch.
            cluster.nodes[1].remove_fault(rule)
            await wait_for(lambda: all(cluster.partition(n, "t").isr == [1, 2] for n in (1, 2)),
                           message="the ISR back to [1, 2]")
            expand = cluster.controller.requests[1].topics[0].partitions[0]
            assert [b.broker_id for b in expand.new_isr_with_epochs] == [1, 2]
            assert expand.partition_epoch == 1
            assert cluster.partition(2, "t").log.log_end_offset == 5
        finally:
            conn.close()


async def test_pending_isr_expansion_counts_the_joining_replica_for_the_high_watermark():
    async with Cluster(2) as cluster:
        cluster.controller.hold = hold = __import__("asyncio").Event()
        cluster.create_topic("t", [[1, 2]], isr=[[1]])
        leader = cluster.partition(1, "t")
        conn = await cluster.connect(1)
        try:
            await wait_for(lambda: leader.pending_isr is not None, message="a pending ISR expansion")
            assert leader.pending_isr.expand and leader.maximal_isr == [1, 2] and leader.isr == [1]
            # While pending, the joining follower holds the high watermark like an ISR member.
            assert _error(await produce(conn, "t", batch([b"p"] * 3), acks=-1)) == E.NONE
            assert cluster.partition(2, "t").log.log_end_offset == 3
            hold.set()
            await wait_for(lambda: leader.isr == [1, 2] and leader.pending_isr is None, message="ISR [1, 2]")
        finally:
            conn.close()


async def test_acks_all_waiting_on_a_stopping_leader_answers_not_leader_or_follower():
    async with Cluster(2) as cluster, connected(cluster, 1) as conn:
        cluster.create_topic("t", [[1, 2]])
        pending, _leader, _rule = await produce_awaiting_follower(cluster, conn)
        await cluster.stop(1)
        assert _error(await pending) == E.NOT_LEADER_OR_FOLLOWER
