"""Writes the controller makes for its own node, outside any forwarded API (issue 14).

A broker never commits metadata itself: its API handlers and coordinators ask the active
controller through the controller client (``kbroker/metadata/client.py``). What is left here is
what Kafka's controller writes on its own initiative or on a broker's Raft-layer message, which
has no CreateTopics-like request a handler could send, and which kbroker's single node takes
without the message:

- :func:`record_own_cordoned`: the cordoned log dirs of the sole voter's own broker. A broker of
  a multi-node quorum reports them in its BrokerHeartbeat and the active controller records them
  (Kafka's ``ClusterControlManager`` through ``handleDirectoriesCordoned``,
  ``cluster_control.py`` here); the sole voter registers its own broker without heartbeats
  (``QuorumController.register_broker``), so its controller takes the change as it would take
  that heartbeat, with the same records.
- :func:`reset_metadata` and :func:`reelect_leader`: the test control plane (``kbroker/control``)
  driving the single node's own controller, an operator's action with no Kafka API (a reset of
  the whole metadata, a new leader epoch for a partition whose leader stays).

Each runs as a controller operation (inside ``QuorumController.exclusive()``, writing with
``await QuorumController.write``, which returns once the records are committed and applied), and
is refused with NOT_CONTROLLER on a node that is not the active controller.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from kbroker.controller.dir_control import handle_directories_cordoned
from kbroker.controller.errors import ControllerError
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.directories import cordoned_dirs_supported
from kbroker.metadata.image import RESOURCE_BROKER, RESOURCE_GROUP
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.controller.quorum import QuorumController

log = logging.getLogger(__name__)

def require_active(controller: QuorumController | None) -> QuorumController:
    """``controller`` when it is the active controller, else ControllerError NOT_CONTROLLER."""
    if controller is None or not controller.is_active():
        raise ControllerError(ErrorCode.NOT_CONTROLLER, "This node is not the active controller.")
    return controller


async def record_own_cordoned(controller: QuorumController, cordoned: list[uuid.UUID]) -> bool:
    """The sole voter's broker now has ``cordoned`` log dirs: a BrokerRegistrationChangeRecord when
    they differ from its registration's (as the controller answers a heartbeat carrying them),
    nothing below metadata.version 30. Returns whether a record was written."""
    require_active(controller)
    async with controller.exclusive():
        image = controller.image
        reg = image.brokers.get(controller.node_id)
        if reg is None or not cordoned_dirs_supported(image):
            return False
        records: list[mr.MetadataRecord] = []
        handle_directories_cordoned(image, controller.node_id, reg.epoch, list(cordoned), records)
        if not records:
            return False
        await controller.write(records)
        return True


async def reset_metadata(controller: QuorumController) -> list[str]:
    """Every topic removed and every dynamic broker and group config deleted, in one write (one
    batch, one fsync on the single node). Returns the names of the topics removed."""
    require_active(controller)
    async with controller.exclusive():
        image = controller.image
        records: list[mr.MetadataRecord] = []
        topics = list(image.topics.values())
        for topic in topics:
            records.extend(controller.delete_topic_records(topic.topic_id))
        for resource, configs in sorted(image.broker_configs.items()):
            records.extend(controller.config_records(RESOURCE_BROKER, resource, dict.fromkeys(configs)))
        for group_id, configs in sorted(getattr(image, "group_configs", {}).items()):  # share group configs
            if configs:
                records.extend(controller.config_records(RESOURCE_GROUP, group_id, dict.fromkeys(configs)))
        await controller.write(records)
        return [topic.name for topic in topics]


async def reelect_leader(controller: QuorumController, topic: str, partition: int) -> tuple[int, int]:
    """Elect the partition's leader again (a PartitionChangeRecord naming the same leader): its
    leader epoch goes up, as after a leader change. Returns (leader, new epoch); KeyError for a
    partition the image does not have."""
    require_active(controller)
    async with controller.exclusive():
        state = controller.image.topic(topic)
        if state is None or partition not in state.partitions:
            raise KeyError(f"no partition {topic}-{partition}")
        current = state.partitions[partition]
        leader = current.leader if current.leader >= 0 else controller.node_id
        await controller.write([mr.PartitionChangeRecord(partition_id=partition, topic_id=state.topic_id,
                                                         leader=leader)])
        after = controller.image.topic(topic)
        epoch = after.partitions[partition].leader_epoch if after is not None else current.leader_epoch + 1
        return leader, epoch
