"""Unloading a group cancels every timer of that group, whatever the group's kind (classic,
consumer, streams, share), on the loop timer and on the manual clock's timer."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from kbroker.control.clock import ManualClock
from kbroker.coordinator.group_classic import ClassicGroupManager
from kbroker.coordinator.group_consumer import ConsumerGroupManager
from kbroker.coordinator.group_consumer_model import KIND as CONSUMER_KIND
from kbroker.coordinator.group_coordinator import LoopTimer
from kbroker.coordinator.share_group import KIND as SHARE_KIND
from kbroker.coordinator.share_group import ShareGroupManager
from kbroker.coordinator.streams_group import StreamsGroupManager
from kbroker.coordinator.streams_group_model import KIND as STREAMS_KIND


def _keys(group_id: str) -> list:
    g = SimpleNamespace(group_id=group_id)
    # The modern kinds' session/revocation keys come from the shared core, given each kind's spec.
    consumer, streams, share = (SimpleNamespace(kind=k) for k in (CONSUMER_KIND, STREAMS_KIND, SHARE_KIND))
    return [ClassicGroupManager._hb_key(g, "m1"),
            ConsumerGroupManager._session_key(consumer, g, "m1"), ConsumerGroupManager._revoke_key(consumer, g, "m1"),
            StreamsGroupManager._session_key(streams, g, "m1"), StreamsGroupManager._revoke_key(streams, g, "m1"),
            StreamsGroupManager._delay_key(g),
            ShareGroupManager._session_key(share, g, "m1")]


async def _cancel_one_group(timer: LoopTimer, advance) -> list:
    fired: list = []
    for gid in ("gone", "kept"):
        for key in _keys(gid):
            timer.schedule(key, 10, lambda key=key: fired.append(key))
    timer.schedule("offsets-retention", 10, lambda: fired.append("offsets-retention"))
    timer.cancel_group("gone")
    await advance()
    return fired


async def test_loop_timer_cancels_every_timer_of_an_unloaded_group():
    timer = LoopTimer()

    async def advance() -> None:
        # the loop runs timers in deadline order: once a later one ran, the 10 ms ones had their turn
        done = asyncio.Event()
        timer.schedule("sentinel", 20, done.set)
        await asyncio.wait_for(done.wait(), 30)

    fired = await _cancel_one_group(timer, advance)
    assert sorted(map(str, fired)) == sorted([*map(str, _keys("kept")), "offsets-retention"])


async def test_manual_timer_cancels_every_timer_of_an_unloaded_group():
    clock = ManualClock()
    timer = clock.group_timer()

    async def advance() -> None:
        clock.advance(10)

    fired = await _cancel_one_group(timer, advance)
    assert sorted(map(str, fired)) == sorted([*map(str, _keys("kept")), "offsets-retention"])
    assert timer.pending() == []
