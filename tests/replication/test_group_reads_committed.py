"""What the group coordinator answers while its writes are not replicated (Kafka 4.4's reads at the
last committed offset of ``__consumer_offsets`` and its record-less write operations).

Three brokers; the offsets partition has replicas 1, 2, 3 and ``min.insync.replicas=2``. With
brokers 2 and 3 stopped and fenced the high watermark stays (KIP-966), so everything the
coordinator appends stays above it until the followers come back (or a wait times out on the
leader's manual clock)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest
from tests.replication.harness import Cluster, wait_for

E = ErrorCode
OC = OffsetCommitRequest
TIMEOUT = 2_000
OFFSETS = "__consumer_offsets"


@contextlib.asynccontextmanager
async def stalled_cluster() -> AsyncIterator[tuple[Cluster, list[Any]]]:
    """The cluster with its offsets partition led by broker 1 (manual clock) and three connections
    to broker 1 (requests wait on some while another is used); :func:`stall` stops the followers."""
    async with Cluster(3, {"offsets.topic.num.partitions": "1", "group.initial.rebalance.delay.ms": "0",
                           "offsets.commit.timeout.ms": str(TIMEOUT)},
                       per_node={1: {"kbroker.clock": "manual"}}) as cluster:
        cluster.create_topic("data", [[1, 2, 3], [1, 2, 3]])
        cluster.create_topic(OFFSETS, [[1, 2, 3]], configs={"cleanup.policy": "compact", "min.insync.replicas": "2"})
        conns = [await cluster.connect(1) for _ in range(3)]
        try:
            yield cluster, conns
        finally:
            for conn in conns:
                conn.close()


async def stall(cluster: Cluster) -> Any:
    """Stop the followers; the ISR shrinks to the leader and its high watermark stays. Returns
    the leader's offsets partition."""
    leader = cluster.partition(1, OFFSETS)
    await cluster.stop(2)
    await cluster.stop(3)
    cluster.change(OFFSETS, 0, isr=[1])
    await wait_for(lambda: leader.isr == [1], message="the ISR shrunk to the leader")
    return leader


async def resume(cluster: Cluster, leader: Any) -> None:
    await cluster.start(2)
    await cluster.start(3)
    await wait_for(lambda: sorted(leader.isr) == [1, 2, 3] and leader.log.high_watermark == leader.log.log_end_offset,
                   message="the followers back in the ISR")


async def commit(conn: Any, group: str, offsets: dict[int, int]) -> dict[int, int]:
    """A simple group's OffsetCommit (no member): partition -> error."""
    P = OC.OffsetCommitRequestTopic.OffsetCommitRequestPartition
    resp = await conn.request(OC(group_id=group, generation_id_or_member_epoch=-1, member_id="", topics=[
        OC.OffsetCommitRequestTopic(name="data", partitions=[P(partition_index=p, committed_offset=o)
                                                             for p, o in offsets.items()])]), 8, 30)
    return {p.partition_index: p.error_code for p in resp.topics[0].partitions}


async def fetch(conn: Any, group: str, *, stable: bool) -> tuple[int, dict[int, tuple[int, int]]]:
    """OffsetFetch v7 of partitions 0 and 1: (group error, partition -> (offset, error))."""
    resp = await conn.request(OffsetFetchRequest(group_id=group, require_stable=stable, topics=[
        OffsetFetchRequest.OffsetFetchRequestTopic(name="data", partition_indexes=[0, 1])]), 7, 30)
    return resp.error_code, {p.partition_index: (p.committed_offset, p.error_code)
                             for t in resp.topics for p in t.partitions}


async def appended(leader: Any, end: int) -> None:
    await wait_for(lambda: leader.log.log_end_offset > end, message="the coordinator's record appended")


async def waiting(leader: Any, waiters: int, task: asyncio.Future[Any]) -> None:
    await wait_for(lambda: len(leader._hw_waiters) > waiters or task.done(), message="the answer waiting")
    assert not task.done()


# -- OffsetFetch RequireStable: a record-less write operation ------------------------------------------------


async def test_require_stable_fetch_reads_the_latest_offsets_once_the_pending_writes_are_replicated():
    async with stalled_cluster() as (cluster, (conn, other, third)):
        assert await commit(conn, "g", {0: 5}) == {0: E.NONE}
        leader = await stall(cluster)
        coordinator = cluster.broker(1).group_coordinator

        # A commit appended, not replicated: a fetch without RequireStable answers at once with the
        # replicated offset; with it, the fetch waits for the commit and times out with it
        # (NOT_COORDINATOR: Kafka remaps a timed-out OffsetFetch write for pre-3.9 clients).
        end = leader.log.log_end_offset
        pending = asyncio.ensure_future(commit(third, "g", {0: 10}))
        await appended(leader, end)
        assert await fetch(conn, "g", stable=False) == (E.NONE, {0: (5, E.NONE), 1: (-1, E.NONE)})
        waiters = len(leader._hw_waiters)
        stable = asyncio.ensure_future(fetch(other, "g", stable=True))
        await waiting(leader, waiters, stable)
        cluster.nodes[1].advance(TIMEOUT)
        assert await pending == {0: E.COORDINATOR_NOT_AVAILABLE}
        assert await stable == (E.NOT_COORDINATOR, {})

        # Transactional offsets pending on partition 1 (TxnOffsetCommit appended them): a stable
        # fetch answers the latest state, UNSTABLE_OFFSET_COMMIT for partition 1 and the commit of
        # 10 (appended, now read at the latest state) for partition 0, once the followers are back.
        assert coordinator.prepare_txn_offsets("g", 4242, 0, {("data", 1): (77, -1, "tx")}) == E.NONE
        waiters = len(leader._hw_waiters)
        stable = asyncio.ensure_future(fetch(other, "g", stable=True))
        await waiting(leader, waiters, stable)
        assert await fetch(conn, "g", stable=False) == (E.NONE, {0: (5, E.NONE), 1: (-1, E.NONE)})
        await resume(cluster, leader)
        assert await stable == (E.NONE, {0: (10, E.NONE), 1: (-1, E.UNSTABLE_OFFSET_COMMIT)})

        # The transaction commits: its marker is written; a stable fetch right after it reads 77.
        coordinator.complete_txn_offsets(4242, "g", True)
        assert await fetch(conn, "g", stable=True) == (E.NONE, {0: (10, E.NONE), 1: (77, E.NONE)})
        assert leader.log.high_watermark == leader.log.log_end_offset


# -- describe and list: the groups at the last committed offset -------------------------------------------


async def heartbeat(conn: Any, member_id: str, epoch: int) -> Any:
    from kbroker_protocol.messages.consumer_group_heartbeat import ConsumerGroupHeartbeatRequest

    return await conn.request(ConsumerGroupHeartbeatRequest(
        group_id="kg", member_id=member_id, member_epoch=epoch, rebalance_timeout_ms=30000 if epoch == 0 else -1,
        subscribed_topic_names=["data"] if epoch == 0 else None, topic_partitions=[] if epoch == 0 else None), 1, 30)


async def describe(conn: Any) -> tuple[int, list[tuple[str, int]], int]:
    """ConsumerGroupDescribe of "kg": (error, [(member, epoch)], group epoch)."""
    from kbroker_protocol.messages.consumer_group_describe import ConsumerGroupDescribeRequest

    [g] = (await conn.request(ConsumerGroupDescribeRequest(group_ids=["kg"]), 1, 10)).groups
    return g.error_code, sorted((m.member_id, m.member_epoch) for m in g.members), g.group_epoch


async def listed(conn: Any) -> dict[str, str]:
    from kbroker_protocol.messages.list_groups import ListGroupsRequest

    resp = await conn.request(ListGroupsRequest(), 5, 10)
    return {g.group_id: g.group_state for g in resp.groups}


async def classic_view(conn: Any) -> tuple[int, str, list[str]]:
    from kbroker_protocol.messages.describe_groups import DescribeGroupsRequest

    [g] = (await conn.request(DescribeGroupsRequest(groups=["kg"]), 5, 10)).groups
    return g.error_code, g.group_state, sorted(m.member_id for m in g.members)


async def test_describe_and_list_show_the_groups_at_the_high_watermark():
    async with stalled_cluster() as (cluster, (conn, other, third)):
        leader = await stall(cluster)
        # A KIP-848 member joins: the group and the member are appended, the heartbeat waits.
        end = leader.log.log_end_offset
        joining = asyncio.ensure_future(heartbeat(other, "m1", 0))
        await appended(leader, end)
        assert "kg" in cluster.broker(1).group_coordinator.groups  # (live, above the high watermark)
        assert await describe(conn) == (E.GROUP_ID_NOT_FOUND, [], 0)
        assert "kg" not in await listed(conn)
        assert await classic_view(conn) == (E.NONE, "Dead", [])
        cluster.nodes[1].advance(TIMEOUT)
        assert (await joining).error_code == E.COORDINATOR_NOT_AVAILABLE

        # Once replicated (the followers back), the group is shown with its member.
        await resume(cluster, leader)
        assert await describe(conn) == (E.NONE, [("m1", 1)], 1)
        assert (await listed(conn))["kg"] == "Stable"

        # A second member joins while the followers are stopped again: the group is shown as it
        # was (one member, epoch 1) until the records are replicated.
        leader = await stall(cluster)
        end = leader.log.log_end_offset
        joining = asyncio.ensure_future(heartbeat(other, "m2", 0))
        await appended(leader, end)
        assert len(cluster.broker(1).group_coordinator.groups["kg"].members) == 2
        assert await describe(conn) == (E.NONE, [("m1", 1)], 1)
        assert await classic_view(conn) == (E.NONE, "Stable", ["m1"])
        assert (await listed(conn))["kg"] == "Stable"
        await resume(cluster, leader)
        assert (await joining).error_code == E.NONE
        assert await describe(conn) == (E.NONE, [("m1", 1), ("m2", 2)], 2)
        assert (await listed(conn))["kg"] == "Reconciling"


async def test_a_new_classic_group_is_shown_once_its_empty_record_is_replicated():
    """Kafka 4.4's classicGroupJoinToClassicGroup: the JoinGroup that creates a group appends an
    empty GroupMetadata record (its join writes none: MEMBER_ID_REQUIRED here); describe and list
    show the group once that record is committed."""
    from kbroker_protocol.messages.describe_groups import DescribeGroupsRequest
    from kbroker_protocol.messages.join_group import JoinGroupRequest

    async with stalled_cluster() as (cluster, (conn, other, _third)):
        leader = await stall(cluster)
        end = leader.log.log_end_offset
        resp = await other.request(JoinGroupRequest(
            group_id="cg", session_timeout_ms=30000, rebalance_timeout_ms=30000, member_id="",
            protocol_type="consumer", protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range")]), 5, 30)
        assert resp.error_code == E.MEMBER_ID_REQUIRED
        assert leader.log.log_end_offset == end + 1  # the empty record, above the high watermark
        assert "cg" in cluster.broker(1).group_coordinator.groups
        [g] = (await conn.request(DescribeGroupsRequest(groups=["cg"]), 5, 10)).groups
        assert (g.error_code, g.group_state, g.protocol_type) == (E.NONE, "Dead", "")
        assert "cg" not in await listed(conn)
        await resume(cluster, leader)
        [g] = (await conn.request(DescribeGroupsRequest(groups=["cg"]), 5, 10)).groups
        assert (g.error_code, g.group_state, g.members) == (E.NONE, "Empty", [])
        assert (await listed(conn))["cg"] == "Empty"
