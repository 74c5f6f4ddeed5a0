"""The groups as of the last committed offset of ``__consumer_offsets`` (Kafka's timeline reads).

Kafka's describe and list operations (DescribeGroups, ListGroups, ConsumerGroupDescribe,
StreamsGroupDescribe, ShareGroupDescribe, OffsetFetch without RequireStable) are read operations
of its coordinator runtime: they read the timeline data structures at the partition's last
committed offset (its high watermark), so a group's state appended but not yet replicated is not
shown. kbroker's groups change in place when an operation's records are appended; what the reads
need is the state before the operations not yet replicated.

:class:`CommittedViews` keeps that as an undo log: the :class:`GroupSnapshot` an operation takes
before it runs (``MemberGroupManager._all_or_nothing`` takes it anyway, to revert a failed
append), kept with the end offset of the operation's records instead of being dropped, until the
partition's high watermark passes that offset. A read puts the group back as it was at the high
watermark (the pending snapshots, newest first, in place: the group's fields and the members the
operations changed), reads, and puts the live state back; nothing awaits in between, so no
operation sees the old state. The heartbeat path pays one list append per operation that writes
records (none for the steady heartbeats, which write nothing); only a read of a group with
unreplicated writes pays for the restore.

Classic groups are read live, as Kafka's: their state machine is not in timeline structures (the
snapshots of their operations carry no fields), only their removal is (a deleted group is shown
until its tombstone is replicated).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any, Protocol

from kbroker.coordinator.coordinator_writes import GroupSnapshot

_ABSENT = object()


class CommittedViews:
    """Per group, the snapshots of its operations whose records are not below the high watermark
    of its partition (``high_watermark(group_id)``: None when the partition is not here)."""

    def __init__(self, groups: MutableMapping[str, Any], high_watermark: Callable[[str], int | None]) -> None:
        self._groups = groups
        self._high_watermark = high_watermark
        self._pending: dict[str, list[tuple[int, GroupSnapshot]]] = {}
        # The pending groups in the order they became pending, swept a few at a time by note(): a
        # group that writes no more (a deleted one above all) has its replicated snapshots dropped
        # without waiting for a read of it.
        self._sweep: deque[str] = deque()

    def note(self, snapshot: GroupSnapshot, end_offset: int) -> None:
        """An operation on ``snapshot.group_id`` (the group as it was before it) appended records
        ending before ``end_offset``."""
        group_id = snapshot.group_id
        entries = self._live_entries(group_id)
        if entries is None:
            entries = self._pending[group_id] = []
            self._sweep.append(group_id)
        entries.append((end_offset, snapshot))
        self._sweep_some(2)

    def _sweep_some(self, count: int) -> None:
        """Drop the replicated snapshots of up to ``count`` groups, oldest pending first (two per
        note: the queue never outgrows the pending groups by more than the notes since)."""
        for _ in range(min(count, len(self._sweep))):
            group_id = self._sweep.popleft()
            if self._live_entries(group_id) is not None:
                self._sweep.append(group_id)

    def forget(self, group_id: str) -> None:
        """The group is unloaded (its partition led elsewhere)."""
        self._pending.pop(group_id, None)

    def forget_where(self, unloaded: Callable[[str], bool]) -> None:
        """Every group for which ``unloaded(group_id)`` holds is unloaded (removed ones included)."""
        for group_id in [g for g in self._pending if unloaded(g)]:
            del self._pending[group_id]

    def pending(self, group_id: str) -> bool:
        """Whether ``group_id`` has records above the high watermark."""
        return self._live_entries(group_id) is not None

    def _live_entries(self, group_id: str) -> list[tuple[int, GroupSnapshot]] | None:
        """The group's entries not yet replicated, the others dropped (None: none left)."""
        entries = self._pending.get(group_id)
        if entries is None:
            return None
        hw = self._high_watermark(group_id)
        if hw is None:
            del self._pending[group_id]
            return None
        drop = 0
        while drop < len(entries) and entries[drop][0] <= hw:
            drop += 1
        if drop:
            del entries[:drop]
        if not entries:
            del self._pending[group_id]
            return None
        return entries

    @contextlib.contextmanager
    def at_committed(self, group_ids: Iterable[str] | None = None) -> Iterator[None]:
        """Within the block, ``group_ids`` (every group when None) are as of their partition's high
        watermark; the live state is back after it. The block must not await."""
        ids = list(self._pending) if group_ids is None else [g for g in set(group_ids) if g in self._pending]
        restored: list[tuple[str, list[tuple[int, GroupSnapshot]]]] = []
        for group_id in ids:
            entries = self._live_entries(group_id)
            if entries is not None:
                restored.append((group_id, entries))
        if not restored:
            yield
            return
        saved = [self._save(group_id, entries) for group_id, entries in restored]
        try:
            for _group_id, entries in restored:
                for _, snapshot in reversed(entries):
                    snapshot.restore(self._groups)
            yield
        finally:
            for group_id, slot, states in saved:
                for obj, state in states:
                    current = vars(obj)
                    current.clear()
                    current.update(state)
                if slot is _ABSENT:
                    self._groups.pop(group_id, None)
                else:
                    self._groups[group_id] = slot

    def _save(self, group_id: str, entries: list[tuple[int, GroupSnapshot]]
              ) -> tuple[str, object, list[tuple[object, dict[str, Any]]]]:
        """The live state the restores will overwrite: the object under the id and the fields of
        every object a snapshot puts back (shallow: restores replace fields, never change the
        containers they hold)."""
        slot = self._groups.get(group_id, _ABSENT)
        touched: dict[int, object] = {}
        if slot is not _ABSENT:
            touched[id(slot)] = slot
        for _, snapshot in entries:
            if snapshot.group is not None and snapshot.fields is not None:
                touched[id(snapshot.group)] = snapshot.group
            for member, _state in snapshot.members:
                touched[id(member)] = member
        states = [(obj, dict(vars(obj))) for obj in touched.values() if hasattr(obj, "__dict__")]
        return group_id, slot, states


class ViewedGroups(Protocol):
    """A group coordinator as its readers see it: its committed views."""

    @property
    def views(self) -> CommittedViews: ...


def reading_committed(coordinator: ViewedGroups | None, group_ids: Iterable[str] | None = None
                      ) -> contextlib.AbstractContextManager[None]:
    """:meth:`CommittedViews.at_committed` of ``coordinator`` (nothing to do without one)."""
    if coordinator is None:
        return contextlib.nullcontext()
    return coordinator.views.at_committed(group_ids)
