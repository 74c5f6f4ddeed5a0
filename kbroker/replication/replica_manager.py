"""Appends from clients and reads for fetchers, over the partitions this broker leads.

``append_from_client`` is the Produce hot path: header checks, producer-state checks (through
``producer_state``, installed by the transaction layer), the append itself (offsets patched, bytes
stored as received), the high watermark, and waking fetches that wait for data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbroker.api.produce import ProduceError, validate_produce_batch
from kbroker.log import LogClosedError, LogCorruptedError, RecordBatchTooLargeError
from protocol.errors import ErrorCode
from protocol.record_batch import InvalidRecordBatch
from protocol.records import Record, build_batch, decode_batch, iter_records

if TYPE_CHECKING:
    from kbroker.broker import Broker
    from kbroker.replication.partition import Partition

log = logging.getLogger(__name__)


_TOPIC_CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}  # "producer": keep


def check_keys(records: Any) -> None:
    """A compacted topic accepts only records with a key (Kafka's LogValidator): the one place,
    besides re-encoding, where the broker looks inside a batch, and only for compacted topics."""
    try:
        for record in iter_records(records):
            if record.key is None:
                raise ProduceError(ErrorCode.INVALID_RECORD, "Compacted topic cannot accept message without key")
    except InvalidRecordBatch as exc:
        raise ProduceError(ErrorCode(exc.error_code), str(exc)) from None


def recompress(records: Any, header: Any, codec: int, config: dict) -> bytes:
    """Re-encode a batch with the topic's ``compression.type`` (the one case, as in Kafka, where
    the broker rewrites a batch: the topic asks for a codec other than the producer's)."""
    try:
        decoded = decode_batch(records)
    except InvalidRecordBatch as exc:
        raise ProduceError(ErrorCode(exc.error_code), str(exc)) from None
    for expected, r in enumerate(decoded.records):  # as Kafka's LogValidator before it re-encodes
        if r.offset - header.base_offset != expected:
            raise ProduceError(ErrorCode.INVALID_RECORD,
                               f"Inner record at offset delta {r.offset - header.base_offset} inside the compressed "
                               f"record batch does not have incremental offsets, expected offset is {expected}")
    level = {1: config["compression.gzip.level"], 3: config["compression.lz4.level"],
             4: config["compression.zstd.level"]}.get(codec)
    if level == -1:
        level = None
    return build_batch(
        [Record(key=r.key, value=r.value, headers=r.headers, timestamp=r.timestamp,
                offset=r.offset, attributes=r.attributes) for r in decoded.records],
        base_offset=header.base_offset,
        compression=codec,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        transactional=header.is_transactional,
        partition_leader_epoch=header.partition_leader_epoch,
        last_offset_delta=header.last_offset_delta,
        compression_level=level,
    )


@dataclass(slots=True)
class AppendResult:
    error: ErrorCode
    base_offset: int
    log_append_time: int = -1
    message: str | None = None


class ReplicaManager:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        # Installed by the idempotence/transactions layer: validates producer epochs/sequences.
        self.producer_state: Any = None

    def append_from_client(
        self, partition: Partition, records: Any, version: int, acks: int, transactional_id: str | None,
        now_ms: int,
    ) -> AppendResult:
        config = partition.config
        header, records = validate_produce_batch(records, version, config["max.message.bytes"])
        min_isr = config["min.insync.replicas"]
        if acks == -1 and len(partition.isr) < min_isr:
            raise ProduceError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"The size of the current ISR {len(partition.isr)} is insufficient to satisfy the min.isr "
                f"requirement of {min_isr}",
            )
        if config["message.timestamp.type"] != "LogAppendTime":  # the log stamps LogAppendTime itself
            before = config["message.timestamp.before.max.ms"]
            after = config["message.timestamp.after.max.ms"]
            if header.max_timestamp > now_ms + after or (
                header.base_timestamp >= 0 and header.base_timestamp < now_ms - before
            ):
                raise ProduceError(
                    ErrorCode.INVALID_TIMESTAMP,
                    f"Timestamp {header.max_timestamp} of message is out of range. The timestamp should be "
                    f"within [{now_ms - before}, {now_ms + after}]",
                )
        if "compact" in config["cleanup.policy"]:
            check_keys(records)
        target = _TOPIC_CODECS.get(config["compression.type"])
        if target is not None and target != header.compression:
            records = recompress(records, header, target, config)
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
        self.on_leader_append(partition)
        return AppendResult(ErrorCode.NONE, info.first_offset, info.log_append_time)

    def append_internal(self, partition: Partition, batch: Any) -> int:
        """Append a batch the broker built itself (coordinator records, transaction markers)."""
        info = partition.log.append(batch, leader_epoch=partition.leader_epoch)
        self.on_leader_append(partition)
        return info.first_offset

    def on_leader_append(self, partition: Partition) -> None:
        # One node: the ISR is this broker, so everything appended is committed.
        if len(partition.replicas) <= 1:
            partition.log.high_watermark = partition.log.log_end_offset
        partition.notify()
