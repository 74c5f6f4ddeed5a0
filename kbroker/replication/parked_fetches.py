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

PartitionKey = tuple[str, int]

# The result a held fetch is woken with when it should answer now (not because of new data).
REFETCH = object()


class ParkedFollowerFetches:
    __slots__ = ("_by_follower",)

    def __init__(self) -> None:
        self._by_follower: dict[int, dict[asyncio.Future[object], frozenset[PartitionKey]]] = {}

    def park(self, replica_id: int, fut: asyncio.Future[object], covered: Iterable[PartitionKey]) -> None:
        self._by_follower.setdefault(replica_id, {})[fut] = frozenset(covered)

    def unpark(self, replica_id: int, fut: asyncio.Future[object]) -> None:
        held = self._by_follower.get(replica_id)
        if held is not None:
            held.pop(fut, None)
            if not held:
                del self._by_follower[replica_id]

    def wake_uncovering(self, key: PartitionKey, followers: Iterable[int]) -> int:
        """Wake the held fetches of ``followers`` that do not include partition ``key``; how many."""
        if not self._by_follower:
            return 0
        woken = 0
        for replica_id in followers:
            held = self._by_follower.get(replica_id)
            if not held:
                continue
            for fut, covered in held.items():
                if key not in covered and not fut.done():
                    fut.set_result(REFETCH)
                    woken += 1
        return woken

    def held(self, replica_id: int) -> int:
        return len(self._by_follower.get(replica_id, ()))
