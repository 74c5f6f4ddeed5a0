"""Replication throttles (leader.replication.throttled.rate / follower.replication.throttled.rate
with the topics' throttled-replica lists) on in-process brokers, the quotas on a fake clock so
the bound is asserted in bytes per quota window, never in wall time."""

from __future__ import annotations

from typing import Any

from kbroker.metadata import metadata_records as mr
from kbroker.security.replication_quotas import ReplicationQuotas
from kbroker_protocol.messages import REQUESTS
from tests.replication.harness import Cluster, batch, produce, wait_for

RATE = 1000  # bytes/s: over 11 samples of 1 s the window is 10 s, so 10_000 bytes before the quota is exceeded
WINDOW_BYTES = RATE * 10
FETCH_MAX = 1500  # replica.fetch.max.bytes: about one batch per partition per fetch
VALUE = b"x" * 900


class Clock:
    def __init__(self) -> None:
        self.ms = 5_000_000.0

    def __call__(self) -> float:
        return self.ms


def _fake_clock(broker: Any) -> Clock:
    clock = Clock()
    broker.replication_quotas = ReplicationQuotas(lambda: broker.config, broker.node_id, clock)
    return clock


def _set_broker_config(cluster: Cluster, node: int, name: str, value: str) -> None:
    cluster.apply([mr.ConfigRecord(resource_type=4, resource_name=str(node), name=name, value=value)])


async def _fill(cluster: Cluster, topic: str, partitions: int, batches: int) -> None:
    conn = await cluster.connect(1)
    try:
        for _ in range(batches):
            for p in range(partitions):
                resp = await produce(conn, topic, batch([VALUE]), acks=1, partition=p)
                assert resp.responses[0].partition_responses[0].error_code == 0
    finally:
        conn.close()


async def _replica_fetch(conn: Any, topic: str, offsets: dict[int, int], replica: int = 2) -> dict[int, Any]:
    Req = REQUESTS[1]
    request = Req(replica_id=replica, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                  session_id=0, session_epoch=-1, topics=[Req.FetchTopic(topic=topic, partitions=[
                      Req.FetchTopic.FetchPartition(partition=p, current_leader_epoch=0, fetch_offset=o,
                                                    partition_max_bytes=FETCH_MAX, log_start_offset=0,
                                                    last_fetched_epoch=-1)
                      for p, o in offsets.items()])],
                  forgotten_topics_data=[], rack_id="")
    response = await conn.request(request, 12, 30)
    return {pd.partition_index: pd for t in response.responses for pd in t.partitions}


async def _catch_up(cluster: Cluster, quota: Any, clock: Clock, partition: int, end: int) -> int:
    """Move the quota clock on one quota window at a time until broker 2's replica of ``t``
    reaches ``end``; each window brings at most a window's bytes and one fetch. The windows it took."""
    replica = cluster.partition(2, "t", partition)
    windows = 0
    while replica.log.log_end_offset < end:
        before, mark = len(cluster.log_bytes(2, "t", partition)), quota.throttled_total
        clock.ms += 11_000  # every sample expired
        windows += 1
        await wait_for(lambda mark=mark: replica.log.log_end_offset == end or quota.throttled_total > mark,
                       message="the next window's bytes")
        assert len(cluster.log_bytes(2, "t", partition)) - before <= WINDOW_BYTES + FETCH_MAX
    return windows


async def test_leader_sends_a_catching_up_replica_throttled_partitions_at_the_rate_bound():
    # Broker 2 (the replica catching up) is not running: the test fetches as it, one fetch at a time.
    async with Cluster(1) as cluster:
        leader = cluster.broker(1)
        clock = _fake_clock(leader)
        cluster.create_topic("t", [[1, 2], [1, 2]], isr=[[1], [1]],
                             configs={"leader.replication.throttled.replicas": "0:1"})
        await _fill(cluster, "t", 2, 30)
        _set_broker_config(cluster, 1, "leader.replication.throttled.rate", str(RATE))
        assert leader.config["leader.replication.throttled.rate"] == RATE
        conn = await cluster.connect(1)
        try:
            offsets = {0: 0, 1: 0}
            got = {0: 0, 1: 0}
            throttled_fetches = 0
            for _ in range(30):
                answer = await _replica_fetch(conn, "t", offsets)
                assert {pd.error_code for pd in answer.values()} == {0}
                for p, pd in answer.items():
                    size = len(pd.records) if pd.records is not None else 0
                    got[p] += size
                    if size:
                        offsets[p] += 1  # one record a batch
                    elif p == 0:
                        throttled_fetches += 1
                        assert pd.high_watermark == 30  # still answered: no records, its offsets
            # partition 0 (listed): what one quota window allows, overshot by at most one fetch
            assert WINDOW_BYTES < got[0] <= WINDOW_BYTES + FETCH_MAX
            assert throttled_fetches == 30 - offsets[0] > 0
            assert leader.replication_quotas.leader.throttled_total == throttled_fetches
            # partition 1 (not listed for this broker) is not throttled: one batch every fetch
            assert offsets[1] == 30
            # once the samples have expired, partition 0 is served again
            clock.ms += 11_000
            before = offsets[0]
            answer = await _replica_fetch(conn, "t", offsets)
            assert len(answer[0].records) > 0
            # an in-sync replica is never throttled, however far over the rate
            leader.replication_quotas.leader.record(10 * WINDOW_BYTES)
            assert len((await _replica_fetch(conn, "t", {0: before}))[0].records or b"") == 0
            cluster.change("t", 0, isr=[1, 2])
            answer = await _replica_fetch(conn, "t", {0: before})
            assert len(answer[0].records) > 0
        finally:
            conn.close()


async def test_new_follower_catches_up_under_the_leader_throttle():
    config = {"replica.fetch.max.bytes": str(FETCH_MAX)}
    async with Cluster(2, config=config) as cluster:
        clock = _fake_clock(cluster.broker(1))
        _set_broker_config(cluster, 1, "leader.replication.throttled.rate", str(RATE))
        cluster.create_topic("t", [[1]], configs={"leader.replication.throttled.replicas": "*"})
        await _fill(cluster, "t", 1, 40)  # 40 batches of about 970 bytes: four quota windows' worth
        leader = cluster.partition(1, "t")
        # broker 2 is added as a new replica (a reassignment) and catches up
        cluster.change("t", 0, replicas=[1, 2], isr=[1])
        quota = cluster.broker(1).replication_quotas.leader
        await wait_for(lambda: quota.throttled_total >= 3, message="the leader to throttle the new replica")
        follower = cluster.partition(2, "t")
        got = len(cluster.log_bytes(2, "t"))
        assert WINDOW_BYTES < got <= WINDOW_BYTES + FETCH_MAX
        assert follower.log.log_end_offset < 40
        assert 2 not in leader.isr
        # each further window lets it have a window's worth more (and one fetch), until it is in sync
        assert await _catch_up(cluster, quota, clock, 0, 40) == 3  # about 38_800 bytes: four windows in all
        assert cluster.log_bytes(2, "t") == cluster.log_bytes(1, "t")
        await wait_for(lambda: 2 in leader.isr, message="the caught-up replica to join the ISR")


async def test_follower_leaves_throttled_partitions_out_of_its_fetches():
    config = {"replica.fetch.max.bytes": str(FETCH_MAX)}
    async with Cluster(2, config=config) as cluster:
        clock = _fake_clock(cluster.broker(2))
        _set_broker_config(cluster, 2, "follower.replication.throttled.rate", str(RATE))
        cluster.create_topic("t", [[1], [1]], configs={"follower.replication.throttled.replicas": "0:2"})
        await _fill(cluster, "t", 2, 30)
        cluster.change("t", 0, replicas=[1, 2], isr=[1])
        cluster.change("t", 1, replicas=[1, 2], isr=[1])
        quota = cluster.broker(2).replication_quotas.follower
        await wait_for(lambda: quota.throttled_total >= 3, message="the follower to throttle partition 0")
        # partition 1 (listed for no broker) is fetched in full; partition 0 stops at the bound
        await wait_for(lambda: cluster.partition(2, "t", 1).log.log_end_offset == 30, message="partition 1 replicated")
        got = len(cluster.log_bytes(2, "t", 0))
        assert WINDOW_BYTES < got <= WINDOW_BYTES + FETCH_MAX
        assert cluster.partition(2, "t", 0).log.log_end_offset < 30
        assert await _catch_up(cluster, quota, clock, 0, 30) == 2  # about 29_100 bytes: three windows in all
        assert cluster.log_bytes(2, "t", 0) == cluster.log_bytes(1, "t", 0)
