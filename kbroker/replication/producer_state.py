"""Per-partition state of idempotent and transactional producers.

Kafka's rules (ProducerStateManager / ProducerAppendInfo), re-derived here:

- a batch with an epoch below the producer's current one is rejected (INVALID_PRODUCER_EPOCH);
- a new epoch must start at sequence 0 (OUT_OF_ORDER_SEQUENCE_NUMBER), except for a producer this
  partition has no state for, which is accepted at any sequence (KIP-360: its state may have
  been removed by retention);
- within an epoch the first sequence must follow the last one (wrapping at 2^31-1);
- a retried batch equal to one of the producer's last 5 batches is answered with that batch's
  original offsets and no error, and is not appended again;
- a transactional batch opens a transaction in this partition at its first offset; a COMMIT or
  ABORT marker (a control batch written by the transaction coordinator) closes it. A marker with
  an epoch below the producer's is rejected; one with a higher epoch (a fenced producer's
  transaction aborted by the coordinator) becomes the producer's epoch. A non-transactional
  batch from a producer with an open transaction is INVALID_TXN_STATE.

From this state comes the partition's *last stable offset* (the first offset of the earliest open
transaction). An ABORT marker also yields an entry of the partition's *aborted-transaction index*
(producer id, first offset, marker offset, last stable offset), which
``ProducerStateManager.write_marker`` (producer_manager.py) stores in the ``.txnindex`` of the log
segment holding the marker (kbroker/log/txn_index.py): read_committed fetches list those entries so
that consumers drop the aborted batches. The index lives on disk only, as in Kafka; this state does
not keep it.

The log is the source of truth: ``producer_manager.partition_state`` rebuilds the state from the
batch headers (and the control records) of the log when a partition is first used after it opens, so
sequence numbers, duplicates and open transactions survive a restart (the log rebuilds the
``.txnindex`` of the segments it recovers itself). A producer snapshot (producer_snapshot.py,
written at shutdown) bounds that scan to the batches appended after it, as Kafka's ``.snapshot``
files do.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kbroker.log.txn_index import AbortedTxn
from kbroker.replication.produce_batch import ProduceError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import BatchHeader, InvalidRecordBatch
from kbroker_protocol.records import Buffer, ControlType, iter_records, parse_control_record

if TYPE_CHECKING:
    from kbroker.log.partition_log import PartitionLog

log = logging.getLogger(__name__)

NUM_BATCHES_TO_RETAIN = 5
INT_MAX = 2**31 - 1
NO_OFFSET = -1


@dataclass(slots=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int


@dataclass(slots=True)
class ProducerEntry:
    producer_id: int
    epoch: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))
    last_timestamp: int = -1
    coordinator_epoch: int = -1
    txn_first_offset: int = NO_OFFSET  # first offset of the open transaction here, or -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1


def in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT_MAX)


@dataclass(slots=True, eq=False)
class VerificationGuard:
    """Kafka's VerificationStateEntry/VerificationGuard: made before a partition leader asks the
    transaction coordinator whether a producer's first transactional batch here belongs to an
    ongoing transaction, and required (the same object) when that batch is appended. Any
    transactional batch or marker of the producer written in between removes it, so a batch
    verified before an ABORT marker is not appended after it (the coordinator's answer is stale:
    the records would open a transaction the coordinator does not know, which the producer's next
    transaction at the same epoch would join and commit)."""

    epoch: int
    supports_epoch_bump: bool = False  # Transactions V2 (the marker of the previous transaction keeps it)


class PartitionProducerState:
    """Producers and open transactions of one partition (pure logic)."""

    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}
        self.open_txns: dict[int, int] = {}  # producer id -> first offset of its open transaction
        self.verifications: dict[int, VerificationGuard] = {}  # producer id -> guard (leader only, not snapshotted)

    # -- validation ------------------------------------------------------------------------

    def check(self, header: BatchHeader) -> BatchMetadata | None:
        """Validate a client batch; returns the original batch when it is a duplicate, else None."""
        pid, epoch, first_seq = header.producer_id, header.producer_epoch, header.base_sequence
        entry = self.producers.get(pid)
        if entry is None:
            return None
        if epoch < entry.epoch:
            raise ProduceError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"Epoch of producer {pid} is {epoch}, which is smaller than the last seen epoch {entry.epoch}",
            )
        last_seq = header.last_sequence
        if epoch == entry.epoch:
            for b in entry.batches:
                if b.first_seq == first_seq and b.last_seq == last_seq:
                    return b
        if entry.txn_first_offset != NO_OFFSET and not header.is_transactional:
            raise ProduceError(
                ErrorCode.INVALID_TXN_STATE,
                f"Expected transactional write from producer {pid} at offset {entry.txn_first_offset}",
            )
        if first_seq == -1:
            return None
        if epoch != entry.epoch:
            if first_seq != 0:
                raise ProduceError(
                    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                    f"Invalid sequence number for new epoch of producer {pid}: {epoch} (request epoch), "
                    f"{first_seq} (seq. number), {entry.epoch} (current producer epoch)",
                )
        elif not in_sequence(entry.last_seq, first_seq):
            raise ProduceError(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"Out of order sequence number for producer {pid}: {first_seq} (incoming seq. number), "
                f"{entry.last_seq} (current end sequence number)",
            )
        return None

    def has_open_txn(self, producer_id: int, epoch: int | None = None) -> bool:
        """Whether the producer has a transaction open here; with ``epoch``, one of that epoch
        (Kafka's UnifiedLog.hasOngoingTransaction: a batch of a newer epoch, say a Transactions V2
        producer's next transaction while this one's marker is still on its way, is verified
        with the coordinator, which answers CONCURRENT_TRANSACTIONS until the marker is written)."""
        entry = self.producers.get(producer_id)
        return (entry is not None and entry.txn_first_offset != NO_OFFSET
                and (epoch is None or entry.epoch == epoch))

    def check_marker(self, producer_id: int, epoch: int, coordinator_epoch: int) -> ErrorCode:
        entry = self.producers.get(producer_id)
        if entry is None:
            return ErrorCode.NONE
        if epoch < entry.epoch:
            return ErrorCode.INVALID_PRODUCER_EPOCH
        if coordinator_epoch < entry.coordinator_epoch:
            return ErrorCode.TRANSACTION_COORDINATOR_FENCED
        return ErrorCode.NONE

    def start_verification(self, producer_id: int, epoch: int, supports_epoch_bump: bool = False) -> VerificationGuard:
        """The producer's verification guard, made if it has none (Kafka's
        maybeCreateVerificationStateEntry: one per producer, shared by concurrent verifications)."""
        guard = self.verifications.get(producer_id)
        if guard is None:
            guard = self.verifications[producer_id] = VerificationGuard(epoch, supports_epoch_bump)
        else:
            guard.epoch = max(guard.epoch, epoch)
        return guard

    def verified(self, producer_id: int, guard: VerificationGuard) -> bool:
        """Whether ``guard`` is still the producer's (no transactional write of it since)."""
        return self.verifications.get(producer_id) is guard

    def _clear_verification(self, producer_id: int, epoch: int, control: bool) -> None:
        """After a transactional batch or marker of the producer (Kafka's UnifiedLog.updateProducers):
        the guard goes, except for a Transactions V2 marker at the guard's epoch (the previous
        transaction's marker, written with the epoch the next transaction already uses)."""
        guard = self.verifications.get(producer_id)
        if guard is not None and not (guard.supports_epoch_bump and control and epoch == guard.epoch):
            del self.verifications[producer_id]

    # -- updates (live appends and the rebuild share them) --------------------------------

    def _entry_at(self, producer_id: int, epoch: int) -> ProducerEntry:
        """The producer's entry, created or moved to ``epoch`` (a new epoch forgets the batches)."""
        entry = self.producers.get(producer_id)
        if entry is None:
            entry = self.producers[producer_id] = ProducerEntry(producer_id, epoch)
        elif entry.epoch != epoch:
            entry.epoch = epoch
            entry.batches.clear()
        return entry

    def update(self, header: BatchHeader, first_offset: int, last_offset: int) -> None:
        pid = header.producer_id
        entry = self._entry_at(pid, header.producer_epoch)
        entry.last_timestamp = header.max_timestamp
        if header.base_sequence >= 0:
            entry.batches.append(BatchMetadata(header.base_sequence, header.last_sequence, first_offset, last_offset))
        if header.is_transactional:
            if entry.txn_first_offset == NO_OFFSET:
                entry.txn_first_offset = first_offset
                self.open_txns[pid] = first_offset
            if self.verifications:
                self._clear_verification(pid, header.producer_epoch, False)

    def apply_marker(self, producer_id: int, epoch: int, commit: bool, offset: int, coordinator_epoch: int,
                     timestamp: int) -> AbortedTxn | None:
        """Close the producer's transaction with the marker at ``offset``.

        Returns the aborted transaction (for the log's ``.txnindex``) when an ABORT closed an
        open transaction, with the last stable offset once it is closed (the first offset of the
        earliest transaction still open, else ``offset + 1``: Kafka's
        ``lastStableOffset(completedTxn)``); None otherwise.
        """
        entry = self._entry_at(producer_id, epoch)
        first = entry.txn_first_offset
        entry.txn_first_offset = NO_OFFSET
        if self.verifications:
            self._clear_verification(producer_id, epoch, True)
        self.open_txns.pop(producer_id, None)
        entry.coordinator_epoch = coordinator_epoch
        entry.last_timestamp = timestamp
        if commit or first == NO_OFFSET:
            return None
        first_open = self.first_unstable_offset()
        return AbortedTxn(producer_id, first, offset, offset + 1 if first_open is None else first_open)

    # -- queries ---------------------------------------------------------------------------

    def first_unstable_offset(self) -> int | None:
        return min(self.open_txns.values()) if self.open_txns else None

    # -- housekeeping ----------------------------------------------------------------------

    def expire_producers(self, now_ms: int, expiration_ms: int) -> list[int]:
        """Forget producers idle for ``expiration_ms`` with no open transaction (producer.id.expiration.ms)."""
        doomed = [pid for pid, e in self.producers.items()
                  if e.txn_first_offset == NO_OFFSET and now_ms - e.last_timestamp >= expiration_ms]
        for pid in doomed:
            del self.producers[pid]
        return doomed

    # -- rebuild ---------------------------------------------------------------------------

    def apply_batch(self, header: BatchHeader, data: Buffer, first_offset: int, last_offset: int) -> AbortedTxn | None:
        """A batch now in the log at ``first_offset``..``last_offset`` (``data``: the whole batch,
        read only for a control batch): a data batch updates its producer, a COMMIT/ABORT marker
        closes the producer's transaction. The rebuild, the follower's appends and the leader's
        internal appends (coordinator records and markers) share it; returns the aborted
        transaction for the ``.txnindex`` as :meth:`apply_marker`."""
        if header.producer_id < 0:
            return None
        if not header.is_control:
            self.update(header, first_offset, last_offset)
            return None
        try:
            records = list(iter_records(data))
            ctrl = parse_control_record(records[0]) if records else None
        except (InvalidRecordBatch, ValueError):
            log.warning("unreadable control batch at offset %d", first_offset)
            return None
        if ctrl is None or ctrl.type not in (ControlType.ABORT, ControlType.COMMIT):
            return None
        return self.apply_marker(header.producer_id, header.producer_epoch, ctrl.type == ControlType.COMMIT,
                                 first_offset, ctrl.coordinator_epoch or 0, header.max_timestamp)

    def replay_batch(self, header: BatchHeader, data: Buffer) -> None:
        self.apply_batch(header, data, header.base_offset, header.last_offset)

    @classmethod
    def load(cls, plog: PartitionLog) -> PartitionProducerState:
        """Rebuild the state by scanning the log's batches from its start."""
        state = cls()
        t0 = time.monotonic()
        n = 0
        for header, data in plog.iter_batches():
            state.replay_batch(header, data)
            n += 1
        if n:
            log.debug("producer state of %s rebuilt from %d batches in %.0f ms", getattr(plog, "directory", "?"),
                      n, (time.monotonic() - t0) * 1000)
        return state
