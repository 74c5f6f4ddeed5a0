"""The records of ``__transaction_state``: one per transactional id, compacted.

Key: ``i16 version (0)`` + TransactionLogKey; value: ``i16 version`` + TransactionLogValue (v0
for Transactions V1, v1 once a transaction uses V2), or a tombstone when the id expires. The
partition of an id is ``abs(java String.hashCode(id)) % transaction.state.log.num.partitions``,
so a Java client, a Kafka broker and we agree on where an id lives.

:class:`TxnMetadata` is what one record holds; the coordinator keeps the latest per id and only
changes it by replaying a record it has written (or read back at start-up).
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

# Kafka places transactional ids exactly as group ids (Utils.abs(String.hashCode) % partitions).
from kbroker_protocol.messages.coordinator.transaction_log_key import TransactionLogKey
from kbroker_protocol.messages.coordinator.transaction_log_value import TransactionLogValue

TRANSACTION_STATE_TOPIC = "__transaction_state"
_I16 = struct.Struct(">h")
MAX_EPOCH = 32767
NO_PRODUCER_ID = -1
NO_EPOCH = -1


class TxnState(enum.IntEnum):
    """Kafka's TransactionState ids, as stored in the log."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def display(self) -> str:
        """The name ListTransactions / DescribeTransactions report."""
        return _DISPLAY[self]


_DISPLAY = {
    TxnState.EMPTY: "Empty",
    TxnState.ONGOING: "Ongoing",
    TxnState.PREPARE_COMMIT: "PrepareCommit",
    TxnState.PREPARE_ABORT: "PrepareAbort",
    TxnState.COMPLETE_COMMIT: "CompleteCommit",
    TxnState.COMPLETE_ABORT: "CompleteAbort",
    TxnState.DEAD: "Dead",
    TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
STATE_BY_NAME = {v: k for k, v in _DISPLAY.items()}


class TxnChanges(TypedDict, total=False):
    """The fields :meth:`TxnMetadata.copy` may change."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: set[tuple[str, int]]
    start_ms: int
    last_update_ms: int
    previous_producer_id: int
    next_producer_id: int
    next_producer_epoch: int
    client_txn_version: int
    last_producer_epoch: int
    failed_epoch_fence: bool


@dataclass(slots=True)
class TxnMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: set[tuple[str, int]] = field(default_factory=set)
    start_ms: int = -1
    last_update_ms: int = -1
    previous_producer_id: int = NO_PRODUCER_ID
    next_producer_id: int = NO_PRODUCER_ID
    next_producer_epoch: int = NO_EPOCH
    client_txn_version: int = 0
    # Kafka's lastProducerEpoch: the epoch before the last bump a producer asked for (KIP-360) or
    # an epoch fence made, so that the retry of that request is recognised; -1 after a new
    # producer's InitProducerId (which fences every older one). Kept in memory only, as in Kafka
    # (the log does not store it: a loaded transaction has -1).
    last_producer_epoch: int = NO_EPOCH
    # Kafka's hasFailedEpochFence (memory only): a Transactions V1 epoch fence whose PrepareAbort
    # could not be written bumped the epoch in memory; the next fence does not bump it again.
    failed_epoch_fence: bool = False

    def copy(self, **changes: Unpack[TxnChanges]) -> TxnMetadata:
        """A copy with ``changes`` applied (its partitions a new set unless changed)."""
        if "partitions" not in changes:
            changes["partitions"] = set(self.partitions)
        return dataclasses.replace(self, **changes)

    @property
    def completed(self) -> bool:
        return self.state in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)


def encode_key(transactional_id: str) -> bytes:
    return _I16.pack(0) + TransactionLogKey(transactional_id=transactional_id).encode(0)


def encode_value(txn: TxnMetadata) -> bytes:
    version = 1 if txn.client_txn_version >= 2 else 0
    by_topic: dict[str, list[int]] = {}
    for topic, p in sorted(txn.partitions):
        by_topic.setdefault(topic, []).append(p)
    value = TransactionLogValue(
        producer_id=txn.producer_id,
        previous_producer_id=txn.previous_producer_id,
        next_producer_id=txn.next_producer_id,
        producer_epoch=txn.producer_epoch,
        next_producer_epoch=txn.next_producer_epoch,
        transaction_timeout_ms=txn.timeout_ms,
        transaction_status=int(txn.state),
        # Kafka writes a null partition list for Empty transactions.
        transaction_partitions=None if txn.state == TxnState.EMPTY else [
            TransactionLogValue.PartitionsSchema(topic=t, partition_ids=ps) for t, ps in by_topic.items()
        ],
        transaction_last_update_timestamp_ms=txn.last_update_ms,
        transaction_start_timestamp_ms=txn.start_ms,
        client_transaction_version=txn.client_txn_version,
    )
    return _I16.pack(version) + value.encode(version)


def decode_key(data: bytes) -> str | None:
    """The transactional id of a ``__transaction_state`` key, or None for another key type."""
    (version,) = _I16.unpack_from(data)
    if version != 0:
        return None
    transactional_id: str = TransactionLogKey.decode(memoryview(data)[2:], 0).transactional_id
    return transactional_id


def decode_value(transactional_id: str, data: bytes) -> TxnMetadata:
    (version,) = _I16.unpack_from(data)
    value = TransactionLogValue.decode(memoryview(data)[2:], min(version, 1))
    partitions = {(p.topic, i) for p in value.transaction_partitions or () for i in p.partition_ids}
    return TxnMetadata(
        transactional_id=transactional_id,
        producer_id=value.producer_id,
        producer_epoch=value.producer_epoch,
        timeout_ms=value.transaction_timeout_ms,
        state=TxnState(value.transaction_status),
        partitions=partitions,
        start_ms=value.transaction_start_timestamp_ms,
        last_update_ms=value.transaction_last_update_timestamp_ms,
        previous_producer_id=value.previous_producer_id,
        next_producer_id=value.next_producer_id,
        next_producer_epoch=value.next_producer_epoch,
        client_txn_version=value.client_transaction_version,
    )
