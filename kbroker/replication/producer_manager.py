"""Each partition's producer state, loaded on first use, and the hook around client appends.

:func:`partition_state` (kept in ``partition.py``, importable from here) loads a partition's
:class:`PartitionProducerState` (producer_state.py) from its newest usable snapshot and the batches
after it (producer_snapshot.py);
:class:`ProducerStateManager` is what the replica manager calls around appends with a producer id,
and writes the transaction coordinator's COMMIT/ABORT markers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

from kbroker.log import LogClosedError, LogError
from kbroker.replication.partition import partition_state as partition_state
from kbroker.replication.produce_batch import AppendResult, ProduceError
from kbroker.replication.producer_state import PartitionProducerState, VerificationGuard
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import BatchHeader
from kbroker_protocol.records import Buffer, ControlType, build_control_batch

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from kbroker.replication.deadline import Deadline, WaitClock
    from kbroker.replication.partition import Partition

# Kafka's request.timeout.ms default: how long an acks=-1 marker append waits for the ISR.
MARKER_TIMEOUT_MS = 30_000


def apply_appended(partition: Partition, state: PartitionProducerState, header: BatchHeader, data: Buffer,
                   first_offset: int, last_offset: int) -> None:
    """The producer state learns a batch just appended to ``partition``'s log (``state``: loaded
    before the append, else its rebuild would hold the batch already); an ABORT marker's aborted
    transaction goes to the ``.txnindex``. The follower's appends and the leader's internal appends
    (Kafka's AppendOrigin.REPLICATION and COORDINATOR) go through here."""
    aborted = state.apply_batch(header, data, first_offset, last_offset)
    if aborted is not None:
        partition.log.record_aborted_txn(aborted.producer_id, aborted.first_offset, aborted.last_offset,
                                         aborted.last_stable_offset)


class TxnVerifier(Protocol):
    """The transaction coordinator as produce-side verification asks it (KIP-890)."""

    def verify_partition(self, transactional_id: str, producer_id: int, producer_epoch: int, topic: str,
                         index: int) -> ErrorCode: ...

    def is_coordinator_for(self, transactional_id: str) -> bool: ...

    def partition_for(self, transactional_id: str) -> int: ...

    async def add_partition_from_produce(self, transactional_id: str, producer_id: int, producer_epoch: int,
                                         topic: str, index: int) -> ErrorCode: ...


class _ClockedBroker(Protocol):
    @property
    def clock(self) -> WaitClock | None: ...  # None: real time


class MarkerReplicas(Protocol):
    """What writing a transaction marker uses of the replica manager."""

    @property
    def broker(self) -> _ClockedBroker: ...

    def now_ms(self) -> int: ...

    def append_internal(self, partition: Partition, batch: bytes) -> int:
        """Append ``batch``; a marker closes the producer's transaction in the producer state."""
        ...

    def under_min_isr(self, partition: Partition) -> bool: ...

    def wait_for_replication(self, partition: Partition, required_offset: int,
                             deadline: Deadline) -> Awaitable[ErrorCode]: ...


class ProducerStateManager:
    """The hook the replica manager calls around client appends with a producer id.

    ``verifier`` (the transaction coordinator, when installed) checks that the first
    transactional batch of a producer in a partition belongs to a transaction that added this
    partition (Kafka 4's produce-side verification, KIP-890 part 1); from Produce v12 (KIP-890
    part 2, Transactions V2) it adds the partition to the transaction instead.
    """

    def __init__(self) -> None:
        self.verifier: TxnVerifier | None = None

    def check_append(self, partition: Partition, header: BatchHeader, transactional_id: str | None,
                     version: int = 0, guard: VerificationGuard | None = None) -> AppendResult | None:
        """Validate a client batch against the producer state; ``guard``: the verification guard
        of a batch a remote coordinator verified (replica_manager._verify_remotely)."""
        state = partition_state(partition)
        duplicate = state.check(header)
        if duplicate is not None:
            return AppendResult(ErrorCode.NONE, duplicate.first_offset, -1, last_offset=duplicate.last_offset)
        if header.is_transactional and not state.has_open_txn(header.producer_id, header.producer_epoch):
            if transactional_id is None:
                raise ProduceError(ErrorCode.INVALID_TXN_STATE,
                                   "Transactional records need a transactional id in the produce request")
            if guard is not None:
                # Verified by the coordinator, but a marker (or another transactional write) of
                # the producer may have come since: Kafka's batchMissingRequiredVerification.
                if not state.verified(header.producer_id, guard):
                    raise ProduceError(ErrorCode.INVALID_TXN_STATE,
                                       f"Record of producer {header.producer_id} for {partition.topic}-"
                                       f"{partition.index} was not part of an ongoing transaction: the "
                                       f"transaction changed after its verification")
            elif self.verifier is not None:
                # (Produce v12+ adds the partition before the append, replica_manager's
                # _verify_remotely; here it must be in the transaction already.)
                code = self.verifier.verify_partition(transactional_id, header.producer_id, header.producer_epoch,
                                                      partition.topic, partition.index)
                if code != ErrorCode.NONE:
                    raise ProduceError(code, f"Partition {partition.topic}-{partition.index} failed transaction "
                                             f"verification for producer {header.producer_id}: {code.name}")
        return None

    def on_append(self, partition: Partition, header: BatchHeader, first_offset: int, last_offset: int) -> None:
        partition_state(partition).update(header, first_offset, last_offset)

    def write_marker(self, replica_manager: MarkerReplicas, partition: Partition, producer_id: int, epoch: int, commit: bool,
                     coordinator_epoch: int) -> ErrorCode:
        """Append a COMMIT/ABORT control batch to ``partition`` and close the producer's transaction."""
        if not partition.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        state = partition_state(partition)
        code = state.check_marker(producer_id, epoch, coordinator_epoch)
        if code != ErrorCode.NONE:
            return code
        now_ms = replica_manager.now_ms()  # the broker's clock (a manual one in tests)
        batch = build_control_batch(ControlType.COMMIT if commit else ControlType.ABORT, producer_id=producer_id,
                                    producer_epoch=epoch, timestamp=now_ms, coordinator_epoch=coordinator_epoch)
        try:
            # (the append closes the producer's transaction in ``state``: apply_appended)
            replica_manager.append_internal(partition, batch)
        except LogClosedError:  # the partition is being deleted
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        except (LogError, OSError) as exc:
            # Kafka's appendToLocalLog: a KafkaStorageException (the log dir failed, a full disk)
            # is the partition's KAFKA_STORAGE_ERROR, which the coordinator retries
            # (TransactionMarkerRequestCompletionHandler), not a failed request
            log.error("marker for %s-%d not written: %s", partition.topic, partition.index, exc)
            return ErrorCode.KAFKA_STORAGE_ERROR
        partition.notify()  # the last stable offset may have moved
        return ErrorCode.NONE

    async def write_marker_replicated(self, replica_manager: MarkerReplicas, partition: Partition, producer_id
: int, epoch: int, commit: bool,
                                      coordinator_epoch: int, timeout_ms: int = MARKER_TIMEOUT_MS) -> ErrorCode:
        """:meth:`write_marker` as Kafka appends markers (acks=-1): NOT_ENOUGH_REPLICAS before the
        append when the ISR is below ``min.insync.replicas``, then NONE once the marker is below the
        high watermark (NOT_ENOUGH_REPLICAS_AFTER_APPEND, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT
        otherwise), so a transaction is completed only once its markers survive a leader change."""
        from kbroker.replication.deadline import Deadline

        if replica_manager.under_min_isr(partition):
            return ErrorCode.NOT_ENOUGH_REPLICAS
        code = self.write_marker(replica_manager, partition, producer_id, epoch, commit, coordinator_epoch)
        if code != ErrorCode.NONE:
            return code
        deadline = Deadline(timeout_ms, replica_manager.broker.clock)
        return await replica_manager.wait_for_replication(partition, partition.log.log_end_offset, deadline)
