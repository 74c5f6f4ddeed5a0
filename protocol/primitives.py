"""Wire primitives shared by the generated message modules.

Reading works on a ``memoryview`` of the received bytes and an integer position: every reader
takes ``(buf, pos)`` and returns ``(value, new_pos)``.  Readers validate every length against
the bytes actually present *before* allocating anything, so a hostile length prefix can never
make the codec allocate more than it received.  Helpers raise :class:`ProtocolError` themselves
for the cases they detect; a short buffer inside a ``struct.unpack_from`` or an index past the end
surfaces as ``struct.error``/``IndexError``, which :func:`decode_guard` (used by every public
``decode``/``read`` entry point) turns into :class:`ProtocolError`.

Writing appends to a :class:`Writer`, which keeps a current ``bytearray`` chunk (``Writer.buf``)
and a list of finished parts.  A ``records`` value that is not bytes-like (an "external" object
with ``__len__``, e.g. a file slice to be sent with ``os.sendfile``) is not copied: the writer
emits its length prefix, closes the current chunk and appends the object itself to the parts.
"""

from __future__ import annotations

import struct
import uuid
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeAlias

from kbroker_protocol.exceptions import ProtocolError

__all__ = [
    "Reader",
    "Writer",
    "ProtocolError",
    "ZERO_UUID",
    "decode_guard",
]

I8 = struct.Struct(">b")
I16 = struct.Struct(">h")
U16 = struct.Struct(">H")
I32 = struct.Struct(">i")
U32 = struct.Struct(">I")
I64 = struct.Struct(">q")
F64 = struct.Struct(">d")

ZERO_UUID = uuid.UUID(int=0)

_BYTES_LIKE = (bytes, bytearray, memoryview)


class ExternalRecords(Protocol):
    """A records value the writers leave uncopied (a part of its own in ``Writer.parts()``):
    the transport writes its ``len()`` bytes itself (e.g. a file slice sent with ``sendfile``)."""

    def __len__(self) -> int: ...


# The value of a ``records`` field: a decode gives a zero-copy memoryview slice of the input;
# an encode takes any bytes-like value or an external records object.
Records: TypeAlias = bytes | bytearray | memoryview | ExternalRecords


def received_records(value: Records | None) -> bytes | bytearray | memoryview | None:
    """A decoded message's ``records`` value, typed as what a decode gives (a zero-copy
    memoryview slice, or None); an external records object (only ever put there to be encoded)
    raises ``TypeError``."""
    if value is None or isinstance(value, _BYTES_LIKE):
        return value
    raise TypeError(f"records value is an external records object ({type(value).__name__}), not received bytes")

# ``bytes`` records at least this long are not copied into the current chunk: they become a
# part of their own (``Writer.parts()``), so a response is sent without copying its records.
ZERO_COPY_MIN = 1024
_NULL16 = b"\xff\xff"
_NULL32 = b"\xff\xff\xff\xff"

# Errors a generated writer raises for a value the wire cannot carry.
_ENCODE_ERRORS = (struct.error, AttributeError, TypeError, OverflowError)

# Errors that mean "the input is malformed" when raised from inside a generated reader.
_DECODE_ERRORS = (struct.error, IndexError, UnicodeDecodeError, ValueError, OverflowError)


# --------------------------------------------------------------------------------------------
# Reader side
# --------------------------------------------------------------------------------------------


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


DECODE_ERRORS = _DECODE_ERRORS


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


def uuid_from_bytes(raw: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=raw)


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


# --------------------------------------------------------------------------------------------
# Writer side
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Base class of generated messages
# --------------------------------------------------------------------------------------------


class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<default>"


DEFAULT: Any = _Default()
"""Sentinel for constructor arguments whose default is a fresh list or struct."""


class Message:
    """Behaviour shared by every generated struct class.

    Subclasses define ``__slots__``, ``_FIELDS`` (attribute names in spec order), ``API_KEY``,
    ``MIN_VERSION``, ``MAX_VERSION``, ``FLEXIBLE_MIN_VERSION`` and the per-version function
    tables ``_READERS`` (``(buf, pos) -> (obj, pos)``) and ``_WRITERS`` (``(obj, writer)``).
    """

    __slots__ = ()
    _LAZY_DEFAULTS: dict[str, type] = {}
    _FIELDS: tuple[str, ...] = ()
    _READERS: tuple = ()
    _WRITERS: tuple = ()
    API_KEY: int | None = None
    MIN_VERSION = 0
    MAX_VERSION = -1
    FLEXIBLE_MIN_VERSION: int | None = None

    if not TYPE_CHECKING:  # (hidden from the type checker: every field is declared by its class)

        def __getattr__(self, name: str) -> Any:
            # Only reached when a slot is unset: decoders leave struct fields at their (fresh
            # struct) default unset, and the default is built and stored on first access.
            factory = type(self)._LAZY_DEFAULTS.get(name)
            if factory is None:
                raise AttributeError(f"{type(self).__qualname__!r} object has no attribute {name!r}")
            value = factory()
            object.__setattr__(self, name, value)
            return value

    @classmethod
    def _check_version(cls, version: int, table: tuple) -> Any:
        if not (cls.MIN_VERSION <= version <= cls.MAX_VERSION) or table[version] is None:
            from kbroker_protocol.exceptions import UnsupportedVersionError

            raise UnsupportedVersionError(
                -1 if cls.API_KEY is None else cls.API_KEY,
                version,
                f"{cls.__qualname__} has no version {version}",
            )
        return table[version]

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, version: int) -> Self:
        """Decode ``data`` at ``version``.  Trailing bytes after the message are ignored, as Kafka
        does.  ``records`` fields come back as zero-copy memoryview slices of ``data``."""
        reader = cls._check_version(version, cls._READERS)
        buf = as_view(data)
        try:
            obj, _pos = reader(buf, 0)
        except ProtocolError:
            raise
        except _DECODE_ERRORS as exc:
            raise decode_guard(exc) from None
        return obj

    @classmethod
    def read(cls, reader: Reader, version: int) -> Self:
        """Decode one message at ``reader.pos`` and advance the reader past it."""
        fn = cls._check_version(version, cls._READERS)
        try:
            obj, reader.pos = fn(reader.buf, reader.pos)
        except ProtocolError:
            raise
        except _DECODE_ERRORS as exc:
            raise decode_guard(exc) from None
        return obj

    def encode_into(self, writer: Writer, version: int) -> None:
        """Append this message at ``version`` to ``writer``.  A value the wire cannot carry
        (None where not nullable, an out-of-range integer, a wrong type) raises ``ValueError``
        naming the message and version; fields absent from ``version`` are not written."""
        fn = self._check_version(version, self._WRITERS)
        try:
            fn(self, writer)
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {type(self).__qualname__} v{version}: {exc}") from exc

    def encode(self, version: int) -> bytes:
        w = Writer()
        self.encode_into(w, version)
        return w.getvalue()

    def encode_parts(self, version: int) -> list[Any]:
        """Encoded chunks in order: ``bytes``, and external records objects left uncopied."""
        w = Writer()
        self.encode_into(w, version)
        return w.parts()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for name in self._FIELDS:
            if getattr(self, name) != getattr(other, name):
                return False
        return self.unknown_tagged_fields == other.unknown_tagged_fields  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        items = [f"{name}={getattr(self, name)!r}" for name in self._FIELDS]
        unknown = self.unknown_tagged_fields  # type: ignore[attr-defined]
        if unknown:
            items.append(f"unknown_tagged_fields={unknown!r}")
        return f"{type(self).__qualname__}({', '.join(items)})"
