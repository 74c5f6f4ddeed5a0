"""What the operator commands (``kbroker.opcli``) share: argument parsing, the leaders of a
topic, tables and progress on the terminal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import IO

from kbroker.console.client import KafkaClient, KafkaError
from kbroker_protocol.compression import Codec
from kbroker_protocol.errors import ErrorCode, is_retriable

COMMANDS = ("topic", "produce", "consume", "group", "completion")
ENV_BOOTSTRAP = "KBROKER_BOOTSTRAP_SERVER"
BATCH_RECORDS = 1000
BATCH_BYTES = 512 * 1024
CODECS = {"none": Codec.NONE, "gzip": Codec.GZIP, "snappy": Codec.SNAPPY, "lz4": Codec.LZ4, "zstd": Codec.ZSTD}


class UsageError(Exception):
    """Bad arguments (exit status 2)."""


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; the first of a comma-separated list."""
    first = text.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--bootstrap-server: expected host:port, got {text!r}")
    return host.strip("[]"), int(port)


def parse_pairs(items: list[str], what: str, sep: str = "=") -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key:
            raise UsageError(f"{what}: expected key{sep}value, got {item!r}")
        out.append((key, value))
    return out


async def leaders_of(client: KafkaClient, topic: str, wait: float = 15.0) -> dict[int, int]:
    """partition -> leader, waiting (bounded) while the topic's leaders are being elected: right
    after a create, a cluster answers LEADER_NOT_AVAILABLE or leader -1 for a moment."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            found = await client.leaders(topic)
            if all(leader >= 0 for leader in found.values()) or loop.time() >= deadline:
                return found
        except KafkaError as exc:
            # An unknown topic gets a short grace (a create still reaching this broker), others the wait.
            unknown = exc.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            if not is_retriable(exc.error_code) or loop.time() >= (deadline - wait + 2.0 if unknown else deadline):
                raise
        await asyncio.sleep(0.1)


# -- output -----------------------------------------------------------------------------------


def table(rows: Sequence[Sequence[object]], headers: list[str], out: IO[str]) -> None:
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


class Progress:
    """Counts written to stderr at most once a second while a long operation runs (on a terminal,
    or always with ``--progress``), and a final line."""

    def __init__(self, what: str, enabled: bool, err: IO[str]) -> None:
        self.what, self.enabled, self.err = what, enabled, err
        self.count = 0
        self.started = self.last = time.monotonic()

    def add(self, n: int) -> None:
        self.count += n
        now = time.monotonic()
        if self.enabled and now - self.last >= 1.0:
            self.last = now
            self.err.write(f"{self.what} {self.count} records ({self.count / (now - self.started):.0f}/s)\n")
            self.err.flush()

    def done(self) -> None:
        if self.enabled:
            self.err.write(f"{self.what} {self.count} records in {time.monotonic() - self.started:.1f} s\n")
