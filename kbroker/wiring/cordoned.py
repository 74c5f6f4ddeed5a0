"""The broker's side of cordoned log dirs (KIP-1066, Kafka 4.4): ``cordoned.log.dirs`` (static, or
dynamic per broker through AlterConfigs/IncrementalAlterConfigs) names log dirs that take no new
partition.

- The log manager picks a new partition's dir among the dirs not cordoned (the first online dir
  when all are: Kafka's LogManager.nextLogDirs).
- The controller learns the cordoned dirs' ids: a broker of a multi-node quorum sends them in its
  heartbeats once caught up with the metadata (BrokerLifecycleManager, ``cordoned_provider``), and
  again at once when they change (propagateDirectoryCordoned); the controller records them in a
  BrokerRegistrationChangeRecord and places no new replica on a broker whose dirs are all cordoned.
  The sole voter of a single-node quorum, which registers itself without heartbeats, writes that
  record itself. Nothing is sent below metadata.version 30 (IBP_4_3_IV0).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Protocol

from kbroker.controller.directories import cordoned_dirs_supported
from kbroker.wiring.jbod import directory_ids_by_dir
from kbroker_protocol.messages.metadata_records import BrokerRegistrationChangeRecord

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.controller.broker_lifecycle import BrokerLifecycleManager
    from kbroker.controller.image import MetadataImage
    from kbroker.controller.quorum import QuorumController
    from kbroker.log import LogManager

log = logging.getLogger(__name__)


class CordonHost(Protocol):
    """What the cordoned log dirs touch of the broker: its config (``cordoned.log.dirs``) and
    image, its log manager, and whoever tells the controller: the lifecycle manager of a broker
    of a multi-node quorum, or the sole voter's own controller (``registered_locally``)."""

    config: BrokerConfig
    node_id: int
    image: MetadataImage

    @property
    def log_manager(self) -> LogManager | None: ...

    @property
    def lifecycle(self) -> BrokerLifecycleManager | None: ...

    @property
    def controller(self) -> QuorumController | None: ...

    @property
    def registered_locally(self) -> bool: ...


def cordoned_dir_ids(broker: CordonHost) -> list[uuid.UUID]:
    """The directory ids of the broker's cordoned log dirs (those it can read an id of)."""
    ids = directory_ids_by_dir(list(broker.config.cordoned_log_dirs))
    return sorted(ids.values())


def watch_lifecycle(broker: CordonHost) -> None:
    """Give the lifecycle manager (before it runs) the broker's cordoned dirs and the
    metadata.version check."""
    lifecycle = broker.lifecycle
    if lifecycle is None:
        raise RuntimeError("watch_lifecycle needs the broker's lifecycle manager")
    machine = lifecycle.machine
    machine.cordoned_provider = lambda: cordoned_dir_ids(broker)
    machine.cordoned_supported = lambda: cordoned_dirs_supported(broker.image)


def apply_cordoned(broker: CordonHost) -> None:
    """After start-up and after each change of the broker's dynamic configs: the log manager's
    cordoned dirs, and the controller's record of them."""
    if broker.log_manager is not None:
        dirs = frozenset(broker.config.cordoned_log_dirs)
        if dirs != broker.log_manager.cordoned_dirs:
            log.info("cordoned log dirs: %s", sorted(str(d) for d in dirs))
        broker.log_manager.cordoned_dirs = dirs
    if broker.lifecycle is not None:
        ids = cordoned_dir_ids(broker)
        if broker.lifecycle.machine.cordoned_log_dirs != ids:  # another broker config changed: nothing to say
            broker.lifecycle.propagate_directory_cordoned(ids)
        return
    try:  # not from within the metadata record being applied: once it is done
        asyncio.get_running_loop().call_soon(_record_own, broker)
    except RuntimeError:  # no event loop (tests driving the broker by hand)
        _record_own(broker)


def _record_own(broker: CordonHost) -> None:
    """The sole voter's own registration: a BrokerRegistrationChangeRecord when its cordoned dirs
    differ from the recorded ones (as the controller answers a heartbeat)."""
    controller = broker.controller
    reg = broker.image.brokers.get(broker.node_id)
    if not broker.registered_locally or controller is None or reg is None \
            or not cordoned_dirs_supported(broker.image):
        return
    ids = cordoned_dir_ids(broker)
    if reg.cordoned_log_dirs is not None and set(reg.cordoned_log_dirs) == set(ids):
        return
    controller.commit([BrokerRegistrationChangeRecord(broker_id=broker.node_id, broker_epoch=reg.epoch,
                                                      cordoned_log_dirs=ids)])
