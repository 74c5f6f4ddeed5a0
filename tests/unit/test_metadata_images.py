"""The controller's image and the broker's (the MetadataLoader's) are two objects fed from one
metadata log: the active controller applies its records when it appends them, the broker's image
only once they are committed; a controller that stops leading goes back to the committed image."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kbroker.controller.cluster_control import ClusterControl
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.loader import MetadataLoader
from kbroker.metadata.snapshot import image_to_records
from kbroker.raft.log import Entry
from kbroker.wiring.metadata_quorum import wire_metadata
from tests.unit.metadata_image_helpers import HeldRaft, node

TOPIC_ID = uuid.UUID(int=7)
RECORDS = [mr.FeatureLevelRecord(name="metadata.version", feature_level=27),
           mr.TopicRecord(name="t", topic_id=TOPIC_ID),
           mr.PartitionRecord(partition_id=0, topic_id=TOPIC_ID, replicas=[1], isr=[1], leader=1)]


async def test_the_broker_image_sees_a_record_only_once_it_is_committed():
    controller, loader, raft = node()
    seen: list[object] = []
    loader.image.listeners.append(seen.append)
    write = asyncio.ensure_future(controller.write(RECORDS))
    await raft.wait_appended()  # the write runs up to its wait for the commit
    assert raft.log.end_offset == 3 and not write.done()
    # the controller decides on what it appended (Kafka's replay at append)...
    assert controller.image.topic("t") is not None and controller.image.offset == 2
    assert controller.uncommitted == 3
    # ...the broker's image, its listeners and its offset know nothing of it
    assert loader.image.topics == {} and loader.image.features == {} and loader.image.offset == -1
    assert seen == []
    raft.commit_through(2)  # a commit ending inside the proposal is not delivered in real Raft, but
    # the loader applies what it is given: the first two records are committed now
    assert loader.image.features == {"metadata.version": 27} and loader.image.topic("t") is not None
    assert loader.image.partition("t", 0) is None and controller.uncommitted == 1
    raft.commit_through(3)
    assert await write == 0
    assert loader.image.partition("t", 0) is not None and controller.uncommitted == 0
    assert [type(r).__name__ for r in seen] == ["FeatureLevelRecord", "TopicRecord", "PartitionRecord"]
    assert image_to_records(loader.image) == image_to_records(controller.image)
    assert loader.image.offset == controller.image.offset == 2
    assert loader.image is not controller.image


async def test_a_controller_that_stops_leading_reverts_to_the_committed_image():
    controller, loader, raft = node()
    write = asyncio.ensure_future(controller.write(RECORDS[:1]))
    await raft.wait_appended()
    raft.commit_through(1)
    await write
    cc = ClusterControl("cluster")
    cc.attach(controller.image)
    controller.cluster_control = cc
    cc.activate(controller.image, 0)
    pending = asyncio.ensure_future(controller.write(RECORDS[1:]))
    await raft.wait_appended()
    assert controller.image.topic("t") is not None and controller.uncommitted == 2
    raft.is_leader = False
    raft.on_resign()  # as RaftDriver._step when the node's role leaves LEADER
    assert controller.image.topic("t") is None and controller.uncommitted == 0
    assert image_to_records(controller.image) == image_to_records(loader.image) and controller.image.offset == 0
    assert cc.heartbeats is None  # the active controller's heartbeat state goes with it
    # the image keeps its listeners (the ClusterControl's replay) across the revert
    assert len(controller.image.listeners) == 1
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending


async def test_an_uncommitted_record_replaced_by_another_epoch_is_reverted_at_its_commit():
    controller, loader, raft = node()
    pending = asyncio.ensure_future(controller.write(RECORDS[1:2]))
    await raft.wait_appended()
    assert controller.image.topic("t") is not None
    # another leader's entry took offset 0 (the log was truncated and refilled): committed, it is
    # what both images hold, not the record this controller had applied
    other = mr.FeatureLevelRecord(name="metadata.version", feature_level=26)
    raft.log.truncate_to(0)
    raft.log.append([Entry(4, mr.encode_frame(other))])
    raft.commit_through(1)
    assert controller.image.topic("t") is None and controller.image.features == {"metadata.version": 26}
    assert image_to_records(controller.image) == image_to_records(loader.image) and controller.uncommitted == 0
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending


def test_a_standby_applies_records_at_their_commit_and_agrees_with_the_loader():
    controller, loader, raft = node()
    raft.is_leader = False
    raft.log.append([Entry(2, mr.encode_frame(r), batch_end=i == len(RECORDS) - 1) for i, r in enumerate(RECORDS)])
    assert controller.image.topics == {}
    raft.commit_through(3)
    assert image_to_records(controller.image) == image_to_records(loader.image) == RECORDS
    assert controller.image.offset == loader.image.offset == 2


def test_a_broker_only_node_feeds_its_loader_without_a_controller():
    raft, loader = HeldRaft(), MetadataLoader()
    raft.on_resign = lambda: None  # type: ignore[assignment]
    wire_metadata(raft, loader, None)  # type: ignore[arg-type]
    assert raft.on_resign is None  # nothing to renounce: no controller state on this node
    raft.log.append([Entry(2, mr.encode_frame(r)) for r in RECORDS])
    raft.commit_through(3)
    assert image_to_records(loader.image) == RECORDS and loader.image.offset == 2
