"""Codecs: round trips, cross-checks against the clients' own codec functions, bounded decoding."""

from __future__ import annotations

import gzip
import os
import struct

import aiokafka.codec as aiokafka_codec
import cramjam
import kafka.codec as kafka_codec
import lz4.frame
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker_protocol.compression import (
    XERIAL_MAGIC,
    Codec,
    CorruptCompressedData,
    DecompressedSizeExceeded,
    compress,
    decompress,
    is_xerial_snappy,
)
from kbroker_protocol.record_batch import InvalidRecordBatch

CODECS = [Codec.NONE, Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD]
COMPRESSED = [Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD]
PAYLOAD = b"".join(b"record %d: {'user': %d, 'event': 'click'}\n" % (i, i * 31 % 977) for i in range(5000))
MAX = 64 * 1024 * 1024


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("payload", [b"", b"x", PAYLOAD, os.urandom(100_000)])
def test_round_trip(codec: Codec, payload: bytes) -> None:
    assert decompress(codec, compress(codec, payload), MAX) == payload


@pytest.mark.parametrize("codec", COMPRESSED)
def test_accepts_memoryview_and_bytearray(codec: Codec) -> None:
    blob = compress(codec, PAYLOAD)
    assert decompress(codec, memoryview(blob), MAX) == PAYLOAD
    assert decompress(codec, bytearray(blob), MAX) == PAYLOAD
    # A view into a larger buffer, as the broker holds batches inside a request frame.
    framed = b"\x00" * 7 + blob + b"\xff" * 5
    assert decompress(codec, memoryview(framed)[7 : 7 + len(blob)], MAX) == PAYLOAD


@settings(max_examples=60, deadline=None)
@given(codec=st.sampled_from(CODECS), payload=st.binary(max_size=200_000))
def test_round_trip_property(codec: Codec, payload: bytes) -> None:
    assert decompress(codec, compress(codec, payload), len(payload)) == payload


# --- what the clients write -----------------------------------------------------------------------


def test_reads_kafka_python_xerial_snappy() -> None:
    blob = kafka_codec.snappy_encode(PAYLOAD, xerial_compatible=True)
    assert blob.startswith(XERIAL_MAGIC)
    assert is_xerial_snappy(blob)
    assert decompress(Codec.SNAPPY, blob, MAX) == PAYLOAD


def test_reads_aiokafka_xerial_snappy() -> None:
    blob = aiokafka_codec.snappy_encode(PAYLOAD, xerial_compatible=True)
    assert decompress(Codec.SNAPPY, blob, MAX) == PAYLOAD


def test_reads_raw_snappy_as_librdkafka_writes_it() -> None:
    blob = kafka_codec.snappy_encode(PAYLOAD, xerial_compatible=False)
    assert not is_xerial_snappy(blob)
    assert decompress(Codec.SNAPPY, blob, MAX) == PAYLOAD


def test_our_snappy_is_xerial_by_default_and_clients_read_it() -> None:
    blob = compress(Codec.SNAPPY, PAYLOAD)
    magic, version, compat = struct.unpack_from(">8sii", blob)
    assert (magic, version, compat) == (XERIAL_MAGIC, 1, 1)
    # Blocks of at most 32 KiB of input, each prefixed by its compressed length.
    pos, blocks = 16, 0
    while pos < len(blob):
        (n,) = struct.unpack_from(">i", blob, pos)
        assert cramjam.snappy.decompress_raw_len(blob[pos + 4 : pos + 4 + n]) <= 32 * 1024
        pos += 4 + n
        blocks += 1
    assert pos == len(blob)
    assert blocks == -(-len(PAYLOAD) // (32 * 1024))
    assert kafka_codec.snappy_decode(blob) == PAYLOAD
    assert aiokafka_codec.snappy_decode(blob) == PAYLOAD
    raw = compress(Codec.SNAPPY, PAYLOAD, snappy_xerial=False)
    assert kafka_codec.snappy_decode(raw) == PAYLOAD


def test_lz4_frame_flags_match_kafka() -> None:
    blob = compress(Codec.LZ4, PAYLOAD)
    assert blob[:4] == b"\x04\x22\x4d\x18"
    flg, bd = blob[4], blob[5]
    assert flg >> 6 == 1  # version 1
    assert flg & 0x20  # independent blocks: Kafka's Lz4BlockInputStream rejects linked blocks
    assert not flg & 0x10  # no block checksum
    assert not flg & 0x08  # no content size
    assert not flg & 0x04  # no content checksum
    assert (bd >> 4) & 0x7 == 4  # 64 KiB blocks
    assert kafka_codec.lz4_decode(blob) == PAYLOAD
    assert aiokafka_codec.lz4_decode(blob) == PAYLOAD


@pytest.mark.parametrize(
    "writer",
    [
        lambda p: kafka_codec.lz4_encode(p),
        lambda p: aiokafka_codec.lz4_encode(p),
        lambda p: lz4.frame.compress(p, block_linked=True, content_checksum=True, store_size=True),
        lambda p: lz4.frame.compress(p, block_checksum=True, block_size=lz4.frame.BLOCKSIZE_MAX4MB),
    ],
)
def test_reads_other_lz4_frames(writer) -> None:
    assert decompress(Codec.LZ4, writer(PAYLOAD), MAX) == PAYLOAD


def test_reads_client_gzip_and_concatenated_members() -> None:
    assert decompress(Codec.GZIP, kafka_codec.gzip_encode(PAYLOAD), MAX) == PAYLOAD
    assert decompress(Codec.GZIP, gzip.compress(b"abc") + gzip.compress(b"def"), MAX) == b"abcdef"
    assert gzip.decompress(compress(Codec.GZIP, PAYLOAD)) == PAYLOAD


def test_reads_zstd_with_and_without_content_size_and_several_frames() -> None:
    with_size = zstandard.ZstdCompressor().compress(PAYLOAD)
    without = zstandard.ZstdCompressor(write_content_size=False).compress(PAYLOAD)
    streamed = zstandard.ZstdCompressor().compressobj()
    streamed_blob = streamed.compress(PAYLOAD) + streamed.flush()
    for blob in (with_size, without, streamed_blob, kafka_codec.zstd_encode(PAYLOAD)):
        assert decompress(Codec.ZSTD, blob, MAX) == PAYLOAD
    assert decompress(Codec.ZSTD, without + with_size, MAX) == PAYLOAD * 2
    assert kafka_codec.zstd_decode(compress(Codec.ZSTD, PAYLOAD)) == PAYLOAD


# --- bounded decoding -----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_exact_limit_is_allowed_one_less_is_not(codec: Codec) -> None:
    blob = compress(codec, PAYLOAD)
    assert decompress(codec, blob, len(PAYLOAD)) == PAYLOAD
    with pytest.raises(DecompressedSizeExceeded):
        decompress(codec, blob, len(PAYLOAD) - 1)


@pytest.mark.parametrize("codec", COMPRESSED)
def test_decompression_bomb_is_refused(codec: Codec) -> None:
    bomb = compress(codec, bytes(200 * 1024 * 1024))  # 200 MiB of zeros in a small input
    assert len(bomb) * 20 < 200 * 1024 * 1024  # snappy tops out near 21:1, the others far higher
    with pytest.raises(DecompressedSizeExceeded):
        decompress(codec, bomb, 1024 * 1024)


def test_zstd_bomb_without_content_size_is_refused_early() -> None:
    cctx = zstandard.ZstdCompressor(write_content_size=False)
    bomb = cctx.compress(bytes(100 * 1024 * 1024))
    with pytest.raises(DecompressedSizeExceeded):
        decompress(Codec.ZSTD, bomb, 10_000)


def test_raw_snappy_declared_length_is_checked_before_allocating() -> None:
    # A raw snappy block that claims 2**31 bytes: refused from the header alone.
    claim = bytes([0x80, 0x80, 0x80, 0x80, 0x08]) + b"\x00"
    with pytest.raises(DecompressedSizeExceeded):
        decompress(Codec.SNAPPY, claim, 1 << 20)


# --- malformed input ------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", COMPRESSED)
def test_truncated_input_is_corrupt(codec: Codec) -> None:
    blob = compress(codec, PAYLOAD)
    for cut in (0, 1, len(blob) // 2, len(blob) - 1):
        with pytest.raises(CorruptCompressedData):
            decompress(codec, blob[:cut], MAX)


@pytest.mark.parametrize("codec", COMPRESSED)
def test_garbage_is_corrupt(codec: Codec) -> None:
    with pytest.raises(CorruptCompressedData):
        decompress(codec, b"\x00\x01\x02 definitely not compressed data \xff" * 3, MAX)


def test_truncated_xerial_block() -> None:
    blob = compress(Codec.SNAPPY, PAYLOAD)
    with pytest.raises(CorruptCompressedData):
        decompress(Codec.SNAPPY, blob[:18], MAX)
    bad_len = blob[:16] + struct.pack(">i", -5) + blob[20:]
    with pytest.raises(CorruptCompressedData):
        decompress(Codec.SNAPPY, bad_len, MAX)


@pytest.mark.parametrize("codec", [5, 6, 7, -1])
def test_unknown_codec(codec: int) -> None:
    with pytest.raises(CorruptCompressedData):
        decompress(codec, b"abc", MAX)
    with pytest.raises(CorruptCompressedData):
        compress(codec, b"abc")


@settings(max_examples=300, deadline=None)
@given(codec=st.sampled_from(COMPRESSED), data=st.data())
def test_fuzz_only_invalid_record_batch_escapes(codec: Codec, data) -> None:
    blob = bytearray(compress(codec, PAYLOAD[:3000]))
    mode = data.draw(st.sampled_from(["flip", "cut", "random"]))
    if mode == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= data.draw(st.integers(1, 255))
    elif mode == "cut":
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    else:
        blob = bytearray(data.draw(st.binary(max_size=300)))
        if data.draw(st.booleans()) and codec == Codec.SNAPPY:
            blob = bytearray(XERIAL_MAGIC + b"\x00\x00\x00\x01\x00\x00\x00\x01") + blob
    try:
        out = decompress(codec, bytes(blob), 10_000)
    except InvalidRecordBatch:
        return
    assert len(out) <= 10_000


@pytest.mark.parametrize("codec", COMPRESSED)
def test_a_generous_limit_is_not_allocated_up_front(codec: Codec) -> None:
    import tracemalloc

    blob = compress(codec, b"small payload " * 10)
    tracemalloc.start()
    try:
        assert decompress(codec, blob, 1 << 30) == b"small payload " * 10
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
