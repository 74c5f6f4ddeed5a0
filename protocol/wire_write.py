"""Writing the wire's primitives: the :class:`Writer`, varints, length-prefixed strings, bytes and
records, tagged fields.

Writing appends to a :class:`Writer`, which keeps a current ``bytearray`` chunk (``Writer.buf``)
and a list of finished parts.  A ``records`` value that is not bytes-like (an "external" object
with ``__len__``, e.g. a file slice to be sent with ``os.sendfile``) is not copied: the writer
emits its length prefix, closes the current chunk and appends the object itself to the parts.
The generated message modules (``protocol/messages/``) call these functions.
"""

from __future__ import annotations

import struct
from typing import Any

I16 = struct.Struct(">h")
I32 = struct.Struct(">i")

_BYTES_LIKE = (bytes, bytearray, memoryview)

# ``bytes`` records at least this long are not copied into the current chunk: they become a
# part of their own (``Writer.parts()``), so a response is sent without copying its records.
ZERO_COPY_MIN = 1024
_NULL16 = b"\xff\xff"
_NULL32 = b"\xff\xff\xff\xff"


class Writer:
    """Accumulates encoded bytes; external records objects are kept as separate parts.

    ``buf`` is the current chunk.  It is never replaced (only cleared), so generated code may
    hold a local reference to it across nested writes.
    """

    __slots__ = ("buf", "_parts")

    def __init__(self) -> None:
        self.buf = bytearray()
        self._parts: list[Any] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.buf += data

    def append_external(self, obj: Any) -> None:
        """Close the current chunk and append ``obj`` (not copied) as its own part."""
        if self.buf:
            self._parts.append(bytes(self.buf))
            self.buf.clear()
        self._parts.append(obj)

    def parts(self) -> list[Any]:
        """The encoded message as chunks in order: ``bytes`` and external objects."""
        out = list(self._parts)
        if self.buf:
            out.append(bytes(self.buf))
        return out

    @property
    def has_external(self) -> bool:
        return bool(self._parts)

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts) + len(self.buf)

    def getvalue(self) -> bytes:
        """All parts joined; raises ``TypeError`` if an external object is present."""
        if not self._parts:
            return bytes(self.buf)
        for p in self._parts:
            if not isinstance(p, bytes):
                raise TypeError(
                    f"message holds an external records object ({type(p).__name__}); use parts()"
                )
        return b"".join([*self._parts, self.buf])


def write_uvarint(b: bytearray, n: int) -> None:
    if n < 0:
        raise ValueError(f"unsigned varint cannot be negative: {n}")
    while n >= 0x80:
        b.append((n & 0x7F) | 0x80)
        n >>= 7
    b.append(n)


def write_varint(b: bytearray, n: int) -> None:
    write_uvarint(b, ((n << 1) ^ (n >> 31)) & 0xFFFFFFFF)


def write_varlong(b: bytearray, n: int) -> None:
    write_uvarint(b, ((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF)


def _compact_len(b: bytearray, n: int) -> None:
    n += 1
    if n < 0x80:
        b.append(n)
    elif n < 0x200000:  # two or three bytes: record batches of up to 2 MB
        if n < 0x4000:
            b += bytes(((n & 0x7F) | 0x80, n >> 7))
        else:
            b += bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    else:
        write_uvarint(b, n)


def write_string(b: bytearray, s: str) -> None:
    e = s.encode()
    if len(e) > 0x7FFF:
        raise ValueError("string longer than 32767 bytes")
    b += I16.pack(len(e))
    b += e


def write_nullable_string(b: bytearray, s: str | None) -> None:
    if s is None:
        b += _NULL16
    else:
        write_string(b, s)


def write_compact_string(b: bytearray, s: str) -> None:
    e = s.encode()
    if len(e) > 0x7FFF:
        raise ValueError("string longer than 32767 bytes")
    _compact_len(b, len(e))
    b += e


def write_compact_nullable_string(b: bytearray, s: str | None) -> None:
    if s is None:
        b.append(0)
    else:
        write_compact_string(b, s)


def _nbytes(v: Any) -> int:
    return v.nbytes if isinstance(v, memoryview) else len(v)


def write_bytes(b: bytearray, v: bytes) -> None:
    b += I32.pack(_nbytes(v))
    b += v


def write_nullable_bytes(b: bytearray, v: bytes | None) -> None:
    if v is None:
        b += _NULL32
    else:
        b += I32.pack(_nbytes(v))
        b += v


def write_compact_bytes(b: bytearray, v: bytes) -> None:
    _compact_len(b, _nbytes(v))
    b += v


def write_compact_nullable_bytes(b: bytearray, v: bytes | None) -> None:
    if v is None:
        b.append(0)
    else:
        _compact_len(b, _nbytes(v))
        b += v


def _null_records() -> ValueError:
    return ValueError("records field is not nullable in this version")


def write_records(w: Writer, v: Any, nullable: bool = True) -> None:
    """Record data with an int32 length.  ``bytes`` of ``ZERO_COPY_MIN`` or more and any
    non-bytes-like object with ``__len__`` (an external records object) become parts of their
    own; other bytes-like values are copied into the current chunk."""
    b = w.buf
    if v is None:
        if not nullable:
            raise _null_records()
        b += _NULL32
    elif type(v) is bytes and len(v) >= ZERO_COPY_MIN:
        b += I32.pack(len(v))
        w.append_external(v)
    elif isinstance(v, _BYTES_LIKE):
        b += I32.pack(_nbytes(v))
        b += v
    else:
        b += I32.pack(len(v))
        w.append_external(v)


def write_compact_records(w: Writer, v: Any, nullable: bool = True) -> None:
    """Record data with a compact length (see :func:`write_records`)."""
    b = w.buf
    if v is None:
        if not nullable:
            raise _null_records()
        b.append(0)
    elif type(v) is bytes and len(v) >= ZERO_COPY_MIN:
        _compact_len(b, len(v))
        w.append_external(v)
    elif isinstance(v, _BYTES_LIKE):
        _compact_len(b, _nbytes(v))
        b += v
    else:
        _compact_len(b, len(v))
        w.append_external(v)


def write_tags(b: bytearray, known: list[tuple[int, bytes]], unknown: list[tuple[int, bytes]]) -> None:
    """A tagged-field section: known and unknown fields merged in ascending tag order."""
    fields = sorted(known + list(unknown), key=lambda t: t[0]) if unknown else known
    write_uvarint(b, len(fields))
    for tag, data in fields:
        write_uvarint(b, tag)
        write_uvarint(b, len(data))
        b += data


def write_unknown_tags(b: bytearray, unknown: list[tuple[int, bytes]]) -> None:
    write_tags(b, [], unknown)


def pack_array(code: str, values: list) -> bytes:
    """Fixed-width values packed back to back (``code`` is a struct format character)."""
    return struct.pack(f">{len(values)}{code}", *values)
