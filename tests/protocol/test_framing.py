"""FrameDecoder: chunking-independence, hostile sizes, bounded buffering, zero-copy fast path."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker_protocol.exceptions import FrameTooLargeError, ProtocolError
from kbroker_protocol.framing import FrameDecoder, encode_frame, size_prefix


def _stream(payloads: list[bytes]) -> bytes:
    return b"".join(encode_frame(p) for p in payloads)


def _feed_all(decoder: FrameDecoder, pieces) -> list[bytes]:
    out: list[bytes] = []
    for piece in pieces:
        out.extend(bytes(f) for f in decoder.feed(piece))
    return out


PAYLOADS = [b"", b"a", b"hello kafka", bytes(range(256)) * 40, b"\x00\x00\x00\x05"]


def test_whole_stream_in_one_feed() -> None:
    d = FrameDecoder(1 << 20)
    assert _feed_all(d, [_stream(PAYLOADS)]) == PAYLOADS
    assert d.buffered == 0


def test_byte_by_byte_equals_whole() -> None:
    stream = _stream(PAYLOADS)
    d = FrameDecoder(1 << 20)
    got = _feed_all(d, [stream[i : i + 1] for i in range(len(stream))])
    assert got == PAYLOADS
    assert d.buffered == 0


def test_buffered_counts_held_bytes() -> None:
    d = FrameDecoder(100)
    assert d.feed(b"\x00\x00") == []
    assert d.buffered == 2 and d.expected is None
    assert d.feed(b"\x00\x0aabc") == []
    assert d.buffered == 7 and d.expected == 10
    (frame,) = d.feed(b"defghij\x00")
    assert bytes(frame) == b"abcdefghij"
    assert d.buffered == 1


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=3000), max_size=12),
    cuts=st.lists(st.integers(0, 40_000), max_size=30),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_random_chunking_property(payloads: list[bytes], cuts: list[int], kind) -> None:
    stream = _stream(payloads)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    pieces = [kind(stream[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    d = FrameDecoder(4000)
    got = _feed_all(d, pieces)
    assert got == payloads
    assert d.buffered == 0


@settings(max_examples=100, deadline=None)
@given(payloads=st.lists(st.binary(max_size=500), min_size=1, max_size=5), data=st.data())
def test_partial_stream_holds_exactly_the_remainder(payloads: list[bytes], data) -> None:
    stream = _stream(payloads)
    cut = data.draw(st.integers(0, len(stream)))
    d = FrameDecoder(1000)
    got = _feed_all(d, [stream[:cut]])
    consumed = sum(4 + len(p) for p in got)
    assert got == payloads[: len(got)]
    assert d.buffered == cut - consumed
    assert d.buffered <= 1000 + 4


# --- hostile sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [-1, -(2**31), 101, 2**31 - 1])
def test_bad_size_raises_before_body(size: int) -> None:
    d = FrameDecoder(100)
    with pytest.raises(FrameTooLargeError):
        d.feed(struct.pack(">i", size))
    assert d.buffered == 0
    # The decoder stays failed: the connection is to be closed.
    with pytest.raises(FrameTooLargeError):
        d.feed(b"anything")


def test_bad_size_split_across_feeds_and_after_good_frames() -> None:
    d = FrameDecoder(100)
    assert [bytes(f) for f in d.feed(encode_frame(b"ok") + b"\xff\xff")] == [b"ok"]
    with pytest.raises(FrameTooLargeError):
        d.feed(b"\xff\xff")


def test_limit_is_inclusive_and_error_is_a_protocol_error() -> None:
    d = FrameDecoder(10)
    assert [bytes(f) for f in d.feed(encode_frame(b"x" * 10))] == [b"x" * 10]
    assert issubclass(FrameTooLargeError, ProtocolError)
    with pytest.raises(ProtocolError):
        FrameDecoder(10).feed(size_prefix(11))


def test_claimed_size_is_not_preallocated() -> None:
    d = FrameDecoder(100 * 1024 * 1024)
    tracemalloc.start()
    try:
        d.feed(size_prefix(100 * 1024 * 1024) + b"0123456789")
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert d.buffered == 14


def test_many_tiny_feeds_stay_linear_in_memory() -> None:
    size = 1 << 20
    d = FrameDecoder(size)
    d.feed(size_prefix(size))
    piece = b"z" * 7
    tracemalloc.start()
    try:
        for _ in range(size // 7):
            assert d.feed(piece) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Chunks of up to 64 KiB: held bytes plus small per-chunk overhead, not an object per feed.
    assert peak < 2 * size
    (frame,) = d.feed(b"z" * (size - (size // 7) * 7))
    assert isinstance(frame, bytes) and frame == b"z" * size


# --- zero copy ------------------------------------------------------------------------------------


def test_frames_inside_one_feed_are_views_of_the_input() -> None:
    data = _stream([b"first", b"second"])
    frames = FrameDecoder(100).feed(data)
    assert all(isinstance(f, memoryview) and f.obj is data for f in frames)
    assert [bytes(f) for f in frames] == [b"first", b"second"]


def test_zero_length_frame() -> None:
    (frame,) = FrameDecoder(0).feed(b"\x00\x00\x00\x00")
    assert bytes(frame) == b""


def test_negative_max_is_rejected() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(-1)


@settings(max_examples=300, deadline=None)
@given(blob=st.binary(max_size=200), step=st.integers(1, 50))
def test_fuzz_parses_or_raises_frame_error(blob: bytes, step: int) -> None:
    whole = FrameDecoder(64)
    chunked = FrameDecoder(64)
    try:
        expected = [bytes(f) for f in whole.feed(blob)]
        error = None
    except FrameTooLargeError as exc:
        expected, error = None, exc
    got: list[bytes] = []
    try:
        for i in range(0, len(blob), step):
            got.extend(bytes(f) for f in chunked.feed(blob[i : i + step]))
    except FrameTooLargeError:
        assert error is not None
        return
    assert error is None
    assert got == expected
    assert whole.buffered == chunked.buffered <= 64 + 4


def test_large_bytes_feeds_inside_a_frame_are_held_without_a_copy() -> None:
    size = 1 << 20
    payload = bytes(range(256)) * (size // 256)
    stream = encode_frame(payload) + encode_frame(b"next")
    cut = 100_000  # the first feed: the prefix and part of the body (copied: it starts mid-feed)
    pieces = [stream[:cut]] + [stream[i : i + 256 * 1024] for i in range(cut, len(stream), 256 * 1024)]
    d = FrameDecoder(size)
    assert d.feed(pieces[0]) == []
    tracemalloc.start()
    try:
        for piece in pieces[1:-1]:
            assert d.feed(piece) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024  # three feeds of 256 KiB held, none copied
    assert d.buffered == cut + 256 * 1024 * (len(pieces) - 2)
    frames = d.feed(pieces[-1])
    assert [bytes(f) for f in frames] == [payload, b"next"]


def test_a_mutable_feed_is_copied_when_held() -> None:
    size = 300_000
    payload = b"k" * size
    stream = encode_frame(payload)
    d = FrameDecoder(size)
    assert d.feed(stream[:10]) == []
    middle = bytearray(stream[10:200_000])
    assert d.feed(middle) == []
    middle[:] = b"\x00" * len(middle)  # the caller reuses its buffer
    assert d.feed(memoryview(stream[200_000:300_000])) == []
    (frame,) = d.feed(stream[300_000:])
    assert bytes(frame) == payload
