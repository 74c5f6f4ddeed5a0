"""What the controller-listener handlers need around the sans-IO cluster logic: the controller's
:class:`ClusterControl` (created on first use from the node's config), its clock, one controller
operation at a time, and the commit itself.

Kafka's controller runs every operation on one event thread, so the state a result was computed
from is the state it commits onto. Here each cluster operation runs inside :func:`operation`:
the controller's own ``exclusive()`` section when it has one (shared with every other metadata
writer), else a lock of the ClusterControl; records are generated and committed inside it.

The heartbeat state is the active controller's alone: it is rebuilt (every unfenced broker given a
new session) the first time an operation runs in a new controller term, and dropped when an
operation finds the controller inactive.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from kbroker.controller.cluster_control import ClusterControl
from kbroker.controller.replication_control import (
    ReplicationSettings,
    preferred_leader_elections,
    unclean_leader_elections,
)
from kbroker.metadata.image import MetadataImage
from kbroker.metadata.metadata_records import MetadataRecord

MAX_ELECTIONS_PER_IMBALANCE = 1000  # Kafka's QuorumController maxElectionsPerImbalance


def now_ms() -> int:
    """The controller's clock for sessions: monotonic milliseconds (only compared on this node)."""
    return int(time.monotonic() * 1000)


class ActiveController(Protocol):
    """Whether a controller is the active one (``QuorumController.is_active``)."""

    def is_active(self) -> bool: ...


class MetadataWriter(Protocol):
    """What the cluster operations use of the controller (``QuorumController``)."""

    @property
    def next_write_offset(self) -> int: ...

    async def write(self, records: Sequence[MetadataRecord]) -> int: ...


class ClusterController(ActiveController, MetadataWriter, Protocol):
    """The controller as the cluster operations use it (``QuorumController``): its own image (never
    the broker's), whether it is active, its writes, the ClusterControl made for it here, the
    section one operation runs in alone (``exclusive()``) and its term."""

    cluster_control: ClusterControl | None

    @property
    def term(self) -> int: ...

    def exclusive(self) -> contextlib.AbstractAsyncContextManager[None]: ...

    @property
    def image(self) -> MetadataImage: ...


class ControllerSettings(Protocol):
    """The node's configuration as read here (``BrokerConfig``): a key's typed value, its
    default the key table's."""

    def __getitem__(self, name: str, /) -> Any: ...


class ControllerNode(Protocol):
    """What the cluster operations use of the node (``kbroker.broker.Broker``, or a handler's
    ``ctx.broker``): its controller, its cluster id, its configuration."""

    @property
    def controller(self) -> ClusterController | None: ...

    @property
    def cluster_id(self) -> str: ...

    @property
    def config(self) -> ControllerSettings: ...


class TimerNode(ControllerNode, Protocol):
    """The node that runs the controller's timers (``kbroker.broker.Broker``)."""

    @property
    def node_id(self) -> int: ...

    @property
    def registered_locally(self) -> bool: ...  # the sole voter registered its own broker (no heartbeats)


def _controller(broker: ControllerNode) -> ClusterController:
    controller = broker.controller
    if controller is None:
        raise RuntimeError("this node has no controller")
    return controller


def is_active(controller: ActiveController) -> bool:
    """Whether this node is the active controller. (It read the attribute ``is_active``, which on
    ``QuorumController`` is a method, so every controller counted as active.)"""
    return controller.is_active()


def cluster_control_for(broker: ControllerNode) -> ClusterControl:
    """The ClusterControl of the node's controller, made and attached to its image on first use."""
    controller = _controller(broker)
    cc = controller.cluster_control
    if cc is None:
        config = broker.config
        cc = ClusterControl(
            broker.cluster_id,
            session_timeout_ms=config["broker.session.timeout.ms"],
            settings=ReplicationSettings(
                min_insync_replicas=config["min.insync.replicas"],
                unclean_leader_election_enable=config["unclean.leader.election.enable"],
            ),
        )
        cc.attach(controller.image)
        controller.cluster_control = cc
    return cc


@contextlib.asynccontextmanager
async def operation(broker: ControllerNode) -> AsyncIterator[ClusterControl]:
    """One controller operation: read the image, decide, commit; nothing else decides meanwhile."""
    controller = _controller(broker)
    cc = cluster_control_for(broker)
    async with controller.exclusive():
        term = controller.term
        if cc.heartbeats is None or cc.term != term:
            cc.activate(controller.image, now_ms())
            cc.term = term
        yield cc


def next_write_offset(controller: MetadataWriter) -> int:
    """The offset the controller's next record gets (a new broker's epoch)."""
    return controller.next_write_offset


async def write(controller: MetadataWriter, records: Sequence[MetadataRecord]) -> int:
    """Commit ``records`` through the controller and return the first offset."""
    return await controller.write(records)


async def fence_stale_brokers(broker: TimerNode, now: int | None = None) -> int:
    """The controller's session timer (Kafka's maybeFenceStaleBroker task): fence every broker
    whose session has expired, one committed batch per broker; returns how many were fenced. Call
    it when ``cluster_control_for(broker).next_expiry()`` is due (or every second, as Kafka's
    default fence-stale-broker interval), on the active controller only."""
    controller = _controller(broker)
    if not is_active(controller):
        return 0
    fenced = 0
    now = now_ms() if now is None else now
    async with operation(broker) as cc:
        if broker.registered_locally:  # the sole voter's own broker: no heartbeats
            cc.renew_session(controller.image, broker.node_id, now)
        while True:
            found, records = cc.fence_stale_broker(controller.image, now)
            if not found:
                return fenced
            if records:
                await write(controller, records)
                fenced += 1


async def balance_leaders(broker: ControllerNode) -> int:
    """The controller's auto leader rebalance (``auto.leader.rebalance.enable``): commit preferred
    leader elections; returns how many partitions changed."""
    return await _elect_in_rounds(broker, preferred_leader_elections)


async def elect_unclean_leaders(broker: ControllerNode) -> int:
    """The controller's periodic unclean election of leaderless partitions whose topic allows it
    (Kafka's maybeElectUncleanLeaders, run with the leader-imbalance check); returns how many."""
    return await _elect_in_rounds(broker, unclean_leader_elections)


async def _elect_in_rounds(broker: ControllerNode,
                           elect: Callable[[MetadataImage, ReplicationSettings, int], Sequence[MetadataRecord]]) -> int:
    """Commit ``elect``'s records, at most MAX_ELECTIONS_PER_IMBALANCE at a time, until a round
    elects fewer; returns how many partitions changed."""
    controller = _controller(broker)
    if not is_active(controller):
        return 0
    changed = 0
    async with operation(broker) as cc:
        while True:
            records = elect(controller.image, cc.settings, MAX_ELECTIONS_PER_IMBALANCE)
            if records:
                await write(controller, records)
                changed += len(records)
            if len(records) < MAX_ELECTIONS_PER_IMBALANCE:
                return changed
