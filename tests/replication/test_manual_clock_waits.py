"""Delayed produce on a leader with a manual clock (``kbroker.clock=manual``): an acks=all request
waiting for a follower that does not fetch is answered REQUEST_TIMED_OUT once the clock passes the
request's timeout, not before, and never while only real time passes."""

from __future__ import annotations

import asyncio

from kbroker_protocol.errors import ErrorCode
from tests.replication.harness import Cluster, batch, produce, wait_for
from tests.replication.leadership import block_follower, blocked

E = ErrorCode


async def test_acks_all_times_out_when_the_clock_passes_the_request_timeout():
    # An hour of replica lag: the ISR check (on the clock too) does not drop the follower here.
    async with Cluster(3, config={"replica.lag.time.max.ms": "3600000"},
                       per_node={1: {"kbroker.clock": "manual"}}) as cluster:
        cluster.create_topic("t", [[1, 2, 3]])
        rule = block_follower(cluster, 1, 3)
        await blocked(cluster, 1, rule)
        conn, other = await cluster.connect(1), await cluster.connect(1)
        leader = cluster.partition(1, "t")
        try:
            # Ten minutes of request timeout: only the clock can end it within the test.
            waiting = asyncio.ensure_future(produce(conn, "t", batch([b"x"] * 4), acks=-1, timeout_ms=600_000))
            await wait_for(lambda: leader.log.log_end_offset == 4, message="the batch appended")
            assert leader.log.high_watermark == 0
            cluster.nodes[1].advance(599_999)
            assert (await produce(other, "t", batch([b"y"]), acks=1)).responses[0].partition_responses[0] \
                .error_code == E.NONE  # a round trip through the broker: the wait is still on
            assert not waiting.done()
            cluster.nodes[1].advance(1)
            resp = await asyncio.wait_for(waiting, 20)
            assert resp.responses[0].partition_responses[0].error_code == E.REQUEST_TIMED_OUT
            assert leader.log.high_watermark == 0  # appended, not committed
        finally:
            conn.close()
            other.close()
