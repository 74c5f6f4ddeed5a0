"""Set-ups shared by the replication tests of leadership moves (test_leader_change.py) and of the
ISR (test_isr_and_acks.py, test_controlled_shutdown_serving.py and others): a follower the leader
stops serving, an acks=all produce waiting for it, a connection closed after use, a suffix written
on the leader only, and a Fetch sent as a replica."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from kbroker.replication.broker_connection import BrokerConnection
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.replication.harness import Cluster, batch, produce, wait_for


def block_follower(cluster: Cluster, leader: int, follower: int) -> int:
    """Make ``leader`` refuse ``follower``'s fetches (a stopped follower, as the leader sees it)."""
    return cluster.nodes[leader].add_fault(api="Fetch", client_id=f"broker-{follower}-fetcher-0",
                                           error="NOT_LEADER_OR_FOLLOWER")


async def blocked(cluster: Cluster, leader: int, rule: int) -> None:
    # Fetches are sequential per source broker: once one was refused, no later one gets data.
    await wait_for(lambda: cluster.nodes[leader].fault(rule)["fired"] >= 1, message="a refused follower fetch")


@contextlib.asynccontextmanager
async def connected(cluster: Cluster, node: int) -> AsyncIterator[BrokerConnection]:
    """A client connection to broker ``node``, closed on the way out."""
    conn = await cluster.connect(node)
    try:
        yield conn
    finally:
        conn.close()


def produced(resp: Any) -> Any:
    """The one partition's answer of a Produce response."""
    return resp.responses[0].partition_responses[0]


async def produce_awaiting_follower(cluster: Cluster, conn: BrokerConnection
                                    ) -> tuple[asyncio.Future[Any], Any, int]:
    """On broker 1, leading "t"-0 with broker 2 following: broker 2's fetches refused, then an
    acks=all produce of one record sent on ``conn``, returned once broker 1 appended it and waits
    for the follower. Returns the pending Produce response, broker 1's partition and the fault rule
    (remove it to let the follower fetch again)."""
    rule = block_follower(cluster, 1, 2)
    await blocked(cluster, 1, rule)
    pending = asyncio.ensure_future(produce(conn, "t", batch([b"x"]), acks=-1, timeout_ms=60000))
    leader = cluster.partition(1, "t")
    await wait_for(lambda: leader.log.log_end_offset == 1 and bool(leader._hw_waiters),
                   message="the produce appended and waiting for the follower")
    return pending, leader, rule


async def write_unreplicated_suffix(cluster: Cluster, kept: list[bytes], lost: list[bytes]) -> None:
    """On broker 1, leading "t"-0 with broker 2 following: ``kept`` acknowledged by acks=all (on
    both), then ``lost`` with acks=1 while broker 2's fetches are refused (on broker 1 only)."""
    async with connected(cluster, 1) as conn:
        assert produced(await produce(conn, "t", batch(kept), acks=-1)).error_code == ErrorCode.NONE
        rule = block_follower(cluster, 1, 2)
        await blocked(cluster, 1, rule)
        # Written on the old leader only: never acknowledged to acks=all, never replicated.
        assert produced(await produce(conn, "t", batch(lost), acks=1)).error_code == ErrorCode.NONE


async def replica_fetch(conn: BrokerConnection, topic_id: uuid.UUID, replica: int, leader_epoch: int,
                        fetch_offset: int = 0, last_fetched_epoch: int = -1) -> Any:
    """The partition answer to a Fetch v17 of "t"-0 sent as replica ``replica`` (a follower's fetch)."""
    Req = REQUESTS[1]
    request = Req(replica_id=replica, replica_state=Req.ReplicaState(replica_id=replica, replica_epoch=-1),
                  max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, session_id=0, session_epoch=-1,
                  topics=[Req.FetchTopic(topic_id=topic_id, partitions=[Req.FetchTopic.FetchPartition(
                      partition=0, current_leader_epoch=leader_epoch, fetch_offset=fetch_offset,
                      last_fetched_epoch=last_fetched_epoch, partition_max_bytes=1 << 20)])])
    resp = await conn.request(request, 17, 10)
    return resp.responses[0].partitions[0]
