"""Reading the wire's primitives: varints, length-prefixed strings and bytes, arrays, tagged fields.

Reading works on a ``memoryview`` of the received bytes and an integer position: every reader
takes ``(buf, pos)`` and returns ``(value, new_pos)``.  Readers validate every length against
the bytes actually present *before* allocating anything, so a hostile length prefix can never
make the codec allocate more than it received.  Helpers raise :class:`ProtocolError` themselves
for the cases they detect; a short buffer inside a ``struct.unpack_from`` or an index past the end
surfaces as ``struct.error``/``IndexError``, which :func:`decode_guard` (used by every public
``decode``/``read`` entry point) turns into :class:`ProtocolError`.  The generated message modules
(``protocol/messages/``) call these functions.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

from kbroker_protocol.exceptions import ProtocolError

I16 = struct.Struct(">h")
I32 = struct.Struct(">i")

# Errors that mean "the input is malformed" when raised from inside a generated reader.
DECODE_ERRORS = (struct.error, IndexError, UnicodeDecodeError, ValueError, OverflowError)


class Reader:
    """A position in a buffer being decoded (``buf`` is a byte ``memoryview``)."""

    __slots__ = ("buf", "pos")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self.buf = as_view(data)
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.buf) - self.pos


def as_view(data: Any) -> memoryview:
    """A flat unsigned-byte memoryview over ``data`` (no copy)."""
    mv = memoryview(data)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


def decode_guard(exc: BaseException) -> ProtocolError:
    """Translate a low-level decoding failure into a :class:`ProtocolError`."""
    if isinstance(exc, ProtocolError):
        return exc
    if isinstance(exc, struct.error | IndexError):
        return ProtocolError("message truncated")
    if isinstance(exc, UnicodeDecodeError):
        return ProtocolError("invalid UTF-8 in string")
    return ProtocolError(f"malformed message: {exc}")


def short() -> ProtocolError:
    return ProtocolError("length points past the end of the buffer")


def bad_length(n: int) -> ProtocolError:
    if n == -1:
        return ProtocolError("null where the field is not nullable")
    return ProtocolError(f"invalid length {n}")


def array_too_long(n: int, left: int) -> ProtocolError:
    return ProtocolError(f"array of {n} elements exceeds the {left} bytes left")


def read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Unsigned varint of at most 5 bytes (a 32-bit value); unrolled for speed.  Raises
    :class:`ProtocolError` when too long or cut short (safe to call outside a decoder)."""
    try:
        b = buf[pos]
        if b < 0x80:
            return b, pos + 1
        value = b & 0x7F
        b = buf[pos + 1]
        if b < 0x80:
            return value | (b << 7), pos + 2
        value |= (b & 0x7F) << 7
        b = buf[pos + 2]
        if b < 0x80:
            return value | (b << 14), pos + 3
        value |= (b & 0x7F) << 14
        b = buf[pos + 3]
        if b < 0x80:
            return value | (b << 21), pos + 4
        value |= (b & 0x7F) << 21
        b = buf[pos + 4]
    except IndexError:
        raise ProtocolError("varint cut short") from None
    if b < 0x80:
        value |= b << 28
        if value > 0xFFFFFFFF:
            raise ProtocolError("unsigned varint overflows 32 bits")
        return value, pos + 5
    raise ProtocolError("unsigned varint longer than 5 bytes")


def read_uvarlong(buf: memoryview, pos: int) -> tuple[int, int]:
    """Unsigned varint of at most 10 bytes (a 64-bit value)."""
    value = 0
    shift = 0
    for i in range(10):
        if pos + i >= len(buf):
            raise ProtocolError("varint cut short")
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if value > 0xFFFFFFFFFFFFFFFF:
                raise ProtocolError("unsigned varlong overflows 64 bits")
            return value, pos + i + 1
        shift += 7
    raise ProtocolError("unsigned varlong longer than 10 bytes")


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Zigzag-encoded signed 32-bit varint."""
    v, pos = read_uvarint(buf, pos)
    return (v >> 1) ^ -(v & 1), pos


def read_varlong(buf: memoryview, pos: int) -> tuple[int, int]:
    """Zigzag-encoded signed 64-bit varint."""
    v, pos = read_uvarlong(buf, pos)
    return (v >> 1) ^ -(v & 1), pos


def _len16(buf: memoryview, pos: int, nullable: bool) -> tuple[int, int]:
    n = I16.unpack_from(buf, pos)[0]
    pos += 2
    if n < 0:
        if n == -1 and nullable:
            return -1, pos
        raise ProtocolError(f"invalid length {n}")
    if n > len(buf) - pos:
        raise short()
    return n, pos


def _len32(buf: memoryview, pos: int, nullable: bool) -> tuple[int, int]:
    n = I32.unpack_from(buf, pos)[0]
    pos += 4
    if n < 0:
        if n == -1 and nullable:
            return -1, pos
        raise ProtocolError(f"invalid length {n}")
    if n > len(buf) - pos:
        raise short()
    return n, pos


def _len_compact(buf: memoryview, pos: int, nullable: bool) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        n = b - 1
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
        n -= 1
    if n < 0:
        if nullable:
            return -1, pos
        raise ProtocolError("null where the field is not nullable")
    if n > len(buf) - pos:
        raise short()
    return n, pos


def read_string(buf: memoryview, pos: int) -> tuple[str, int]:
    n, pos = _len16(buf, pos, False)
    end = pos + n
    return str(buf[pos:end], "utf-8"), end


def read_nullable_string(buf: memoryview, pos: int) -> tuple[str | None, int]:
    n, pos = _len16(buf, pos, True)
    if n < 0:
        return None, pos
    end = pos + n
    return str(buf[pos:end], "utf-8"), end


def read_compact_string(buf: memoryview, pos: int) -> tuple[str, int]:
    n, pos = _len_compact(buf, pos, False)
    if n > 0x7FFF:
        raise ProtocolError(f"string length {n} exceeds 32767")
    end = pos + n
    return str(buf[pos:end], "utf-8"), end


def read_compact_nullable_string(buf: memoryview, pos: int) -> tuple[str | None, int]:
    n, pos = _len_compact(buf, pos, True)
    if n < 0:
        return None, pos
    if n > 0x7FFF:
        raise ProtocolError(f"string length {n} exceeds 32767")
    end = pos + n
    return str(buf[pos:end], "utf-8"), end


def read_bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    n, pos = _len32(buf, pos, False)
    end = pos + n
    return bytes(buf[pos:end]), end


def read_nullable_bytes(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    n, pos = _len32(buf, pos, True)
    if n < 0:
        return None, pos
    end = pos + n
    return bytes(buf[pos:end]), end


def read_compact_bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    n, pos = _len_compact(buf, pos, False)
    end = pos + n
    return bytes(buf[pos:end]), end


def read_compact_nullable_bytes(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    n, pos = _len_compact(buf, pos, True)
    if n < 0:
        return None, pos
    end = pos + n
    return bytes(buf[pos:end]), end


def read_records(buf: memoryview, pos: int, nullable: bool) -> tuple[memoryview | None, int]:
    """Record data (int32 length): a zero-copy slice of ``buf``."""
    n, pos = _len32(buf, pos, nullable)
    if n < 0:
        return None, pos
    end = pos + n
    return buf[pos:end], end


def read_compact_records(buf: memoryview, pos: int, nullable: bool) -> tuple[memoryview | None, int]:
    """Record data (compact length): a zero-copy slice of ``buf``."""
    n, pos = _len_compact(buf, pos, nullable)
    if n < 0:
        return None, pos
    end = pos + n
    return buf[pos:end], end


def read_uuid(buf: memoryview, pos: int) -> tuple[uuid.UUID, int]:
    end = pos + 16
    if end > len(buf):
        raise short()
    return uuid.UUID(bytes=bytes(buf[pos:end])), end


# The UUIDs decoded last, by their 16 bytes: a topic id comes back in request after request, and
# uuid.UUID's constructor is Python code of its own (checks, int.from_bytes, a setattr). UUIDs are
# immutable, so equal ones may be one object. Cleared when it holds _UUID_CACHE_SIZE of them.
_UUID_CACHE: dict[bytes, uuid.UUID] = {}
_UUID_CACHE_SIZE = 4096


def uuid_from_bytes(raw: bytes) -> uuid.UUID:
    found = _UUID_CACHE.get(raw)
    if found is None:
        found = uuid.UUID(bytes=raw)
        if len(_UUID_CACHE) >= _UUID_CACHE_SIZE:
            _UUID_CACHE.clear()
        _UUID_CACHE[raw] = found
    return found


def read_array_len(buf: memoryview, pos: int, nullable: bool, min_size: int = 1) -> tuple[int, int]:
    """int32 element count; -1 is null (when nullable).  Each element needs ``min_size`` bytes."""
    n = I32.unpack_from(buf, pos)[0]
    pos += 4
    if n < 0:
        if n == -1 and nullable:
            return -1, pos
        raise ProtocolError(f"invalid array length {n}")
    if n * min_size > len(buf) - pos:
        raise ProtocolError(f"array of {n} elements exceeds the {len(buf) - pos} bytes left")
    return n, pos


def read_compact_array_len(
    buf: memoryview, pos: int, nullable: bool, min_size: int = 1
) -> tuple[int, int]:
    """Compact (uvarint N+1) element count; 0 is null (when nullable)."""
    b = buf[pos]
    if b < 0x80:
        n = b - 1
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
        n -= 1
    if n < 0:
        if nullable:
            return -1, pos
        raise ProtocolError("null array where the field is not nullable")
    if n * min_size > len(buf) - pos:
        raise ProtocolError(f"array of {n} elements exceeds the {len(buf) - pos} bytes left")
    return n, pos


_ARRAY_FORMATS = {"b": 1, "h": 2, "H": 2, "i": 4, "I": 4, "q": 8, "d": 8, "?": 1}


def read_fixed_array(buf: memoryview, pos: int, n: int, code: str) -> tuple[list, int]:
    """``n`` fixed-width values (``code`` is a struct format character), length already checked
    against one byte per element; re-checked here against the real element width."""
    size = _ARRAY_FORMATS[code] * n
    if size > len(buf) - pos:
        raise short()
    return list(struct.unpack_from(f">{n}{code}", buf, pos)), pos + size


def read_uuid_array(buf: memoryview, pos: int, n: int) -> tuple[list, int]:
    size = 16 * n
    if size > len(buf) - pos:
        raise short()
    raw = bytes(buf[pos : pos + size])
    return [uuid.UUID(bytes=raw[i : i + 16]) for i in range(0, size, 16)], pos + size


def read_unknown_tags(buf: memoryview, pos: int) -> tuple[list[tuple[int, bytes]], int]:
    """A tagged-field section where no tag is known: keep every field as ``(tag, bytes)``."""
    count, pos = read_uvarint(buf, pos)
    if count * 2 > len(buf) - pos:
        raise ProtocolError("tagged field count exceeds the bytes left")
    out = []
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        end = pos + size
        if end > len(buf):
            raise short()
        out.append((tag, bytes(buf[pos:end])))
        pos = end
    return out, pos


def read_tag_header(buf: memoryview, pos: int) -> tuple[int, int, int]:
    """One tagged field's ``(tag, end, pos)``: the field's bytes are ``buf[pos:end]``."""
    tag, pos = read_uvarint(buf, pos)
    size, pos = read_uvarint(buf, pos)
    end = pos + size
    if end > len(buf):
        raise short()
    return tag, end, pos


def check_tag_count(buf: memoryview, pos: int, count: int) -> None:
    if count * 2 > len(buf) - pos:
        raise ProtocolError("tagged field count exceeds the bytes left")


def tag_overrun(tag: int) -> ProtocolError:
    return ProtocolError(f"tagged field {tag} overruns its declared size")
