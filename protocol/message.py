"""The base class of every generated message (:class:`Message`: decode, encode, equality, repr)
and the values its fields hold beyond plain scalars: the ``records`` types, the ``DEFAULT``
sentinel of a fresh list or struct, the zero UUID."""

from __future__ import annotations

import struct
import uuid
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeAlias

from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.wire_read import DECODE_ERRORS, Reader, as_view, decode_guard
from kbroker_protocol.wire_write import Writer

ZERO_UUID = uuid.UUID(int=0)

_BYTES_LIKE = (bytes, bytearray, memoryview)

# Errors a generated writer raises for a value the wire cannot carry.
_ENCODE_ERRORS = (struct.error, AttributeError, TypeError, OverflowError)


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


class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<default>"


DEFAULT: Any = _Default()
"""Sentinel for constructor arguments whose default is a fresh list or struct."""


def _lazy_default(self: Any, name: str) -> Any:
    """``__getattr__`` of a message class with lazy struct defaults (``_LAZY_DEFAULTS``): only
    reached when a slot is unset (decoders leave such a field unset when the input does not
    carry it), the default is built and stored on first access."""
    factory = type(self)._LAZY_DEFAULTS.get(name)
    if factory is None:
        raise AttributeError(f"{type(self).__qualname__!r} object has no attribute {name!r}")
    value = factory()
    object.__setattr__(self, name, value)
    return value


if TYPE_CHECKING:  # (the type checker sees plain classes: a message class is a type[Message])
    _MessageType = type
else:

    class _MessageType(type):
        """The generated modules give a class its ``_LAZY_DEFAULTS`` after defining it; only then does
        the class get a ``__getattr__`` (:func:`_lazy_default`). A class with a ``__getattr__`` loses
        the interpreter's fast attribute loads (every read of a field, in the codec and the handlers,
        looks the type up three times over), so the classes without lazy fields, most of them, have none."""

        def __setattr__(cls, name: str, value: Any) -> None:
            super().__setattr__(name, value)
            if name == "_LAZY_DEFAULTS" and value and "__getattr__" not in cls.__dict__:
                super().__setattr__("__getattr__", _lazy_default)


class Message(metaclass=_MessageType):
    """Behaviour shared by every generated struct class.

    Subclasses define ``__slots__``, ``_FIELDS`` (attribute names in spec order), ``API_KEY``,
    ``MIN_VERSION``, ``MAX_VERSION``, ``FLEXIBLE_MIN_VERSION`` and the per-version function
    tables ``_READERS`` (``(buf, pos) -> (obj, pos)``) and ``_WRITERS`` (``(obj, writer)``).
    A class with struct fields whose default decoders leave unset gets ``_LAZY_DEFAULTS`` (field
    name -> struct class), and with it a ``__getattr__`` building the default on first access.
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
        except DECODE_ERRORS as exc:
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
        except DECODE_ERRORS as exc:
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
