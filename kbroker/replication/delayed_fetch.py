"""Kafka's DelayedFetch: a Fetch held until it can be answered (the long poll).

Kafka's ``ReplicaManager.fetchMessages`` answers a Fetch at once when it does not want to wait
(``MaxWaitMs`` 0), names no partition, already has ``MinBytes``, or a partition's read must be
answered now (an error, a diverging epoch, a preferred read replica): :func:`answers_at_once`.
Otherwise the fetch is a DelayedFetch in the fetch purgatory, completed when its ``tryComplete``
finds a reason to answer or when ``MaxWaitMs`` expires; on completion the partitions are read
again and the answer carries whatever is there.

A held fetch is a waiter on each partition it names (``Partition.add_waiter``; an append, a high
watermark, ISR or last stable offset that moves and a leadership change wake it). It is checked
at once on its first read (Kafka's ``tryCompleteElseWatch``), then each time it is woken on the
partitions read again through the handler's ``read`` callback (:class:`DelayedFetch`); the
reads decide what Kafka's cases decide:

- cases A-E (this broker no longer the leader or a replica of a partition, the partition
  unknown, its log dir offline, the request's leader epoch fenced): the read gives the partition
  an error, which completes the fetch;
- case F: the fetch offset past the end offset the fetch reads to (the log end for a follower,
  the high watermark or last stable offset for a consumer: a truncated leader, a consumer past
  the high watermark), or on an older segment than that end (a fetch behind, or a segment just
  rolled): :func:`fetch_progress` says so and the fetch completes at once, whatever its
  ``MinBytes`` (a throttled follower's older segment excepted);
- case G: the bytes between the fetch offset and the end offset when both are on one segment,
  at most the partition's ``PartitionMaxBytes`` each (:func:`fetch_progress`; a throttled
  follower's count nothing), accumulated over the partitions, reach ``MinBytes``;
- case H (a follower's log diverged while its fetch was held): the read gives a diverging epoch,
  which completes the fetch;
- the expiry: ``MaxWaitMs`` on a :class:`Deadline`; the broker shutting down answers at once.

A follower's held fetch also completes when the leader appends to a partition it does not name
(:mod:`kbroker.replication.parked_fetches`: the partition joins its session with the next fetch).
A consumer's long poll runs on the broker's manual clock when it has one (``kbroker.clock=manual``);
a follower's fetch (replication, not a client's timer) stays on real time.

The API layer (kbroker/api/fetch.py) reads the partitions, builds the response and hands both to
this module: what to read again and how to answer, nothing of the wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from kbroker.replication.deadline import Deadline, WaitClock
from kbroker.replication.parked_fetches import REFETCH, ParkedFollowerFetches

R = TypeVar("R")
T = TypeVar("T")


@dataclass(slots=True)
class FetchRead(Generic[R]):
    """One reading of a fetch's partitions: what the handler read (``reads``, opaque here), the
    bytes it found and whether a partition's answer completes the fetch now (an error, a
    diverging epoch, a preferred read replica; for a held fetch also Kafka's case F);
    ``available``: Kafka's case G count of the bytes a held fetch has (:func:`fetch_progress`
    over the partitions; None: ``size``)."""

    reads: R
    size: int
    complete: bool
    available: int | None = None


class SegmentPositions(Protocol):
    """What :func:`fetch_progress` needs of a partition's log."""

    def offset_position(self, offset: int) -> tuple[int, int]: ...  # (segment base offset, position)


def fetch_progress(log: SegmentPositions, fetch_offset: int, end_offset: int, max_bytes: int,
                   throttled: bool = False) -> int | None:
    """Kafka's ``DelayedFetch.tryComplete`` for one partition of a held fetch (cases F and G):
    None when the fetch completes now (case F: ``fetch_offset`` past ``end_offset``, the offset
    the fetch reads to, or on an older segment than it), else the bytes the partition counts
    toward ``MinBytes`` (case G: those between the two offsets when on one segment, at most
    ``max_bytes``, the partition's ``PartitionMaxBytes``). ``throttled``: a follower the leader
    throttles, whose partition neither completes the fetch on an older segment nor counts."""
    if fetch_offset > end_offset:
        return None  # a truncated leader, a consumer past the high watermark or last stable offset
    if fetch_offset == end_offset:
        # (the end on a segment just rolled and the fetch offset on the old one: not case F)
        return 0
    if throttled:
        return 0
    fetch_segment, fetch_position = log.offset_position(fetch_offset)
    end_segment, end_position = log.offset_position(end_offset)
    if fetch_segment < end_segment:
        return None  # fetching behind, or the log rolled a new segment
    if fetch_segment == end_segment:
        return min(end_position - fetch_position, max_bytes)
    return 0


class WatchedPartition(Protocol):
    """What a held fetch needs of a partition: to be woken when it changes."""

    def add_waiter(self, fut: asyncio.Future[None]) -> None: ...

    def remove_waiter(self, fut: asyncio.Future[None]) -> None: ...


def answers_at_once(size: int, complete: bool, min_bytes: int, max_wait_ms: int, partitions: int) -> bool:
    """Kafka's ``ReplicaManager.fetchMessages``: whether the first read (``size`` bytes;
    ``complete``: a partition's read completes the fetch) is the answer, or the fetch waits (no
    wait asked, no partition named, ``MinBytes`` there: answered)."""
    return max_wait_ms <= 0 or partitions == 0 or size >= min_bytes or complete


class DelayedFetch(Generic[R, T]):
    """A held fetch: :meth:`complete` waits until the partitions give ``min_bytes`` or a
    completing read, the deadline passes or the broker stops, then answers with ``respond``.

    ``partitions``: the (topic, partition) pairs to watch, looked up on each wait with ``lookup``
    (a partition this broker gains or loses meanwhile is watched, or not, from the next wait on);
    ``read``: reads all the fetch's partitions again; ``replica_id`` >= 0: a follower's fetch.
    """

    __slots__ = ("read", "respond", "partitions", "lookup", "min_bytes", "max_wait_ms", "clock", "replica_id",
                 "parked", "stopping")

    def __init__(self, read: Callable[[], FetchRead[R]], respond: Callable[[FetchRead[R]], T],
                 partitions: Sequence[tuple[str, int]], lookup: Callable[[str, int], WatchedPartition | None],
                 min_bytes: int, max_wait_ms: int, *, clock: WaitClock | None, stopping: Callable[[], bool],
                 replica_id: int = -1, parked: ParkedFollowerFetches | None = None) -> None:
        self.read = read
        self.respond = respond
        self.partitions = partitions
        self.lookup = lookup
        self.min_bytes = min_bytes
        self.max_wait_ms = max_wait_ms
        # a consumer's long poll ends on the broker's manual clock if it has one; a follower's
        # fetch stays on real time
        self.clock = clock if replica_id < 0 else None
        self.replica_id = replica_id
        # a follower's held fetch also answers when the leader appends to a partition it lacks
        self.parked = parked if replica_id >= 0 else None
        self.stopping = stopping

    def _watch(self) -> tuple[asyncio.Future[Any], list[WatchedPartition]]:
        """A future that the next append to (or high watermark move of) any of the partitions
        completes, and the partitions it waits on."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waited_on: list[WatchedPartition] = []
        for topic, index in self.partitions:
            part = self.lookup(topic, index)
            if part is not None:
                part.add_waiter(fut)
                waited_on.append(part)
        return fut, waited_on

    def _satisfied(self, read: FetchRead[R]) -> bool:
        """Kafka's ``tryComplete``: a partition completes the fetch, or the partitions have ``MinBytes``."""
        return read.complete or (read.size if read.available is None else read.available) >= self.min_bytes

    def start(self, first: FetchRead[R]) -> Coroutine[Any, Any, T]:
        """Watch the partitions now, in the caller's turn of the loop, and return the wait: an append
        between this call and the wait's first step (a Produce read in the same turn as the Fetch)
        wakes it, as Kafka's ``tryCompleteElseWatch`` checks again once it watches."""
        return self.complete(first, self._watch())

    async def complete(self, first: FetchRead[R],
                       watch: tuple[asyncio.Future[Any], list[WatchedPartition]] | None = None) -> T:
        """Wait from the ``first`` read (which did not answer at once) and answer; ``watch``: the
        watch :meth:`start` began."""
        deadline = Deadline(self.max_wait_ms, self.clock)
        parked = self.parked
        last = first
        while True:
            fut, waited_on = watch if watch is not None else self._watch()
            watch = None
            # (the first read is checked as Kafka's tryCompleteElseWatch checks it: case F, or
            # case G's count reaching MinBytes, answers it now)
            if deadline.passed or self.stopping() or (last is first and self._satisfied(first)):
                for part in waited_on:
                    part.remove_waiter(fut)
                break
            if parked is not None:
                parked.park(self.replica_id, fut)
            try:
                await deadline.wait(fut)
            finally:
                for part in waited_on:
                    part.remove_waiter(fut)
                if parked is not None:
                    parked.unpark(self.replica_id, fut)
            refetch = fut.done() and not fut.cancelled() and fut.result() is REFETCH
            last = self.read()
            if refetch or self._satisfied(last) or deadline.passed:
                break
        return self.respond(last)
