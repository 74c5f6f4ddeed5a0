"""Records inside a magic-2 record batch: decoding (when the broker must look inside), control
records, and the Produce request's rules for a partition's records.  Building batches is in
:mod:`kbroker_protocol.record_build`, the record values in :mod:`kbroker_protocol.record_types`;
their public names are importable from here too (``kbroker_protocol.records``, as ever).

The broker normally stores and serves batches as opaque bytes (see :mod:`kbroker_protocol.record_batch`).
It looks inside only for compaction, transaction markers, timestamps and validation. Decoding here
is hostile-input safe: any defect raises :class:`kbroker_protocol.record_batch.InvalidRecordBatch` (never
another exception; its ``error_code`` is the answer Kafka gives: CORRUPT_MESSAGE for a bad
length, CRC or compressed payload, and the subclass ``InvalidRecord`` with INVALID_RECORD for a
malformed record or a wrong record count), nothing is preallocated from a length or count found in the input, and a
compressed batch is decompressed with a cap (``max_decompressed_size``).

Record layout (all integers zigzag varints / varlongs, as in Kafka's ``DefaultRecord``)::

    length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
    keyLength varint | key | valueLength varint | value |
    headerCount varint | [headerKeyLength varint | headerKey | headerValueLength varint | headerValue]...

A length of -1 means null (key, value, header value); a header key may not be null.

Legacy message sets (magic 0 and 1)
-----------------------------------
We do not accept them. Apache Kafka 4 dropped message formats v0/v1 (KIP-724) and Produce v0-2
(KIP-896); for Produce v3+ its ``ProduceRequest.validateRecords`` (called from ``KafkaApis``)
throws ``InvalidRecordException`` when the first batch's magic is not 2, which
``Errors.forException`` turns into the partition error **INVALID_RECORD (87)** — not
CORRUPT_MESSAGE and not UNSUPPORTED_VERSION. The same check answers INVALID_RECORD for a partition
with no batch or with more than one batch, and UNSUPPORTED_COMPRESSION_TYPE (76) for zstd below
Produce v7. :func:`check_produce_records` applies exactly these rules. (The magic byte sits at
offset 16 in both the legacy and the v2 layouts, so it is read the same way.) Consequently a
kafka-python client that mis-detects the broker as 0.10 and sends magic-1 messages gets
INVALID_RECORD, as it would from Kafka 4.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from kbroker_protocol.compression import Codec, decompress
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import (
    ATTRIBUTES_OFFSET,
    COMPRESSION_MASK,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_OFFSET,
    BatchHeader,
    Buffer,
    InvalidRecord,
    InvalidRecordBatch,
    parse_header,
    validate_batch,
)
from kbroker_protocol.record_build import build_batch, build_control_batch, encode_record, set_log_append_time
from kbroker_protocol.record_types import (
    CONTROL_KEY,
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    NO_TIMESTAMP,
    TXN_MARKER_VALUE,
    ControlRecord,
    ControlType,
    DecodedBatch,
    Record,
    TimestampType,
)

__all__ = [
    "Buffer",
    "ControlRecord",
    "ControlType",
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "DecodedBatch",
    "NO_TIMESTAMP",
    "Record",
    "TimestampType",
    "build_batch",
    "build_control_batch",
    "check_produce_batch",
    "check_produce_records",
    "decode_batch",
    "decode_records",
    "encode_record",
    "iter_records",
    "parse_control_record",
    "records_payload",
    "set_log_append_time",
]


# --- varints --------------------------------------------------------------------------------------


def _read_varint(buf: bytes, pos: int, end: int, max_bytes: int, mask: int) -> tuple[int, int]:
    """Zigzag varint at ``pos`` (at most ``max_bytes`` bytes, before ``end``): (value, new pos)."""
    raw = 0
    shift = 0
    limit = pos + max_bytes
    while True:
        if pos >= end:
            raise InvalidRecord("record truncated inside a varint")
        if pos >= limit:
            raise InvalidRecord("varint is too long")
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        if b < 0x80:
            raw &= mask  # Java wraps extra high bits of the last byte; so do we
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7


_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    b = buf[pos] if pos < end else 0x80
    if b < 0x80:  # one-byte fast path
        return (b >> 1) ^ -(b & 1), pos + 1
    return _read_varint(buf, pos, end, 5, _MASK32)


def _varlong(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    b = buf[pos] if pos < end else 0x80
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    return _read_varint(buf, pos, end, 10, _MASK64)


# --- decoding -------------------------------------------------------------------------------------


def records_payload(
    buf: Buffer,
    pos: int = 0,
    *,
    header: BatchHeader | None = None,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
) -> bytes:
    """The (decompressed) records section of the batch at ``pos``. Validates the batch if no header."""
    if header is None:
        header = validate_batch(buf, pos)
    start = pos + HEADER_SIZE
    end = pos + header.size
    if end > len(buf) or end < start:
        raise InvalidRecordBatch("record batch truncated")
    section = memoryview(buf)[start:end]
    codec = header.compression
    if codec == Codec.NONE:
        return bytes(section)
    return decompress(codec, section, max_decompressed_size)


def _nullable_bytes(buf: bytes, pos: int, rend: int, what: str) -> tuple[bytes | None, int]:
    """A varint length (-1: null) and that many bytes, within the record ending at ``rend``."""
    n, pos = _varint(buf, pos, rend)
    if n < -1 or n > rend - pos:
        raise InvalidRecord(f"invalid record {what} length {n}")
    if n == -1:
        return None, pos
    return buf[pos : pos + n], pos + n


def _decode_record(
    buf: bytes, pos: int, end: int, base_offset: int, base_ts: int, lat: int | None
) -> tuple[Record, int]:
    length, pos = _varint(buf, pos, end)
    if length < 0 or length > end - pos:
        raise InvalidRecord(f"invalid record length {length} with {end - pos} bytes left")
    rend = pos + length
    if pos >= rend:
        raise InvalidRecord("empty record")
    attributes = buf[pos]
    pos += 1
    ts_delta, pos = _varlong(buf, pos, rend)
    offset_delta, pos = _varint(buf, pos, rend)
    key, pos = _nullable_bytes(buf, pos, rend, "key")
    value, pos = _nullable_bytes(buf, pos, rend, "value")
    count, pos = _varint(buf, pos, rend)
    if count < 0:
        raise InvalidRecord(f"invalid number of record headers {count}")
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(count):  # each header takes >= 2 bytes, so a huge count fails fast on bounds
        hk_len, pos = _varint(buf, pos, rend)
        if hk_len < 0 or hk_len > rend - pos:
            raise InvalidRecord(f"invalid record header key length {hk_len}")
        hkey = buf[pos : pos + hk_len].decode("utf-8", "surrogateescape")
        pos += hk_len
        hvalue, pos = _nullable_bytes(buf, pos, rend, "header value")
        headers.append((hkey, hvalue))
    if pos != rend:
        raise InvalidRecord(f"invalid record size: {rend - pos} bytes left over in the record")
    timestamp = lat if lat is not None else base_ts + ts_delta
    record = Record(key, value, tuple(headers), timestamp, base_offset + offset_delta, attributes)
    return record, rend


def decode_records(payload: bytes, header: BatchHeader) -> Iterator[Record]:
    """Decode the records of a decompressed records section, checking the declared count."""
    if not isinstance(payload, bytes):
        payload = bytes(payload)
    lat = header.max_timestamp if header.is_log_append_time else None
    pos = 0
    end = len(payload)
    count = header.records_count
    n = 0
    while n < count:
        if pos >= end:
            raise InvalidRecord(f"incorrect declared batch size: {count} records declared, {n} found")
        try:
            record, pos = _decode_record(payload, pos, end, header.base_offset, header.base_timestamp, lat)
        except UnicodeError as exc:  # pragma: no cover - surrogateescape accepts any bytes
            raise InvalidRecord(str(exc)) from exc
        n += 1
        yield record
    if pos != end:
        raise InvalidRecord("incorrect declared batch size: bytes remain after the last record")


def iter_records(
    buf: Buffer,
    pos: int = 0,
    *,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
) -> Iterator[Record]:
    """Validate the batch at ``pos`` (length, magic, CRC) and yield its records in order.

    Raises :class:`InvalidRecordBatch` (possibly after yielding some records) on any defect.
    """
    header = validate_batch(buf, pos)
    payload = records_payload(buf, pos, header=header, max_decompressed_size=max_decompressed_size)
    yield from decode_records(payload, header)


def decode_batch(
    buf: Buffer, pos: int = 0, *, max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE
) -> DecodedBatch:
    """Validate and fully decode the batch at ``pos``."""
    header = validate_batch(buf, pos)
    payload = records_payload(buf, pos, header=header, max_decompressed_size=max_decompressed_size)
    records = list(decode_records(payload, header))
    last = records[-1].offset if records else None  # decoded records always carry their offset
    if last is not None and last - header.base_offset > header.last_offset_delta:
        raise InvalidRecord("a record's offset delta exceeds the batch's lastOffsetDelta")
    return DecodedBatch(header, records)


# --- control records ------------------------------------------------------------------------------


def parse_control_record(record: Record) -> ControlRecord:
    """Decode the key (and for ABORT/COMMIT, the value) of a record from a control batch.

    Follows Kafka's ``ControlRecordType.parseTypeId`` and ``EndTransactionMarker.deserialize``:
    a key shorter than 4 bytes or with a negative version is invalid; a newer version is read as
    version 0; an unknown type is returned as is (callers ignore it, as Kafka's consumers do).
    """
    key = record.key
    if key is None or len(key) < CONTROL_KEY.size:
        raise InvalidRecord("control record key must have at least 4 bytes")
    version, ctype = CONTROL_KEY.unpack_from(key)
    if version < 0:
        raise InvalidRecord(f"invalid control record key version {version}")
    if ctype not in (ControlType.ABORT, ControlType.COMMIT):
        return ControlRecord(ctype, version)
    value = record.value
    if value is None or len(value) < TXN_MARKER_VALUE.size:
        raise InvalidRecord("end transaction marker value must have at least 6 bytes")
    value_version, coordinator_epoch = TXN_MARKER_VALUE.unpack_from(value)
    if value_version < 0:
        raise InvalidRecord(f"invalid end transaction marker version {value_version}")
    return ControlRecord(ctype, version, coordinator_epoch, value_version)


# --- produce request rules ------------------------------------------------------------------------


_LEGACY_RECORD_OVERHEAD_V0 = 14  # smallest legal batchLength/message size field (magic 0)
_HEADER_SIZE_UP_TO_MAGIC = MAGIC_OFFSET + 1


def _next_batch_size(view: memoryview, pos: int) -> int | None:
    """Kafka's ``ByteBufferLogInputStream.nextBatchSize``/``nextBatch``: None if no whole batch."""
    remaining = len(view) - pos
    if remaining < LOG_OVERHEAD:
        return None
    (size_field,) = struct.unpack_from(">i", view, pos + 8)
    if size_field < _LEGACY_RECORD_OVERHEAD_V0:
        raise InvalidRecordBatch(f"record size {size_field} is less than the minimum record overhead")
    if remaining < _HEADER_SIZE_UP_TO_MAGIC:
        return None
    magic = struct.unpack_from(">b", view, pos + MAGIC_OFFSET)[0]
    if magic < 0 or magic > 2:
        raise InvalidRecordBatch(f"invalid magic found in record: {magic}")
    size = size_field + LOG_OVERHEAD
    return None if remaining < size else size


def check_produce_records(api_version: int, records: Buffer | None) -> ErrorCode:
    """Kafka's ``ProduceRequest.validateRecords`` for one partition's records, as a partition error.

    Produce v3+ must carry exactly one whole magic-2 batch: no whole batch, a legacy (magic 0/1)
    batch, or a second whole batch give INVALID_RECORD; zstd before v7 gives
    UNSUPPORTED_COMPRESSION_TYPE; a size field below 14 or a magic outside 0..2 gives
    CORRUPT_MESSAGE (Kafka's batch iterator throws CorruptRecordException there). As in Kafka, a
    trailing fragment shorter than a whole batch is not an error here (Kafka's log later trims
    it); the caller appends only the first batch. CRC and record contents are checked later
    (CORRUPT_MESSAGE / INVALID_RECORD), as in Kafka's LogValidator. Versions below 3 are not
    checked (Kafka does not either; this broker rejects them before getting here).
    """
    return check_produce_batch(api_version, records)[0]


def check_produce_batch(api_version: int, records: Buffer | None) -> tuple[ErrorCode, BatchHeader | None]:
    """:func:`check_produce_records`, also giving the first batch's header, parsed once here for
    the checks after it (``validate_batch``, the records, the log's append); None when the batch
    is shorter than a header (or on an error, or below v3)."""
    if api_version < 3:
        return ErrorCode.NONE, None
    if records is None:
        return ErrorCode.INVALID_RECORD, None
    available = len(records)
    if available < HEADER_SIZE:
        return _check_short(api_version, records), None
    # The common case: the whole header is there; its fields answer the same checks.
    header = parse_header(records, 0)
    length = header.batch_length
    magic = header.magic
    if length < _LEGACY_RECORD_OVERHEAD_V0 or magic < 0 or magic > 2:
        return ErrorCode.CORRUPT_MESSAGE, None
    size = length + LOG_OVERHEAD
    if available < size or magic != 2:
        return ErrorCode.INVALID_RECORD, None
    if api_version < 7 and header.attributes & COMPRESSION_MASK == Codec.ZSTD:
        return ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, None
    if available > size:
        try:
            if _next_batch_size(memoryview(records), size) is not None:
                return ErrorCode.INVALID_RECORD, None
        except InvalidRecordBatch:
            return ErrorCode.CORRUPT_MESSAGE, None
    return ErrorCode.NONE, header


def _check_short(api_version: int, records: Buffer) -> ErrorCode:
    """:func:`check_produce_records` of records shorter than a batch header."""
    view = memoryview(records)
    try:
        size = _next_batch_size(view, 0)
        if size is None:
            return ErrorCode.INVALID_RECORD
        if view[MAGIC_OFFSET] != 2:
            return ErrorCode.INVALID_RECORD
        if api_version < 7 and size >= ATTRIBUTES_OFFSET + 2:
            if view[ATTRIBUTES_OFFSET + 1] & COMPRESSION_MASK == Codec.ZSTD:
                return ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
        if _next_batch_size(view, size) is not None:
            return ErrorCode.INVALID_RECORD
    except InvalidRecordBatch:
        return ErrorCode.CORRUPT_MESSAGE
    return ErrorCode.NONE
