"""A node of a metadata quorum of several voters waits, as it starts, until its image holds what the
quorum had committed (``Broker._catch_up``). A node elected leader as it restarts knows that only
once an entry of its own epoch is committed: until then its high watermark is 0, and an image of
nothing would have ``LocalPartitions.open_replayed`` delete every partition's log as deleted."""

from __future__ import annotations

import asyncio

from kbroker.broker import Broker
from kbroker.config import BrokerConfig
from tests.integration.waiting import async_wait_until


class FakeNode:
    """The Raft node as ``_catch_up`` sees it; counts the polls of its high watermark."""

    def __init__(self, *, high_watermark: int, epoch_start_offset: int, leader_id: int) -> None:
        self.voters = frozenset({1, 2, 3})
        self.epoch = 4
        self.leader_id = leader_id
        self.epoch_start_offset = epoch_start_offset
        self.applied_offset = 0
        self._hw = high_watermark
        self.polls = 0

    @property
    def high_watermark(self) -> int:
        self.polls += 1
        return self._hw

    @property
    def committed_offset(self) -> int:
        return self._hw

    def commit(self, offset: int) -> None:
        self._hw = offset


class FakeRaft:
    def __init__(self, node: FakeNode, is_leader: bool) -> None:
        self.node = node
        self.is_leader = is_leader

    @property
    def leader_id(self) -> int:
        return self.node.leader_id

    @property
    def epoch(self) -> int:
        return self.node.epoch


def _broker(raft: FakeRaft) -> Broker:
    broker = Broker(BrokerConfig({"node.id": "1"}))
    broker.raft = raft  # type: ignore[assignment]
    return broker


async def _still_waiting_after_polls(broker: Broker, node: FakeNode, polls: int) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(broker._catch_up())
    await async_wait_until(lambda: task.done() or node.polls >= polls, timeout=10, message="catch-up polls")
    assert not task.done(), "caught up before any entry of the leader's epoch was committed"
    return task


async def test_a_leader_elected_as_it_restarts_waits_for_an_entry_of_its_epoch_to_commit() -> None:
    # restarted with 10 metadata entries, elected leader of epoch 4: its LeaderChangeMessage is at
    # offset 10, and nothing is committed in this epoch yet (high watermark 0)
    node = FakeNode(high_watermark=0, epoch_start_offset=10, leader_id=1)
    broker = _broker(FakeRaft(node, is_leader=True))
    task = await _still_waiting_after_polls(broker, node, 5)
    node.commit(11)  # a majority has the epoch's first entry: offsets 0-10 committed
    await async_wait_until(lambda: node.polls >= 10, timeout=10, message="catch-up polls")
    assert not task.done(), "caught up before the image applied the committed entries"
    node.applied_offset = 11
    await asyncio.wait_for(task, timeout=10)


async def test_a_leader_whose_high_watermark_is_from_before_its_epoch_waits_too() -> None:
    node = FakeNode(high_watermark=6, epoch_start_offset=10, leader_id=1)
    node.applied_offset = 6
    broker = _broker(FakeRaft(node, is_leader=True))
    task = await _still_waiting_after_polls(broker, node, 5)
    node.commit(11)
    node.applied_offset = 11
    await asyncio.wait_for(task, timeout=10)


async def test_a_follower_takes_the_leaders_high_watermark_as_its_target() -> None:
    node = FakeNode(high_watermark=0, epoch_start_offset=0, leader_id=2)
    broker = _broker(FakeRaft(node, is_leader=False))
    task = await _still_waiting_after_polls(broker, node, 5)  # no high watermark from the leader yet
    node.commit(8)
    node.applied_offset = 8
    await asyncio.wait_for(task, timeout=10)
