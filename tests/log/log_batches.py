"""Build magic-2 record batches for the log tests (valid CRC, optional compression)."""

from __future__ import annotations

import struct

from kbroker_protocol.compression import compress
from kbroker_protocol.record_batch import HEADER_SIZE, LOG_OVERHEAD, BatchHeader, compute_crc, pack_header

Record = tuple[bytes | None, bytes | None, int]  # key, value, timestamp


def _varint(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _bytes_field(data: bytes | None) -> bytes:
    return _varint(-1) if data is None else _varint(len(data)) + data


def encode_record(offset_delta: int, ts_delta: int, key: bytes | None, value: bytes | None) -> bytes:
    body = b"\x00" + _varint(ts_delta) + _varint(offset_delta) + _bytes_field(key) + _bytes_field(value) + _varint(0)
    return _varint(len(body)) + body


def make_batch(
    records: list[Record],
    *,
    base_offset: int = 0,
    compression: int = 0,
    leader_epoch: int = 0,
    producer_id: int = -1,
) -> bytes:
    """One batch holding ``records`` with consecutive offsets from ``base_offset``."""
    assert records
    base_ts = records[0][2]
    body = b"".join(encode_record(i, ts - base_ts, k, v) for i, (k, v, ts) in enumerate(records))
    if compression:
        body = compress(compression, body)
    header = BatchHeader(
        base_offset=base_offset,
        batch_length=HEADER_SIZE - LOG_OVERHEAD + len(body),
        partition_leader_epoch=leader_epoch,
        magic=2,
        crc=0,
        attributes=compression,
        last_offset_delta=len(records) - 1,
        base_timestamp=base_ts,
        max_timestamp=max(ts for _, _, ts in records),
        producer_id=producer_id,
        producer_epoch=-1,
        base_sequence=-1,
        records_count=len(records),
    )
    out = bytearray(pack_header(header)) + body
    struct.pack_into(">I", out, 17, compute_crc(out, 0, len(out)))
    return bytes(out)


def value_batch(values: list[bytes], timestamp: int = 1000) -> bytes:
    return make_batch([(None, v, timestamp) for v in values])


def split_batches(data: bytes) -> list[tuple[int, int, bytes]]:
    """(base offset, last offset, bytes) of each batch in ``data``."""
    out = []
    pos = 0
    while pos < len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        size = length + LOG_OVERHEAD
        (delta,) = struct.unpack_from(">i", data, pos + 23)
        out.append((base, base + delta, data[pos : pos + size]))
        pos += size
    return out
