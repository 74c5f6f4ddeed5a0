"""Stand-ins of the broker for the ReplicaManager façade's unit tests
(test_replica_manager_facade.py): the real :class:`ReplicaManager` over real partition logs in a
temporary directory, with a fake metadata image, a fake replica-fetcher manager (no connections:
it records which partitions would be fetched from which leader), a fake controller channel that
accepts AlterPartition, and a :class:`ManualClock` for the delayed operations; and the tests'
set-ups: a partition led here with one follower, client appends, and an acks=all wait."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kbroker.config.broker_config import BrokerConfig
from kbroker.control.clock import ManualClock
from kbroker.log import LogConfig, PartitionLog
from kbroker.replication.deadline import Deadline
from kbroker.replication.partition import Partition
from kbroker.replication.produce_batch import AppendResult, ProduceError
from kbroker.replication.replica_manager import ReplicaManager
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition import AlterPartitionRequest
from kbroker_protocol.records import Record, build_batch

NODE_ID = 1
START_MS = 1_700_000_000_000
PRODUCE_VERSION = 11


@dataclass
class FakePartitionState:
    """An image partition record (kbroker.metadata.image.PartitionState's fields read here)."""

    leader: int
    replicas: list[int]
    isr: list[int]
    leader_epoch: int = 0
    partition_epoch: int = 0


@dataclass
class FakeRegistration:
    epoch: int = 7
    fenced: bool = False
    rack: str | None = None
    endpoints: dict[str, tuple[str, int, str]] = field(
        default_factory=lambda: {"PLAINTEXT": ("localhost", 9092, "PLAINTEXT")})


@dataclass
class FakeImage:
    partitions: dict[tuple[str, int], FakePartitionState] = field(default_factory=dict)
    brokers: dict[int, FakeRegistration] = field(
        default_factory=lambda: {n: FakeRegistration() for n in (1, 2, 3)})

    def partition(self, topic: str, index: int) -> FakePartitionState | None:
        return self.partitions.get((topic, index))


class FakeFetchers:
    """The replica fetchers as the replica manager drives them: partition -> leader fetched from."""

    def __init__(self) -> None:
        self.fetching: dict[tuple[str, int], tuple[Partition, int]] = {}
        self.closed = False

    def has_partition(self, partition: Partition) -> bool:
        entry = self.fetching.get((partition.topic, partition.index))
        return entry is not None and entry[0] is partition and entry[1] == partition.leader_id

    def add_partition(self, partition: Partition) -> None:
        self.fetching[(partition.topic, partition.index)] = (partition, partition.leader_id)

    def remove_partition(self, partition: Partition) -> None:
        self.fetching.pop((partition.topic, partition.index), None)

    def close(self) -> None:
        self.closed = True

    def leader_of(self, partition: Partition) -> int | None:
        entry = self.fetching.get((partition.topic, partition.index))
        return None if entry is None else entry[1]


@dataclass
class _Result:
    partition_index: int
    error_code: int
    leader_epoch: int
    isr: list[int]
    partition_epoch: int


@dataclass
class _Topic:
    topic_id: uuid.UUID
    partitions: list[_Result]


@dataclass
class _Response:
    error_code: int
    topics: list[_Topic]


class FakeControllerChannel:
    """AlterPartition accepted as proposed (the partition epoch + 1), each request kept."""

    def __init__(self) -> None:
        self.requests: list[AlterPartitionRequest] = []

    async def send(self, api_key: int, request: AlterPartitionRequest) -> _Response:
        assert api_key == 56
        self.requests.append(request)
        return _Response(0, [_Topic(t.topic_id, [
            _Result(p.partition_index, 0, p.leader_epoch, [s.broker_id for s in p.new_isr_with_epochs],
                    p.partition_epoch + 1) for p in t.partitions]) for t in request.topics])


class FakeReplicaBroker:
    """What the replica manager reads of its broker."""

    def __init__(self, root: Path, props: dict[str, str] | None = None) -> None:
        self.root = root
        self.node_id = NODE_ID
        self.config = BrokerConfig({"node.id": str(NODE_ID), **(props or {})}, warn=False)
        self.image = FakeImage()
        self.clock = ManualClock(start_ms=START_MS)
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.stopping = False
        self.replica_manager: ReplicaManager | None = None

    def open_partition(self, topic: str, index: int, overrides: dict[str, str] | None = None) -> Partition:
        """A new local replica, as the broker opens one before applying its partition record."""
        values = self.config.topic_config(overrides or {})
        plog = PartitionLog.open(self.root / "data" / f"{topic}-{index}", LogConfig.from_topic_values(values))
        partition = Partition(topic, index, uuid.uuid4(), plog, -1, [], [], values, node_id=NODE_ID,
                              leader_id=-1, partition_epoch=-1)
        self.partitions[(topic, index)] = partition
        return partition


def replica_manager(root: Path, props: dict[str, str] | None = None,
                    ) -> tuple[ReplicaManager, FakeReplicaBroker, FakeFetchers]:
    broker = FakeReplicaBroker(root, props)
    manager = ReplicaManager(broker)
    broker.replica_manager = manager  # (the partition APIs' lookup goes through it)
    fetchers = FakeFetchers()
    manager.fetchers = fetchers
    return manager, broker, fetchers


def apply(manager: ReplicaManager, broker: FakeReplicaBroker, partition: Partition, state: FakePartitionState,
          ) -> None:
    """A metadata delta naming the replica: the image changes, then the replica manager applies it."""
    broker.image.partitions[(partition.topic, partition.index)] = state
    manager.apply_partition_state(partition, state)


def batch(*values: bytes) -> bytes:
    return build_batch([Record(key=None, value=v, timestamp=START_MS) for v in values])


def close(manager: ReplicaManager, broker: FakeReplicaBroker) -> None:
    manager.close()
    for partition in broker.partitions.values():
        partition.log.close()


def led_with_follower(manager: ReplicaManager, broker: FakeReplicaBroker, index: int = 0,
                      partition_epoch: int = 0) -> Partition:
    """Partition "t"-``index`` opened and led here, broker 2 following in the ISR."""
    partition = broker.open_partition("t", index)
    apply(manager, broker, partition, FakePartitionState(NODE_ID, [NODE_ID, 2], [NODE_ID, 2],
                                                         partition_epoch=partition_epoch))
    return partition


def append(manager: ReplicaManager, broker: FakeReplicaBroker, topic: str, index: int, *values: bytes,
           acks: int = 1) -> AppendResult:
    """A client's Produce of ``values`` to ``topic``-``index``, appended at once."""
    partition = broker.partitions[(topic, index)]
    result = manager.append_from_client(partition, batch(*values), PRODUCE_VERSION, acks, None,
                                        broker.clock.now_ms())
    assert isinstance(result, AppendResult)  # small batches are appended at once
    return result


def refused(manager: ReplicaManager, broker: FakeReplicaBroker, topic: str, index: int, acks: int = 1) -> ErrorCode:
    """The error a client's append to ``topic``-``index`` is refused with."""
    with pytest.raises(ProduceError) as info:
        append(manager, broker, topic, index, b"x", acks=acks)
    return info.value.code


async def settle(rounds: int = 10) -> None:
    """Let the tasks woken so far run (no time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def awaiting_replication(manager: ReplicaManager, broker: FakeReplicaBroker,
                               partition: Partition) -> asyncio.Task[ErrorCode]:
    """An acks=all append of one record to ``partition`` (led here) and its wait for the followers,
    with a 30 s deadline on the broker's manual clock, started and settled."""
    append(manager, broker, partition.topic, partition.index, b"a", acks=-1)
    waiting = asyncio.get_running_loop().create_task(
        manager.wait_for_replication(partition, partition.log.log_end_offset, Deadline(30_000, broker.clock)))
    await settle()
    return waiting
