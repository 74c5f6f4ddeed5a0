"""The replica manager's producer-state housekeeping (kbroker/replication/producer_housekeeping.py),
over real partition logs with a manual clock (tests/unit/replica_fakes.py): producer-id expiration
every ``producer.id.expiration.check.interval.ms`` of clock time, from ``start`` to ``close``, as
Kafka's logs run ``removeExpiredProducers``; the producer snapshot at close (Kafka's
``UnifiedLog.close``); and a restart after a kill (no close, no new snapshot) rebuilding the state
from that snapshot and the log after it."""

from __future__ import annotations

from pathlib import Path

import pytest
from replica_fakes import (
    NODE_ID,
    PRODUCE_VERSION,
    START_MS,
    FakePartitionState,
    FakeReplicaBroker,
    apply,
    close,
    replica_manager,
)

from kbroker.log import PartitionLog
from kbroker.replication import producer_snapshot
from kbroker.replication.partition import Partition, partition_state
from kbroker.replication.produce_batch import AppendResult, ProduceError
from kbroker.replication.producer_manager import ProducerStateManager
from kbroker.replication.replica_manager import ReplicaManager
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.records import Record, build_batch

EXPIRATION_MS = 600_000
CHECK_MS = 60_000
CONFIG = {"producer.id.expiration.ms": str(EXPIRATION_MS), "producer.id.expiration.check.interval.ms": str(CHECK_MS)}
IDEMPOTENT, TRANSACTIONAL = 1000, 2000


def led(root: Path) -> tuple[ReplicaManager, FakeReplicaBroker, Partition]:
    """A replica manager with the producer-state hook, and "t"-0 opened and led here alone."""
    manager, broker, _fetchers = replica_manager(root, CONFIG)
    manager.producer_state = ProducerStateManager()
    partition = broker.open_partition("t", 0)
    apply(manager, broker, partition, FakePartitionState(NODE_ID, [NODE_ID], [NODE_ID]))
    return manager, broker, partition


def produce(manager: ReplicaManager, broker: FakeReplicaBroker, partition: Partition, producer_id: int, seq: int,
            *, transactional_id: str | None = None) -> AppendResult:
    """One record from ``producer_id`` at ``seq`` (epoch 0), stamped with the clock's time."""
    records = build_batch([Record(key=None, value=b"v%d" % seq, timestamp=broker.clock.now_ms())],
                          producer_id=producer_id, producer_epoch=0, base_sequence=seq,
                          transactional=transactional_id is not None)
    result = manager.append_from_client(partition, records, PRODUCE_VERSION, 1, transactional_id,
                                        broker.clock.now_ms())
    assert isinstance(result, AppendResult) and result.error == ErrorCode.NONE
    return result


def producers(partition: Partition) -> set[int]:
    return set(partition_state(partition).producers)


def snapshots(partition: Partition) -> list[str]:
    return sorted(p.name for p in Path(partition.log.directory).glob("*.producer-snapshot"))


async def test_an_idle_producer_expires_at_the_first_check_past_its_expiration(tmp_path):
    manager, broker, partition = led(tmp_path)
    produce(manager, broker, partition, IDEMPOTENT, 0)
    produce(manager, broker, partition, TRANSACTIONAL, 0, transactional_id="tx")  # its transaction stays open
    manager.start()
    try:
        broker.clock.advance(EXPIRATION_MS - CHECK_MS)  # checks ran, none past the expiration
        assert producers(partition) == {IDEMPOTENT, TRANSACTIONAL}
        broker.clock.advance(CHECK_MS - 1)  # past nothing: the next check is due one ms later
        assert producers(partition) == {IDEMPOTENT, TRANSACTIONAL}
        # its sequence is still checked: a gap is refused
        with pytest.raises(ProduceError) as gap:
            produce(manager, broker, partition, IDEMPOTENT, 5)
        assert gap.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        broker.clock.advance(1)  # the check at producer.id.expiration.ms after the batch
        # forgotten; the producer with an open transaction is kept however idle
        assert producers(partition) == {TRANSACTIONAL}
        # as a producer the partition does not know (KIP-360): any sequence is taken
        assert produce(manager, broker, partition, IDEMPOTENT, 5).base_offset == 2
    finally:
        close(manager, broker)


async def test_nothing_expires_before_start_nor_after_close(tmp_path):
    manager, broker, partition = led(tmp_path)
    produce(manager, broker, partition, IDEMPOTENT, 0)
    broker.clock.advance(2 * EXPIRATION_MS)  # not started: no check on the clock
    assert producers(partition) == {IDEMPOTENT}
    assert broker.clock.pending == 0
    manager.start()
    manager.start()  # once
    assert broker.clock.pending == 1
    close(manager, broker)
    assert broker.clock.pending == 0  # the check is cancelled with the replica manager
    broker.clock.advance(CHECK_MS)
    assert producers(partition) == {IDEMPOTENT}


async def test_the_check_reads_the_expiration_from_the_config_and_counts_what_it_forgets(tmp_path):
    manager, broker, partition = led(tmp_path)
    produce(manager, broker, partition, IDEMPOTENT, 0)
    housekeeping = manager.producer_housekeeping
    assert housekeeping.remove_expired_producers(START_MS + EXPIRATION_MS - 1) == 0
    assert housekeeping.remove_expired_producers(START_MS + EXPIRATION_MS) == 1
    assert producers(partition) == set()
    close(manager, broker)


async def test_close_snapshots_the_producer_state_at_the_log_end(tmp_path):
    manager, broker, partition = led(tmp_path)
    for seq in range(3):
        produce(manager, broker, partition, IDEMPOTENT, seq)
    unused = broker.open_partition("u", 0)  # its producer state never loaded: nothing to snapshot
    apply(manager, broker, unused, FakePartitionState(NODE_ID, [NODE_ID], [NODE_ID]))
    unused.producer_state = None
    manager.start()
    assert snapshots(partition) == []  # none while running
    close(manager, broker)
    assert snapshots(partition) == [f"{3:020d}.producer-snapshot"]
    assert snapshots(unused) == []
    offset, _last, state = producer_snapshot.decode((Path(partition.log.directory) / snapshots(partition)[0])
                                                    .read_bytes())
    assert offset == 3 and state.producers[IDEMPOTENT].last_seq == 2


async def test_a_restart_after_a_kill_rebuilds_from_the_snapshot_and_the_log_after_it(tmp_path, monkeypatch):
    manager, broker, partition = led(tmp_path)
    for seq in range(3):
        produce(manager, broker, partition, IDEMPOTENT, seq)
    close(manager, broker)  # a clean shutdown: the snapshot at offset 3
    manager, broker, partition = led(tmp_path)
    for seq in range(3, 6):
        produce(manager, broker, partition, IDEMPOTENT, seq)
    produce(manager, broker, partition, TRANSACTIONAL, 0, transactional_id="tx")
    manager.start()
    # killed: neither the replica manager nor the log closes (no new snapshot)
    manager.validation_pool.close()
    assert snapshots(partition) == [f"{3:020d}.producer-snapshot"]

    read_from: list[int] = []
    original = PartitionLog.iter_batch_headers

    def recording(self: PartitionLog, start_offset: int):  # type: ignore[no-untyped-def]
        read_from.append(start_offset)
        return original(self, start_offset)

    monkeypatch.setattr(PartitionLog, "iter_batch_headers", recording)
    manager, broker, partition = led(tmp_path)
    try:
        assert producers(partition) == {IDEMPOTENT, TRANSACTIONAL}
        # the batch before the snapshot checked, then the log from the snapshot on: no full scan
        assert read_from == [2, 3]
        assert partition_state(partition).producers[IDEMPOTENT].last_seq == 5
        assert partition_state(partition).first_unstable_offset() == 6
        monkeypatch.undo()
        # the last five batches are still known: a retry is answered with its first offsets
        retried = produce(manager, broker, partition, IDEMPOTENT, 4)
        assert retried.base_offset == 4 and partition.log.log_end_offset == 7
        with pytest.raises(ProduceError) as gap:
            produce(manager, broker, partition, IDEMPOTENT, 9)
        assert gap.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    finally:
        close(manager, broker)


# -- the snapshot at each roll (Kafka's UnifiedLog.roll) ---------------------------------------------


def roll_captured(partition: Partition) -> list:
    """Roll the partition's log now, its disk waits captured (as the roll worker would get them)."""
    jobs: list = []
    partition.log.roll_scheduler = jobs.append
    partition.log.roll()
    return jobs


async def test_a_roll_snapshots_the_state_once_the_sealed_segment_is_durable(tmp_path, monkeypatch):
    manager, broker, partition = led(tmp_path)
    for seq in range(3):
        produce(manager, broker, partition, IDEMPOTENT, seq)
    jobs = roll_captured(partition)
    assert len(jobs) == 1 and snapshots(partition) == []  # encoded at the roll, written by the worker
    produce(manager, broker, partition, IDEMPOTENT, 3)  # (appends go on meanwhile: not in that snapshot)
    jobs[0]()
    assert snapshots(partition) == [f"{3:020d}.producer-snapshot"]
    _offset, _last, state = producer_snapshot.decode((Path(partition.log.directory) / snapshots(partition)[0])
                                                     .read_bytes())
    assert state.producers[IDEMPOTENT].last_seq == 2
    produce(manager, broker, partition, IDEMPOTENT, 4)
    manager.validation_pool.close()  # killed: no close, so no snapshot at the log end

    read_from: list[int] = []
    original = PartitionLog.iter_batch_headers

    def recording(self: PartitionLog, start_offset: int):  # type: ignore[no-untyped-def]
        read_from.append(start_offset)
        return original(self, start_offset)

    monkeypatch.setattr(PartitionLog, "iter_batch_headers", recording)
    manager, broker, partition = led(tmp_path)
    try:
        assert partition_state(partition).producers[IDEMPOTENT].last_seq == 4
        assert read_from == [2, 3]  # from the roll's snapshot on: only the active segment is read
    finally:
        monkeypatch.undo()
        close(manager, broker)


async def test_no_roll_snapshot_after_a_truncation_or_of_a_state_not_loaded(tmp_path):
    manager, broker, partition = led(tmp_path)
    for seq in range(3):
        produce(manager, broker, partition, IDEMPOTENT, seq)
    jobs = roll_captured(partition)
    partition.log.truncate_to(2)  # (a follower's, before the worker ran: the state is rebuilt)
    partition.producer_state = None
    for job in jobs:
        job()
    assert snapshots(partition) == []
    produce(manager, broker, partition, IDEMPOTENT, 2)  # the state rebuilt from the log
    partition.producer_state = None
    for job in roll_captured(partition):
        job()
    assert snapshots(partition) == []  # nothing loaded: nothing to save
    close(manager, broker)


async def test_a_roll_snapshot_written_late_keeps_a_newer_one(tmp_path):
    manager, broker, partition = led(tmp_path)
    for seq in range(3):
        produce(manager, broker, partition, IDEMPOTENT, seq)
    jobs = roll_captured(partition)
    produce(manager, broker, partition, IDEMPOTENT, 3)
    assert manager.producer_housekeeping.take_snapshots() == 1  # at 4 (the control plane's /snapshot)
    jobs[0]()
    assert snapshots(partition) == [f"{4:020d}.producer-snapshot"]
    close(manager, broker)

