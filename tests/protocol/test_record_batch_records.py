"""Records inside magic-2 batches: build, decode, control records, LogAppendTime, produce checks.

Cross-checked against kafka-python 3's own batch builder and reader, which follow Kafka's
DefaultRecordBatch.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from kbroker_protocol.compression import Codec, compress
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import (
    CONTROL_MASK,
    DELETE_HORIZON_MASK,
    HEADER_SIZE,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_MASK,
    InvalidRecord,
    InvalidRecordBatch,
    iter_batch_headers,
    parse_header,
    validate_batch,
)
from kbroker_protocol.records import (
    ControlType,
    Record,
    TimestampType,
    _check_short,
    build_batch,
    build_control_batch,
    check_produce_batch,
    check_produce_records,
    decode_batch,
    iter_records,
    parse_control_record,
    set_log_append_time,
)

CODECS = [Codec.NONE, Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD]
T0 = 1_700_000_000_000


def _sample(n: int = 3) -> list[Record]:
    return [
        Record(
            key=None if i % 3 == 2 else b"key-%d" % i,
            value=None if i % 4 == 3 else b"value-%d" % i * (i + 1),
            headers=(("trace", b"t%d" % i), ("null", None)) if i % 2 else (),
            timestamp=T0 + i * 10 - (5 if i == 1 else 0),
        )
        for i in range(n)
    ]


def _kafka_python_batch(records: list[Record], codec: int, base_offset: int = 0, **producer) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=producer.get("transactional", False),
        producer_id=producer.get("producer_id", -1),
        producer_epoch=producer.get("producer_epoch", -1),
        base_sequence=producer.get("base_sequence", -1),
        batch_size=1 << 30,
    )
    for i, r in enumerate(records):
        builder.append(i, timestamp=r.timestamp, key=r.key, value=r.value, headers=list(r.headers))
    buf = builder.build()
    struct.pack_into(">q", buf, 0, base_offset)
    return bytes(buf)


# --- build and decode -----------------------------------------------------------------------------


def test_uncompressed_batch_is_byte_identical_to_kafka_python() -> None:
    records = _sample(5)
    # kafka-python writes partitionLeaderEpoch 0 where the Java producer writes -1 (our default).
    ours = build_batch(records, producer_id=7, producer_epoch=1, base_sequence=42, partition_leader_epoch=0)
    theirs = _kafka_python_batch(records, 0, producer_id=7, producer_epoch=1, base_sequence=42)
    assert ours == theirs


@pytest.mark.parametrize("codec", CODECS)
def test_we_read_kafka_python_batches(codec: int) -> None:
    records = _sample(20)
    batch = _kafka_python_batch(records, codec, base_offset=100)
    decoded = decode_batch(batch)
    assert decoded.header.compression == codec
    assert decoded.header.records_count == 20
    assert [r.offset for r in decoded.records] == list(range(100, 120))
    for got, want in zip(decoded.records, records, strict=True):
        assert (got.key, got.value, got.headers, got.timestamp) == (
            want.key,
            want.value,
            want.headers,
            want.timestamp,
        )


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_reads_our_batches(codec: int) -> None:
    records = _sample(20)
    batch = build_batch(records, base_offset=50, compression=codec)
    theirs = DefaultRecordBatch(bytearray(batch))
    assert theirs.validate_crc()
    assert theirs.compression_type == codec
    got = list(theirs)
    assert [r.offset for r in got] == list(range(50, 70))
    for r, want in zip(got, records, strict=True):
        assert (r.key, r.value, r.timestamp) == (want.key, want.value, want.timestamp)
        assert [tuple(h) for h in r.headers] == list(want.headers)


def test_header_fields() -> None:
    records = _sample(4)
    batch = build_batch(
        records,
        base_offset=1000,
        producer_id=123456789012,
        producer_epoch=3,
        base_sequence=17,
        transactional=True,
        partition_leader_epoch=9,
        compression=Codec.LZ4,
    )
    h = validate_batch(batch)
    assert h.base_offset == 1000
    assert h.size == len(batch)
    assert h.partition_leader_epoch == 9
    assert h.magic == 2
    assert h.compression == Codec.LZ4
    assert h.is_transactional and not h.is_control and not h.is_log_append_time
    assert h.last_offset_delta == 3
    assert h.base_timestamp == records[0].timestamp
    assert h.max_timestamp == max(r.timestamp for r in records)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (123456789012, 3, 17)
    assert h.records_count == 4
    assert h.last_sequence == 20


def test_explicit_offsets_keep_gaps_as_compaction_needs() -> None:
    records = [Record(b"a", b"1", offset=10, timestamp=T0), Record(b"b", b"2", offset=14, timestamp=T0 + 1)]
    batch = build_batch(records, base_offset=10, last_offset_delta=6)
    decoded = decode_batch(batch)
    assert [r.offset for r in decoded.records] == [10, 14]
    assert decoded.header.last_offset_delta == 6
    assert decoded.header.next_offset == 17
    with pytest.raises(ValueError):
        build_batch([Record(offset=5), Record(offset=5)], base_offset=5)


def test_empty_batch_and_delete_horizon() -> None:
    empty = build_batch([], base_offset=20, last_offset_delta=4, producer_id=5, producer_epoch=0)
    h = validate_batch(empty)
    assert (h.records_count, h.last_offset_delta, h.base_timestamp, h.max_timestamp) == (0, 4, -1, -1)
    assert decode_batch(empty).records == []
    with pytest.raises(ValueError):
        build_batch([])
    batch = build_batch([Record(b"k", None, timestamp=T0)], delete_horizon_ms=T0 + 86_400_000)
    h = validate_batch(batch)
    assert h.has_delete_horizon and h.attributes & DELETE_HORIZON_MASK
    assert h.base_timestamp == T0 + 86_400_000
    assert decode_batch(batch).records[0].timestamp == T0


def test_log_append_time_batch_reports_the_append_time_per_record() -> None:
    batch = build_batch(_sample(3), timestamp_type=TimestampType.LOG_APPEND_TIME, log_append_time=T0 + 999)
    h = validate_batch(batch)
    assert h.is_log_append_time and h.max_timestamp == T0 + 999
    assert {r.timestamp for r in iter_records(batch)} == {T0 + 999}


def test_non_utf8_header_key_round_trips() -> None:
    raw_key = b"\xff\xfeweird"
    batch = build_batch([Record(b"k", b"v", ((raw_key.decode("utf-8", "surrogateescape"), b"x"),), T0)])
    (rec,) = iter_records(batch)
    assert rec.headers[0][0].encode("utf-8", "surrogateescape") == raw_key
    assert build_batch([rec]) == batch


_records = st.lists(
    st.builds(
        Record,
        key=st.none() | st.binary(max_size=40),
        value=st.none() | st.binary(max_size=300),
        headers=st.lists(st.tuples(st.text(max_size=10), st.none() | st.binary(max_size=20)), max_size=3).map(
            tuple
        ),
        timestamp=st.integers(0, 2**42),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=80, deadline=None)
@given(records=_records, codec=st.sampled_from(CODECS), base=st.integers(0, 2**40))
def test_round_trip_property(records: list[Record], codec: int, base: int) -> None:
    batch = build_batch(records, base_offset=base, compression=codec)
    decoded = decode_batch(batch)
    assert len(decoded.records) == len(records)
    for i, (got, want) in enumerate(zip(decoded.records, records, strict=True)):
        assert got.offset == base + i
        assert (got.key, got.value, got.headers, got.timestamp) == (
            want.key,
            want.value,
            want.headers,
            want.timestamp,
        )
    # Re-encoding what we decoded gives the same bytes (uncompressed: compressors may differ).
    if codec == Codec.NONE:
        assert build_batch(decoded.records, base_offset=base) == batch


# --- malformed input ------------------------------------------------------------------------------


def _patched(batch: bytes, records_section: bytes, count: int | None = None) -> bytes:
    """Replace the records section of an uncompressed batch, fixing length, count and CRC."""
    h = parse_header(batch)
    out = bytearray(batch[:HEADER_SIZE] + records_section)
    struct.pack_into(">i", out, 8, len(out) - 12)
    struct.pack_into(">i", out, 57, h.records_count if count is None else count)
    from kbroker_protocol.record_batch import compute_crc

    struct.pack_into(">I", out, 17, compute_crc(out))
    return bytes(out)


def test_crc_mismatch_is_rejected() -> None:
    batch = bytearray(build_batch(_sample(2)))
    batch[-1] ^= 1
    with pytest.raises(InvalidRecordBatch, match="CRC") as info:
        list(iter_records(batch))
    assert not isinstance(info.value, InvalidRecord)
    assert info.value.error_code == ErrorCode.CORRUPT_MESSAGE


def _zz(n: int) -> bytes:
    """Zigzag varint, written independently of protocol.records for the tests."""
    raw = (n << 1) ^ (n >> 63) if n < 0 else n << 1
    raw &= (1 << 64) - 1
    out = bytearray()
    while True:
        if raw < 0x80:
            out.append(raw)
            return bytes(out)
        out.append(raw & 0x7F | 0x80)
        raw >>= 7


def _rec(body: bytes) -> bytes:
    return _zz(len(body)) + body


_VALID_BODY = b"\x00" + _zz(0) + _zz(0) + _zz(-1) + _zz(-1) + _zz(0)


@pytest.mark.parametrize(
    ("section", "count", "match"),
    [
        (b"", 1, "declared"),  # fewer records than declared
        (_rec(b"\x00"), 1, "truncated"),  # body holds the attributes only
        (_zz(-32), 1, "record length"),
        (_rec(b"\x00" + _zz(0) + _zz(0) + _zz(-2)), 1, "key length"),
        (_rec(b"\x00" + _zz(0) + _zz(0) + _zz(5) + b"ab"), 1, "key length"),  # key runs past the record
        (_rec(_VALID_BODY + b"\x00\x00"), 1, "record size"),  # bytes left over inside the record
        (_rec(b"\x00" + _zz(0) + _zz(0) + _zz(-1) + _zz(-1) + _zz(-2)), 1, "headers"),
        (_rec(b"\x00" + _zz(0) + _zz(0) + _zz(-1) + _zz(-1) + _zz(1)), 1, "truncated"),
        (_rec(b"\x00" + _zz(0) + _zz(0) + _zz(-1) + _zz(-1) + _zz(1) + _zz(-1) + _zz(-1)), 1, "header key"),
        (_rec(b"\x00" + b"\xff" * 10 + b"\x01" + _VALID_BODY[2:]), 1, "too long"),
        (_rec(_VALID_BODY) * 2, 1, "remain"),  # two records, one declared
        (_rec(_VALID_BODY), 0, "remain"),
    ],
)
def test_malformed_records_raise_invalid_record_batch(section: bytes, count: int, match: str) -> None:
    batch = _patched(build_batch([Record(b"k", b"v", timestamp=T0)]), section, count)
    with pytest.raises(InvalidRecord, match=match) as info:
        decode_batch(batch)
    assert info.value.error_code == ErrorCode.INVALID_RECORD


def test_corrupt_compressed_payload_is_invalid_record_batch() -> None:
    batch = build_batch(_sample(3), compression=Codec.GZIP)
    h = parse_header(batch)
    broken = _patched(batch, b"\x1f\x8b not gzip at all")
    assert parse_header(broken).compression == h.compression
    with pytest.raises(InvalidRecordBatch) as info:
        decode_batch(broken)
    assert info.value.error_code == ErrorCode.CORRUPT_MESSAGE


def test_decompression_cap_applies() -> None:
    big = [Record(None, bytes(1_000_000), timestamp=T0)]
    batch = build_batch(big, compression=Codec.ZSTD)
    assert len(batch) < 2000
    assert len(decode_batch(batch, max_decompressed_size=2_000_000).records) == 1
    with pytest.raises(InvalidRecordBatch):
        decode_batch(batch, max_decompressed_size=100_000)


def test_huge_declared_counts_do_not_allocate() -> None:
    # A header count of 2**31-1 on a 12-byte record: fails on bounds, quickly.
    section = b"\x16\x00\x00\x00\x01\x01\xfe\xff\xff\xff\x0f" + b"\x00" * 5
    batch = _patched(build_batch([Record(b"k", b"v", timestamp=T0)]), section)
    with pytest.raises(InvalidRecordBatch):
        decode_batch(batch)
    batch = _patched(build_batch([Record(b"k", b"v", timestamp=T0)]), b"", count=2**31 - 1)
    with pytest.raises(InvalidRecordBatch):
        decode_batch(batch)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), codec=st.sampled_from(CODECS))
def test_fuzz_records_section(data, codec: int) -> None:
    """Only invariant: decoding parses or raises InvalidRecordBatch."""
    base = build_batch(_sample(4))
    section = bytearray(base[HEADER_SIZE:])
    mode = data.draw(st.sampled_from(["flip", "cut", "random", "insert"]))
    if mode == "flip" and section:
        for _ in range(data.draw(st.integers(1, 6))):
            section[data.draw(st.integers(0, len(section) - 1))] = data.draw(st.integers(0, 255))
    elif mode == "cut":
        section = section[: data.draw(st.integers(0, len(section)))]
    elif mode == "insert":
        i = data.draw(st.integers(0, len(section)))
        section[i:i] = data.draw(st.binary(min_size=1, max_size=12))
    else:
        section = bytearray(data.draw(st.binary(max_size=200)))
    if codec != Codec.NONE:
        section = bytearray(compress(codec, section))
    batch = bytearray(_patched(base, bytes(section), data.draw(st.integers(-2, 6))))
    batch[22] = (batch[22] & ~0x07) | codec
    from kbroker_protocol.record_batch import compute_crc

    struct.pack_into(">I", batch, 17, compute_crc(batch))
    try:
        decode_batch(batch, max_decompressed_size=100_000)
    except InvalidRecordBatch:
        pass


@settings(max_examples=300, deadline=None)
@given(blob=st.binary(max_size=120))
def test_fuzz_whole_batch_bytes(blob: bytes) -> None:
    try:
        decode_batch(blob)
    except InvalidRecordBatch:
        pass
    try:
        list(iter_batch_headers(blob, validate=False))
    except InvalidRecordBatch:
        pass


def test_iter_batch_headers_rejects_negative_length_without_validation() -> None:
    batch = bytearray(build_batch(_sample(1)))
    struct.pack_into(">i", batch, 8, -12)
    with pytest.raises(InvalidRecordBatch):
        list(iter_batch_headers(batch, validate=False))


# --- control records ------------------------------------------------------------------------------


@pytest.mark.parametrize("ctype", [ControlType.ABORT, ControlType.COMMIT])
def test_transaction_marker_batch(ctype: ControlType) -> None:
    batch = build_control_batch(
        ctype, producer_id=77, producer_epoch=4, coordinator_epoch=12, timestamp=T0, base_offset=300
    )
    h = validate_batch(batch)
    assert h.attributes == TRANSACTIONAL_MASK | CONTROL_MASK
    assert h.is_control and h.is_transactional
    assert (h.producer_id, h.producer_epoch, h.base_sequence, h.records_count) == (77, 4, -1, 1)
    (rec,) = iter_records(batch)
    assert rec.offset == 300
    assert rec.key == struct.pack(">hh", 0, ctype)
    assert rec.value == struct.pack(">hi", 0, 12)
    marker = parse_control_record(rec)
    assert marker.control_type is ctype
    assert (marker.version, marker.coordinator_epoch, marker.value_version) == (0, 12, 0)
    # kafka-python reads it as a control batch too.
    theirs = DefaultRecordBatch(bytearray(batch))
    assert theirs.is_control_batch and theirs.is_transactional and theirs.validate_crc()


def test_parse_control_record_rules() -> None:
    assert (
        parse_control_record(
            Record(struct.pack(">hh", 3, 1), struct.pack(">hi", 1, 5) + b"extra")
        ).coordinator_epoch
        == 5
    )
    other = parse_control_record(Record(struct.pack(">hh", 0, 2), b"leader change payload"))
    assert other.control_type is ControlType.LEADER_CHANGE and other.coordinator_epoch is None
    unknown = parse_control_record(Record(struct.pack(">hh", 0, 99), None))
    assert unknown.type == 99 and unknown.control_type is None
    for bad in [
        Record(None, struct.pack(">hi", 0, 1)),
        Record(b"\x00\x00\x00", struct.pack(">hi", 0, 1)),
        Record(struct.pack(">hh", -1, 0), struct.pack(">hi", 0, 1)),
        Record(struct.pack(">hh", 0, 1), b"\x00\x00\x00"),
        Record(struct.pack(">hh", 0, 0), None),
        Record(struct.pack(">hh", 0, 0), struct.pack(">hi", -1, 1)),
    ]:
        with pytest.raises(InvalidRecord):
            parse_control_record(bad)
    with pytest.raises(ValueError):
        build_control_batch(ControlType.LEADER_CHANGE, producer_id=1, producer_epoch=0, timestamp=0)


# --- LogAppendTime --------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_set_log_append_time(codec: int) -> None:
    records = _sample(3)
    original = build_batch(records, compression=codec, transactional=True, producer_id=1, producer_epoch=0)
    buf = bytearray(original)
    set_log_append_time(buf, T0 + 5000)
    h = validate_batch(buf)  # CRC recomputed
    before = parse_header(original)
    assert h.attributes == before.attributes | TIMESTAMP_TYPE_MASK
    assert h.max_timestamp == T0 + 5000
    assert h.base_timestamp == before.base_timestamp  # Kafka leaves baseTimestamp alone
    assert buf[HEADER_SIZE:] == original[HEADER_SIZE:]  # records untouched
    assert {r.timestamp for r in iter_records(buf)} == {T0 + 5000}
    # Same as building the batch as LogAppendTime from the start (uncompressed: same bytes).
    if codec == Codec.NONE:
        rebuilt = build_batch(
            records,
            transactional=True,
            producer_id=1,
            producer_epoch=0,
            timestamp_type=TimestampType.LOG_APPEND_TIME,
            log_append_time=T0 + 5000,
        )
        assert bytes(buf) == rebuilt


def test_set_log_append_time_in_a_larger_buffer_and_no_op() -> None:
    first = build_batch(_sample(2), base_offset=0)
    second = build_batch(_sample(2), base_offset=2)
    buf = bytearray(first + second)
    set_log_append_time(memoryview(buf), T0, pos=len(first))
    assert buf[: len(first)] == first
    assert validate_batch(buf, len(first)).is_log_append_time
    snapshot = bytes(buf)
    set_log_append_time(buf, T0, pos=len(first))
    assert bytes(buf) == snapshot


# --- produce request checks (Kafka's ProduceRequest.validateRecords) ------------------------------


def _legacy_magic1_message_set() -> bytes:
    # offset i64 | size i32 | crc u32 | magic i8 (1) | attributes i8 | timestamp i64 | key | value
    body = struct.pack(">bbq", 1, 0, T0) + struct.pack(">i", -1) + struct.pack(">i", 3) + b"abc"
    import zlib

    msg = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", 0, len(msg)) + msg


def test_check_produce_records() -> None:
    good = build_batch(_sample(2))
    zstd = build_batch(_sample(2), compression=Codec.ZSTD)
    assert check_produce_records(3, good) == ErrorCode.NONE
    assert check_produce_records(9, zstd) == ErrorCode.NONE
    assert check_produce_records(7, zstd) == ErrorCode.NONE
    assert check_produce_records(6, zstd) == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    assert check_produce_records(3, _legacy_magic1_message_set()) == ErrorCode.INVALID_RECORD
    assert check_produce_records(3, None) == ErrorCode.INVALID_RECORD
    assert check_produce_records(3, b"") == ErrorCode.INVALID_RECORD
    assert check_produce_records(3, good[:-1]) == ErrorCode.INVALID_RECORD  # no whole batch
    assert check_produce_records(3, good + good) == ErrorCode.INVALID_RECORD  # two batches
    assert check_produce_records(3, good + good[:20]) == ErrorCode.NONE  # trailing fragment: trimmed later
    bad_magic = bytearray(good)
    bad_magic[16] = 3
    assert check_produce_records(3, bad_magic) == ErrorCode.CORRUPT_MESSAGE
    tiny = bytearray(good)
    struct.pack_into(">i", tiny, 8, 13)
    assert check_produce_records(3, tiny) == ErrorCode.CORRUPT_MESSAGE
    assert check_produce_records(2, _legacy_magic1_message_set()) == ErrorCode.NONE  # not checked below v3


def test_check_produce_batch_gives_the_header_it_checked() -> None:
    good = build_batch(_sample(3))
    code, header = check_produce_batch(9, good + good[:20])
    assert code == ErrorCode.NONE and header == parse_header(good)
    assert check_produce_batch(9, good + good) == (ErrorCode.INVALID_RECORD, None)
    assert check_produce_batch(6, build_batch(_sample(2), compression=Codec.ZSTD)) == (
        ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, None)
    assert check_produce_batch(2, good) == (ErrorCode.NONE, None)  # not checked below v3
    short = struct.pack(">qiib", 0, 14, 0, 2) + bytes(9)  # a whole magic-2 "batch" shorter than a header
    assert check_produce_batch(9, short) == (ErrorCode.NONE, None)  # (CORRUPT_MESSAGE when parsed)


@settings(max_examples=500, deadline=None)
@given(blob=st.binary(max_size=200), version=st.integers(3, 13), cut=st.integers(0, 200))
def test_fuzz_check_produce_batch_answers_as_the_byte_peeks_do(blob: bytes, version: int, cut: int) -> None:
    # From a whole header on, the checks read the parsed header's fields; below it, the bytes. Both
    # must answer the same code for the same input (the byte peeks work at any length).
    good = build_batch(_sample(2), compression=Codec.ZSTD if cut % 2 else Codec.NONE)
    blob = good[:cut] + blob if cut < len(good) else good + blob
    code, header = check_produce_batch(version, blob)
    assert code == _check_short(version, blob)
    assert (header is not None) == (code == ErrorCode.NONE and len(blob) >= 61)
    if header is not None:
        assert header == parse_header(blob)


@settings(max_examples=300, deadline=None)
@given(blob=st.binary(max_size=150), version=st.integers(3, 13), prefix=st.booleans())
def test_fuzz_check_produce_records_always_answers_a_code(blob: bytes, version: int, prefix: bool) -> None:
    if prefix:  # start from a real batch so the deeper branches are reached
        blob = build_batch(_sample(1))[: len(blob) % 120] + blob
    assert check_produce_records(version, blob) in {
        ErrorCode.NONE,
        ErrorCode.INVALID_RECORD,
        ErrorCode.CORRUPT_MESSAGE,
        ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
    }
