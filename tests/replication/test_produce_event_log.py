"""What a fault run's node log must show about a producer's batches (kbroker/api/produce.py,
kbroker/server/connection.py): an acks=all produce answered with an error after its append (its
offsets: the batch is in the log), a produce refused because this node is not the leader, and a
connection lost with produce requests unanswered. Kafka answers the same without these lines."""

from __future__ import annotations

import asyncio
import logging

import pytest

from kbroker_protocol.errors import ErrorCode
from tests.replication.harness import Cluster, batch, produce, wait_for
from tests.replication.leadership import block_follower, blocked, connected, produced

E = ErrorCode
PRODUCE_LOG = "kbroker.api.produce"
CONNECTION_LOG = "kbroker.server.connection"


def lines(caplog: pytest.LogCaptureFixture, logger: str, needle: str) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == logger and needle in r.getMessage()]


async def test_a_failed_wait_after_the_append_is_logged_with_the_batchs_offsets(caplog):
    caplog.set_level(logging.INFO)
    async with Cluster(3, config={"replica.lag.time.max.ms": "3600000"},
                       per_node={1: {"kbroker.clock": "manual"}}) as cluster:
        cluster.create_topic("evlog-wait", [[1, 2, 3]])
        await blocked(cluster, 1, block_follower(cluster, 1, 3))
        async with connected(cluster, 1) as conn:
            waiting = asyncio.ensure_future(produce(conn, "evlog-wait", batch([b"x"] * 4), acks=-1,
                                                    timeout_ms=600_000))
            leader = cluster.partition(1, "evlog-wait")
            await wait_for(lambda: leader.log.log_end_offset == 4, message="the batch appended")
            assert lines(caplog, PRODUCE_LOG, "evlog-wait") == []
            cluster.nodes[1].advance(600_000)
            assert produced(await asyncio.wait_for(waiting, 20)).error_code == E.REQUEST_TIMED_OUT
    assert lines(caplog, PRODUCE_LOG, "evlog-wait") == [(
        logging.INFO, "Produce to partition evlog-wait-0 appended at offsets 0-3 answered REQUEST_TIMED_OUT "
                      "(high watermark 0, ISR [1, 2, 3])")]


async def test_a_produce_to_a_follower_is_logged_refused(caplog):
    caplog.set_level(logging.INFO)
    async with Cluster(2) as cluster:
        cluster.create_topic("evlog-follower", [[1, 2]])
        async with connected(cluster, 2) as conn:
            resp = produced(await produce(conn, "evlog-follower", batch([b"x"]), acks=-1))
            assert resp.error_code == E.NOT_LEADER_OR_FOLLOWER
    assert lines(caplog, PRODUCE_LOG, "evlog-follower") == [
        (logging.INFO, "Append to partition evlog-follower-0 refused: NOT_LEADER_OR_FOLLOWER")]


async def test_a_connection_lost_with_a_produce_unanswered_is_logged(caplog):
    caplog.set_level(logging.INFO)
    async with Cluster(2, config={"replica.lag.time.max.ms": "3600000"}) as cluster:
        cluster.create_topic("evlog-lost", [[1, 2]])
        await blocked(cluster, 1, block_follower(cluster, 1, 2))
        conn = await cluster.connect(1)
        waiting = asyncio.ensure_future(produce(conn, "evlog-lost", batch([b"x"]), acks=-1, timeout_ms=600_000))
        leader = cluster.partition(1, "evlog-lost")
        await wait_for(lambda: leader.log.log_end_offset == 1, message="the batch appended")
        assert lines(caplog, CONNECTION_LOG, "produce requests unanswered") == []
        conn.close()
        await wait_for(lambda: lines(caplog, CONNECTION_LOG, "produce requests unanswered"),
                       message="the connection's loss logged")
        waiting.cancel()
    [(level, message)] = lines(caplog, CONNECTION_LOG, "produce requests unanswered")
    assert level == logging.INFO
    assert "(client replication-test) closed by the client with 1 produce requests unanswered (correlation ids [" \
        in message
