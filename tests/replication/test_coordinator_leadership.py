"""The group coordinator follows the leadership of its ``__consumer_offsets`` partition (Kafka's
onElection/onResignation): the old leader unloads the group (NOT_COORDINATOR), the new one loads
it from the replicated log, FindCoordinator names the leader's node."""

from __future__ import annotations

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.find_coordinator import FindCoordinatorRequest
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest
from tests.replication.harness import Cluster, wait_for

E = ErrorCode
OC = OffsetCommitRequest


async def _commit(conn, group: str, offset: int) -> int:
    resp = await conn.request(OC(group_id=group, generation_id_or_member_epoch=-1, member_id="", topics=[
        OC.OffsetCommitRequestTopic(name="data", partitions=[
            OC.OffsetCommitRequestTopic.OffsetCommitRequestPartition(partition_index=0, committed_offset=offset)])]),
        8, 10)
    return resp.topics[0].partitions[0].error_code


async def _fetch(conn, group: str) -> tuple[int, int]:
    resp = await conn.request(OffsetFetchRequest(group_id=group, topics=[
        OffsetFetchRequest.OffsetFetchRequestTopic(name="data", partition_indexes=[0])]), 7, 10)
    if resp.error_code != E.NONE:
        return resp.error_code, -1
    p = resp.topics[0].partitions[0]
    return p.error_code, p.committed_offset


async def _coordinator(conn, group: str) -> tuple[int, int, int]:
    resp = await conn.request(FindCoordinatorRequest(key_type=0, coordinator_keys=[group]), 4, 10)
    c = resp.coordinators[0]
    return c.error_code, c.node_id, c.port


async def test_group_moves_with_the_leadership_of_its_offsets_partition():
    async with Cluster(2, {"offsets.topic.num.partitions": "1"}) as cluster:
        cluster.create_topic("data", [[1, 2]])
        cluster.create_topic("__consumer_offsets", [[1, 2]], configs={"cleanup.policy": "compact"})
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        try:
            assert await _coordinator(c2, "g") == (E.NONE, 1, int(cluster.bootstrap(1).rsplit(":", 1)[1]))
            # the commit answers once replicated: broker 2's copy holds it
            assert await _commit(c1, "g", 42) == E.NONE
            follower_log = cluster.partition(2, "__consumer_offsets").log
            assert follower_log.log_end_offset == cluster.partition(1, "__consumer_offsets").log.log_end_offset > 0
            assert await _fetch(c2, "g") == (E.NOT_COORDINATOR, -1)

            cluster.change("__consumer_offsets", 0, leader=2)
            assert await _fetch(c1, "g") == (E.NOT_COORDINATOR, -1)  # unloaded on resignation
            assert "g" not in cluster.broker(1).group_coordinator.offsets.committed
            await wait_for(lambda: cluster.partition(2, "__consumer_offsets").is_leader, message="broker 2 leads")
            assert await _fetch(c2, "g") == (E.NONE, 42)  # loaded on election
            assert (await _coordinator(c1, "g"))[:2] == (E.NONE, 2)
            assert await _commit(c2, "g", 43) == E.NONE

            cluster.change("__consumer_offsets", 0, leader=1)  # and back: the log has both commits
            assert await _fetch(c1, "g") == (E.NONE, 43)
            assert await _fetch(c2, "g") == (E.NOT_COORDINATOR, -1)
        finally:
            c1.close()
            c2.close()


async def _init_pid(conn, tid: str) -> tuple[int, int, int]:
    from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest

    resp = await conn.request(InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=60000), 4, 10)
    return resp.error_code, resp.producer_id, resp.producer_epoch


async def test_transaction_coordinator_moves_with_the_leadership_of_its_partition():
    async with Cluster(2, {"transaction.state.log.num.partitions": "1"}) as cluster:
        cluster.create_topic("__transaction_state", [[1, 2]], configs={"cleanup.policy": "compact"})
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        try:
            error, pid, epoch = await _init_pid(c1, "tx")
            assert error == E.NONE and pid >= 0
            assert (await _init_pid(c2, "tx"))[0] == E.NOT_COORDINATOR
            leader_log = cluster.partition(1, "__transaction_state").log
            follower_log = cluster.partition(2, "__transaction_state").log
            await wait_for(lambda: follower_log.log_end_offset == leader_log.log_end_offset, message="replicated")

            cluster.change("__transaction_state", 0, leader=2)
            assert (await _init_pid(c1, "tx"))[0] == E.NOT_COORDINATOR  # unloaded on resignation
            assert "tx" not in cluster.broker(1).txn_coordinator.txns
            # loaded on election: the same producer id, its epoch bumped
            assert await _init_pid(c2, "tx") == (E.NONE, pid, epoch + 1)
        finally:
            c1.close()
            c2.close()
