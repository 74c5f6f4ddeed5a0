"""A follower's fetch held by the leader does not hold back a partition it does not name yet.

A follower adds a partition it has just become a replica of to its fetch session with its next
Fetch; the one in flight, held by the leader for up to ``replica.fetch.wait.max.ms``, names only
the partitions it had. The leader answers that held fetch when it appends to a partition the fetch
lacks, so the first acks=all produce to a new partition (a consumer group's first SyncGroup on a
new ``__consumer_offsets`` partition) is not kept waiting for the hold to expire.
"""

from __future__ import annotations

import asyncio

from kbroker.replication.parked_fetches import REFETCH, ParkedFollowerFetches
from kbroker_protocol.errors import ErrorCode
from tests.replication.harness import Cluster, batch, produce, wait_for

# far longer than the produce below may wait (Kafka requires replica.socket.timeout.ms to be at least
# the hold, and the follower's fetch is cut at request.timeout.ms)
HOLD = {"replica.fetch.wait.max.ms": "120000", "replica.socket.timeout.ms": "120000", "request.timeout.ms": "150000"}


async def test_first_acks_all_produce_to_a_new_partition_is_not_held_by_the_followers_fetch():
    async with Cluster(3, config=HOLD) as cluster:
        cluster.create_topic("old", [[1, 2, 3]])
        parked = cluster.nodes[1].broker.replica_manager.parked_fetches
        # Both followers' fetches of "old" are held by the leader (nothing to read).
        await wait_for(lambda: parked.held(2) and parked.held(3), message="the followers' fetches held")
        cluster.create_topic("new", [[1, 2, 3]])
        conn = await cluster.connect(1)
        try:
            resp = await produce(conn, "new", batch([b"v"] * 5), acks=-1, timeout_ms=30000)
            assert resp.responses[0].partition_responses[0].error_code == ErrorCode.NONE
            for node in (2, 3):
                assert cluster.partition(node, "new").log.log_end_offset == 5
            assert cluster.partition(1, "new").log.high_watermark == 5
        finally:
            conn.close()


class _Waited:
    def __init__(self, *futs: asyncio.Future[object]) -> None:
        self.futs = futs

    def has_waiter(self, fut: asyncio.Future[object]) -> bool:
        return fut in self.futs


async def test_only_held_fetches_of_the_partitions_followers_that_lack_it_are_woken():
    loop = asyncio.get_running_loop()
    parked = ParkedFollowerFetches()
    covering, lacking, other = loop.create_future(), loop.create_future(), loop.create_future()
    parked.park(2, covering)
    parked.park(2, lacking)
    parked.park(4, other)
    t0 = _Waited(covering)  # only ``covering`` names partition t-0
    assert parked.wake_uncovering(t0, [2, 3]) == 1
    assert lacking.result() is REFETCH
    assert not covering.done() and not other.done()
    parked.unpark(2, lacking)
    parked.unpark(2, covering)
    assert parked.held(2) == 0 and parked.held(4) == 1
    assert parked.wake_uncovering(t0, [2]) == 0


async def test_a_partitions_waiters_are_woken_once_each_in_arrival_order():
    import uuid

    from kbroker.replication.partition import Partition

    loop = asyncio.get_running_loop()
    partition = Partition("t", 0, uuid.uuid4(), None, 0, [1], [1], node_id=1)  # type: ignore[arg-type]
    futs = [loop.create_future() for _ in range(4)]
    woken: list[int] = []
    for i, fut in enumerate(futs):
        partition.add_waiter(fut)
        fut.add_done_callback(lambda _f, i=i: woken.append(i))
    partition.remove_waiter(futs[1])
    partition.remove_waiter(futs[1])  # (gone already: nothing)
    assert [partition.has_waiter(f) for f in futs] == [True, False, True, True]
    futs[2].cancel()  # a fetch answered meanwhile: not woken again
    partition.notify()
    await asyncio.sleep(0)  # (a turn of the loop: the done callbacks run)
    assert woken == [2, 0, 3] and not futs[1].done()
    assert not any(partition.has_waiter(f) for f in futs)
    partition.notify()  # nobody waits now
