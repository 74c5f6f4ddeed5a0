"""Kafka's DelayedFetch: a Fetch held until it can be answered (the long poll).

Kafka's ``ReplicaManager.fetchMessages`` answers a Fetch at once when it does not want to wait
(``MaxWaitMs`` 0), names no partition, already has ``MinBytes``, or a partition's read must be
answered now (an error, a diverging epoch, a preferred read replica): :func:`answers_at_once`.
Otherwise the fetch is a DelayedFetch in the fetch purgatory, completed when its ``tryComplete``
finds a reason to answer or when ``MaxWaitMs`` expires; on completion the partitions are read
again and the answer carries whatever is there.

kbroker does not check offsets against the log's segments as ``tryComplete`` does: a held fetch
is a waiter on each partition it names (``Partition.add_waiter``; an append, a high watermark,
ISR or last stable offset that moves and a leadership change wake it), and each time it is woken it reads the
partitions again through the handler's ``read`` callback (:class:`DelayedFetch`). That re-read
decides what Kafka's cases decide:

- cases A-E (this broker no longer the leader or a replica of a partition, the partition
  unknown, its log dir offline, the request's leader epoch fenced): the read gives the partition
  an error, which completes the fetch;
- case F, the fetch offset past the end the fetch reads to: past the log end (the log truncated
  under the fetch) the read gives OFFSET_OUT_OF_RANGE, which completes the fetch. Not here: a
  consumer's offset between the high watermark (or last stable offset) and the log end, and a
  fetch offset on an older segment than that end, complete Kafka's fetch at once; here they wait
  for ``MinBytes`` or the expiry like any other read;
- case G (the bytes accumulated over the partitions reach ``MinBytes``): the read's size;
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
    diverging epoch, a preferred read replica)."""

    reads: R
    size: int
    complete: bool


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
            if deadline.passed or self.stopping():
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
            if refetch or last.complete or last.size >= self.min_bytes or deadline.passed:
                break
        return self.respond(last)
