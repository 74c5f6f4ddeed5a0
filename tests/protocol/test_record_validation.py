"""The pure validators behind Produce: the record walk, streaming decompression, and
``validate_records`` (Kafka's LogValidator checks, rebuilds and their error codes)."""

from __future__ import annotations

import os
import struct

import pytest

from kbroker_protocol.compression import (
    Codec,
    CorruptCompressedData,
    DecompressedSizeExceeded,
    StreamCompressor,
    compress,
    decompress,
    decompress_chunks,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import (
    CRC_OFFSET,
    HEADER_SIZE,
    InvalidRecord,
    compute_crc,
    parse_header,
    validate_batch,
)
from kbroker_protocol.record_validation import OverBudget, Policy, validate_records
from kbroker_protocol.record_walk import read_record, walk, walk_plain
from kbroker_protocol.records import Record, build_batch, decode_batch

NOW = 1_700_000_000_000
CODECS = [Codec.NONE, Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD]


def recs(n: int, **kw) -> list[Record]:
    return [Record(key=b"k%d" % i, value=b"v" * (i % 300), headers=(("h", b"x"),) if i % 3 == 0 else (),
                   timestamp=NOW + i, **kw) for i in range(n)]


def policy(**kw) -> Policy:
    return Policy(topic_partition="t-0", now_ms=NOW, max_message_bytes=1_000_000, **kw)


def section(batch: bytes) -> bytes:
    return batch[HEADER_SIZE:]


def fix_crc(batch) -> bytes:
    out = bytearray(batch)
    struct.pack_into(">I", out, CRC_OFFSET, compute_crc(out, 0, len(out)))
    return bytes(out)


# --- walk -----------------------------------------------------------------------------------------


def test_walk_totals_without_decoding():
    records = [Record(key=None if i in (2, 5) else b"k", value=os.urandom(1024), timestamp=NOW + 10 - i)
               for i in range(8)]
    batch = build_batch(records)
    r = walk(batch, HEADER_SIZE, len(batch), 8)
    assert (r.pos, r.records, r.null_keys, r.first_irregular, r.attributes_seen) == (len(batch), 8, 2, -1, 0)
    assert (r.min_ts_delta, r.max_ts_delta) == (-7, 0)  # relative to the first record's timestamp


def test_walk_notes_the_first_irregular_record():
    batch = build_batch([Record(value=b"a", offset=0), Record(value=b"b", offset=1), Record(value=b"c", offset=5)])
    r = walk(batch, HEADER_SIZE, len(batch), 3)
    assert (r.records, r.first_irregular) == (3, 2)
    r = walk(batch, HEADER_SIZE, len(batch), 3, stop_at_irregular=True)
    assert (r.records, r.first_irregular) == (2, 2)
    assert read_record(batch, r.pos, len(batch)).offset_delta == 5


def test_walk_partial_stops_before_an_incomplete_record():
    body = section(build_batch(recs(10)))
    ends = [f.end for f in (read_record(body, 0, len(body)),)]
    cut = ends[0] + 3  # the second record is cut short
    r = walk(body, 0, cut, 10, partial=True)
    assert (r.records, r.pos) == (1, ends[0])
    with pytest.raises(InvalidRecord, match="Invalid record size"):
        walk(body, 0, cut, 10)
    r2 = walk(body, r.pos, len(body), 9, partial=True, first_index=1)
    assert (r2.records, r2.pos, r2.first_irregular) == (9, len(body), -1)


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda b: b + b"\x00", "records still remaining"),
    (lambda b: b[:-1], "Invalid record size|premature EOF|invalid record structure"),
    (lambda b: b"\x7e" + b[1:], "Invalid record size"),  # first record's length beyond the data
    (lambda b: b"\x00" + b[1:], "Invalid record size|invalid record structure"),  # zero-length record
    (lambda b: b"\x03" + b[1:], "Invalid record size"),  # negative length (-2)
], ids=["trailing byte", "cut short", "length overrun", "length zero", "negative length"])
def test_walk_rejects_framing_defects(mutate, match):
    body = mutate(section(build_batch([Record(key=b"k", value=b"v" * 20, timestamp=NOW)] * 3)))
    with pytest.raises(InvalidRecord, match=f"(?i){match}"):
        walk(body, 0, len(body), 3)
    with pytest.raises(InvalidRecord, match=f"(?i){match}"):
        walk_plain(body, 0, len(body), 3)


def test_walk_plain_agrees_with_walk():
    for n, size in ((1, 0), (70, 300), (500, 2000)):
        records = [Record(key=None if i % 7 == 0 else os.urandom(i % 200), value=os.urandom(size),
                          headers=(("a", b"b"),) * (i % 3), timestamp=NOW + (i * 7919) % 100_000 - 50_000)
                   for i in range(n)]
        body = section(build_batch(records))
        r = walk(body, 0, len(body), n)
        assert walk_plain(body, 0, len(body), n) == (r.records, r.min_ts_delta, r.max_ts_delta, r.null_keys)


def _one_record(body_fields: bytes) -> bytes:
    length = len(body_fields)
    return bytes([length << 1]) + body_fields


@pytest.mark.parametrize(("fields", "match"), [
    (b"\x00\x00\x00" + b"\x05" + b"\x02v" + b"\x00", "key length -3"),
    (b"\x00\x00\x00" + b"\x02k" + b"\x05" + b"\x00", "value length -3"),
    (b"\x00\x00\x00" + b"\x01" + b"\x01" + b"\x01", "number of record headers -1"),
    (b"\x00\x00\x00" + b"\x01" + b"\x01" + b"\x02\x01\x01", "negative header key size"),
    (b"\x00\x00\x00" + b"\x01" + b"\x01" + b"\x7e", "number of record headers"),
    (b"\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00\x01\x01\x00", "varint is too long"),
    (b"\x00\x00\x00" + b"\x01" + b"\x01" + b"\x00" + b"\x00", "expected to read"),
], ids=["key length", "value length", "header count", "header key", "header count beyond", "varlong", "extra"])
def test_walk_rejects_malformed_records(fields, match):
    body = _one_record(fields)
    with pytest.raises(InvalidRecord, match=match):
        walk(body, 0, len(body), 1)
    with pytest.raises(InvalidRecord, match=match):
        walk_plain(body, 0, len(body), 1)


# --- streaming decompression ----------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS[1:])
def test_decompress_chunks_is_bounded_and_detects_defects(codec):
    data = os.urandom(50_000) + bytes(2_000_000)
    payload = compress(codec, data)
    chunks = list(decompress_chunks(codec, payload, 10_000_000, chunk_size=64 * 1024))
    assert b"".join(chunks) == data
    if codec in (Codec.GZIP, Codec.LZ4):
        assert max(map(len, chunks)) <= 64 * 1024
    with pytest.raises(DecompressedSizeExceeded):
        for _ in decompress_chunks(codec, payload, 1_000_000):
            pass
    with pytest.raises(CorruptCompressedData):
        for _ in decompress_chunks(codec, payload[: len(payload) // 2], 10_000_000):
            pass
    with pytest.raises(CorruptCompressedData):
        for _ in decompress_chunks(codec, bytes(range(200)), 10_000_000):
            pass


@pytest.mark.parametrize("codec", CODECS)
def test_stream_compressor_round_trips(codec):
    data = os.urandom(10_000) + b"abc" * 100_000
    sink = StreamCompressor(codec)
    for start in range(0, len(data), 7_777):
        sink.write(data[start : start + 7_777])
    assert sink.size <= len(data) + 1000
    assert decompress(codec, sink.finish(), len(data)) == data


# --- validate_records -----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_a_good_batch_is_kept_as_is(codec):
    batch = build_batch(recs(500), compression=codec)
    out = validate_records(batch, parse_header(batch), policy())
    assert (out.error, out.records) == (ErrorCode.NONE, 500)
    assert out.batch is batch


@pytest.mark.parametrize("source", CODECS)
@pytest.mark.parametrize("target", CODECS)
def test_re_encode_keeps_every_record(source, target):
    records = recs(300)
    batch = build_batch(records, compression=source, producer_id=7, producer_epoch=1, base_sequence=10,
                        transactional=True)
    out = validate_records(batch, parse_header(batch), policy(target_codec=target))
    assert out.error == ErrorCode.NONE
    if source == target:
        assert out.batch is batch
        return
    decoded = decode_batch(out.batch)
    h = decoded.header
    assert (h.compression, h.records_count, h.last_offset_delta, h.producer_id, h.producer_epoch,
            h.base_sequence, h.is_transactional) == (target, 300, 299, 7, 1, 10, True)
    assert h.max_timestamp == NOW + 299
    assert [(r.key, r.value, r.headers, r.timestamp, r.offset) for r in decoded.records] == [
        (r.key, r.value, r.headers, r.timestamp, i) for i, r in enumerate(records)]


def _irregular_lz4() -> bytes:
    records = [Record(key=b"a", value=b"1", timestamp=NOW, offset=0, attributes=0),
               Record(key=b"b", value=b"2", timestamp=NOW + 5, offset=3, attributes=4),
               Record(key=b"c", value=b"3", timestamp=NOW + 2, offset=4)]
    batch = bytearray(build_batch(records, compression=Codec.LZ4, last_offset_delta=4))
    struct.pack_into(">i", batch, 23, 2)  # lastOffsetDelta consistent with the count of 3
    return fix_crc(batch)


def test_re_encode_renumbers_inner_offsets_and_clears_record_attributes():
    """Kafka's rebuild writes offset deltas 0, 1, 2... and a record attributes byte of 0."""
    batch = _irregular_lz4()
    out = validate_records(batch, parse_header(batch), policy(target_codec=Codec.GZIP))
    decoded = decode_batch(out.batch)
    assert [(r.offset, r.attributes, r.key, r.timestamp) for r in decoded.records] == [
        (0, 0, b"a", NOW), (1, 0, b"b", NOW + 5), (2, 0, b"c", NOW + 2)]
    assert decoded.header.compression == Codec.GZIP


def test_compressed_batch_kept_as_is_with_irregular_inner_offsets_is_refused_as_in_kafka():
    batch = _irregular_lz4()
    out = validate_records(batch, parse_header(batch), policy())
    assert out.error == ErrorCode.UNKNOWN_SERVER_ERROR


def test_uncompressed_inner_offsets_are_not_checked_as_in_kafka():
    batch = build_batch([Record(value=b"a", offset=0), Record(value=b"b", offset=7)], last_offset_delta=7)
    batch = bytearray(batch)
    struct.pack_into(">i", batch, 23, 1)
    batch = fix_crc(batch)
    out = validate_records(batch, parse_header(batch), policy())
    assert (out.error, out.batch) == (ErrorCode.NONE, batch)


@pytest.mark.parametrize("codec", [Codec.NONE, Codec.ZSTD])
def test_max_timestamp_is_set_from_the_records(codec):
    batch = build_batch(recs(5), compression=codec, max_timestamp=NOW - 1000)
    out = validate_records(batch, parse_header(batch), policy())
    assert out.error == ErrorCode.NONE
    header = validate_batch(out.batch)  # the CRC is right
    assert header.max_timestamp == NOW + 4
    assert bytes(out.batch)[HEADER_SIZE:] == batch[HEADER_SIZE:]


@pytest.mark.parametrize("codec", CODECS)
def test_compacted_topic_gets_one_record_error_per_missing_key(codec):
    records = [Record(key=None if i in (0, 3, 4, 6) else b"k", value=b"v", timestamp=NOW) for i in range(8)]
    batch = build_batch(records, compression=codec)
    out = validate_records(batch, parse_header(batch), policy(compacted=True))
    assert out.error == ErrorCode.INVALID_RECORD
    assert [i for i, _ in out.record_errors] == [0, 3, 4, 6]
    assert out.record_errors[0][1] == "Compacted topic cannot accept message without key in topic partition t-0"
    assert out.message == (
        "One or more records have been rejected due to 4 record errors in total, and only showing the first "
        "three errors at most: [" + ", ".join(
            f"RecordError(batchIndex={i}, message='Compacted topic cannot accept message without key in topic "
            f"partition t-0')" for i in (0, 3, 4)) + "]")


def test_record_timestamps_out_of_range_are_invalid_timestamp():
    records = [Record(value=b"v", timestamp=t) for t in (NOW, NOW + 10_000, NOW - 50_000, NOW)]
    batch = build_batch(records, max_timestamp=NOW)
    out = validate_records(batch, parse_header(batch), policy(after_max_ms=5_000, before_max_ms=20_000))
    assert out.error == ErrorCode.INVALID_TIMESTAMP
    assert out.message == "One or more records have been rejected due to invalid timestamp"
    assert [i for i, _ in out.record_errors] == [1, 2]
    assert out.record_errors[0][1] == (
        f"Timestamp {NOW + 10_000} of message with offset 1 is out of range. The timestamp should be within "
        f"[{NOW - 20_000}, {NOW + 5_000}]")
    # LogAppendTime topics do not look at the producer's timestamps
    out = validate_records(batch, parse_header(batch), policy(after_max_ms=5_000, log_append_time=True))
    assert out.error == ErrorCode.NONE


@pytest.mark.parametrize("codec", CODECS)
def test_lying_counts_are_invalid_record(codec):
    for count in (1, 2, 4, 10, 2**31 - 1):
        batch = bytearray(build_batch(recs(3), compression=codec))
        struct.pack_into(">i", batch, 57, count)
        struct.pack_into(">i", batch, 23, count - 1)
        batch = fix_crc(batch)
        out = validate_records(batch, parse_header(batch), policy())
        assert out.error == ErrorCode.INVALID_RECORD, (count, out)


@pytest.mark.parametrize("codec", CODECS[1:])
def test_garbage_payload_is_unknown_server_error_as_in_kafka(codec):
    batch = bytearray(build_batch(recs(3), compression=codec))
    batch[HEADER_SIZE:] = bytes((i * 37 + 11) & 0xFF for i in range(len(batch) - HEADER_SIZE))
    batch = fix_crc(batch)
    out = validate_records(batch, parse_header(batch), policy())
    assert out.error == ErrorCode.UNKNOWN_SERVER_ERROR


def test_decompressed_limit_is_message_too_large():
    batch = build_batch([Record(key=b"k", value=bytes(3_000_000), timestamp=NOW)], compression=Codec.ZSTD)
    out = validate_records(batch, parse_header(batch), policy(max_decompressed=1_000_000))
    assert out.error == ErrorCode.MESSAGE_TOO_LARGE


@pytest.mark.parametrize("target", [Codec.NONE, Codec.GZIP])
def test_rebuild_stops_as_soon_as_the_output_passes_max_message_bytes(target):
    records = [Record(key=os.urandom(8), value=os.urandom(200), timestamp=NOW) for _ in range(20_000)]
    batch = build_batch(records, compression=Codec.ZSTD)
    out = validate_records(batch, parse_header(batch), policy(target_codec=target))
    assert out.error == ErrorCode.MESSAGE_TOO_LARGE
    assert "1000000" in out.message


def test_budget_hands_big_work_back_to_the_caller():
    small = build_batch(recs(10))
    assert validate_records(small, parse_header(small), policy(), budget_records=100).error == ErrorCode.NONE
    big = build_batch(recs(1000))
    with pytest.raises(OverBudget):
        validate_records(big, parse_header(big), policy(), budget_records=100)
    zipped = build_batch([Record(value=bytes(5_000_000), timestamp=NOW)], compression=Codec.LZ4)
    with pytest.raises(OverBudget):
        validate_records(zipped, parse_header(zipped), policy(max_decompressed=10**8), budget_records=100,
                         budget_bytes=1_000_000)
    # a lying count does not make an uncompressed batch look expensive: the bytes bound the records
    liar = bytearray(build_batch(recs(3)))
    struct.pack_into(">i", liar, 57, 2**31 - 1)
    struct.pack_into(">i", liar, 23, 2**31 - 2)
    liar = fix_crc(liar)
    assert validate_records(liar, parse_header(liar), policy(), budget_records=100).error == ErrorCode.INVALID_RECORD
