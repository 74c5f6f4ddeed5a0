"""OffsetFetch with RequireStable as Kafka 4.4's GroupCoordinatorService.fetchOffsets runs it: a
write operation without records. The answer is computed at the latest state (commits not yet
replicated included, UNSTABLE_OFFSET_COMMIT for partitions with pending transactional offsets) and
sent once the partition's pending writes are replicated; a failed wait is the group's error, with
Kafka's OffsetFetch mapping (handleOffsetFetchException). The coordinator runs on a fake broker whose
replication the test completes by hand."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kbroker.coordinator.group_coordinator import GroupCoordinator
from kbroker.coordinator.group_offsets import OffsetAndMetadata
from kbroker_protocol.errors import ErrorCode

E = ErrorCode
TP = ("t", 0)


class Log:
    def __init__(self) -> None:
        self.high_watermark = 10
        self.log_end_offset = 10


class Partition:
    def __init__(self) -> None:
        self.log = Log()


class Replication:
    """``wait_for_replication`` waits for the test to answer it."""

    def __init__(self) -> None:
        self.waits: list[tuple[int, asyncio.Future[ErrorCode]]] = []

    async def wait_for_replication(self, partition: Any, required_offset: int, deadline: Any) -> ErrorCode:
        fut: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
        self.waits.append((required_offset, fut))
        return await fut


class Broker:
    def __init__(self) -> None:
        self.config = {"offsets.commit.timeout.ms": 5000, "group.min.session.timeout.ms": 6000,
                       "group.max.session.timeout.ms": 1800000, "group.initial.rebalance.delay.ms": 0,
                       "group.max.size": 100}
        self.replica_manager = Replication()
        self.clock = None
        self.offsets_partition = Partition()
        self.image = None

    def partition(self, topic: str, index: int) -> Partition:
        return self.offsets_partition


def make() -> tuple[Broker, GroupCoordinator]:
    broker = Broker()
    coordinator = GroupCoordinator(broker)
    coordinator.loaded = True
    coordinator.partition_for = lambda group_id: 0  # type: ignore[method-assign]
    return broker, coordinator


async def waiting(broker: Broker) -> None:
    """Let the fetch run on the loop until it waits for the replication (turns of the loop, no time)."""
    for _ in range(100):
        if broker.replica_manager.waits:
            return
        await asyncio.sleep(0)  # (a turn of the loop)
    raise AssertionError("the fetch does not wait for the replication")


def om(offset: int, record_offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, -1, "", 0, -1, record_offset)


async def test_the_latest_offsets_are_answered_once_the_pending_writes_are_replicated() -> None:
    broker, coordinator = make()
    log = broker.offsets_partition.log
    coordinator.offsets.apply_written("g", TP, om(5, 9), 9, high_watermark=10)  # replicated
    log.log_end_offset = 12
    coordinator.offsets.apply_written("g", TP, om(7, 11), 11, high_watermark=10)  # not yet
    coordinator.offsets.apply_pending(42, 0, "g", ("t", 1), om(3, 10))  # a transaction's offset
    # Without RequireStable: the replicated offset at once, the transaction's not shown.
    assert coordinator.fetch_offsets("g", [("t", [0, 1])], False) == (E.NONE, [
        ("t", 0, 5, -1, "", E.NONE), ("t", 1, -1, -1, "", E.NONE)])
    task = asyncio.ensure_future(coordinator.fetch_stable_offsets("g", [("t", [0, 1])]))
    await waiting(broker)
    [(required, replicated)] = broker.replica_manager.waits
    assert required == 12 and not task.done()  # after every write appended before it
    log.high_watermark = 12
    replicated.set_result(E.NONE)
    assert await task == (E.NONE, [("t", 0, 7, -1, "", E.NONE), ("t", 1, -1, -1, "", E.UNSTABLE_OFFSET_COMMIT)])


@pytest.mark.parametrize(("wait_error", "answer"), [
    (E.REQUEST_TIMED_OUT, E.NOT_COORDINATOR),
    (E.NOT_ENOUGH_REPLICAS, E.NOT_COORDINATOR),
    (E.UNKNOWN_TOPIC_OR_PARTITION, E.NOT_COORDINATOR),
    (E.NOT_LEADER_OR_FOLLOWER, E.NOT_COORDINATOR),
    (E.KAFKA_STORAGE_ERROR, E.NOT_COORDINATOR),
    (E.NOT_ENOUGH_REPLICAS_AFTER_APPEND, E.COORDINATOR_NOT_AVAILABLE),
])
async def test_a_failed_wait_is_the_groups_error(wait_error: ErrorCode, answer: ErrorCode) -> None:
    broker, coordinator = make()
    coordinator.offsets.apply_written("g", TP, om(5, 9), 9, high_watermark=10)
    task = asyncio.ensure_future(coordinator.fetch_stable_offsets("g", None))
    await waiting(broker)
    [(_, wait)] = broker.replica_manager.waits
    wait.set_result(wait_error)
    assert await task == (answer, [])


async def test_a_refused_fetch_answers_at_once() -> None:
    broker, coordinator = make()
    assert await coordinator.fetch_stable_offsets("", None) == (E.INVALID_GROUP_ID, [])
    coordinator.loaded = False
    assert await coordinator.fetch_stable_offsets("g", None) == (E.COORDINATOR_LOAD_IN_PROGRESS, [])
    assert broker.replica_manager.waits == []
