"""Kafka's size-prefixed framing, sans-IO: bytes in, whole frames out.

Every Kafka request and response is ``size i32 | size bytes``. :class:`FrameDecoder` takes bytes as
they arrive from a socket and returns the complete frames, without the size prefix.

Guarantees, for a hostile peer:

- A negative size or one above ``max_frame_size`` raises :class:`FrameTooLargeError` as soon as
  the 4 prefix bytes are in, before anything is allocated for the body (Kafka's
  ``NetworkReceive`` does the same with ``socket.request.max.bytes``). The decoder then stays
  failed: the connection must be closed.
- Nothing is preallocated from a claimed size: a partial frame is held as the chunks received, so
  the bytes held never exceed ``max_frame_size + 4``, and a peer that claims 100 MB and sends 10
  bytes costs 10 bytes.

Performance, for the server's hot path:

- Frames wholly inside one ``feed`` are returned as ``memoryview`` slices of the fed object: no
  copy. They stay valid while that object is unchanged, so feed ``bytes`` (what
  ``asyncio.Protocol.data_received`` delivers), or do not reuse a mutable buffer while its frames
  are in use.
- A frame that spans feeds is accumulated in chunks of up to 64 KiB (small feeds are appended to
  the last chunk, large ones become their own chunk) and joined once, when complete, into one
  ``bytes``; so many tiny feeds cost O(n), not O(n²), and do not create an object per feed.
  A ``bytes`` feed of 64 KiB or more that lies wholly inside the frame is held as it is, not
  copied (``bytes`` cannot change; the object held is exactly the bytes held): a large request
  (a Produce of many partitions' batches, ~1 MiB, arrives in feeds of up to 256 KiB) is then
  copied once, by the join, instead of twice.
"""

from __future__ import annotations

import struct

from kbroker_protocol.exceptions import FrameTooLargeError

__all__ = ["FrameDecoder", "FrameTooLargeError", "encode_frame", "size_prefix"]

_SIZE = struct.Struct(">i")
_PREFIX = 4
_CHUNK_TARGET = 64 * 1024

Frame = memoryview | bytes


def size_prefix(size: int) -> bytes:
    """The 4-byte prefix of a frame of ``size`` bytes."""
    return _SIZE.pack(size)


def encode_frame(payload: bytes | bytearray | memoryview) -> bytes:
    """``payload`` with its size prefix (for tests and small messages; servers write the parts)."""
    return _SIZE.pack(len(payload)) + bytes(payload)


class FrameDecoder:
    """Split a byte stream into Kafka frames. Not thread-safe; one per connection."""

    __slots__ = ("max_frame_size", "_chunks", "_held", "_length", "_failed")

    def __init__(self, max_frame_size: int) -> None:
        if max_frame_size < 0:
            raise ValueError("max_frame_size must not be negative")
        self.max_frame_size = max_frame_size
        self._chunks: list[bytearray | memoryview] = []  # the current partial prefix or body
        self._held = 0  # bytes in _chunks
        self._length: int | None = None  # body size of the current frame, once its prefix is read
        self._failed: FrameTooLargeError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and held for an incomplete frame (its prefix included once read)."""
        return self._held + (_PREFIX if self._length is not None else 0)

    @property
    def expected(self) -> int | None:
        """Body size of the frame being received, if its prefix has arrived."""
        return self._length

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Take the next bytes of the stream; return the frames they complete, in order."""
        if self._failed is not None:
            raise self._failed
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        frames: list[Frame] = []
        pos = 0
        end = len(view)
        while True:
            if self._length is None:
                if self._held:  # complete a prefix split across feeds
                    need = _PREFIX - self._held
                    if end - pos < need:
                        self._hold(view[pos:end])
                        return frames
                    prefix = bytes(self._chunks[0]) + bytes(view[pos : pos + need])
                    self._clear()
                    pos += need
                    (length,) = _SIZE.unpack(prefix)
                else:
                    if end - pos < _PREFIX:
                        if pos < end:
                            self._hold(view[pos:end])
                        return frames
                    (length,) = _SIZE.unpack_from(view, pos)
                    pos += _PREFIX
                if length < 0 or length > self.max_frame_size:
                    self._clear()
                    self._failed = FrameTooLargeError(
                        f"frame size {length} is outside 0..{self.max_frame_size}"
                    )
                    raise self._failed
                self._length = length
            need = self._length - self._held
            if end - pos < need:
                if pos == 0 and end >= _CHUNK_TARGET and type(data) is bytes:
                    self._chunks.append(view)  # a whole immutable feed inside the frame: no copy
                    self._held += end
                elif pos < end:
                    self._hold(view[pos:end])
                return frames
            if self._held:
                self._chunks.append(view[pos : pos + need])  # type: ignore[arg-type]
                frames.append(b"".join(self._chunks))
                self._clear()
            else:
                frames.append(view[pos : pos + need])
            pos += need
            self._length = None

    def _hold(self, piece: memoryview) -> None:
        chunks = self._chunks
        last = chunks[-1] if chunks else None
        if type(last) is bytearray and len(last) < _CHUNK_TARGET:
            last += piece
        else:
            chunks.append(bytearray(piece))
        self._held += len(piece)

    def _clear(self) -> None:
        self._chunks = []
        self._held = 0
