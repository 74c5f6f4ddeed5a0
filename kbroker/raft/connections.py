"""The Raft listener's and client's connections, below the transport (``kbroker/raft/transport.py``):
length-prefixed frames, an inbound connection's answers kept in request order, and whether an
answer has arrived on an outbound connection without being read yet."""

from __future__ import annotations

import asyncio
import select
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

ANONYMOUS = "User:ANONYMOUS"
_SIZE = struct.Struct(">i")


class InboundSession(Protocol):
    """An authenticated connection's SASL session (kbroker.security.inbound.InboundSession): its
    principal, and ``on_frame``, which sees each later frame first (True when it took it: a
    re-authentication, KIP-368)."""

    @property
    def principal(self) -> str: ...

    async def on_frame(self, reader: asyncio.StreamReader, frame: bytes,
                       respond: Callable[[int, bytes], None]) -> bool: ...


def answer_waiting(reader: asyncio.StreamReader | None, writer: asyncio.StreamWriter) -> bool:
    """Whether bytes of an answer have arrived and are not read yet: in the reader's buffer, or in
    the socket's receive queue."""
    buffered = getattr(reader, "_buffer", None)  # (StreamReader has no public way to ask)
    if buffered:
        return True
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
    except (OSError, ValueError):  # closed meanwhile
        return False
    return bool(readable)


class CloseConnection(Exception):
    """Something a peer sent ends its connection (logged; the node goes on)."""


@dataclass(eq=False, slots=True)
class Slot:
    """The place of one answer on an inbound connection: its correlation id, and its frame once made."""

    correlation_id: int
    frame: bytes | None = None


@dataclass(eq=False)
class Inbound:
    """An accepted connection and its answers, in request order."""

    writer: asyncio.StreamWriter
    slots: deque[Slot] = field(default_factory=deque)
    closed: bool = False
    principal: str = ANONYMOUS
    host: str = ""

    def add_slot(self, correlation_id: int) -> Slot:
        slot = Slot(correlation_id)
        self.slots.append(slot)
        return slot

    def fill(self, slot: Slot, frame: bytes) -> None:
        slot.frame = frame
        if self.closed:
            return
        if self.writer.transport.is_closing():
            # the connection broke (a reset closes the transport at once) before its task saw it:
            # nobody can read the answers any more (and uvloop raises on a write to it)
            self.closed = True
            self.slots.clear()
            return
        while self.slots and self.slots[0].frame is not None:
            frame_out = self.slots.popleft().frame
            assert frame_out is not None
            self.writer.write(frame_out)


def frame_of(payload: bytes | Sequence[Any]) -> bytes:
    if isinstance(payload, bytes):
        return _SIZE.pack(len(payload)) + payload
    data = b"".join(p if isinstance(p, bytes) else bytes(p) for p in payload)
    return _SIZE.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    size = _SIZE.unpack(await reader.readexactly(4))[0]
    if size < 0 or size > max_bytes:
        raise CloseConnection(f"frame of {size} bytes (limit {max_bytes})")
    return await reader.readexactly(size)
