"""The broker's side of JBOD in KRaft (KIP-858), for a broker with several ``log.dirs``:

- a log dir failing while others remain (LogManager's ``on_dir_failed``) is reported to the
  controller in the heartbeats' ``OfflineLogDirs`` (Kafka's ReplicaManager.handleLogDirFailure ->
  BrokerLifecycleManager.propagateDirectoryFailure), so that the controller moves leadership and
  ISR off the replicas there; if the controller never hears of it within
  ``log.dir.failure.timeout.ms`` the broker halts (Kafka shuts it down);
- each replica's dir is reported with AssignReplicasToDirs (Kafka's AssignmentsManager): after a
  metadata change, every local log whose dir differs from the partition's ``Directories`` entry
  for this broker is sent, in one request, again until the controller has recorded it.

A broker with one log dir runs only the second: a failure of its only dir halts it
(dir_failure.py). The controller records a new replica on it in its single dir (``directories.
default_dir``), so it has nothing to assign unless that dir was replaced (formatted again: a new
``directory.id``) or the partition predates directory assignment (MIGRATING), as Kafka's
ReplicaManager.maybeUpdateTopicAssignment. Below metadata.version 17 nothing is assigned.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kbroker.log import dir_failure
from kbroker.metadata.directories import directory_assignment_supported, replica_directory
from kbroker.metadata.image import MetadataImage
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.assign_replicas_to_dirs import AssignReplicasToDirsRequest

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.log import LogManager
    from kbroker.metadata.broker_lifecycle import BrokerLifecycleManager
    from kbroker.metadata.channel import ControllerChannel
    from kbroker.raft.io import RaftDriver
    from kbroker.replication.replica_manager import ReplicaManager
    from kbroker.security.internode import InterNodeSecurity

log = logging.getLogger(__name__)


class JbodHost(Protocol):
    """What the JBOD agent uses of the broker: identity, config and image, the log manager whose
    dirs it reports, the replica manager that drops a failed dir's replicas and the lifecycle
    manager that tells the controller."""

    config: BrokerConfig
    node_id: int
    image: MetadataImage

    @property
    def log_manager(self) -> LogManager | None: ...

    @property
    def replica_manager(self) -> ReplicaManager: ...

    @property
    def lifecycle(self) -> BrokerLifecycleManager | None: ...


class JbodBroker(JbodHost, Protocol):
    """What starting the agent uses besides: the Raft driver (where the active controller is),
    the inter-node security of its channel, and the broker's background tasks."""

    @property
    def raft(self) -> RaftDriver | None: ...

    @property
    def internode_security(self) -> InterNodeSecurity: ...

    def run_in_background(self, work: Coroutine[object, None, object], name: str) -> asyncio.Task[object]: ...

ASSIGN_REPLICAS_TO_DIRS = 73
# how often the image is checked for replicas to (re)assign; a change is sent at the next check
ASSIGNMENT_CHECK_MS = 200


def pending_assignments(image: MetadataImage, node_id: int, log_dir_of: Callable[[str, int], Path | None], dir_ids: dict[Path, uuid.UUID],
                        offline: set[Path]) -> dict[uuid.UUID, dict[uuid.UUID, list[int]]]:
    """dir id -> topic id -> partitions of the local logs (in online dirs) whose recorded dir is
    not the one they are in."""
    out: dict[uuid.UUID, dict[uuid.UUID, list[int]]] = {}
    for topic in image.topics.values():
        for index, p in topic.partitions.items():
            if node_id not in p.replicas:
                continue
            where = log_dir_of(topic.name, index)
            if where is None or where in offline or where not in dir_ids:
                continue
            d = dir_ids[where]
            if replica_directory(p, node_id) != d:
                out.setdefault(d, {}).setdefault(topic.topic_id, []).append(index)
    return out


def assignment_request(node_id: int, epoch: int,
                       pending: dict[uuid.UUID, dict[uuid.UUID, list[int]]]) -> AssignReplicasToDirsRequest:
    A = AssignReplicasToDirsRequest
    return A(broker_id=node_id, broker_epoch=epoch, directories=[
        A.DirectoryData(id=d, topics=[
            A.DirectoryData.TopicData(topic_id=t, partitions=[
                A.DirectoryData.TopicData.PartitionData(partition_index=i) for i in sorted(parts)])
            for t, parts in topics.items()])
        for d, topics in pending.items()])


class JbodAgent:
    """Reports failed log dirs and replica dirs of a broker with several log dirs."""

    def __init__(self, broker: JbodHost, dir_ids: dict[Path, uuid.UUID], failure_timeout_ms: int,
                 channel: ControllerChannel | None = None) -> None:
        """``channel``: the node-to-controller channel for AssignReplicasToDirs (one of its own, as
        Kafka's directory-assignments channel, so that it never delays a heartbeat)."""
        self.broker = broker
        self.channel = channel
        self.dir_ids = dir_ids
        self.failure_timeout_ms = failure_timeout_ms
        self.loop = asyncio.get_running_loop()
        self._checked_offset = -1

    def on_dir_failed(self, log_dir: Path) -> None:
        """LogManager's hook (any thread): ``log_dir`` failed and others remain. When it holds the
        metadata log the node halts (Kafka's ReplicaManager.handleLogDirFailure)."""
        if Path(log_dir) == Path(self.broker.config.metadata_log_dir):
            log.critical("Shutdown broker because the metadata log dir %s has failed", log_dir)
            dir_failure.halt(1)
            return
        d = self.dir_ids.get(Path(log_dir))
        if d is None:
            log.error("log dir %s failed but has no directory.id: the controller cannot be told", log_dir)
            return
        self.loop.call_soon_threadsafe(self._propagate, Path(log_dir), d)

    def _propagate(self, log_dir: Path, d: uuid.UUID) -> None:
        self.broker.replica_manager.handle_log_dir_failure(log_dir)
        lifecycle = self.broker.lifecycle
        if lifecycle is not None:
            log.warning("Propagating the failure of log dir %s to the controller", d)
            lifecycle.propagate_directory_failure(d, self.failure_timeout_ms)

    async def watch_lifecycle(self) -> None:
        """Halt when the lifecycle shut down for an offline dir the controller never heard of."""
        from kbroker.metadata.broker_lifecycle import OFFLINE_DIR_TIMEOUT, BrokerState
        lifecycle = self.broker.lifecycle
        if lifecycle is None:
            raise RuntimeError("the JBOD agent's lifecycle watch needs the broker's lifecycle manager")
        await lifecycle.wait_for(lambda m: m.state == BrokerState.SHUTTING_DOWN)
        if lifecycle.machine.shutdown_reason == OFFLINE_DIR_TIMEOUT:
            dir_failure.halt()

    async def run_assignments(self) -> None:
        """Send AssignReplicasToDirs whenever local replicas' dirs are not yet recorded."""
        try:
            while True:
                await asyncio.sleep(ASSIGNMENT_CHECK_MS / 1000)
                try:
                    await self.assign_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - retried at the next check
                    log.warning("AssignReplicasToDirs failed: %s", exc)
                    self._checked_offset = -1
        finally:
            if self.channel is not None:
                await self.channel.close()

    async def assign_once(self) -> bool:
        """One check; True when a request was answered without error."""
        broker = self.broker
        image: MetadataImage = broker.image
        lifecycle = broker.lifecycle
        if lifecycle is None or lifecycle.broker_epoch < 0 or image.offset == self._checked_offset:
            return False
        if not directory_assignment_supported(image):
            self._checked_offset = image.offset
            return False
        offset = image.offset
        lm = broker.log_manager
        if lm is None:
            return False
        pending = pending_assignments(image, broker.node_id, lm.log_dir_of, self.dir_ids, set(lm.offline_dirs))
        if not pending:
            self._checked_offset = offset
            return False
        request = assignment_request(broker.node_id, lifecycle.broker_epoch, pending)
        channel = self.channel if self.channel is not None else lifecycle.channel
        response = await channel.send(ASSIGN_REPLICAS_TO_DIRS, request,
                                      timeout_ms=broker.config["broker.heartbeat.interval.ms"])
        if response.error_code != ErrorCode.NONE:
            log.warning("AssignReplicasToDirs answered %s", ErrorCode(response.error_code).name)
            return False
        errors = [(tp.topic_id, p.partition_index, ErrorCode(p.error_code).name) for d in response.directories
                  for tp in d.topics for p in tp.partitions if p.error_code != ErrorCode.NONE]
        if errors:
            log.info("AssignReplicasToDirs: partitions not assigned (tried again on the next change): %s", errors)
        assigned = sum(len(parts) for topics in pending.values() for parts in topics.values()) - len(errors)
        if assigned:
            log.info("AssignReplicasToDirs: assigned %d replica(s) to their log dirs", assigned)
        self._checked_offset = offset if not errors else -1
        return True


def directory_ids_by_dir(log_dirs: list[Path]) -> dict[Path, uuid.UUID]:
    """Each log dir's ``directory.id`` (meta.properties); dirs without one (unreadable) are left out."""
    from kbroker.storage import StorageError, read_meta_properties, uuid_from_str
    out: dict[Path, uuid.UUID] = {}
    for d in log_dirs:
        try:
            props = read_meta_properties(d) or {}
        except StorageError:
            continue
        if props.get("directory.id"):
            out[Path(d)] = uuid_from_str(props["directory.id"])
    return out


def start_jbod_agent(broker: JbodBroker) -> JbodAgent:
    """Hook a JbodAgent to ``broker`` (its lifecycle started): replica dirs, and failed dirs when
    it has several (a failure of a single dir halts the broker)."""
    from kbroker.metadata.channel import ControllerChannel, channel_timeouts
    raft = broker.raft
    log_manager = broker.log_manager
    if raft is None or log_manager is None:
        raise RuntimeError("the JBOD agent starts after the broker's Raft driver and log manager")
    controllers = dict(broker.config.quorum_voters) or (lambda: raft.addresses)
    client_id = f"broker-{broker.node_id}-directory-assignments"
    channel = ControllerChannel(lambda: raft.leader_id if raft.leader_id >= 0 else None, controllers,
                                client_id=client_id, **channel_timeouts(broker.config),
                                open_connection=broker.internode_security.controller_opener(client_id))
    agent = JbodAgent(broker, directory_ids_by_dir(list(broker.config.log_dirs)),
                      broker.config["log.dir.failure.timeout.ms"], channel)
    broker.run_in_background(agent.run_assignments(), "jbod-assignments")
    if len(broker.config.log_dirs) > 1:
        log_manager.on_dir_failed = agent.on_dir_failed
        for failed in list(log_manager.offline_dirs):  # failed before the lifecycle started
            agent.on_dir_failed(failed)
        broker.run_in_background(agent.watch_lifecycle(), "jbod-lifecycle-watch")
    return agent
