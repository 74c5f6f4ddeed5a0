"""KIP-392: consumers fetch from the closest replica (``replica.selector.class``, ``client.rack``)."""

from __future__ import annotations

from kbroker_protocol.errors import ErrorCode
from tests.replication.harness import Cluster, batch, fetch, produce, wait_for

E = ErrorCode
RACK_AWARE = "org.apache.kafka.common.replica.RackAwareReplicaSelector"


async def _fetch_rack(conn, topic: str, offset: int, rack: str):
    from kbroker_protocol.messages import REQUESTS

    Req = REQUESTS[1]
    request = Req(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0,
                  session_epoch=-1, rack_id=rack, topics=[Req.FetchTopic(topic=topic, partitions=[
                      Req.FetchTopic.FetchPartition(partition=0, current_leader_epoch=0, fetch_offset=offset,
                                                    partition_max_bytes=1 << 20)])])
    return (await conn.request(request, 12, 10)).responses[0].partitions[0]


async def test_leader_points_a_consumer_to_an_in_sync_follower_in_its_rack():
    async with Cluster(3, config={"replica.selector.class": RACK_AWARE},
                       racks={1: "r1", 2: "r2", 3: "r3"}) as cluster:
        cluster.create_topic("t", [[1, 2, 3]])
        conn = await cluster.connect(1)
        try:
            resp = await produce(conn, "t", batch([b"v"] * 4), acks=-1)
            assert resp.responses[0].partition_responses[0].error_code == E.NONE
            await wait_for(lambda: all(cluster.partition(1, "t").followers[n].log_end_offset == 4 for n in (2, 3)),
                           message="the leader knows both followers are at 4")
            part = await _fetch_rack(conn, "t", 0, "r2")
            assert (part.error_code, part.preferred_read_replica) == (E.NONE, 2)
            assert not part.records  # no data: fetch from the preferred replica
            assert (await _fetch_rack(conn, "t", 0, "r3")).preferred_read_replica == 3
            # The leader's own rack, an unknown rack, or no rack: read from the leader.
            for rack in ("r1", "elsewhere", ""):
                part = await _fetch_rack(conn, "t", 0, rack)
                assert part.preferred_read_replica == -1 and len(part.records) > 0, rack
        finally:
            conn.close()
        # The follower serves the consumer (v11+) up to its high watermark.
        follower = cluster.partition(2, "t")
        await wait_for(lambda: follower.log.high_watermark == 4, message="the follower's high watermark at 4")
        conn = await cluster.connect(2)
        try:
            part = await _fetch_rack(conn, "t", 0, "r2")
            assert part.error_code == E.NONE and part.high_watermark == 4 and len(part.records) > 0
            assert part.preferred_read_replica == -1
        finally:
            conn.close()


async def test_without_a_replica_selector_the_leader_serves_every_consumer():
    async with Cluster(2, racks={1: "r1", 2: "r2"}) as cluster:
        cluster.create_topic("t", [[1, 2]])
        conn = await cluster.connect(1)
        try:
            await produce(conn, "t", batch([b"v"]), acks=-1)
            part = await _fetch_rack(conn, "t", 0, "r2")
            assert part.preferred_read_replica == -1 and len(part.records) > 0
            part = (await fetch(conn, "t", 0)).responses[0].partitions[0]
            assert part.error_code == E.NONE
        finally:
            conn.close()
