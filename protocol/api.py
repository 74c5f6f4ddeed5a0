"""Request/response framing on top of the generated message classes.

Frames here exclude the 4-byte size prefix.  A request frame is ``RequestHeader`` + body; a
response frame is ``ResponseHeader`` + body.  Header versions follow Kafka's rules:

* requests use header v2 when the request version is flexible, else v1; the one exception is
  ControlledShutdown v0 (header v0, no client id) -- that API has no valid versions left in
  Kafka 4.x, but the rule is kept so the table is Kafka's;
* responses use header v1 when the response version is flexible, else v0, except ApiVersions,
  whose response always uses header v0 (a client cannot know the broker's flexible versions
  before it has read this response).

Trailing bytes after a request body are ignored, as Kafka does (it parses the struct it expects
and does not check for leftovers).
"""

from __future__ import annotations

import struct
from typing import Any

from kbroker_protocol.exceptions import ProtocolError, UnsupportedVersionError
from kbroker_protocol.message import Message
from kbroker_protocol.messages import (
    REQUESTS,
    RESOLVED_REQUESTS,
    RESOLVED_RESPONSES,
    RESPONSES,
    RequestHeader,
    ResponseHeader,
)
from kbroker_protocol.wire_read import DECODE_ERRORS, as_view, decode_guard
from kbroker_protocol.wire_write import Writer

__all__ = [
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "request_header_version",
    "response_header_version",
]

API_VERSIONS = 18
CONTROLLED_SHUTDOWN = 7

_KEY_VERSION = struct.Struct(">hh")
_I32 = struct.Struct(">i")


def _is_flexible(cls: type[Message], version: int) -> bool:
    flex = cls.FLEXIBLE_MIN_VERSION
    return flex is not None and version >= flex


def request_header_version(api_key: int, api_version: int) -> int:
    """Header version (0, 1 or 2) of a request with this key and version."""
    cls = RESOLVED_REQUESTS.get(api_key) or REQUESTS.get(api_key)
    if cls is None:
        if api_key == CONTROLLED_SHUTDOWN and api_version == 0:
            return 0
        raise UnsupportedVersionError(api_key, api_version)
    if api_key == CONTROLLED_SHUTDOWN and api_version == 0:
        return 0
    return 2 if _is_flexible(cls, api_version) else 1


def response_header_version(api_key: int, api_version: int) -> int:
    """Header version (0 or 1) of a response with this key and version."""
    if api_key == API_VERSIONS:
        return 0
    cls = RESOLVED_RESPONSES.get(api_key) or RESPONSES.get(api_key)
    if cls is None:
        raise UnsupportedVersionError(api_key, api_version)
    return 1 if _is_flexible(cls, api_version) else 0


def _response_header_version(cls: Any, api_key: int, api_version: int) -> int:
    """:func:`response_header_version` for a response class already looked up."""
    if api_key == API_VERSIONS:
        return 0
    flex = cls.FLEXIBLE_MIN_VERSION
    return 1 if flex is not None and api_version >= flex else 0


def _unsupported(buf: memoryview, api_key: int, api_version: int) -> UnsupportedVersionError:
    """The error for an unknown key/version, carrying as much of the header as decodes."""
    err = UnsupportedVersionError(api_key, api_version)
    err.header = None
    err.correlation_id = _I32.unpack_from(buf, 4)[0] if len(buf) >= 8 else None
    cls = REQUESTS.get(api_key)
    header_version = 2 if cls is not None and _is_flexible(cls, api_version) else 1
    try:
        err.header, _pos = RequestHeader._READERS[header_version](buf, 0)
    except DECODE_ERRORS:
        pass
    return err


def unsupported_request(frame: bytes | bytearray | memoryview) -> UnsupportedVersionError:
    """The error :func:`decode_request` raises for an unknown version, for a frame whose version the
    codec knows but the caller does not serve (at least 8 bytes: key, version, correlation id)."""
    buf = as_view(frame)
    api_key, api_version = _KEY_VERSION.unpack_from(buf, 0)
    return _unsupported(buf, api_key, api_version)


def decode_request(frame: bytes | bytearray | memoryview) -> tuple[RequestHeader, Message]:
    """Decode a request frame (without its size prefix) into ``(RequestHeader, body)``.

    Raises :class:`UnsupportedVersionError` (with ``.correlation_id`` and ``.header`` set when
    they could be decoded, else ``None``) for an unknown API key or version, and
    :class:`ProtocolError` for malformed bytes.  ``records`` fields in the body are zero-copy
    slices of ``frame``: while they live, a ``bytearray`` frame cannot be resized.
    """
    buf = as_view(frame)
    if len(buf) < 8:
        raise ProtocolError(f"request frame of {len(buf)} bytes is shorter than a request header")
    api_key, api_version = _KEY_VERSION.unpack_from(buf, 0)
    # The hot path: a plain dict hit (REQUESTS imports a message module on a key's first use).
    cls: Any = RESOLVED_REQUESTS.get(api_key) or REQUESTS.get(api_key)
    if cls is None or not (cls.MIN_VERSION <= api_version <= cls.MAX_VERSION):
        raise _unsupported(buf, api_key, api_version)
    flex = cls.FLEXIBLE_MIN_VERSION
    header_version = 2 if flex is not None and api_version >= flex else 1
    return _decode(buf, RequestHeader._READERS[header_version], cls._READERS[api_version])


def decode_response(
    frame: bytes | bytearray | memoryview, api_key: int, api_version: int
) -> tuple[ResponseHeader, Message]:
    """Decode a response frame (without its size prefix) into ``(ResponseHeader, body)``."""
    cls: Any = RESOLVED_RESPONSES.get(api_key) or RESPONSES.get(api_key)
    if cls is None or not (cls.MIN_VERSION <= api_version <= cls.MAX_VERSION):
        raise UnsupportedVersionError(api_key, api_version)
    header_reader = ResponseHeader._READERS[_response_header_version(cls, api_key, api_version)]
    return _decode(as_view(frame), header_reader, cls._READERS[api_version])


def _decode(buf: memoryview, header_reader: Any, body_reader: Any) -> tuple[Any, Any]:
    """A header then a body from ``buf``; any decoding failure becomes a :class:`ProtocolError`."""
    try:
        header, pos = header_reader(buf, 0)
        body, _pos = body_reader(buf, pos)
    except ProtocolError:
        raise
    except DECODE_ERRORS as exc:
        raise decode_guard(exc) from None
    return header, body


def encode_response(correlation_id: int, api_key: int, api_version: int, body: Message) -> list[Any]:
    """Response header + body as parts (``bytes`` and external records objects), without the
    4-byte size prefix.  The total size is ``sum(len(p) for p in parts)``."""
    w = Writer()
    w.buf += _I32.pack(correlation_id)
    cls = RESOLVED_RESPONSES.get(api_key) or RESPONSES.get(api_key)
    if cls is None:
        raise UnsupportedVersionError(api_key, api_version)
    if _response_header_version(cls, api_key, api_version) >= 1:
        w.buf.append(0)  # empty tagged-field section
    body.encode_into(w, api_version)
    return w.parts()


def encode_request(header: RequestHeader, body: Message) -> bytes:
    """Request header + body as bytes, without the 4-byte size prefix."""
    w = Writer()
    header.encode_into(w, request_header_version(header.request_api_key, header.request_api_version))
    body.encode_into(w, header.request_api_version)
    return w.getvalue()
