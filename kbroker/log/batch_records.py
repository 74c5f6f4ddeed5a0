"""Record-level access to stored batches for timestamp lookups and the cleaner.

A thin layer over `kbroker_protocol.records`: decode the records of one stored batch, and rebuild a batch
from a subset of its records. A rebuilt batch keeps the original baseOffset, lastOffsetDelta
(so the batch still ends where it did), partitionLeaderEpoch, producer fields, transactional and
control flags, timestamp type and compression codec; the kept records keep their offsets and
timestamps (gaps between offsets are normal in a compacted log).
"""

from __future__ import annotations

from collections.abc import Iterator

from kbroker_protocol.record_batch import parse_header
from kbroker_protocol.records import Record, TimestampType, build_batch, decode_records, records_payload

# A stored batch decompresses to at most this many bytes (bounds a hostile payload).
MAX_DECOMPRESSED = 256 * 1024 * 1024

__all__ = ["Record", "iter_records", "offset_of", "rebuild_batch", "record_timestamps"]


def iter_records(batch: bytes) -> Iterator[Record]:
    """The records of one stored batch (decompressing if needed); the CRC is not re-checked."""
    header = parse_header(batch)
    payload = records_payload(batch, header=header, max_decompressed_size=MAX_DECOMPRESSED)
    return decode_records(payload, header)


def record_timestamps(batch: bytes) -> Iterator[tuple[int, int]]:
    """``(offset, timestamp)`` of each record, timestamps as a consumer sees them."""
    for record in iter_records(batch):
        yield offset_of(record), record.timestamp


def offset_of(record: Record) -> int:
    """A decoded record's offset (decoding always sets it; only a record to encode has None)."""
    if record.offset is None:
        raise ValueError("a record to encode has no offset yet")
    return record.offset


def rebuild_batch(batch: bytes, kept: list[Record], *, delete_horizon_ms: int | None = None) -> bytes:
    """``batch`` with only the ``kept`` records (which must come from it, in order).

    With ``delete_horizon_ms`` the batch gets a delete horizon (attribute bit 6, baseTimestamp =
    the horizon; record timestamps are unchanged); a control batch keeps its maxTimestamp, a data
    batch takes the largest timestamp of the kept records.
    """
    header = parse_header(batch)
    log_append_time = header.max_timestamp if header.is_log_append_time else None
    return build_batch(
        kept,
        base_offset=header.base_offset,
        compression=header.compression,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        transactional=header.is_transactional,
        control=header.is_control,
        timestamp_type=TimestampType.LOG_APPEND_TIME if header.is_log_append_time else TimestampType.CREATE_TIME,
        log_append_time=log_append_time,
        partition_leader_epoch=header.partition_leader_epoch,
        last_offset_delta=header.last_offset_delta,
        max_timestamp=header.max_timestamp if delete_horizon_ms is not None and header.is_control else None,
        delete_horizon_ms=delete_horizon_ms,
    )
