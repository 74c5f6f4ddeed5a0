"""Stand-ins of the broker for the transaction coordinator's unit tests (test_txn_coordinator_facade.py):
the ``__transaction_state`` partition and the data partitions as plain objects led by this broker,
a replica manager whose transaction-log writes replicate when the test says (``hold``), a
marker writer that records the markers and holds them until released, and a producer-id
allocator. Time is a :class:`kbroker.control.clock.ManualClock`: nothing sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kbroker.control.clock import ManualClock
from kbroker.coordinator.txn_coordinator import TransactionCoordinator
from kbroker.coordinator.txn_log import TRANSACTION_STATE_TOPIC
from kbroker_protocol.errors import ErrorCode

NODE_ID = 1
START_MS = 1_000_000
TXN_CONFIG: dict[str, Any] = {
    "transaction.state.log.num.partitions": 1,
    "transaction.state.log.segment.bytes": 1 << 20,
    "transaction.state.log.min.isr": 1,
    "transaction.state.log.replication.factor": 1,
    "transaction.max.timeout.ms": 900_000,
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 10_000,
    "transaction.remove.expired.transaction.cleanup.interval.ms": 3_600_000,
    "transactional.id.expiration.ms": 604_800_000,
    "offsets.topic.num.partitions": 1,
}


@dataclass
class FakeBatchHeader:
    base_offset: int
    is_control: bool = False


@dataclass
class FakeLog:
    """The batches appended, one offset each; read back as the coordinator loads a partition."""

    batches: list[bytes] = field(default_factory=list)

    @property
    def log_end_offset(self) -> int:
        return len(self.batches)

    def iter_batches(self) -> Iterator[tuple[FakeBatchHeader, bytes]]:
        for offset, data in enumerate(self.batches):
            yield FakeBatchHeader(offset), data


@dataclass
class FakePartition:
    """A partition led here; ``followers`` non-empty makes its markers asynchronous (as on a
    replicated partition: EndTxn answers with the Prepare* state)."""

    topic: str
    index: int
    followers: list[int] = field(default_factory=list)
    is_leader: bool = True
    leader_epoch: int = 3
    isr: list[int] = field(default_factory=lambda: [NODE_ID])
    replicas: list[int] = field(default_factory=lambda: [NODE_ID])
    config: dict[str, int] = field(default_factory=dict)
    log: FakeLog = field(default_factory=FakeLog)
    producer_state: None = None


@dataclass
class FakePartitionState:
    leader: int


@dataclass
class FakeTopic:
    partitions: dict[int, FakePartitionState]


class FakeImage:
    def __init__(self) -> None:
        self.topics: dict[str, FakeTopic] = {}
        self.features: dict[str, int] = {"transaction.version": 2}
        self.brokers: dict[int, object] = {NODE_ID: object()}

    def topic(self, name: str) -> FakeTopic | None:
        return self.topics.get(name)

    def partition(self, topic: str, index: int) -> FakePartitionState | None:
        t = self.topics.get(topic)
        return None if t is None else t.partitions.get(index)


class FakeProducerState:
    """The marker writer: records each marker (topic, index, producer id, epoch, commit) and,
    while ``hold`` is set, answers only once :meth:`release` is called."""

    def __init__(self) -> None:
        self.markers: list[tuple[str, int, int, int, bool]] = []
        self.hold = False
        self._held: list[asyncio.Future[None]] = []

    async def write_marker_replicated(self, _replica_manager: object, partition: FakePartition, producer_id: int,
                                      producer_epoch: int, commit: bool, _coordinator_epoch: int) -> ErrorCode:
        if self.hold:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._held.append(fut)
            await fut
        self.markers.append((partition.topic, partition.index, producer_id, producer_epoch, commit))
        return ErrorCode.NONE

    def release(self) -> None:
        self.hold = False
        held, self._held = self._held, []
        for fut in held:
            fut.set_result(None)

    @property
    def held(self) -> int:
        return len(self._held)


class HeldReplication:
    """A replica manager's replication wait (shared with share_fakes.py): an append's replication
    completes at once, or, while ``hold`` is set, with the code :meth:`replicate` gives."""

    def __init__(self) -> None:
        self.hold = False
        self._waiting: list[asyncio.Future[ErrorCode]] = []

    async def wait_for_replication(self, _partition: object, _offset: int, _deadline: object) -> ErrorCode:
        if not self.hold:
            return ErrorCode.NONE
        fut: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        return await fut

    def replicate(self, code: ErrorCode = ErrorCode.NONE) -> None:
        self.hold = False
        waiting, self._waiting = self._waiting, []
        for fut in waiting:
            fut.set_result(code)

    @property
    def waiting(self) -> int:
        return len(self._waiting)


class FakeReplicaManager(HeldReplication):
    """Transaction-log appends land in ``appended``; their replication completes at once, or,
    while ``hold`` is set, when :meth:`replicate` is called."""

    def __init__(self) -> None:
        super().__init__()
        self.producer_state = FakeProducerState()
        self.appended: list[bytes] = []

    def append_internal(self, partition: FakePartition, batch: bytes) -> None:
        self.appended.append(batch)
        partition.log.batches.append(batch)


class FakeProducerIds:
    def __init__(self, first: int = 5000) -> None:
        self.next = first

    def allocate(self) -> int:
        self.next += 1
        return self.next - 1


class FakeTxnBroker:
    """What the transaction coordinator reads of its broker, one node leading everything."""

    def __init__(self) -> None:
        self.node_id = NODE_ID
        self.config = dict(TXN_CONFIG)
        self.image = FakeImage()
        self.replica_manager = FakeReplicaManager()
        self.producer_ids = FakeProducerIds()
        self.partitions: dict[tuple[str, int], FakePartition] = {}
        self.group_coordinator = None
        self.clock = None
        self.stopping = False
        self.add_partition(TRANSACTION_STATE_TOPIC, 0)

    def add_partition(self, topic: str, index: int, followers: list[int] | None = None) -> FakePartition:
        partition = FakePartition(topic, index, followers=list(followers or []))
        self.partitions[(topic, index)] = partition
        self.image.topics.setdefault(topic, FakeTopic({})).partitions[index] = FakePartitionState(NODE_ID)
        return partition

    def partition(self, topic: str, index: int) -> FakePartition | None:
        return self.partitions.get((topic, index))


async def settle(rounds: int = 20) -> None:
    """Let the coordinator's spawned tasks (markers, completion) run as far as they can."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def started_coordinator(broker: FakeTxnBroker | None = None, clock: ManualClock | None = None,
                        **config: int) -> tuple[TransactionCoordinator, FakeTxnBroker, ManualClock]:
    """A started transaction coordinator on a manual clock (call inside a running loop); with
    ``broker``, a restart over that broker's partitions. ``config``: keys with dots as underscores."""
    broker = FakeTxnBroker() if broker is None else broker
    broker.config.update({key.replace("_", "."): value for key, value in config.items()})
    clock = ManualClock(start_ms=START_MS) if clock is None else clock
    coordinator = TransactionCoordinator(broker, clock)
    coordinator.start()
    return coordinator, broker, clock
