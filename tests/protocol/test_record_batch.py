"""Batch header parsing, validation and in-place patches (protocol.record_batch)."""

from __future__ import annotations

import struct

import pytest

from kbroker_protocol.compression import Codec
from kbroker_protocol.record_batch import (
    HEADER_SIZE,
    NO_SEQUENCE,
    BatchHeader,
    InvalidRecordBatch,
    compute_crc,
    iter_batch_headers,
    pack_header,
    parse_header,
    patch_base_offset,
    patch_partition_leader_epoch,
    validate_batch,
)
from kbroker_protocol.records import Record, build_batch, decode_batch

T0 = 1_700_000_000_000


def _batch(n: int = 3, **kw) -> bytes:
    return build_batch([Record(b"k%d" % i, b"v%d" % i, timestamp=T0 + i) for i in range(n)], **kw)


def test_pack_and_parse_round_trip() -> None:
    blob = _batch(compression=Codec.GZIP, producer_id=9, producer_epoch=2, base_sequence=5)
    header = parse_header(blob)
    assert isinstance(header, BatchHeader)
    assert pack_header(header) == blob[:HEADER_SIZE]
    assert compute_crc(blob) == header.crc


def test_patches_outside_the_crc_keep_the_batch_valid() -> None:
    buf = bytearray(_batch())
    patch_base_offset(buf, 123_456_789_012)
    patch_partition_leader_epoch(buf, 42)
    header = validate_batch(buf)
    assert (header.base_offset, header.partition_leader_epoch) == (123_456_789_012, 42)
    assert [r.offset for r in decode_batch(buf).records] == [123_456_789_012 + i for i in range(3)]
    assert (header.last_offset, header.next_offset) == (123_456_789_014, 123_456_789_015)


def test_patch_in_a_larger_buffer_at_a_position() -> None:
    a, b = _batch(), _batch(2)
    buf = bytearray(a + b)
    patch_base_offset(memoryview(buf), 3, pos=len(a))
    assert [(pos, h.base_offset) for pos, h in iter_batch_headers(buf)] == [(0, 0), (len(a), 3)]
    assert buf[: len(a)] == a


def test_last_sequence_wraps_and_no_sequence() -> None:
    h = parse_header(_batch(5, producer_id=1, producer_epoch=0, base_sequence=0x7FFFFFFE))
    assert h.last_sequence == 2  # 0x7FFFFFFE + 4 wraps past Int32.MaxValue
    assert parse_header(_batch()).last_sequence == NO_SEQUENCE


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda b: b.__setitem__(16, 1), "magic"),
        (lambda b: struct.pack_into(">i", b, 8, 48), "minimum"),
        (lambda b: struct.pack_into(">i", b, 8, len(b)), "truncated"),
        (lambda b: b.__setitem__(-1, b[-1] ^ 0xFF), "CRC"),
        (lambda b: struct.pack_into(">i", b, 23, -1), "negative|CRC"),
    ],
)
def test_validate_rejects(mutate, match: str) -> None:
    buf = bytearray(_batch())
    mutate(buf)
    with pytest.raises(InvalidRecordBatch, match=match):
        validate_batch(buf)


def test_short_header_and_partial_trailing_batch() -> None:
    blob = _batch()
    with pytest.raises(InvalidRecordBatch, match="truncated"):
        parse_header(blob[:60])
    with pytest.raises(InvalidRecordBatch):
        list(iter_batch_headers(blob + blob[:70]))
    with pytest.raises(InvalidRecordBatch):
        list(iter_batch_headers(blob + blob[:70], validate=False))
