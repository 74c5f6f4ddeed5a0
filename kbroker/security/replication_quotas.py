"""Replication throttles as Kafka 4.4 enforces them (``ReplicationQuotaManager``).

Two quotas per broker, each a byte rate set by a dynamic broker config (kafka-reassign-partitions
``--throttle`` and kafka-configs set them on every broker of a reassignment):

- ``leader.replication.throttled.rate``: the bytes this broker, as leader, sends to followers of
  throttled partitions;
- ``follower.replication.throttled.rate``: the bytes this broker, as follower, fetches of throttled
  partitions.

Which partitions are throttled is a topic config: ``leader.replication.throttled.replicas`` /
``follower.replication.throttled.replicas``, a list of ``partitionId:brokerId`` (a partition is
throttled on a broker when the pair with that broker's id is listed) or ``*`` (every partition on
every broker). Kafka's ``parseThrottledPartitions``.

The rate is Kafka's ``Rate`` over ``replication.quota.window.num`` (11) samples of
``replication.quota.window.size.seconds`` (1) (the arithmetic of kbroker/security/quotas.py). The
quota is exceeded when the measured rate is above the bound (``Sensor.checkQuotas``). Then:

- the leader answers a follower's Fetch with no records for each throttled partition the follower
  is not in the ISR of (``ReplicaManager.shouldLeaderThrottle``: in-sync replicas are never
  throttled); the partition stays in the answer (high watermark, log start), and the follower's
  fetch position is recorded as usual. The bytes of the throttled partitions an answer carries are
  recorded after it is built (``KafkaApis.sizeOfThrottledPartitions``);
- the follower leaves out of its next Fetch each throttled partition it has not caught up on
  (``ReplicaFetcherThread.shouldFollowerThrottle``: the lag, the leader's high watermark less the
  fetch offset after the last fetch, is unknown or positive), and records the bytes it appends of
  throttled partitions.

The rate is recorded without being checked (Kafka records with ``checkQuotas = false``), so a fetch
may take the rate over its bound once; the next ones leave the throttled partitions out until the
rate is back under it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.config import BROKER_DEFAULTS, LONG_MAX
from kbroker.security.quota_rates import Rate, monotonic_ms

if TYPE_CHECKING:
    from kbroker.replication.partition import Partition

LEADER, FOLLOWER = "leader", "follower"
DEFAULT_SAMPLES: int = BROKER_DEFAULTS["replication.quota.window.num"]
DEFAULT_WINDOW_SECONDS: int = BROKER_DEFAULTS["replication.quota.window.size.seconds"]


def throttled_replicas_key(kind: str) -> str:
    return f"{kind}.replication.throttled.replicas"


def rate_key(kind: str) -> str:
    return f"{kind}.replication.throttled.rate"


def is_throttled_replica(entries: str | Iterable[object] | None, partition: int, broker_id: int) -> bool:
    """Kafka's parseThrottledPartitions for one partition on one broker: ``*``, or an entry
    ``partition:broker_id``. ``entries`` is the topic config's list (typed or the raw text)."""
    if not entries:
        return False
    items = entries.split(",") if isinstance(entries, str) else entries
    wanted = (partition, broker_id)
    for item in items:
        text = str(item).strip()
        if text == "*":
            return True
        p, sep, b = text.partition(":")
        if sep and p.strip().isdigit() and b.strip().isdigit() and (int(p), int(b)) == wanted:
            return True
    return False


class ConfigLookup(Protocol):
    """The broker's current configuration, as the throttles read it (BrokerConfig; a dict in tests)."""

    def get(self, name: str, default: Any = None, /) -> Any: ...


class ReplicationQuota:
    """One side's quota (Kafka's ``ReplicationQuotaManager``): the rate of the throttled
    partitions' bytes, and the throttled-partition test of this broker."""

    def __init__(self, kind: str, config: Callable[[], ConfigLookup], node_id: int,
                 clock: Callable[[], float] = monotonic_ms, samples: int = DEFAULT_SAMPLES,
                 window_seconds: int = DEFAULT_WINDOW_SECONDS) -> None:
        self.kind = kind
        self.node_id = node_id
        self.clock = clock
        self._config = config  # the broker's current config (dynamic configs applied)
        self.rate = Rate(samples, window_seconds * 1000.0)
        self.throttled_total = 0  # times a partition was left out of a fetch (for the metrics)

    @property
    def bound(self) -> float:
        value = self._config().get(rate_key(self.kind))
        return float(LONG_MAX if value is None else value)

    @property
    def enabled(self) -> bool:
        return self.bound < LONG_MAX

    def is_throttled(self, partition: Partition) -> bool:
        """The partition (a kbroker Partition: ``index`` and its topic ``config``) is listed as
        throttled on this broker for this side."""
        return is_throttled_replica(partition.config.get(throttled_replicas_key(self.kind)), partition.index,
                                    self.node_id)

    def is_quota_exceeded(self) -> bool:
        bound = self.bound
        if bound >= LONG_MAX:
            return False
        return self.rate.measure(self.clock()) > bound

    def record(self, value: int) -> None:
        if value > 0:
            self.rate.record(float(value), self.clock())

    def byte_rate(self) -> float:
        return self.rate.measure(self.clock())


class ReplicationQuotas:
    """The leader and follower quotas of a broker."""

    def __init__(self, config: Callable[[], ConfigLookup], node_id: int,
                 clock: Callable[[], float] = monotonic_ms) -> None:
        cfg = config()
        samples = int(cfg.get("replication.quota.window.num") or DEFAULT_SAMPLES)
        window = int(cfg.get("replication.quota.window.size.seconds") or DEFAULT_WINDOW_SECONDS)
        self.leader = ReplicationQuota(LEADER, config, node_id, clock, samples, window)
        self.follower = ReplicationQuota(FOLLOWER, config, node_id, clock, samples, window)

    def leader_throttles(self, partition: Partition, replica_id: int) -> bool:
        """Kafka's shouldLeaderThrottle: the leader sends no records of ``partition`` to the
        follower ``replica_id`` in this fetch."""
        q = self.leader
        if not q.enabled or replica_id in partition.isr or not q.is_throttled(partition) or not q.is_quota_exceeded():
            return False
        q.throttled_total += 1
        return True

    def follower_throttles(self, partition: Partition, lag: int | None) -> bool:
        """Kafka's shouldFollowerThrottle: the follower leaves ``partition`` out of its next fetch."""
        q = self.follower
        in_sync = lag is not None and lag <= 0
        if not q.enabled or in_sync or not q.is_throttled(partition) or not q.is_quota_exceeded():
            return False
        q.throttled_total += 1
        return True


class ReplicationQuotaHost(Protocol):
    """The broker as a leader's Fetch handling finds its replication quotas."""

    @property
    def replication_quotas(self) -> ReplicationQuotas: ...


def replication_quotas(broker: ReplicationQuotaHost) -> ReplicationQuotas:
    """The broker's replication quotas (made with the broker, kbroker/broker.py)."""
    return broker.replication_quotas
