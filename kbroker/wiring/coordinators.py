"""The coordinators of a broker (consumer groups, share groups, transactions), made and wired here.

The composition root calls :func:`wire_coordinators`: the broker when it is built
(``kbroker/broker.py``) and the control plane's reset (``kbroker/control/state.py``) when it
replaces them. It assigns each coordinator to the broker attribute the API handlers read and
hooks the group coordinator into the metadata image's listeners, the share coordinator into closing connections and into the group coordinator's share
groups, and the transaction coordinator into the producer state's transaction verification
(replacing what it hooked for the coordinators it replaces); the coordinators install nothing
themselves. Each is
a service with ``start()``/``stop()`` (either may be a coroutine) that the broker runs after its
logs and metadata are loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from kbroker.coordinator.hosts import GroupsHost, TxnHost

if TYPE_CHECKING:
    from kbroker.control.clock import ManualClock
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.share_coordinator import ShareCoordinator
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator
    from kbroker.server.connection import KafkaConnection


class CoordinatedBroker(TxnHost, GroupsHost, Protocol):
    """The broker the coordinators are wired into: what each coordinator uses of it
    (:class:`~kbroker.coordinator.hosts.TxnHost` and ``GroupsHost`` cover all three), the attributes they are
    assigned to, the connection listeners and the manual clock their timers run on."""

    group_coordinator: GroupCoordinator | None
    share_coordinator: ShareCoordinator | None
    txn_coordinator: TransactionCoordinator | None
    connection_listeners: list[Callable[[KafkaConnection], None]]
    clock: ManualClock | None


class CoordinatorService(Protocol):
    """A coordinator as the broker runs it (``kbroker.broker.Service``)."""

    def start(self) -> object: ...

    def stop(self) -> object: ...


def wire_coordinators(broker: CoordinatedBroker) -> list[CoordinatorService]:
    """The group, share and transaction coordinators of ``broker``, in the order they start."""
    # The coordinators' internal topics are asked of the controller with a CreateTopics through
    # the controller client (kbroker.replication.topics); the controller's operations are a fixed
    # table (kbroker.controller.operations.local), so nothing needs loading for it.
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.share_coordinator import ShareCoordinator
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator

    clock = broker.clock  # a manual clock (kbroker.control.clock) or None
    timer = clock.group_timer() if clock is not None else None
    share_timer = clock.group_timer() if clock is not None else None
    groups = GroupCoordinator(broker, timer)
    # New topics reach the consumer groups' regex resolutions (those of a replaced coordinator no longer).
    replaced_groups = broker.group_coordinator
    if replaced_groups is not None and replaced_groups.on_metadata_record in broker.image.listeners:
        broker.image.listeners.remove(replaced_groups.on_metadata_record)
    broker.image.listeners.append(groups.on_metadata_record)
    broker.group_coordinator = groups
    shares = ShareCoordinator(broker, share_timer)
    replaced = broker.share_coordinator
    broker.share_coordinator = shares
    # Closing connections end their share sessions (those of a replaced coordinator no longer).
    if replaced is not None and replaced.manager.on_connection_closed in broker.connection_listeners:
        broker.connection_listeners.remove(replaced.manager.on_connection_closed)
    broker.connection_listeners.append(shares.manager.on_connection_closed)
    # A member leaving its share group releases its records; a deleted share group's state goes.
    groups.share.on_member_removed.append(shares.manager.on_member_removed)
    groups.share.on_group_deleted.append(shares.manager.drop_group)
    txns = TransactionCoordinator(broker, clock)
    broker.txn_coordinator = txns
    # Produce's transaction verification (KIP-890) asks the coordinator of this broker.
    producer_state = broker.replica_manager.producer_state
    if producer_state is None:
        raise RuntimeError("the replica manager has no producer state: the transaction coordinator verifies through it")
    producer_state.verifier = txns
    return [groups, shares, txns]
