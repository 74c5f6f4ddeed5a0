"""``num.replica.fetchers`` (issue 17): a follower fetches the partitions of one source broker over
that many fetchers, each its own connection and fetch session, a partition going to fetcher
``abs(31 * topic.hashCode + partition) % n`` (Kafka's AbstractFetcherManager.getFetcherId), and
replication works as with one."""

from __future__ import annotations

import pytest

from kbroker.replication.replica_fetcher import fetcher_id
from kbroker_protocol.errors import ErrorCode
from tests.replication.harness import Cluster, batch, produce, wait_for

PARTITIONS = 6


@pytest.mark.parametrize("topic, partition, fetchers, expected", [
    ("t", 0, 4, 0), ("t", 5, 4, 1),  # "t".hashCode() = 116, 31 * 116 = 3596 = 0 mod 4
    # 31 * hashCode overflows Java's int: "orders" -> (int) (31 * -1008770331) + 2 = -1207109187
    ("orders", 2, 3, 0),
    ("__consumer_offsets", 7, 5, 0),  # (int) (31 * -970371369) + 7 = -16741360
    ("payments-eu", 1, 4, 3),  # (int) (31 * -1539523760) + 1 = -480596303
    ("any", 7, 1, 0),
])
def test_fetcher_id_is_kafkas(topic, partition, fetchers, expected):
    assert fetcher_id(topic, partition, fetchers) == expected


async def test_partitions_spread_over_fetch_sessions_and_replicate():
    async with Cluster(2, {"num.replica.fetchers": "3"}) as cluster:
        cluster.create_topic("data", [[1, 2]] * PARTITIONS)
        follower = cluster.broker(2).replica_manager.fetchers
        expected = {(1, fetcher_id("data", p, 3)) for p in range(PARTITIONS)}
        assert len(expected) == 3  # the topic's partitions use every fetcher
        await wait_for(lambda: set(follower.fetchers) == expected, message="one fetcher per fetcher id")
        for (source, fid), fetcher in follower.fetchers.items():
            assert source == 1 and fetcher.fetcher_id == fid
            assert sorted(fetcher.partitions) == [("data", p) for p in range(PARTITIONS)
                                                  if fetcher_id("data", p, 3) == fid]
        # The leader sees three fetch sessions, one per fetcher, holding disjoint partitions.
        sessions = cluster.broker(1).fetch_sessions.sessions
        await wait_for(lambda: len([s for s in sessions.values() if s.partitions]) == 3,
                       message="three fetch sessions on the leader", details=lambda: len(sessions))
        held = sorted(p for s in sessions.values() for (_topic, p) in s.partitions)
        assert held == list(range(PARTITIONS))
        conn = await cluster.connect(1)
        try:
            for p in range(PARTITIONS):
                response = await produce(conn, "data", batch([b"v%d" % p, b"w%d" % p]), partition=p, acks=-1)
                assert response.responses[0].partition_responses[0].error_code == ErrorCode.NONE
        finally:
            conn.close()
        for p in range(PARTITIONS):
            assert cluster.partition(2, "data", p).log.log_end_offset == 2
            assert cluster.log_bytes(2, "data", p) == cluster.log_bytes(1, "data", p)
