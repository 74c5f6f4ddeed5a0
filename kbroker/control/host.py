"""The broker as the test controls use it.

:class:`ControlledBroker` names what :mod:`kbroker.control.plane`, :mod:`kbroker.control.state` and
:mod:`kbroker.control.http` reach in the broker (``kbroker.broker.Broker`` provides it), so the
control package does not import ``kbroker.broker``, which builds the control plane.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.wiring.coordinators import CoordinatedBroker, Coordinators

if TYPE_CHECKING:
    from kbroker.control.clock import ManualClock
    from kbroker.controller.quorum import QuorumController
    from kbroker.log import LogManager
    from kbroker.replication.fetch_sessions import FetchSessionCache
    from kbroker.replication.partition import Partition
    from kbroker.server.connection import KafkaConnection


class Controls(Protocol):
    """What a reset does to the control plane itself (:class:`kbroker.control.plane.ControlPlane`)."""

    def clear_faults(self) -> int: ...

    def resume(self) -> None: ...

    def set_disk_full(self, full: bool) -> None: ...


class ControlledBroker(CoordinatedBroker, Protocol):
    """The broker's coordinators (as they are wired into it), its client connections, what a reset
    or a snapshot reaches (its controller, which must be the active one, its log manager, its
    services, its id and cluster id), its partitions, fetch sessions, bound ports, control plane
    and clock."""

    connections: set[KafkaConnection]
    controller: QuorumController | None
    log_manager: LogManager | None
    services: list[Any]
    coordinators: Coordinators
    node_id: int
    cluster_id: str
    partitions: dict[tuple[str, int], Partition]
    fetch_sessions: FetchSessionCache
    bound: dict[str, tuple[str, int]]
    clock: ManualClock | None

    @property
    def control(self) -> Controls: ...  # read-only: the broker's is a ControlPlane

    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def metrics(self) -> object: ...  # the metrics service (its HTTP listener), kept across a reset

    def run_in_background(self, work: Coroutine[object, None, object], name: str) -> asyncio.Task[object]: ...
