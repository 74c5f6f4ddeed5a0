"""Record-level access to stored batches, for timestamp lookups and the cleaner.

Only what the log needs: iterate the records of a batch (offset, timestamp, key, whether the value
is null, and the record's raw bytes) and rebuild a batch from a subset of its records. A rebuilt
batch keeps the original baseOffset, baseTimestamp, lastOffsetDelta, producer fields and
compression codec, so the kept records' raw bytes (whose offset and timestamp are deltas from the
batch base) are copied unchanged; only the records section is recompressed and the CRC recomputed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from protocol.compression import compress, decompress
from protocol.record_batch import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_MASK,
    BatchHeader,
    InvalidRecordBatch,
    compute_crc,
    pack_header,
    parse_header,
)

# A stored batch decompresses to at most this many bytes (bounds a hostile payload).
MAX_DECOMPRESSED = 256 * 1024 * 1024
_CRC = struct.Struct(">I")
_CRC_OFFSET = 17


@dataclass(frozen=True, slots=True)
class StoredRecord:
    offset: int
    timestamp: int
    key: bytes | None
    value_is_null: bool
    raw: bytes  # the whole record, length prefix included


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Zigzag varint at ``pos`` → (value, next position)."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise InvalidRecordBatch("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise InvalidRecordBatch("varint too long")
    return (result >> 1) ^ -(result & 1), pos


def records_section(batch: bytes, header: BatchHeader) -> bytes:
    payload = memoryview(batch)[HEADER_SIZE : header.size]
    return decompress(header.compression, payload, MAX_DECOMPRESSED)


def iter_records(batch: bytes) -> Iterator[StoredRecord]:
    """The records of one stored batch (decompressing if needed)."""
    header = parse_header(batch)
    data = records_section(batch, header)
    pos = 0
    log_append = bool(header.attributes & TIMESTAMP_TYPE_MASK)
    for _ in range(header.records_count):
        start = pos
        length, pos = _varint(data, pos)
        end = pos + length
        if length < 0 or end > len(data):
            raise InvalidRecordBatch("record runs past the batch")
        pos += 1  # attributes
        ts_delta, pos = _varint(data, pos)
        offset_delta, pos = _varint(data, pos)
        key_len, pos = _varint(data, pos)
        key = None
        if key_len >= 0:
            key = bytes(data[pos : pos + key_len])
            pos += key_len
        value_len, pos = _varint(data, pos)
        if pos > end:
            raise InvalidRecordBatch("record fields run past the record")
        timestamp = header.max_timestamp if log_append else header.base_timestamp + ts_delta
        yield StoredRecord(
            offset=header.base_offset + offset_delta,
            timestamp=timestamp,
            key=key,
            value_is_null=value_len < 0,
            raw=bytes(data[start:end]),
        )
        pos = end
    if pos != len(data):
        raise InvalidRecordBatch("bytes left after the last record")


def record_timestamps(batch: bytes) -> Iterator[tuple[int, int]]:
    for record in iter_records(batch):
        yield record.offset, record.timestamp


def rebuild_batch(batch: bytes, kept: list[StoredRecord]) -> bytes:
    """``batch`` with only the ``kept`` records (which must come from it, in order)."""
    header = parse_header(batch)
    body = b"".join(r.raw for r in kept)
    body = compress(header.compression, body) if header.compression else body
    if not header.attributes & TIMESTAMP_TYPE_MASK:
        header.max_timestamp = max((r.timestamp for r in kept), default=header.base_timestamp)
    header.records_count = len(kept)
    header.batch_length = HEADER_SIZE - LOG_OVERHEAD + len(body)
    header.crc = 0
    out = bytearray(pack_header(header))
    out += body
    _CRC.pack_into(out, _CRC_OFFSET, compute_crc(out, 0, len(out)))
    return bytes(out)
