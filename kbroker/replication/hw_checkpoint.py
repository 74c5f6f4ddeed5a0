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
partitions then keep the high watermark recovery gave them), as is a missing one. The replica
manager restores and writes them through :class:`HighWatermarkCheckpoints`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kbroker.log import dir_failure

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.replication.partition import Partition

log = logging.getLogger(__name__)
_manager_log = logging.getLogger("kbroker.replication.replica_manager")  # (the name these messages always had)

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


class CheckpointHost(Protocol):
    """What the checkpoints read of the broker: the config and the local partitions."""

    config: BrokerConfig
    partitions: dict[tuple[str, int], Partition]


class HighWatermarkCheckpoints:
    """The checkpoint half of the replica manager: a replicated partition's high watermark restored
    when it is opened, and every log directory's checkpoint written when it changed, every
    ``replica.high.watermark.checkpoint.interval.ms`` (in a worker thread) and at shut-down."""

    broker: CheckpointHost
    _closed: bool

    def _init_checkpoints(self) -> None:
        self._checkpoints: dict[Path, dict[tuple[str, int], int] | None] = {}  # log dir -> entries read
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        self._checkpoint_task: asyncio.Future[None] | None = None
        self._written: dict[Path, dict[tuple[str, int], int]] = {}
        self._checkpoint_lock = threading.Lock()

    def _restore_high_watermark(self, partition: Partition, replicas: int) -> None:
        """A replicated partition (``replicas`` > 1) starts from its checkpointed high watermark
        (0 when its log directory's checkpoint does not list it, as Kafka); one replica is its own
        ISR and starts at its log end. Without a checkpoint file the log's own value stays."""
        if replicas <= 1:
            return
        log_dir = Path(partition.log.directory).parent
        if log_dir not in self._checkpoints:
            self._checkpoints[log_dir] = read(log_dir)
        entries = self._checkpoints[log_dir]
        if entries is not None:
            partition.log.high_watermark = entries.get((partition.topic, partition.index), 0)

    def _ensure_checkpoint_timer(self) -> None:
        if self._checkpoint_timer is not None or self._closed:
            return
        interval = self.broker.config["replica.high.watermark.checkpoint.interval.ms"] / 1000
        self._checkpoint_timer = asyncio.get_running_loop().call_later(interval, self._checkpoint_tick)

    def _checkpoint_tick(self) -> None:
        self._checkpoint_timer = None
        if self._closed:
            return
        if self._checkpoint_task is None or self._checkpoint_task.done():
            changed = self._changed_checkpoints()
            if changed:
                loop = asyncio.get_running_loop()
                self._checkpoint_task = loop.run_in_executor(None, self._write_checkpoints, changed)
        self._ensure_checkpoint_timer()

    def _changed_checkpoints(self) -> dict[Path, dict[tuple[str, int], int]]:
        by_dir: dict[Path, dict[tuple[str, int], int]] = {}
        for partition in list(self.broker.partitions.values()):
            plog = partition.log
            by_dir.setdefault(Path(plog.directory).parent, {})[(partition.topic, partition.index)] = \
                plog.high_watermark
        changed = {d: e for d, e in by_dir.items() if self._written.get(d) != e}
        self._written.update(changed)
        return changed

    def _write_checkpoints(self, changed: dict[Path, dict[tuple[str, int], int]]) -> None:
        with self._checkpoint_lock:  # the periodic write (a worker thread) and the last one at stop
            self._write_checkpoints_locked(changed)

    def _write_checkpoints_locked(self, changed: dict[Path, dict[tuple[str, int], int]]) -> None:
        for log_dir, entries in changed.items():
            try:
                write(log_dir, entries)
            except OSError as exc:
                _manager_log.error("cannot write the high watermark checkpoint of %s: %s", log_dir, exc)
                self._written.pop(log_dir, None)
                # as Kafka: a checkpoint that cannot be written fails its log dir
                dir_failure.report(Path(log_dir), "writing the high watermark checkpoint", exc)

    def checkpoint_high_watermarks(self) -> None:
        """Write the high watermark checkpoints now (shut-down)."""
        self._write_checkpoints(self._changed_checkpoints())
