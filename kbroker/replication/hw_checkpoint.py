"""The high watermarks of a log directory's partitions: Kafka's ``replication-offset-checkpoint``.

A replicated partition's high watermark is not its log end: the leader learns it from the ISR's
fetches and a follower from the leader. It is written to each log directory every
``replica.high.watermark.checkpoint.interval.ms`` and at shut-down, and read when the partition is
opened, so that a restarted broker does not show consumers records the ISR never had (recovery
alone would put the high watermark at the log end).

The file is Kafka's checkpoint text format (``OffsetCheckpointFile``)::

    0               version
    2               number of entries
    my-topic 0 42   topic partition high-watermark
    my-topic 1 17

written atomically (temporary file, fsync, rename). A damaged file is ignored with a warning (the
partitions then keep the high watermark recovery gave them), as is a missing one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

FILE = "replication-offset-checkpoint"
VERSION = 0


def format_checkpoint(entries: dict[tuple[str, int], int]) -> bytes:
    lines = [str(VERSION), str(len(entries))]
    lines += [f"{topic} {partition} {offset}" for (topic, partition), offset in sorted(entries.items())]
    return ("\n".join(lines) + "\n").encode()


def parse_checkpoint(data: bytes) -> dict[tuple[str, int], int]:
    """The entries of a checkpoint file; ValueError when it is not one."""
    lines = data.decode("utf-8").splitlines()
    if len(lines) < 2 or lines[0].strip() != str(VERSION):
        raise ValueError(f"unknown checkpoint version line {lines[0]!r}" if lines else "empty checkpoint")
    count = int(lines[1])
    body = lines[2:]
    if count < 0 or len(body) != count:
        raise ValueError(f"{count} entries expected, {len(body)} found")
    out: dict[tuple[str, int], int] = {}
    for line in body:
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"malformed entry {line!r}")
        out[(fields[0], int(fields[1]))] = int(fields[2])
    return out


def read(log_dir: Path) -> dict[tuple[str, int], int] | None:
    """The checkpoint of ``log_dir``; None when it has none (or an unreadable one)."""
    path = log_dir / FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read %s: %s; high watermarks start from the log", path, exc)
        return None
    try:
        return parse_checkpoint(data)
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("ignoring the damaged %s: %s; high watermarks start from the log", path, exc)
        return None


def write(log_dir: Path, entries: dict[tuple[str, int], int]) -> None:
    path = log_dir / FILE
    tmp = log_dir / (FILE + ".tmp")
    with open(tmp, "wb") as f:
        f.write(format_checkpoint(entries))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
