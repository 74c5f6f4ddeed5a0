"""Per-partition state of idempotent producers: epochs, sequences, and the duplicate cache.

Kafka's rules (ProducerStateManager / ProducerAppendInfo):

- a batch with an epoch below the producer's current one is rejected (INVALID_PRODUCER_EPOCH);
- a new epoch must start at sequence 0 (OUT_OF_ORDER_SEQUENCE_NUMBER), except for a producer this
  partition has no state for, which is accepted at any sequence (KIP-360: its state may have
  been removed by retention);
- within an epoch the first sequence must follow the last one (wrapping at 2^31-1);
- a retried batch equal to one of the producer's last 5 batches is answered with that batch's
  original offsets and no error, and is not appended again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from kbroker.api.produce import ProduceError
from protocol.errors import ErrorCode

NUM_BATCHES_TO_RETAIN = 5
INT_MAX = 2**31 - 1


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
    batches: deque = field(default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))
    last_timestamp: int = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1


def in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT_MAX)


class PartitionProducerState:
    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}

    def check(self, header) -> BatchMetadata | None:
        """Validate a batch; returns the original batch when it is a duplicate, else None."""
        pid, epoch, first_seq = header.producer_id, header.producer_epoch, header.base_sequence
        entry = self.producers.get(pid)
        if entry is None:
            return None
        if epoch < entry.epoch:
            raise ProduceError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"Epoch of producer {pid} at offset is {epoch}, which is smaller than the last seen epoch "
                f"{entry.epoch}",
            )
        last_seq = header.last_sequence
        if epoch == entry.epoch:
            for b in entry.batches:
                if b.first_seq == first_seq and b.last_seq == last_seq:
                    return b
        if first_seq == -1:
            return None
        if epoch != entry.epoch:
            if first_seq != 0:
                raise ProduceError(
                    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                    f"Invalid sequence number for new epoch of producer {pid} at offset: {epoch} "
                    f"(request epoch), {first_seq} (seq. number), {entry.epoch} (current producer epoch)",
                )
        elif not in_sequence(entry.last_seq, first_seq):
            raise ProduceError(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"Out of order sequence number for producer {pid}: {first_seq} (incoming seq. number), "
                f"{entry.last_seq} (current end sequence number)",
            )
        return None

    def update(self, header, first_offset: int, last_offset: int) -> None:
        pid, epoch = header.producer_id, header.producer_epoch
        entry = self.producers.get(pid)
        if entry is None or entry.epoch != epoch:
            entry = ProducerEntry(pid, epoch)
            self.producers[pid] = entry
        entry.last_timestamp = header.max_timestamp
        if header.base_sequence >= 0:
            entry.batches.append(BatchMetadata(header.base_sequence, header.last_sequence, first_offset, last_offset))


class ProducerStateManager:
    """The hook the replica manager calls around client appends with a producer id."""

    def check_append(self, partition, header, transactional_id):
        from kbroker.replication.replica_manager import AppendResult

        state = self._state(partition)
        duplicate = state.check(header)
        if duplicate is not None:
            return AppendResult(ErrorCode.NONE, duplicate.first_offset, -1)
        return None

    def on_append(self, partition, header, first_offset: int, last_offset: int) -> None:
        self._state(partition).update(header, first_offset, last_offset)

    @staticmethod
    def _state(partition) -> PartitionProducerState:
        state = partition.producer_state
        if state is None:
            state = partition.producer_state = PartitionProducerState()
        return state
