"""Three controllers over real Raft drivers, each node with its controller's image and its
MetadataLoader's: what the active controller appended is in its own image at once, in no loader's
until a majority has it; a leader that loses its quorum reverts to the committed image; in the
end every image of every node is the same."""

from __future__ import annotations

import asyncio
import uuid

from kbroker.controller.errors import ControllerError
from kbroker.controller.quorum import QuorumController
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import MetadataImage
from kbroker.metadata.loader import MetadataLoader
from kbroker.metadata.snapshot import image_to_records
from kbroker.raft.io import ProposalLostError, RaftStoppedError
from kbroker.wiring.metadata_quorum import wire_metadata
from tests.raft.raft_io_helpers import VOTERS, Cluster, wait_for


class Nodes:
    """The controller and loader of each running node of ``cluster``."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.controllers: dict[int, QuorumController] = {}
        self.loaders: dict[int, MetadataLoader] = {}

    def wire(self, node_id: int) -> None:
        driver = self.cluster.drivers[node_id]
        loader = MetadataLoader()
        controller = QuorumController(node_id, None, MetadataImage(), raft=driver, committed=loader)
        wire_metadata(driver, loader, controller)
        # what the driver delivered before it was wired (its sink), then everything after
        for offset, item in self.cluster.committed[node_id]:
            driver.on_commit(offset, item)  # type: ignore[misc]
        sink = self.cluster.committed[node_id]
        fan_out = driver.on_commit

        def on_commit(offset, item):
            sink.append((offset, item))
            fan_out(offset, item)  # type: ignore[misc]

        driver.on_commit = on_commit
        self.controllers[node_id] = controller
        self.loaders[node_id] = loader

    def images(self) -> list[MetadataImage]:
        return [i for n in self.cluster.drivers for i in (self.controllers[n].image, self.loaders[n].image)]

    async def write(self, records: list[mr.MetadataRecord]) -> int:
        """Write through whichever controller is active, retrying across leader changes."""
        while True:
            leader = await self.cluster.wait_leader()
            controller = self.controllers[leader.node_id]
            # a new leader's controller is active once it applied what came before its epoch
            await wait_for(lambda: controller.is_active() or not leader.is_leader,  # noqa: B023
                           "the leader's controller active")
            try:
                return await asyncio.wait_for(controller.write(records), 15)
            except (ControllerError, ProposalLostError, RaftStoppedError):
                continue


def topic(name: str) -> list[mr.MetadataRecord]:
    topic_id = uuid.uuid5(uuid.NAMESPACE_OID, name)
    return [mr.TopicRecord(name=name, topic_id=topic_id),
            mr.PartitionRecord(partition_id=0, topic_id=topic_id, replicas=[1, 2, 3], isr=[1, 2, 3], leader=1)]


async def test_uncommitted_records_stay_out_of_the_loaders_and_go_from_a_leader_that_loses_its_quorum(tmp_path):
    async with Cluster(tmp_path) as cluster:
        nodes = Nodes(cluster)
        for n in VOTERS:
            nodes.wire(n)
        await nodes.write([mr.FeatureLevelRecord(name="metadata.version", feature_level=27), *topic("a")])
        await wait_for(lambda: all(loader.image.topic("a") is not None for loader in nodes.loaders.values()),
                       "topic a in every loader")

        leader = await cluster.wait_leader()
        active = nodes.controllers[leader.node_id]
        for n in VOTERS:
            if n != leader.node_id:
                await cluster.stop(n, graceful=True)
        write = asyncio.ensure_future(active.write(topic("b")))
        await wait_for(lambda: active.image.topic("b") is not None, "topic b in the active controller's image")
        # no follower has it: not committed, in no loader, not even the active controller's own
        assert nodes.loaders[leader.node_id].image.topic("b") is None and active.uncommitted == 2

        # alone, the leader loses its leadership (check quorum) and reverts to the committed image
        await wait_for(lambda: not leader.is_leader, "the lone leader resigning")
        assert active.image.topic("b") is None and active.uncommitted == 0
        assert image_to_records(active.image) == image_to_records(nodes.loaders[leader.node_id].image)
        write.cancel()
        await asyncio.gather(write, return_exceptions=True)

        for n in VOTERS:
            if n != leader.node_id:
                await cluster.start(n)
                nodes.wire(n)
        # whether or not b survives (it does when the old leader is elected again), every image ends equal
        await nodes.write(topic("c"))
        await wait_for(lambda: all(image.topic("c") is not None for image in nodes.images()),
                       "topic c in every image of every node")
        records = [image_to_records(image) for image in nodes.images()]
        assert all(r == records[0] for r in records), "the images differ"
        assert len({image.offset for image in nodes.images()}) == 1
        assert all(c.uncommitted == 0 for c in nodes.controllers.values())
        cluster.check_consistent()
