"""The replication throttle decision (Kafka's ReplicationQuotaManager, shouldLeaderThrottle,
shouldFollowerThrottle) on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kbroker.security.replication_quotas import LONG_MAX, ReplicationQuotas, is_throttled_replica


@dataclass
class FakePartition:
    index: int
    isr: list[int]
    config: dict[str, Any] = field(default_factory=dict)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000.0

    def __call__(self) -> float:
        return self.ms


def quotas(leader_rate: int = LONG_MAX, follower_rate: int = LONG_MAX, node: int = 1) -> tuple[ReplicationQuotas,
                                                                                                  Clock, dict]:
    config = {"leader.replication.throttled.rate": leader_rate, "follower.replication.throttled.rate": follower_rate,
              "replication.quota.window.num": 11, "replication.quota.window.size.seconds": 1}
    clock = Clock()
    return ReplicationQuotas(lambda: config, node, clock), clock, config


def test_throttled_replica_list_is_kafkas_partition_broker_pairs() -> None:
    assert is_throttled_replica(("0:1", "2:3"), 0, 1)
    assert is_throttled_replica(("0:1", "2:3"), 2, 3)
    assert not is_throttled_replica(("0:1", "2:3"), 0, 3)  # the pair names another broker
    assert not is_throttled_replica(("0:1", "2:3"), 1, 1)
    assert is_throttled_replica(("*",), 7, 9)
    assert is_throttled_replica("0:1, 1:1", 1, 1)  # the raw text form
    assert not is_throttled_replica((), 0, 1)
    assert not is_throttled_replica("", 0, 1)


def test_leader_throttles_a_listed_catching_up_follower_once_the_rate_is_over_the_bound() -> None:
    q, clock, _ = quotas(leader_rate=1000)
    p = FakePartition(0, isr=[1], config={"leader.replication.throttled.replicas": ("0:1",)})
    assert not q.leader_throttles(p, 2)  # nothing recorded yet
    # 11 windows of 1 s: 10_000 bytes is 1000 bytes/s over the (at least) 10 s window, not above it
    q.leader.record(10_000)
    assert not q.leader_throttles(p, 2)
    q.leader.record(1)
    assert q.leader_throttles(p, 2)
    assert q.leader.throttled_total == 1
    # in-sync replicas are never throttled, nor partitions not listed for this broker
    assert not q.leader_throttles(p, 1)
    p.isr.append(2)
    assert not q.leader_throttles(p, 2)
    other = FakePartition(1, isr=[1], config={"leader.replication.throttled.replicas": ("0:1", "1:2")})
    assert not q.leader_throttles(other, 2)
    # the rate decays: after the samples expire, the follower is served again
    clock.ms += 11_000
    p.isr.remove(2)
    assert not q.leader_throttles(p, 2)


def test_rate_change_takes_effect_at_once() -> None:
    q, _clock, config = quotas(leader_rate=100)
    p = FakePartition(0, isr=[1], config={"leader.replication.throttled.replicas": ("*",)})
    q.leader.record(5_000)
    assert q.leader_throttles(p, 2)
    config["leader.replication.throttled.rate"] = 1_000_000  # kafka-configs --alter raises it
    assert not q.leader_throttles(p, 2)
    config["leader.replication.throttled.rate"] = LONG_MAX  # --remove-config: no throttle
    assert not q.leader.enabled
    assert not q.leader_throttles(p, 2)
    # bytes are measured while no rate is set: a rate set later applies to them at once
    q2, _clock2, config2 = quotas()
    q2.leader.record(5_000)
    assert not q2.leader_throttles(p, 2)
    config2["leader.replication.throttled.rate"] = 100
    assert q2.leader_throttles(p, 2)


def test_follower_throttles_only_partitions_it_has_not_caught_up_on() -> None:
    q, _clock, _ = quotas(follower_rate=10, node=2)
    p = FakePartition(0, isr=[1], config={"follower.replication.throttled.replicas": ("0:2",)})
    q.follower.record(1_000)
    assert q.follower_throttles(p, None)  # lag unknown: not in sync
    assert q.follower_throttles(p, 5)
    assert not q.follower_throttles(p, 0)  # caught up
    # the leader-side list does not throttle the follower side
    leader_listed = FakePartition(0, isr=[1], config={"leader.replication.throttled.replicas": ("0:2",)})
    assert not q.follower_throttles(leader_listed, 5)
    # nor is the leader quota touched by follower bytes
    assert q.leader.byte_rate() == 0


def test_rates_and_throttled_partitions_are_on_the_metrics_endpoint() -> None:
    from types import SimpleNamespace

    from kbroker.metrics.collector import BrokerCollector

    q, _clock, _ = quotas(leader_rate=100)
    p = FakePartition(0, isr=[1], config={"leader.replication.throttled.replicas": ("*",)})
    q.leader.record(2_000)  # 200 B/s over the 10 s window
    assert q.leader_throttles(p, 2) and q.leader_throttles(p, 3)
    collector = BrokerCollector(SimpleNamespace(replication_quotas=q), requests=None)
    families = {f.name: f for f in collector._replication_quotas()}
    assert families["kafka_server_leaderreplication_byte_rate"].samples[0].value == 200
    assert families["kafka_server_followerreplication_byte_rate"].samples[0].value == 0
    counts = {s.labels["side"]: s.value for s in families["kbroker_replication_throttled_partitions"].samples
              if s.name.endswith("_total")}
    assert counts == {"leader": 2, "follower": 0}
