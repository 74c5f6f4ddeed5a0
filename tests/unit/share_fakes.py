"""Stand-ins of the broker for the share coordinator façade's unit tests
(test_share_coordinator_facade.py): the real metadata image (one broker, the topics the test
creates), ``__share_group_state`` and data partitions as in-memory logs led by this broker, a
replica manager whose appends land in those logs (replicated at once, or when the test says), and
keyed one-shot timers on a manual clock. Nothing sleeps: a test moves the clock with
:meth:`FakeShareTimer.advance`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from kbroker.config.keys import BROKER_DEFAULTS
from kbroker.coordinator.share_coordinator import ShareCoordinator
from kbroker.coordinator.share_state import STATE_TOPIC
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import MetadataImage
from kbroker_protocol.records import build_batch, iter_records
from tests.unit.txn_fakes import FakeBatchHeader, HeldReplication

NODE_ID = 1
START_MS = 1_000_000
PRUNE_MS = 300_000
STATE_TOPIC_ID = uuid.UUID(int=0x5EA7E)


@dataclass
class FakeShareLog:
    """Batches with their base offsets; the log start moves forward only (``advance_log_start``)."""

    batches: list[tuple[int, bytes]] = field(default_factory=list)  # (base offset, batch)
    log_end_offset: int = 0
    log_start_offset: int = 0

    @property
    def high_watermark(self) -> int:
        return self.log_end_offset

    def append(self, batch: bytes) -> int:
        """``batch`` re-based at the log end; returns its base offset."""
        records = [replace(r, offset=None) for r in iter_records(batch)]
        base = self.log_end_offset
        self.batches.append((base, build_batch(records, base_offset=base)))
        self.log_end_offset += len(records)
        return base

    def iter_batches(self) -> Iterator[tuple[FakeBatchHeader, bytes]]:
        for base, data in self.batches:
            yield FakeBatchHeader(base), data

    def advance_log_start(self, offset: int) -> int:
        self.log_start_offset = max(self.log_start_offset, offset)
        self.batches = [(base, data) for base, data in self.batches
                        if base + len(list(iter_records(data))) > self.log_start_offset]
        return self.log_start_offset

    def offset_for_timestamp(self, _ts: int) -> tuple[int, int] | None:
        return None


@dataclass
class FakeSharePartition:
    topic: str
    index: int
    is_leader: bool = True
    leader_epoch: int = 3
    log: FakeShareLog = field(default_factory=FakeShareLog)

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset


class FakeShareReplicaManager(HeldReplication):
    """Appends go to the partition's log; their replication completes at once, or with the code
    :meth:`replicate` gives while ``hold`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.appends = 0

    def append_internal(self, partition: FakeSharePartition, batch: bytes) -> int:
        self.appends += 1
        return partition.log.append(batch)


class FakeShareTimer:
    """Keyed one-shot timers on a manual clock (scheduling a key again replaces it), with the
    ``cancel_all`` the coordinator calls when it stops."""

    def __init__(self, now: int = START_MS) -> None:
        self.now = now
        self.timers: dict[object, tuple[int, Callable[[], None]]] = {}

    def now_ms(self) -> int:
        return self.now

    def schedule(self, key: object, delay_ms: int, fn: Callable[[], None]) -> None:
        self.timers[key] = (self.now + delay_ms, fn)

    def cancel(self, key: object) -> None:
        self.timers.pop(key, None)

    def cancel_all(self) -> None:
        self.timers.clear()

    def advance(self, ms: int) -> None:
        """Move the clock ``ms`` on, firing each timer due on the way at its own time."""
        target = self.now + ms
        while True:
            due = sorted(((d, repr(k), k) for k, (d, _f) in self.timers.items() if d <= target),
                         key=lambda x: (x[0], x[1]))
            if not due:
                break
            self.now, _r, key = due[0]
            self.timers.pop(key)[1]()
        self.now = target


class FakeShareListeners:
    """The group coordinator's share-group hooks the share coordinator subscribes to."""

    def __init__(self) -> None:
        self.on_member_removed: list[Callable[[str, str], None]] = []
        self.on_group_deleted: list[Callable[[str], None]] = []


class FakeGroupCoordinator:
    def __init__(self) -> None:
        self.share = FakeShareListeners()


class FakeShareBroker:
    """What the share coordinator reads of its broker: one node leading every partition."""

    def __init__(self, state_partitions: int = 1) -> None:
        self.node_id = NODE_ID
        self.config: dict[str, Any] = dict(BROKER_DEFAULTS)
        self.config["share.coordinator.state.topic.num.partitions"] = state_partitions
        self.config["share.coordinator.state.topic.prune.interval.ms"] = PRUNE_MS
        self.image = MetadataImage()
        self.replica_manager = FakeShareReplicaManager()
        self.partitions: dict[tuple[str, int], FakeSharePartition] = {}
        self.group_coordinator: FakeGroupCoordinator | None = FakeGroupCoordinator()
        self.connection_listeners: list[Callable[[Any], None]] = []
        self.clock = None
        self.stopping = False
        self._offset = 0
        self._apply(mr.RegisterBrokerRecord(broker_id=NODE_ID, broker_epoch=1, fenced=False))
        self.add_topic(STATE_TOPIC, STATE_TOPIC_ID, state_partitions)

    def _apply(self, record: object) -> None:
        self.image.apply(record, self._offset)
        self._offset += 1

    def add_topic(self, name: str, topic_id: uuid.UUID, partitions: int = 1) -> list[FakeSharePartition]:
        self._apply(mr.TopicRecord(name=name, topic_id=topic_id))
        out = []
        for index in range(partitions):
            self._apply(mr.PartitionRecord(partition_id=index, topic_id=topic_id, replicas=[NODE_ID], isr=[NODE_ID],
                                           leader=NODE_ID, leader_epoch=3, partition_epoch=0))
            out.append(self.partitions.setdefault((name, index), FakeSharePartition(name, index)))
        return out

    def add_broker(self, broker_id: int) -> None:
        self._apply(mr.RegisterBrokerRecord(broker_id=broker_id, broker_epoch=1, fenced=False))

    def move_leader(self, topic: str, index: int, leader: int) -> None:
        """The partition's leader becomes ``leader`` (this node leads it only if it is NODE_ID)."""
        t = self.image.topic(topic)
        assert t is not None
        self._apply(mr.PartitionChangeRecord(topic_id=t.topic_id, partition_id=index, leader=leader))
        self.partitions[(topic, index)].is_leader = leader == NODE_ID

    def remove_topic(self, name: str) -> None:
        topic = self.image.topic(name)
        assert topic is not None
        self._apply(mr.RemoveTopicRecord(topic_id=topic.topic_id))
        for key in [k for k in self.partitions if k[0] == name]:
            del self.partitions[key]

    def set_features(self, **levels: int) -> None:
        for name, level in levels.items():
            self._apply(mr.FeatureLevelRecord(name=name.replace("_", "."), feature_level=level))

    def set_group_config(self, group_id: str, name: str, value: str | None) -> None:
        self._apply(mr.ConfigRecord(resource_type=32, resource_name=group_id, name=name, value=value))

    def partition(self, topic: str, index: int) -> FakeSharePartition | None:
        return self.partitions.get((topic, index))

    def state_log(self, index: int = 0) -> FakeShareLog:
        p = self.partitions[(STATE_TOPIC, index)]
        return p.log


def started_share_coordinator(broker: FakeShareBroker | None = None, timer: FakeShareTimer | None = None
                              ) -> tuple[ShareCoordinator, FakeShareBroker, FakeShareTimer]:
    """A share coordinator on ``broker`` (a new one by default), started (state loaded, prune
    timer set) with the hooks the composition root gives it: connection close, group member removal
    and group deletion."""
    broker = broker or FakeShareBroker()
    timer = timer or FakeShareTimer()
    coordinator = ShareCoordinator(broker, timer)  # type: ignore[arg-type]  # the fake host
    coordinator.start()
    # the hooks the composition root gives it (kbroker/wiring/coordinators.py)
    broker.connection_listeners.append(coordinator.manager.on_connection_closed)
    if broker.group_coordinator is not None:
        broker.group_coordinator.share.on_member_removed.append(coordinator.manager.on_member_removed)
        broker.group_coordinator.share.on_group_deleted.append(coordinator.manager.drop_group)
    return coordinator, broker, timer
