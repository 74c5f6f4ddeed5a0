"""Appends from clients and reads for fetchers, over the partitions this broker leads.

``append_from_client`` is the Produce hot path: header checks, the records checked against the
header (inline when small, else in the validation pool: ``kbroker.replication.validation``),
producer-state checks (through ``producer_state``, installed by the transaction layer), the append
itself (offsets patched, bytes stored as received unless the topic asks for a re-encode), the high
watermark, and waking fetches that wait for data. Appends to one partition keep request order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from kbroker.log import LogClosedError, LogCorruptedError, RecordBatchTooLargeError
from kbroker.replication.produce_batch import AppendResult, ProduceError, validate_produce_batch
from kbroker.replication.validation import (
    INLINE_DECOMPRESSED_BYTES,
    INLINE_REBUILD_BYTES,
    INLINE_RECORDS,
    ValidationPool,
)
from protocol.errors import ErrorCode
from protocol.record_validation import DEFAULT_MAX_DECOMPRESSED, Outcome, OverBudget, Policy, validate_records

if TYPE_CHECKING:
    from kbroker.replication.partition import Partition

log = logging.getLogger(__name__)

# A batch may decompress to at most this many times max.message.bytes (at least 64 MiB): a bound on
# the work a "decompression bomb" causes (Kafka has none).
DECOMPRESSED_PER_MESSAGE_BYTE = 8


_TOPIC_CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}  # "producer": keep


def validation_policy(partition: Partition, now_ms: int) -> Policy:
    """What the partition's topic config asks of a produced batch (Kafka's LogValidator inputs)."""
    config = partition.config
    target = _TOPIC_CODECS.get(config["compression.type"])
    level = {1: config["compression.gzip.level"], 3: config["compression.lz4.level"],
             4: config["compression.zstd.level"]}.get(target) if target is not None else None
    max_message_bytes = config["max.message.bytes"]
    return Policy(
        topic_partition=f"{partition.topic}-{partition.index}",
        now_ms=now_ms,
        max_message_bytes=max_message_bytes,
        compacted="compact" in config["cleanup.policy"],
        log_append_time=config["message.timestamp.type"] == "LogAppendTime",
        before_max_ms=config["message.timestamp.before.max.ms"],
        after_max_ms=config["message.timestamp.after.max.ms"],
        target_codec=target,
        compression_level=None if level == -1 else level,
        max_decompressed=max(DEFAULT_MAX_DECOMPRESSED, DECOMPRESSED_PER_MESSAGE_BYTE * max_message_bytes),
    )


def _raise_for(outcome: Outcome) -> None:
    if outcome.error != ErrorCode.NONE:
        raise ProduceError(ErrorCode(outcome.error), outcome.message, outcome.record_errors)


class ReplicaManager:
    def __init__(self, broker: object) -> None:
        self.broker = broker  # the owning broker; nothing in this class reaches through it
        self.validation_pool = ValidationPool()
        # Installed by the idempotence/transactions layer: validates producer epochs/sequences.
        self.producer_state: Any = None

    def append_from_client(
        self, partition: Partition, records: Any, version: int, acks: int, transactional_id: str | None,
        now_ms: int,
    ) -> AppendResult | Awaitable[AppendResult]:
        """Validate and append one partition's batch: an :class:`AppendResult` when it could be done
        at once, else an awaitable of it (validation in the pool, or an earlier append to the same
        partition still pending). Raises/returns :class:`ProduceError` for a rejected batch."""
        config = partition.config
        header, records = validate_produce_batch(records, version, config["max.message.bytes"])
        min_isr = config["min.insync.replicas"]
        if acks == -1 and len(partition.isr) < min_isr:
            raise ProduceError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"The size of the current ISR {len(partition.isr)} is insufficient to satisfy the min.isr "
                f"requirement of {min_isr}",
            )
        policy = validation_policy(partition, now_ms)
        rebuild = policy.target_codec is not None and policy.target_codec != header.compression
        try:
            outcome: Outcome | None = validate_records(
                records, header, policy, budget_records=INLINE_RECORDS,
                budget_bytes=INLINE_REBUILD_BYTES if rebuild else INLINE_DECOMPRESSED_BYTES)
        except OverBudget:
            outcome = None
        order = partition.append_order
        if outcome is not None:
            _raise_for(outcome)
            if not order.busy:
                return self._append(partition, header, outcome.batch, transactional_id, version)
        prev, mine = order.enqueue()  # now, before any later request for this partition is handled
        task = asyncio.ensure_future(self._append_later(
            partition, header, records, policy, outcome, transactional_id, version, prev, mine))
        task.add_done_callback(lambda _task: order.done(mine))  # even if cancelled before it ran
        # The append goes ahead even if the client goes away (as in Kafka, a request being handled
        # completes): the handler awaits a shield, and the order queue always moves on.
        return asyncio.shield(task)

    async def _append_later(self, partition: Partition, header: Any, records: Any, policy: Policy,
                            outcome: Outcome | None, transactional_id: str | None, version: int,
                            prev: asyncio.Future | None, mine: asyncio.Future) -> AppendResult:
        order = partition.append_order
        try:
            if outcome is None:
                outcome = await self.validation_pool.validate(records, policy)
            if prev is not None:
                await prev
            _raise_for(outcome)
            return self._append(partition, header, outcome.batch, transactional_id, version)
        finally:
            order.done(mine)

    def _append(self, partition: Partition, header: Any, records: Any, transactional_id: str | None,
                version: int) -> AppendResult:
        producer_state = self.producer_state
        if producer_state is not None and (header.producer_id >= 0 or transactional_id is not None):
            duplicate = producer_state.check_append(partition, header, transactional_id, version)
            if duplicate is not None:
                return duplicate
        try:
            info = partition.log.append(records, leader_epoch=partition.leader_epoch)
        except RecordBatchTooLargeError as exc:
            raise ProduceError(ErrorCode.MESSAGE_TOO_LARGE, str(exc)) from None
        except LogClosedError:
            raise ProduceError(ErrorCode.NOT_LEADER_OR_FOLLOWER, "The partition is being deleted") from None
        except (LogCorruptedError, OSError) as exc:
            log.error("append to %s-%d failed: %s", partition.topic, partition.index, exc)
            raise ProduceError(ErrorCode.KAFKA_STORAGE_ERROR, str(exc)) from None
        if producer_state is not None and header.producer_id >= 0:
            producer_state.on_append(partition, header, info.first_offset, info.last_offset)
        partition.bytes_in += len(records)
        partition.messages_in += header.records_count
        self.on_leader_append(partition)
        return AppendResult(ErrorCode.NONE, info.first_offset, info.log_append_time)

    def append_internal(self, partition: Partition, batch: Any) -> int:
        """Append a batch the broker built itself (coordinator records, transaction markers)."""
        info = partition.log.append(batch, leader_epoch=partition.leader_epoch)
        self.on_leader_append(partition)
        return info.first_offset

    def close(self) -> None:
        self.validation_pool.close()

    def on_leader_append(self, partition: Partition) -> None:
        # One node: the ISR is this broker, so everything appended is committed.
        if len(partition.replicas) <= 1:
            partition.log.high_watermark = partition.log.log_end_offset
        partition.notify()
