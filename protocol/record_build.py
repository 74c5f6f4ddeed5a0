"""Building magic-2 record batches: records encoded into a batch (compressed, with its CRC-32C), a
transaction marker batch, and a batch turned into a LogAppendTime batch in place.  The records
and their types are in :mod:`kbroker_protocol.record_types`; decoding is in
:mod:`kbroker_protocol.records`."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from kbroker_protocol.compression import Codec, compress
from kbroker_protocol.record_batch import (
    ATTRIBUTES_OFFSET,
    COMPRESSION_MASK,
    CONTROL_MASK,
    CRC_OFFSET,
    DELETE_HORIZON_MASK,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_OFFSET,
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_MASK,
    InvalidRecordBatch,
    compute_crc,
    parse_header,
)
from kbroker_protocol.record_types import (
    CONTROL_KEY,
    NO_TIMESTAMP,
    TXN_MARKER_VALUE,
    ControlType,
    Record,
    TimestampType,
)

__all__ = ["build_batch", "build_control_batch", "encode_record", "set_log_append_time"]

MAX_TIMESTAMP_OFFSET = (
    35  # baseOffset 8 + length 4 + epoch 4 + magic 1 + crc 4 + attrs 2 + lastOffsetDelta 4 + baseTimestamp 8
)

_I64 = struct.Struct(">q")
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")
_MASK64 = 0xFFFFFFFFFFFFFFFF


# --- varints --------------------------------------------------------------------------------------


def _write_varint(out: bytearray, value: int) -> None:
    raw = (value << 1) ^ (value >> 63)  # zigzag (valid for the int64 range)
    raw &= _MASK64
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


def _write_varbytes(out: bytearray, data: bytes | bytearray | memoryview | None) -> None:
    if data is None:
        out.append(0x01)  # zigzag(-1)
        return
    _write_varint(out, len(data))
    out += data


# --- building -------------------------------------------------------------------------------------


def _encode_header_key(key: str | bytes) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8", "surrogateescape")
    return bytes(key)


def encode_record(out: bytearray, record: Record, offset_delta: int, timestamp_delta: int) -> None:
    """Append one record (with its length prefix) to ``out``."""
    body = bytearray()
    body.append(record.attributes & 0xFF)
    _write_varint(body, timestamp_delta)
    _write_varint(body, offset_delta)
    _write_varbytes(body, record.key)
    _write_varbytes(body, record.value)
    _write_varint(body, len(record.headers))
    for hkey, hvalue in record.headers:
        _write_varbytes(body, _encode_header_key(hkey))
        _write_varbytes(body, hvalue)
    _write_varint(out, len(body))
    out += body


def _attributes(
    codec: int, timestamp_type: int, transactional: bool, control: bool, delete_horizon: bool
) -> int:
    attrs = codec & COMPRESSION_MASK
    if timestamp_type == TimestampType.LOG_APPEND_TIME:
        attrs |= TIMESTAMP_TYPE_MASK
    if transactional:
        attrs |= TRANSACTIONAL_MASK
    if control:
        attrs |= CONTROL_MASK
    if delete_horizon:
        attrs |= DELETE_HORIZON_MASK
    return attrs


_HEADER_AFTER_LENGTH = struct.Struct(">ibIhiqqqhii")


def build_batch(
    records: Iterable[Record],
    *,
    base_offset: int = 0,
    compression: int = Codec.NONE,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    transactional: bool = False,
    control: bool = False,
    timestamp_type: int = TimestampType.CREATE_TIME,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    log_append_time: int | None = None,
    delete_horizon_ms: int | None = None,
    max_timestamp: int | None = None,
    last_offset_delta: int | None = None,
    compression_level: int | None = None,
    snappy_xerial: bool = True,
) -> bytes:
    """Encode a magic-2 record batch with a correct CRC-32C.

    As in Kafka's ``MemoryRecordsBuilder``: baseTimestamp is the first record's timestamp (or the
    delete horizon when ``delete_horizon_ms`` is given, which also sets attribute bit 6);
    maxTimestamp is the largest record timestamp for CreateTime and ``log_append_time`` for
    LogAppendTime. Records without an offset take consecutive offsets from ``base_offset``.
    An empty batch (as compaction leaves behind) has baseTimestamp -1 and needs
    ``last_offset_delta``; its maxTimestamp defaults to -1.
    """
    items = list(records)
    if timestamp_type == TimestampType.LOG_APPEND_TIME and log_append_time is None:
        raise ValueError("LogAppendTime batches need log_append_time")
    deltas: list[int] = []
    next_offset = base_offset
    for rec in items:
        offset = next_offset if rec.offset is None else rec.offset
        if offset < next_offset:
            raise ValueError(f"record offset {offset} is not above the previous one ({next_offset - 1})")
        deltas.append(offset - base_offset)
        next_offset = offset + 1
    if deltas and deltas[-1] > 0x7FFFFFFF:
        raise ValueError("offset delta does not fit in an int32")

    if delete_horizon_ms is not None:
        base_ts = delete_horizon_ms
    elif items:
        base_ts = items[0].timestamp
    else:
        base_ts = NO_TIMESTAMP

    if timestamp_type == TimestampType.LOG_APPEND_TIME:
        max_ts = log_append_time
    elif max_timestamp is not None:
        max_ts = max_timestamp
    elif items:
        max_ts = max(rec.timestamp for rec in items)
    else:
        max_ts = NO_TIMESTAMP

    if last_offset_delta is None:
        if not items:
            raise ValueError("an empty batch needs last_offset_delta")
        last_offset_delta = deltas[-1]
    elif deltas and last_offset_delta < deltas[-1]:
        raise ValueError("last_offset_delta is below the last record's offset delta")

    plain = bytearray()
    for rec, delta in zip(items, deltas, strict=True):
        encode_record(plain, rec, delta, rec.timestamp - base_ts)
    body: bytes | bytearray = plain
    if compression != Codec.NONE:
        body = compress(compression, plain, level=compression_level, snappy_xerial=snappy_xerial)

    attrs = _attributes(compression, timestamp_type, transactional, control, delete_horizon_ms is not None)
    batch_length = HEADER_SIZE - LOG_OVERHEAD + len(body)
    out = bytearray(HEADER_SIZE)
    _I64.pack_into(out, 0, base_offset)
    struct.pack_into(">i", out, 8, batch_length)
    _HEADER_AFTER_LENGTH.pack_into(
        out,
        12,
        partition_leader_epoch,
        2,
        0,  # crc, filled in below
        attrs,
        last_offset_delta,
        base_ts,
        max_ts,
        producer_id,
        producer_epoch,
        base_sequence,
        len(items),
    )
    out += body
    _U32.pack_into(out, CRC_OFFSET, compute_crc(out, 0, len(out)))
    return bytes(out)


# --- control records ------------------------------------------------------------------------------


def build_control_batch(
    control_type: int,
    *,
    producer_id: int,
    producer_epoch: int,
    timestamp: int,
    coordinator_epoch: int = 0,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytes:
    """A transaction marker batch (ABORT or COMMIT), as Kafka's ``MemoryRecords.withEndTransactionMarker``.

    Transactional + control attributes, no compression, CreateTime, baseSequence -1, one record with
    key ``i16 version 0, i16 type`` and value ``i16 version 0, i32 coordinatorEpoch``.
    """
    if control_type not in (ControlType.ABORT, ControlType.COMMIT):
        raise ValueError(f"not a transaction marker type: {control_type}")
    record = Record(
        key=CONTROL_KEY.pack(0, control_type),
        value=TXN_MARKER_VALUE.pack(0, coordinator_epoch),
        timestamp=timestamp,
    )
    return build_batch(
        [record],
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        transactional=True,
        control=True,
        partition_leader_epoch=partition_leader_epoch,
    )


# --- in-place changes -----------------------------------------------------------------------------


def set_log_append_time(buf: bytearray | memoryview, timestamp: int, pos: int = 0) -> None:
    """Turn the batch at ``pos`` into a LogAppendTime batch stamped ``timestamp``, in place.

    Mirrors Kafka's ``DefaultRecordBatch.setMaxTimestamp(LOG_APPEND_TIME, now)`` as used by
    ``LogValidator``: attributes get the timestamp-type bit (the other known flags are kept, unused
    bits cleared), maxTimestamp becomes ``timestamp``, baseTimestamp and the records are left
    alone, and the CRC is recomputed. Nothing changes if the batch already carries exactly that.
    Validate the batch first: the new CRC covers whatever bytes are there.
    """
    header = parse_header(buf, pos)
    if header.is_log_append_time and header.max_timestamp == timestamp:
        return
    size = header.size
    if len(buf) - pos < size or size < HEADER_SIZE:
        raise InvalidRecordBatch("record batch truncated")
    if buf[pos + MAGIC_OFFSET] != 2:
        raise InvalidRecordBatch(f"unsupported record batch magic {buf[pos + MAGIC_OFFSET]}")
    attrs = header.attributes & (COMPRESSION_MASK | TRANSACTIONAL_MASK | CONTROL_MASK | DELETE_HORIZON_MASK)
    _I16.pack_into(buf, pos + ATTRIBUTES_OFFSET, attrs | TIMESTAMP_TYPE_MASK)
    _I64.pack_into(buf, pos + MAX_TIMESTAMP_OFFSET, timestamp)
    _U32.pack_into(buf, pos + CRC_OFFSET, compute_crc(buf, pos, size))
