"""Record batch (magic 2) header: parse, validate and patch without touching the records.

Layout of the 61-byte header (all big-endian)::

    baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
    attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
    producerId i64 | producerEpoch i16 | baseSequence i32 | recordsCount i32

batchLength counts the bytes after the batchLength field itself, so a whole batch is
``batchLength + 12`` bytes.  The CRC-32C covers attributes..end of batch, so baseOffset and
partitionLeaderEpoch can be patched in place without recomputing it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kbroker_protocol.crc import crc32c

Buffer = bytes | bytearray | memoryview
"""Bytes a record batch is read from (the one declaration; ``records.Buffer`` re-exports it)."""

HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
CRC_COVERED_FROM = ATTRIBUTES_OFFSET
PARTITION_LEADER_EPOCH_OFFSET = 12

# Attribute bits.
COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1

_HEADER = struct.Struct(">qiibIhiqqqhii")

# Partial views of the same header, for paths that need only a few fields of many batches (one
# ``unpack_from`` each, no `BatchHeader` built).
PREFIX_SIZE = 16  # baseOffset, batchLength, partitionLeaderEpoch: the bytes before magic
PREFIX = struct.Struct(">qii")  # baseOffset, batchLength, partitionLeaderEpoch
# baseOffset, batchLength, partitionLeaderEpoch, magic, attributes, lastOffsetDelta, maxTimestamp,
# recordsCount: what an append needs to place a batch
APPEND_FIELDS = struct.Struct(">qiib4xhi8xq8x2x4xi")
# baseOffset, batchLength, attributes, lastOffsetDelta, producerId: what a transaction replay needs
TXN_FIELDS = struct.Struct(">qi9xhi16xq")
ATTRIBUTES_LOW_OFFSET = ATTRIBUTES_OFFSET + 1  # the low byte of the attributes (the flag bits)
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")


class InvalidRecordBatch(ValueError):
    """The bytes are not a well-formed magic-2 record batch (maps to CORRUPT_MESSAGE).

    ``error_code`` is the Kafka error a broker answers with (Kafka's CorruptRecordException).
    """

    error_code: int = 2  # CORRUPT_MESSAGE


class InvalidRecord(InvalidRecordBatch):
    """The batch is intact (length, CRC) but a record inside it is malformed, or the record count
    disagrees with the records (Kafka's InvalidRecordException: INVALID_RECORD)."""

    error_code: int = 87  # INVALID_RECORD


@dataclass(slots=True)
class BatchHeader:
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Total bytes of the batch, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & DELETE_HORIZON_MASK)

    @property
    def last_sequence(self) -> int:
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF


def parse_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Parse the 61-byte header at ``pos``. Checks only that the header itself is present."""
    if len(buf) - pos < HEADER_SIZE:
        raise InvalidRecordBatch(f"record batch header truncated: {len(buf) - pos} bytes < {HEADER_SIZE}")
    return BatchHeader(*_HEADER.unpack_from(buf, pos))


def compute_crc(buf: bytes | bytearray | memoryview, pos: int = 0, size: int | None = None) -> int:
    """CRC-32C of attributes..end of the batch at ``pos`` whose total size is ``size``."""
    if size is None:
        size = _I32.unpack_from(buf, pos + 8)[0] + LOG_OVERHEAD
    return crc32c(memoryview(buf)[pos + CRC_COVERED_FROM : pos + size])


def validate_batch(buf: bytes | bytearray | memoryview, pos: int = 0,
                   header: BatchHeader | None = None) -> BatchHeader:
    """Parse and fully validate the batch at ``pos``: length, magic and CRC.

    Raises :class:`InvalidRecordBatch` on any defect. The records themselves are not decoded.
    ``header``: the batch's header when the caller has parsed it already (not parsed again).
    """
    if header is None:
        header = parse_header(buf, pos)
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise InvalidRecordBatch(f"batch length {header.batch_length} is below the minimum")
    if header.magic != 2:
        raise InvalidRecordBatch(f"unsupported record batch magic {header.magic}")
    size = header.size
    if len(buf) - pos < size:
        raise InvalidRecordBatch(f"record batch truncated: have {len(buf) - pos} of {size} bytes")
    if header.last_offset_delta < 0 or header.records_count < 0:
        raise InvalidRecordBatch("negative lastOffsetDelta or record count")
    actual = compute_crc(buf, pos, size)
    if actual != header.crc:
        raise InvalidRecordBatch(f"CRC mismatch: stored {header.crc:#010x}, computed {actual:#010x}")
    return header


def iter_batch_headers(buf: bytes | bytearray | memoryview, validate: bool = True):
    """Yield ``(position, header)`` for each whole batch in ``buf``; raise on a partial one."""
    pos = 0
    end = len(buf)
    while pos < end:
        header = validate_batch(buf, pos) if validate else parse_header(buf, pos)
        if not validate:
            # Without this a batchLength of -12 would give size 0 and loop forever.
            if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
                raise InvalidRecordBatch(f"batch length {header.batch_length} is below the minimum")
            if len(buf) - pos < header.size:
                raise InvalidRecordBatch("record batch truncated")
        yield pos, header
        pos += header.size


def patch_base_offset(buf: bytearray | memoryview, base_offset: int, pos: int = 0) -> None:
    """Overwrite baseOffset in place (not covered by the CRC)."""
    _I64.pack_into(buf, pos, base_offset)


def patch_partition_leader_epoch(buf: bytearray | memoryview, epoch: int, pos: int = 0) -> None:
    """Overwrite partitionLeaderEpoch in place (not covered by the CRC)."""
    _I32.pack_into(buf, pos + PARTITION_LEADER_EPOCH_OFFSET, epoch)


def pack_header(header: BatchHeader) -> bytes:
    return _HEADER.pack(
        header.base_offset,
        header.batch_length,
        header.partition_leader_epoch,
        header.magic,
        header.crc,
        header.attributes,
        header.last_offset_delta,
        header.base_timestamp,
        header.max_timestamp,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        header.records_count,
    )
