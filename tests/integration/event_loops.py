"""The event loops a connection test runs on: uvloop (the loop kbroker runs on, kbroker/__main__.py)
and asyncio's own, and the wait for a reset to reach both ends of a server's stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvloop
from waiting import turns_until

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


async def reset_seen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Until the stream has read the peer's reset and its transport is closing (uvloop raises on a
    write from then on; asyncio drops it)."""
    await turns_until(lambda: reader.at_eof() or reader.exception() is not None, "the reset seen")
    await turns_until(writer.is_closing, "the transport closing")
