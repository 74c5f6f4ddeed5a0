"""Wire primitives: varints, lengths, the Writer's parts."""

from __future__ import annotations

import pytest

from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.wire_read import (
    read_compact_array_len,
    read_nullable_string,
    read_string,
    read_uvarint,
    read_uvarlong,
    read_varint,
    read_varlong,
)
from kbroker_protocol.wire_write import (
    Writer,
    write_compact_records,
    write_compact_string,
    write_records,
    write_uvarint,
    write_varint,
    write_varlong,
)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2**32 - 1, b"\xff\xff\xff\xff\x0f"),
    ],
)
def test_uvarint_bytes(value, encoded):
    out = bytearray()
    write_uvarint(out, value)
    assert bytes(out) == encoded
    assert read_uvarint(memoryview(encoded + b"\x99"), 0) == (value, len(encoded))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80", b"\xff\xff\xff\xff", b"\xff\xff\xff\xff\x10", b"\xff\xff\xff\xff\xff\x01"],
)
def test_bad_uvarints_are_protocol_errors(data):
    with pytest.raises(ProtocolError):
        read_uvarint(memoryview(data), 0)


def test_varlong_limit_is_ten_bytes():
    out = bytearray()
    write_uvarint(out, 2**64 - 1)
    assert read_uvarlong(bytes(out), 0) == (2**64 - 1, 10)
    with pytest.raises(ProtocolError):
        read_uvarlong(b"\xff" * 10 + b"\x01", 0)


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 2**31 - 1, -(2**31)])
def test_zigzag_varints(value):
    out = bytearray()
    write_varint(out, value)
    assert read_varint(bytes(out), 0) == (value, len(out))
    out = bytearray()
    write_varlong(out, value * 2**32)
    assert read_varlong(bytes(out), 0)[0] == value * 2**32


def test_zigzag_maps_small_negatives_to_small_codes():
    out = bytearray()
    for value in (0, -1, 1, -2):
        write_varint(out, value)
    assert bytes(out) == b"\x00\x01\x02\x03"


def test_strings_lengths_and_nulls():
    assert read_string(memoryview(b"\x00\x02hi"), 0) == ("hi", 4)
    assert read_nullable_string(memoryview(b"\xff\xff"), 0) == (None, 2)
    for bad in (b"\xff\xff", b"\xff\xfe", b"\x00\x05hi", b"\x00\x01\xff"):
        with pytest.raises((ProtocolError, UnicodeDecodeError)):
            read_string(memoryview(bad), 0)
    out = bytearray()
    write_compact_string(out, "é")
    assert bytes(out) == b"\x03\xc3\xa9"


def test_compact_array_count_is_checked_against_bytes_left():
    assert read_compact_array_len(memoryview(b"\x03ab"), 0, False) == (2, 1)
    assert read_compact_array_len(memoryview(b"\x00"), 0, True) == (-1, 1)
    with pytest.raises(ProtocolError):
        read_compact_array_len(memoryview(b"\x04ab"), 0, False)
    with pytest.raises(ProtocolError):
        read_compact_array_len(memoryview(b"\x03ab"), 0, False, 2)  # 2 elements of >= 2 bytes
    with pytest.raises(ProtocolError):
        read_compact_array_len(memoryview(b"\x00"), 0, False)


class External:
    def __len__(self) -> int:
        return 5


def test_writer_parts_keep_external_objects_and_large_bytes_uncopied():
    w = Writer()
    big = b"x" * 4096
    ext = External()
    w.write(b"head")
    write_records(w, ext)
    write_compact_records(w, big)
    write_records(w, b"small")
    parts = w.parts()
    assert parts[0] == b"head\x00\x00\x00\x05" and parts[1] is ext
    assert parts[2] == b"\x81\x20" and parts[3] is big  # uvarint(4097)
    assert parts[4] == b"\x00\x00\x00\x05small"
    assert len(w) == sum(len(p) for p in parts)
    with pytest.raises(TypeError):
        w.getvalue()
    w2 = Writer()
    write_compact_records(w2, big)
    write_records(w2, None)
    assert w2.getvalue() == b"\x81\x20" + big + b"\xff\xff\xff\xff"
    with pytest.raises(ValueError):
        write_records(Writer(), None, nullable=False)
