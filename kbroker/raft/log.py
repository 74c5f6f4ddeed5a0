"""The replicated log a ``RaftNode`` writes: an abstract interface and an in-memory implementation.

Kafka's counterpart is ``ReplicatedLog`` (``KafkaMetadataLog`` on disk). The log holds the entries
``[start_offset, end_offset)``; what comes before ``start_offset`` is in the latest snapshot
(``Snapshot``: the state machine's state after the entries ``[0, end_offset)``, whose last one has
epoch ``epoch``). A log has a durable part ``[start_offset, flushed_end)`` and an unflushed tail
``[flushed_end, end_offset)``; ``flush`` makes the tail durable and a crash loses it. Truncation,
snapshots and their installation are durable at once.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of the log: the leader epoch it was appended in and its value.

    ``control`` marks a control record (the ``LeaderChangeMessage`` a new leader appends at the start
    of its epoch); its value is then the leader id (a ``LeaderChange`` when the voters are known).

    ``batch_end`` is False for every entry of a proposal but its last (Kafka's record batch): a
    proposal is atomic, so committed entries are delivered, and snapshots taken, only up to an
    entry whose ``batch_end`` is True. It is not part of an entry's equality (a log read back from
    disk or the wire may merge several whole proposals into one batch).
    """

    epoch: int
    value: Any
    control: bool = False
    batch_end: bool = field(default=True, compare=False)


@dataclass(frozen=True, slots=True)
class ControlRecord:
    """The value of a control entry other than the ``LeaderChangeMessage`` (``KRaftVersionRecord``,
    ``VotersRecord``): its type (``ControlType``) and raw value; ``key_version`` is the key's version
    (0). The Raft core carries it unchanged."""

    type: int
    value: bytes
    key_version: int = 0


class LeaderChange(int):
    """The value of a ``LeaderChangeMessage`` entry: the new leader's id (an ``int``, compared as
    one, so an entry read back without the lists below is the same entry) with the voters of the
    epoch and the voters that granted the election (Kafka's ``LeaderChangeMessage.Voters`` and
    ``GrantingVoters``, written by ``LeaderState.appendStartOfEpochControlRecords``)."""

    voters: tuple[int, ...]
    granting: tuple[int, ...]

    def __new__(cls, leader_id: int, voters: Iterable[int] = (), granting: Iterable[int] = ()) -> LeaderChange:
        value = super().__new__(cls, leader_id)
        value.voters = tuple(sorted(voters))
        value.granting = tuple(sorted(granting))
        return value

    def __repr__(self) -> str:
        return f"LeaderChange({int(self)}, voters={self.voters}, granting={self.granting})"

    def __str__(self) -> str:  # the leader id, as the int it stands for
        return int.__repr__(self)

    def __reduce__(self) -> tuple[type[LeaderChange], tuple[int, tuple[int, ...], tuple[int, ...]]]:
        return LeaderChange, (int(self), self.voters, self.granting)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state after the entries ``[0, end_offset)``; ``epoch`` is the epoch of the last one
    (Kafka's snapshot id ``OffsetAndEpoch``). ``data`` is the state machine's, opaque here."""

    end_offset: int
    epoch: int
    data: Any = None

    @property
    def snapshot_id(self) -> tuple[int, int]:
        return self.end_offset, self.epoch


class RaftLog(abc.ABC):
    @property
    @abc.abstractmethod
    def start_offset(self) -> int:
        """The first offset in the log (the end offset of the latest snapshot, else 0)."""

    @property
    @abc.abstractmethod
    def end_offset(self) -> int: ...

    @property
    @abc.abstractmethod
    def flushed_end(self) -> int:
        """The end of the durable part (``start_offset <= flushed_end <= end_offset``)."""

    @property
    @abc.abstractmethod
    def snapshot(self) -> Snapshot | None:
        """The latest snapshot, if any."""

    @abc.abstractmethod
    def entry(self, offset: int) -> Entry: ...

    @abc.abstractmethod
    def read(self, start: int, max_entries: int) -> tuple[Entry, ...]: ...

    @abc.abstractmethod
    def append(self, entries: Sequence[Entry]) -> None:
        """Append at ``end_offset``; epochs never decrease along the log."""

    @abc.abstractmethod
    def truncate_to(self, offset: int) -> None:
        """Drop every entry at ``offset`` and beyond (durably); never below ``start_offset``."""

    @abc.abstractmethod
    def flush(self) -> None: ...

    @abc.abstractmethod
    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """``(e, end)`` for the largest epoch ``e <= epoch`` present in the log (the snapshot's epoch
        counts, ending at the start offset when no entry follows in it), ``end`` being the offset
        after its last entry; ``(-1, start_offset)`` when there is none (Kafka's
        ``endOffsetForEpoch``)."""

    @abc.abstractmethod
    def take_snapshot(self, end_offset: int, data: Any) -> Snapshot:
        """Record a snapshot of the state after ``[0, end_offset)`` and drop the entries it covers
        (``start_offset`` becomes ``end_offset``); durable at once."""

    @abc.abstractmethod
    def install_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log by ``snapshot`` (a follower that fetched it from the leader): the
        log becomes empty at ``snapshot.end_offset``; durable at once."""

    @property
    @abc.abstractmethod
    def last_epoch(self) -> int:
        """Epoch of the last entry (or of the snapshot when the log is empty after it; 0 if none)."""

    def epoch_at(self, offset: int) -> int:
        """Epoch of the entry before ``offset`` (the ``last_fetched_epoch`` of a fetch at ``offset``):
        the snapshot's epoch at the start offset, 0 at offset 0 as Kafka sends for an empty log."""
        if offset == self.start_offset:
            snap = self.snapshot
            return snap.epoch if snap is not None and offset > 0 else 0
        return self.entry(offset - 1).epoch


class MemoryLog(RaftLog):
    """A log held in memory with a simulated durable part (``crash`` drops the unflushed tail)."""

    __slots__ = ("_entries", "_start", "_flushed", "_epochs", "_snapshot")

    def __init__(self) -> None:
        self._entries: list[Entry] = []  # offsets start_offset, start_offset + 1, ...
        self._start = 0
        self._flushed = 0
        # (epoch, first offset) for each epoch present, ascending; after a snapshot the first pair
        # is (snapshot epoch, start offset)
        self._epochs: list[tuple[int, int]] = []
        self._snapshot: Snapshot | None = None

    @property
    def start_offset(self) -> int:
        return self._start

    @property
    def end_offset(self) -> int:
        return self._start + len(self._entries)

    @property
    def flushed_end(self) -> int:
        return self._flushed

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def entry(self, offset: int) -> Entry:
        i = offset - self._start
        if not 0 <= i < len(self._entries):
            raise IndexError(f"offset {offset} outside the log [{self._start}, {self.end_offset})")
        return self._entries[i]

    def read(self, start: int, max_entries: int) -> tuple[Entry, ...]:
        i = start - self._start
        if not 0 <= i <= len(self._entries):
            raise IndexError(f"read at {start} outside the log [{self._start}, {self.end_offset}]")
        return tuple(self._entries[i : i + max_entries])

    def append(self, entries: Sequence[Entry]) -> None:
        for e in entries:
            last = self._epochs[-1][0] if self._epochs else -1
            if e.epoch < last:
                raise ValueError(f"append of epoch {e.epoch} after epoch {last}")
            if e.epoch > last:
                self._epochs.append((e.epoch, self.end_offset))
            self._entries.append(e)

    def truncate_to(self, offset: int) -> None:
        if offset < self._start:
            raise ValueError(f"truncation to {offset}, below the log start {self._start}")
        if offset >= self.end_offset:
            return
        del self._entries[offset - self._start :]
        keep_first = self._snapshot is not None
        while self._epochs and self._epochs[-1][1] >= offset and not (keep_first and len(self._epochs) == 1):
            self._epochs.pop()
        self._flushed = min(self._flushed, offset)

    def flush(self) -> None:
        self._flushed = self.end_offset

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        epochs = self._epochs
        for i in range(len(epochs) - 1, -1, -1):
            e, _first = epochs[i]
            if e <= epoch:
                end = epochs[i + 1][1] if i + 1 < len(epochs) else self.end_offset
                return e, end
        return -1, self._start

    @property
    def last_epoch(self) -> int:
        return self._epochs[-1][0] if self._epochs else 0

    def take_snapshot(self, end_offset: int, data: Any) -> Snapshot:
        if not self._start < end_offset <= self._flushed:
            raise ValueError(
                f"snapshot at {end_offset} outside the durable log ({self._start}, {self._flushed}]"
            )
        snap = Snapshot(end_offset, self.entry(end_offset - 1).epoch, data)
        del self._entries[: end_offset - self._start]
        self._start = end_offset
        # the snapshot's epoch "covers" the start offset (an empty range when a new epoch starts
        # right there), so that end_offset_for_epoch answers for it
        self._epochs = [(snap.epoch, end_offset)] + [(e, f) for e, f in self._epochs if f >= end_offset]
        self._snapshot = snap
        return snap

    def install_snapshot(self, snapshot: Snapshot) -> None:
        self._entries = []
        self._start = self._flushed = snapshot.end_offset
        self._epochs = [(snapshot.epoch, snapshot.end_offset)]
        self._snapshot = snapshot

    def crash(self) -> None:
        """Simulate a process crash: everything after the durable part is lost."""
        self.truncate_to(self._flushed)

    def entries(self) -> list[Entry]:
        return list(self._entries)
