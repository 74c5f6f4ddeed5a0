"""The broker's side of cordoned log dirs (KIP-1066, Kafka 4.4): ``cordoned.log.dirs`` (static, or
dynamic per broker through AlterConfigs/IncrementalAlterConfigs) names log dirs that take no new
partition.

- The log manager picks a new partition's dir among the dirs not cordoned (the first online dir
  when all are: Kafka's LogManager.nextLogDirs).
- The controller learns the cordoned dirs' ids: a broker of a multi-node quorum sends them in its
  heartbeats once caught up with the metadata (BrokerLifecycleManager, ``cordoned_provider``), and
  again at once when they change (propagateDirectoryCordoned); the controller records them in a
  BrokerRegistrationChangeRecord and places no new replica on a broker whose dirs are all cordoned.
  The sole voter of a single-node quorum registers its broker without heartbeats; its controller
  takes the change as it would take that heartbeat (``controller.node_writes.record_own_cordoned``,
  a controller operation awaited in the background: the broker never commits it itself). Nothing
  is sent below metadata.version 30 (IBP_4_3_IV0).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from typing import TYPE_CHECKING, Protocol

from kbroker.controller.node_writes import record_own_cordoned
from kbroker.metadata.directories import cordoned_dirs_supported
from kbroker.wiring.jbod import directory_ids_by_dir

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.controller.quorum import QuorumController
    from kbroker.log import LogManager
    from kbroker.metadata.broker_lifecycle import BrokerLifecycleManager
    from kbroker.metadata.image import MetadataImage

log = logging.getLogger(__name__)


class CordonHost(Protocol):
    """What the cordoned log dirs touch of the broker: its config (``cordoned.log.dirs``) and
    image, its log manager, and whoever tells the controller: the lifecycle manager of a broker
    of a multi-node quorum, or the sole voter's own controller (``registered_locally``)."""

    config: BrokerConfig
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
    if not broker.registered_locally or broker.controller is None:
        return
    try:  # not from within the metadata record being applied: once it is done
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no event loop (tests driving the broker by hand): the sole voter's write is at once
        asyncio.run(_record_own(broker))
        return
    tasks = _RECORDING.setdefault(broker, set())
    task = loop.create_task(_record_own(broker), name="record-cordoned-dirs")
    tasks.add(task)
    task.add_done_callback(tasks.discard)


# The broker's cordoned-dir registrations under way (a reference, so that none is collected).
_RECORDING: weakref.WeakKeyDictionary[CordonHost, set[asyncio.Task[None]]] = weakref.WeakKeyDictionary()


async def _record_own(broker: CordonHost) -> None:
    """The sole voter's own registration: its controller records the cordoned dirs when they
    differ from the recorded ones (as it answers a heartbeat)."""
    controller = broker.controller
    if controller is None or not cordoned_dirs_supported(broker.image):
        return
    try:
        await record_own_cordoned(controller, cordoned_dir_ids(broker))
    except Exception as exc:  # the next change of cordoned.log.dirs tries again
        log.error("cannot record the cordoned log dirs: %s", exc)
