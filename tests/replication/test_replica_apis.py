"""What clients learn from a replicated partition: Metadata from the image (leader, replicas, ISR,
offline replicas), and only the leader answering ListOffsets and OffsetForLeaderEpoch."""

from __future__ import annotations

from kbroker.metadata import metadata_records as mr
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.replication.harness import Cluster, batch, produce, wait_for
from tests.replication.leadership import block_follower, blocked

E = ErrorCode


async def _metadata(conn, topic: str, version: int = 12):
    Req = REQUESTS[3]
    return await conn.request(Req(topics=[Req.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False),
                              version, 10)


async def _list_offsets(conn, topic: str, timestamp: int, epoch: int = -1):
    Req = REQUESTS[2]
    request = Req(replica_id=-1, isolation_level=0, topics=[Req.ListOffsetsTopic(name=topic, partitions=[
        Req.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, current_leader_epoch=epoch,
                                                  timestamp=timestamp)])])
    return (await conn.request(request, 9, 10)).topics[0].partitions[0]


async def _epoch_end(conn, topic: str, epoch: int):
    Req = REQUESTS[23]
    request = Req(replica_id=-1, topics=[Req.OffsetForLeaderTopic(topic=topic, partitions=[
        Req.OffsetForLeaderTopic.OffsetForLeaderPartition(partition=0, current_leader_epoch=-1, leader_epoch=epoch)])])
    return (await conn.request(request, 4, 10)).topics[0].partitions[0]


async def test_metadata_answers_leader_replicas_isr_and_offline_replicas_from_the_image():
    async with Cluster(3) as cluster:
        cluster.create_topic("t", [[2, 3, 1]], isr=[[2, 3]])
        conn = await cluster.connect(1)
        try:
            part = (await _metadata(conn, "t")).topics[0].partitions[0]
            assert (part.error_code, part.leader_id, part.leader_epoch) == (E.NONE, 2, 0)
            assert part.replica_nodes == [2, 3, 1] and part.isr_nodes == [2, 3] and part.offline_replicas == []
            # Broker 3 is fenced: an offline replica, and no longer among the brokers.
            epoch = cluster.broker(1).image.brokers[3].epoch
            cluster.apply([mr.FenceBrokerRecord(id=3, epoch=epoch)])
            resp = await _metadata(conn, "t")
            part = resp.topics[0].partitions[0]
            assert part.offline_replicas == [3]
            assert sorted(b.node_id for b in resp.brokers) == [1, 2]
            # A leader that is not registered: LEADER_NOT_AVAILABLE, leader -1.
            cluster.change("t", 0, leader=7, replicas=[7, 2, 3, 1], isr=[7])
            part = (await _metadata(conn, "t")).topics[0].partitions[0]
            assert (part.error_code, part.leader_id, part.leader_epoch) == (E.LEADER_NOT_AVAILABLE, -1, 1)
            assert part.offline_replicas == [7, 3]
        finally:
            conn.close()


async def test_only_the_leader_answers_list_offsets_and_offset_for_leader_epoch():
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        leader_conn, follower_conn = await cluster.connect(1), await cluster.connect(2)
        try:
            assert (await produce(leader_conn, "t", batch([b"a"] * 3), acks=-1)).responses[0] \
                .partition_responses[0].error_code == E.NONE
            rule = block_follower(cluster, 1, 2)
            await blocked(cluster, 1, rule)
            await produce(leader_conn, "t", batch([b"b"] * 2), acks=1)
            # Consumers see the high watermark as the latest offset, not the leader's log end.
            latest = await _list_offsets(leader_conn, "t", -1)
            assert (latest.error_code, latest.offset, latest.leader_epoch) == (E.NONE, 3, 0)
            assert cluster.partition(1, "t").log.log_end_offset == 5
            assert (await _list_offsets(follower_conn, "t", -1)).error_code == E.NOT_LEADER_OR_FOLLOWER
            assert (await _list_offsets(leader_conn, "t", -1, epoch=1)).error_code == E.UNKNOWN_LEADER_EPOCH
            end = await _epoch_end(leader_conn, "t", 0)
            assert (end.error_code, end.leader_epoch, end.end_offset) == (E.NONE, 0, 5)
            assert (await _epoch_end(follower_conn, "t", 0)).error_code == E.NOT_LEADER_OR_FOLLOWER
            cluster.nodes[1].remove_fault(rule)
            await wait_for(lambda: cluster.partition(1, "t").log.high_watermark == 5, message="HW 5")
            assert (await _list_offsets(leader_conn, "t", -1)).offset == 5
        finally:
            leader_conn.close()
            follower_conn.close()


async def test_delete_records_on_a_follower_is_refused_and_its_log_untouched():
    async with Cluster(2) as cluster:
        cluster.create_topic("t", [[1, 2]])
        conn = await cluster.connect(1)
        try:
            await produce(conn, "t", batch([b"a"] * 3), acks=-1)
        finally:
            conn.close()
        follower = cluster.partition(2, "t")
        await wait_for(lambda: follower.log.high_watermark == 3, message="the follower's HW at 3")
        Req = REQUESTS[21]
        conn = await cluster.connect(2)
        try:
            resp = await conn.request(Req(topics=[Req.DeleteRecordsTopic(name="t", partitions=[
                Req.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=0, offset=2)])], timeout_ms=5000), 2, 10)
        finally:
            conn.close()
        assert resp.topics[0].partitions[0].error_code == E.NOT_LEADER_OR_FOLLOWER
        assert follower.log.log_start_offset == 0
