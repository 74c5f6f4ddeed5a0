"""Classic group writes on a replicated ``__consumer_offsets`` whose followers are stopped (issue 17).

Three brokers; the offsets partition has replicas 1, 2, 3 and ``min.insync.replicas=2``. With
brokers 2 and 3 stopped (and fenced: the ISR shrinks to the leader alone) the high watermark stops (KIP-966)
and every coordinator write times out after ``offsets.commit.timeout.ms`` (on the leader's manual
clock): the leader's SyncGroup and an offset commit answer COORDINATOR_NOT_AVAILABLE, as Kafka's
coordinator maps a timed-out write, and nothing they wrote takes effect (the group is not made
Stable with the unreplicated assignment, OffsetFetch still returns the replicated offset). Once the
followers are back the group rebalances and commits again."""

from __future__ import annotations

import asyncio

from kbroker.coordinator.group_classic import GroupState
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.heartbeat import HeartbeatRequest
from kbroker_protocol.messages.join_group import JoinGroupRequest
from kbroker_protocol.messages.leave_group import LeaveGroupRequest
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest
from kbroker_protocol.messages.sync_group import SyncGroupRequest
from tests.replication.harness import Cluster, wait_for

E = ErrorCode
OC = OffsetCommitRequest
TIMEOUT = 2_000
OFFSETS = "__consumer_offsets"


async def _join(conn, member_id: str):
    J = JoinGroupRequest
    return await conn.request(J(group_id="g", session_timeout_ms=30000, rebalance_timeout_ms=60000,
                                member_id=member_id, group_instance_id=None, protocol_type="consumer",
                                protocols=[J.JoinGroupRequestProtocol(name="range", metadata=b"m")]), 5, 30)


async def _sync(conn, member_id: str, generation: int, assignment: bytes):
    S = SyncGroupRequest
    return await conn.request(S(group_id="g", generation_id=generation, member_id=member_id, group_instance_id=None,
                                assignments=[S.SyncGroupRequestAssignment(member_id=member_id,
                                                                          assignment=assignment)]), 3, 30)


async def _commit(conn, member_id: str, generation: int, offset: int) -> int:
    resp = await conn.request(OC(group_id="g", generation_id_or_member_epoch=generation, member_id=member_id, topics=[
        OC.OffsetCommitRequestTopic(name="data", partitions=[
            OC.OffsetCommitRequestTopic.OffsetCommitRequestPartition(partition_index=0, committed_offset=offset)])]),
        8, 30)
    return resp.topics[0].partitions[0].error_code


async def _fetch(conn) -> tuple[int, int]:
    resp = await conn.request(OffsetFetchRequest(group_id="g", topics=[
        OffsetFetchRequest.OffsetFetchRequestTopic(name="data", partition_indexes=[0])]), 7, 10)
    p = resp.topics[0].partitions[0]
    return p.error_code, p.committed_offset


async def _heartbeat(conn, member_id: str, generation: int) -> int:
    resp = await conn.request(HeartbeatRequest(group_id="g", generation_id=generation, member_id=member_id,
                                               group_instance_id=None), 3, 30)
    return resp.error_code


async def _leave(conn, member_id: str) -> int:
    resp = await conn.request(LeaveGroupRequest(group_id="g", members=[
        LeaveGroupRequest.MemberIdentity(member_id=member_id, group_instance_id=None)]), 3, 30)
    return resp.error_code


async def _times_out(cluster: Cluster, leader, request) -> int:
    """Run ``request`` (a coroutine) that waits for the unreplicated records of the offsets
    partition, let its wait time out on the leader's clock and return its answer."""
    waiters = len(leader._hw_waiters)
    task = asyncio.ensure_future(request)
    await wait_for(lambda: len(leader._hw_waiters) > waiters or task.done(), message="the answer waiting")
    assert not task.done()
    cluster.nodes[1].advance(TIMEOUT)
    return await task


async def _until_appended(log, end: int) -> None:
    await wait_for(lambda: log.log_end_offset > end, message="the coordinator's record appended")


async def test_group_writes_fail_under_min_isr_change_nothing_and_recover():
    async with Cluster(3, {"offsets.topic.num.partitions": "1", "group.initial.rebalance.delay.ms": "0", "offsets.commit.timeout.ms": str(TIMEOUT)},
                       per_node={1: {"kbroker.clock": "manual"}}) as cluster:
        cluster.create_topic("data", [[1, 2, 3]])
        cluster.create_topic(OFFSETS, [[1, 2, 3]], configs={"cleanup.policy": "compact", "min.insync.replicas": "2"})
        conn = await cluster.connect(1)
        leader = cluster.partition(1, OFFSETS)
        group_coordinator = cluster.broker(1).group_coordinator
        try:
            joined = await _join(conn, "")
            if joined.error_code == E.MEMBER_ID_REQUIRED:
                joined = await _join(conn, joined.member_id)
            member = joined.member_id
            assert (joined.error_code, joined.generation_id) == (E.NONE, 1)
            synced = await _sync(conn, member, 1, b"a1")
            assert (synced.error_code, bytes(synced.assignment)) == (E.NONE, b"a1")
            assert await _commit(conn, member, 1, 5) == E.NONE

            # The followers stop; the controller fences them and shrinks the ISR to the leader
            # (KIP-966: under min.insync.replicas the high watermark stays where it is).
            await cluster.stop(2)
            await cluster.stop(3)
            cluster.change(OFFSETS, 0, isr=[1])
            await wait_for(lambda: leader.isr == [1], message="the ISR shrunk to the leader")

            # An offset commit: appended, never replicated, answered COORDINATOR_NOT_AVAILABLE.
            end = leader.log.log_end_offset
            commit = asyncio.ensure_future(_commit(conn, member, 1, 10))
            await _until_appended(leader.log, end)
            assert not commit.done()
            cluster.nodes[1].advance(TIMEOUT)
            assert await commit == E.COORDINATOR_NOT_AVAILABLE
            assert await _fetch(conn) == (E.NONE, 5)  # the last replicated commit

            # A rebalance: the JoinGroup completes (no record), the leader's SyncGroup writes the
            # assignment and waits; the write times out and the group is not Stable with it.
            rejoined = await _join(conn, member)
            assert (rejoined.error_code, rejoined.generation_id) == (E.NONE, 2)
            end = leader.log.log_end_offset
            sync = asyncio.ensure_future(_sync(conn, member, 2, b"a2"))
            await _until_appended(leader.log, end)
            group = group_coordinator.groups["g"]
            assert not sync.done() and group.state == GroupState.COMPLETING_REBALANCE
            assert group.members[member].assignment == b"a1"  # not the unreplicated a2
            cluster.nodes[1].advance(TIMEOUT)
            failed = await sync
            assert (failed.error_code, bytes(failed.assignment)) == (E.COORDINATOR_NOT_AVAILABLE, b"")
            assert group.state == GroupState.PREPARING_REBALANCE and group.members[member].assignment == b""
            assert leader.log.high_watermark < leader.log.log_end_offset  # none of it was acknowledged durable
            # Heartbeats and LeaveGroup wait for the partition's pending writes, as Kafka's
            # coordinator writes without records do: they time out too.
            assert await _times_out(cluster, leader, _heartbeat(conn, member, 2)) == E.COORDINATOR_NOT_AVAILABLE
            assert await _times_out(cluster, leader, _leave(conn, "someone-else")) == E.COORDINATOR_NOT_AVAILABLE

            # The followers return, catch up and rejoin the ISR: the group works again.
            await cluster.start(2)
            await cluster.start(3)
            await wait_for(lambda: sorted(leader.isr) == [1, 2, 3]
                           and leader.log.high_watermark == leader.log.log_end_offset,
                           message="the followers back in the ISR")
            again = await _join(conn, member)
            assert (again.error_code, again.generation_id) == (E.NONE, 3)
            synced = await _sync(conn, member, 3, b"a3")
            assert (synced.error_code, bytes(synced.assignment)) == (E.NONE, b"a3")
            assert group.state == GroupState.STABLE
            assert await _commit(conn, member, 3, 15) == E.NONE
            assert await _fetch(conn) == (E.NONE, 15)
            for follower in (2, 3):
                log = cluster.partition(follower, OFFSETS).log
                await wait_for(lambda log=log: log.log_end_offset == leader.log.log_end_offset,
                               message=f"broker {follower} has the group's records")
        finally:
            conn.close()
