"""Issue 17's bad input on the replication path, each answered with Kafka's error and changing
nothing: a follower fetch (ReplicaId of a real replica) with a stale or future leader epoch gets
FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH (Kafka's ``localLogWithEpochOrThrow``) and the leader
records no position for it; the same fetch with the current epoch is accepted (the check could
fail). (A fetch from a broker that is not a replica: test_leader_change.py; AlterPartition from a
non-leader: tests/unit/test_replication_control.py and test_reassignment_control.py.)"""

from __future__ import annotations

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.replication.harness import Cluster, batch, produce, wait_for

E = ErrorCode
Req = REQUESTS[1]


def _replica_fetch(topic_id, replica: int, epoch: int, offset: int):
    return Req(replica_id=replica, replica_state=Req.ReplicaState(replica_id=replica, replica_epoch=-1),
               max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, session_id=0, session_epoch=-1,
               topics=[Req.FetchTopic(topic_id=topic_id, partitions=[Req.FetchTopic.FetchPartition(
                   partition=0, current_leader_epoch=epoch, fetch_offset=offset, partition_max_bytes=1 << 20)])])


async def test_follower_fetch_with_a_wrong_leader_epoch_is_refused_and_records_nothing():
    async with Cluster(3) as cluster:
        topic_id = cluster.create_topic("t", [[1, 2, 3]])
        # broker 3's own fetcher is refused, so only this test speaks for replica 3
        rule = cluster.nodes[1].add_fault(api="Fetch", client_id="broker-3-fetcher-0", error="NOT_LEADER_OR_FOLLOWER")
        await wait_for(lambda: cluster.nodes[1].fault(rule)["fired"] >= 1, message="broker 3's fetch refused")
        conn = await cluster.connect(1)
        try:
            resp = await produce(conn, "t", batch([b"x"] * 5), acks=1)
            assert resp.responses[0].partition_responses[0].error_code == E.NONE
            leader = cluster.partition(1, "t")
            cluster.change("t", 0, leader=1)  # the leader epoch moves to 1
            await wait_for(lambda: leader.leader_epoch == 1, message="leader epoch 1")
            before = (leader.followers[3].log_end_offset, list(leader.isr), leader.log.high_watermark,
                      leader.leader_epoch, leader.partition_epoch)
            for epoch, code in ((0, E.FENCED_LEADER_EPOCH), (2, E.UNKNOWN_LEADER_EPOCH)):
                resp = await conn.request(_replica_fetch(topic_id, 3, epoch, 5), 17, 10)
                p = resp.responses[0].partitions[0]
                assert (p.error_code, bytes(p.records or b"")) == (code, b""), epoch
                assert (leader.followers[3].log_end_offset, list(leader.isr), leader.log.high_watermark,
                        leader.leader_epoch, leader.partition_epoch) == before
            resp = await conn.request(_replica_fetch(topic_id, 3, 1, 5), 17, 10)
            assert resp.responses[0].partitions[0].error_code == E.NONE
            assert leader.followers[3].log_end_offset == 5
        finally:
            conn.close()
