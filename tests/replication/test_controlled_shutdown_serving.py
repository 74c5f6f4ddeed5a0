"""A quorum node being stopped keeps serving during its controlled shutdown (Kafka's
BrokerServer.shutdown: the controller moves the leaderships away first, the socket server stops
only afterwards).

Fault-injection seed 350 (docs/faults.md): a leader stopped by SIGTERM appended a transactional
batch and answered it NOT_LEADER_OR_FOLLOWER at once, before its followers could fetch it and
before its controlled shutdown had even begun; librdkafka counted the batch as not written, the
producer's abort purged it and reused its sequence number in the next transaction, whose batch the
new leader then took for a retry of the written one. On Kafka the batch is acknowledged once the
followers have it, as here.

The harness has no controller quorum: ``HeldShutdown`` stands for the broker's lifecycle manager,
its controlled shutdown lasting until the test grants it (as the real controller grants it once
the leaderships moved).
"""

from __future__ import annotations

import asyncio

from kbroker.metadata import metadata_records as mr
from kbroker_protocol.errors import ErrorCode
from tests.replication.harness import Cluster, batch, produce, wait_for
from tests.replication.leadership import connected, produce_awaiting_follower, produced

E = ErrorCode


class HeldShutdown:
    """The part of BrokerLifecycleManager that Broker.stop uses."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.granted = asyncio.Event()

    async def controlled_shutdown(self, timeout_ms: int | None = None) -> bool:
        self.asked.set()
        await self.granted.wait()
        return True


async def _stopping(cluster: Cluster, node: int) -> tuple[HeldShutdown, asyncio.Future[None]]:
    """Begin stopping ``node``; returns once its controlled shutdown was asked for."""
    held = HeldShutdown()
    cluster.broker(node).lifecycle = held
    stopping = asyncio.ensure_future(cluster.stop(node))
    await wait_for(lambda: held.asked.is_set() or stopping.done(), message="the controlled shutdown asked for")
    assert held.asked.is_set(), "stop() ended without a controlled shutdown"
    return held, stopping


async def test_acks_all_in_flight_at_stop_is_acknowledged_once_replicated():
    async with Cluster(2) as cluster, connected(cluster, 1) as conn:
        cluster.create_topic("t", [[1, 2]])
        node1 = cluster.nodes[1]  # no longer listed once stopping
        pending, _leader, rule = await produce_awaiting_follower(cluster, conn)
        held, stopping = await _stopping(cluster, 1)
        assert not pending.done(), f"answered before the follower had the batch: {produced(pending.result())}"
        # The follower fetches again (the stopping leader still serves it): the batch is
        # committed and acknowledged.
        node1.remove_fault(rule)
        answer = produced(await asyncio.wait_for(pending, 30))
        assert (answer.error_code, answer.base_offset) == (E.NONE, 0)
        assert cluster.partition(2, "t").log.log_end_offset == 1
        held.granted.set()
        await stopping


async def test_a_produce_arriving_during_the_controlled_shutdown_is_written_and_acknowledged():
    async with Cluster(2) as cluster, connected(cluster, 1) as conn:
        cluster.create_topic("t", [[1, 2]])
        held, stopping = await _stopping(cluster, 1)
        answer = produced(await produce(conn, "t", batch([b"a", b"b"]), acks=-1))
        assert (answer.error_code, answer.base_offset) == (E.NONE, 0)
        assert cluster.partition(2, "t").log.log_end_offset == 2
        held.granted.set()
        await stopping


async def test_leadership_moved_before_replication_answers_not_leader_or_follower():
    # What the controller's moves do to a batch the followers do not have yet (Kafka's
    # DelayedProduce completed by the leader change): the client is told NOT_LEADER_OR_FOLLOWER
    # although the batch is in the old leader's log, on Kafka too.
    async with Cluster(2) as cluster, connected(cluster, 1) as conn:
        cluster.create_topic("t", [[1, 2]])
        node1 = cluster.nodes[1]  # no longer listed once stopping
        pending, leader, _rule = await produce_awaiting_follower(cluster, conn)
        held, stopping = await _stopping(cluster, 1)
        assert not pending.done()
        # The controller moves the leadership to 2 (the harness no longer lists the stopping
        # node 1: it gets the record too, as a node still following the metadata log does).
        moved = [mr.PartitionChangeRecord(partition_id=0, topic_id=cluster.reference_image().topic("t").topic_id,
                                          isr=[2], leader=2)]
        cluster.apply(moved)
        node1.broker.controller.commit(moved)
        answer = produced(await asyncio.wait_for(pending, 30))
        assert answer.error_code == E.NOT_LEADER_OR_FOLLOWER
        assert leader.log.log_end_offset == 1
        held.granted.set()
        await stopping
