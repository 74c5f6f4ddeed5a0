"""Followers' fetches held by this leader (the long poll of a replica Fetch), by follower.

A follower's fetch names the partitions it already replicates from this broker; a partition it
has just become a replica of joins its fetch session only with its next request. Held for up to
``replica.fetch.wait.max.ms``, the fetch in flight would keep the new partition's first records,
and every acks=all produce waiting on them, unreplicated until it expires (up to half a second on
a partition just created, e.g. ``__consumer_offsets`` under a consumer group's first SyncGroup).
So when the leader appends to a partition, the held fetches of its followers that do not cover
it answer at once, and the follower's next fetch includes the partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

# The result a held fetch is woken with when it should answer now (not because of new data).
REFETCH = object()


class WaitedPartition(Protocol):
    def has_waiter(self, fut: asyncio.Future[object]) -> bool: ...


class ParkedFollowerFetches:
    """The held fetches, by follower. Which partitions a fetch covers is not kept here: a held
    fetch is registered as a waiter on each partition it names (``Partition.add_waiter``), and the
    leader wakes the uncovering ones before it notifies the partition's waiters of new data."""

    __slots__ = ("_by_follower",)

    def __init__(self) -> None:
        self._by_follower: dict[int, list[asyncio.Future[object]]] = {}

    def park(self, replica_id: int, fut: asyncio.Future[object]) -> None:
        self._by_follower.setdefault(replica_id, []).append(fut)

    def unpark(self, replica_id: int, fut: asyncio.Future[object]) -> None:
        held = self._by_follower.get(replica_id)
        if held is not None:
            try:
                held.remove(fut)
            except ValueError:
                pass
            if not held:
                del self._by_follower[replica_id]

    def wake_uncovering(self, partition: WaitedPartition, followers: Iterable[int]) -> int:
        """Wake the held fetches of ``followers`` that do not wait on ``partition``; how many."""
        if not self._by_follower:
            return 0
        woken = 0
        for replica_id in followers:
            for fut in self._by_follower.get(replica_id, ()):
                if not fut.done() and not partition.has_waiter(fut):
                    fut.set_result(REFETCH)
                    woken += 1
        return woken

    def held(self, replica_id: int) -> int:
        return len(self._by_follower.get(replica_id, ()))
