"""An append-only history of operations, one JSON object a line.

Each operation is ``{"index", "time", "process", "type", "f", ...}``: ``type`` is ``invoke``, ``ok``,
``fail`` (definitely did not happen) or ``info`` (indeterminate, or an event such as a fault or a
rebalance); ``f`` is ``send``, ``poll``, ``commit``, ``assign``, ``kill``, ``start``, ``pause``, ...
``time`` is seconds since the history began (monotonic clock). A send carries ``value`` and
``partition`` (and ``offset`` once acknowledged); a poll carries ``values``: ``[[partition, offset,
value], ...]``; a commit carries ``partition`` and ``offset``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

Op = dict[str, Any]
TYPES = ("invoke", "ok", "fail", "info")


class History:
    """Thread-safe recorder: every ``record`` is appended (and flushed) to the file at once."""

    def __init__(self, path: Path | str | None = None) -> None:
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._index = 0
        self.ops: list[Op] = []
        self._file: TextIO | None = open(path, "w", encoding="utf-8") if path else None  # noqa: SIM115

    def now(self) -> float:
        return time.monotonic() - self._t0

    def record(self, process: str, type_: str, f: str, **fields: Any) -> Op:
        if type_ not in TYPES:
            raise ValueError(f"unknown operation type {type_!r}")
        with self._lock:
            op: Op = {"index": self._index, "time": round(self.now(), 6), "process": process, "type": type_,
                      "f": f, **fields}
            self._index += 1
            self.ops.append(op)
            if self._file is not None:
                self._file.write(json.dumps(op, separators=(",", ":")) + "\n")
                self._file.flush()
        return op

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def load(path: Path | str) -> list[Op]:
    """Read a history file; a malformed line is an error naming its line number."""
    return list(parse(Path(path).read_text(encoding="utf-8").splitlines()))


def parse(lines: Iterable[str]) -> Iterator[Op]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            op = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"history line {number}: not JSON ({exc})") from exc
        if not isinstance(op, dict) or op.get("type") not in TYPES or "process" not in op or "f" not in op:
            raise ValueError(f"history line {number}: not an operation: {line[:200]}")
        yield op
