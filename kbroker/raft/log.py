"""The replicated log a ``RaftNode`` writes: an abstract interface and an in-memory implementation.

Kafka's counterpart is ``ReplicatedLog`` (``KafkaMetadataLog`` on disk). Offsets start at 0 (snapshots,
which move the log start, are a later step). A log has a durable prefix ``[0, flushed_end)`` and an
unflushed tail ``[flushed_end, end_offset)``; ``flush`` makes the tail durable and a crash loses it.
Truncation is durable at once.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of the log: the leader epoch it was appended in and its value.

    ``control`` marks a control record (the ``LeaderChangeMessage`` a new leader appends at the start
    of its epoch); its value is then the leader id.
    """

    epoch: int
    value: Any
    control: bool = False


class RaftLog(abc.ABC):
    @property
    @abc.abstractmethod
    def end_offset(self) -> int: ...

    @property
    @abc.abstractmethod
    def flushed_end(self) -> int:
        """The end of the durable prefix (``<= end_offset``)."""

    @abc.abstractmethod
    def entry(self, offset: int) -> Entry: ...

    @abc.abstractmethod
    def read(self, start: int, max_entries: int) -> tuple[Entry, ...]: ...

    @abc.abstractmethod
    def append(self, entries: Sequence[Entry]) -> None:
        """Append at ``end_offset``; epochs never decrease along the log."""

    @abc.abstractmethod
    def truncate_to(self, offset: int) -> None:
        """Drop every entry at ``offset`` and beyond (durably)."""

    @abc.abstractmethod
    def flush(self) -> None: ...

    @abc.abstractmethod
    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """``(e, end)`` for the largest epoch ``e <= epoch`` present in the log, ``end`` being the offset
        after its last entry; ``(-1, 0)`` when there is none (Kafka's ``endOffsetForEpoch``)."""

    @property
    def last_epoch(self) -> int:
        end = self.end_offset
        return self.entry(end - 1).epoch if end else 0

    def epoch_at(self, offset: int) -> int:
        """Epoch of the entry before ``offset`` (the ``last_fetched_epoch`` of a fetch at ``offset``);
        0 at offset 0, as Kafka sends for an empty log."""
        return self.entry(offset - 1).epoch if offset > 0 else 0


class MemoryLog(RaftLog):
    """A log held in memory with a simulated durable prefix (``crash`` drops the unflushed tail)."""

    __slots__ = ("_entries", "_flushed", "_epochs")

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._flushed = 0
        # (epoch, start offset) for each epoch present, ascending
        self._epochs: list[tuple[int, int]] = []

    @property
    def end_offset(self) -> int:
        return len(self._entries)

    @property
    def flushed_end(self) -> int:
        return self._flushed

    def entry(self, offset: int) -> Entry:
        if not 0 <= offset < len(self._entries):
            raise IndexError(f"offset {offset} outside the log [0, {len(self._entries)})")
        return self._entries[offset]

    def read(self, start: int, max_entries: int) -> tuple[Entry, ...]:
        if not 0 <= start <= len(self._entries):
            raise IndexError(f"read at {start} outside the log [0, {len(self._entries)}]")
        return tuple(self._entries[start : start + max_entries])

    def append(self, entries: Sequence[Entry]) -> None:
        for e in entries:
            last = self._epochs[-1][0] if self._epochs else -1
            if e.epoch < last:
                raise ValueError(f"append of epoch {e.epoch} after epoch {last}")
            if e.epoch > last:
                self._epochs.append((e.epoch, len(self._entries)))
            self._entries.append(e)

    def truncate_to(self, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"negative truncation offset {offset}")
        if offset >= len(self._entries):
            return
        del self._entries[offset:]
        while self._epochs and self._epochs[-1][1] >= offset:
            self._epochs.pop()
        self._flushed = min(self._flushed, offset)

    def flush(self) -> None:
        self._flushed = len(self._entries)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        epochs = self._epochs
        for i in range(len(epochs) - 1, -1, -1):
            e, _start = epochs[i]
            if e <= epoch:
                end = epochs[i + 1][1] if i + 1 < len(epochs) else len(self._entries)
                return e, end
        return -1, 0

    @property
    def last_epoch(self) -> int:
        return self._epochs[-1][0] if self._epochs else 0

    def crash(self) -> None:
        """Simulate a process crash: everything after the durable prefix is lost."""
        self.truncate_to(self._flushed)

    def entries(self) -> list[Entry]:
        return list(self._entries)
