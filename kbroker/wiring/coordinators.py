"""The coordinators of a broker (consumer groups, share groups, transactions), made and wired here.

The broker holds a :class:`Coordinators` (one of its services), which builds the three with
:func:`wire_coordinators` when they are first needed, and the control plane's reset
(``kbroker/control/state.py``) makes it forget stopped ones (:meth:`Coordinators.replace`).
:func:`wire_coordinators` makes the group, share and transaction coordinators and hooks the share
coordinator into the group coordinator's share groups; :class:`Coordinators` hooks itself once into
the metadata image's listeners, the closing connections and the producer state's transaction
verification and forwards each to the coordinator concerned; the coordinators install nothing
themselves. Each is a service with ``start()``/``stop()`` that runs once the broker's logs and
metadata are loaded.

When they are built (``kbroker.wiring.on_demand``): a broker starting on metadata that holds one
of their internal topics (``__consumer_offsets``, ``__share_group_state``,
``__transaction_state``: a restart) builds and starts them with its services, so their state loads
at start-up as Kafka's coordinators load it on election; so does a broker on the manual clock
(their timers run on it from the start). Otherwise nothing needs them yet, and importing and
building them (a sixth of the single node's start-up instructions) waits for the first use: a
handler or anything else reading ``group_coordinator``, ``share_coordinator`` or
``txn_coordinator``, a transactional batch to verify, or the metadata creating one of their
topics (at its TopicRecord, before any of its partitions opens here). Built then, they are
started at once, as they would have been at start-up with nothing to load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from kbroker.coordinator.hosts import GroupsHost, TxnHost
from kbroker.wiring.on_demand import OnDemand
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.control.clock import ManualClock
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.share_coordinator import ShareCoordinator
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator
    from kbroker.server.connection import KafkaConnection

# The coordinators' internal topics (their modules' OFFSETS_TOPIC, STATE_TOPIC and
# TRANSACTION_STATE_TOPIC, named here so that knowing them imports no coordinator).
COORDINATOR_TOPICS = frozenset({"__consumer_offsets", "__share_group_state", "__transaction_state"})


class CoordinatedBroker(TxnHost, GroupsHost, Protocol):
    """The broker the coordinators are wired into: what each coordinator uses of it
    (:class:`~kbroker.coordinator.hosts.TxnHost` and ``GroupsHost`` cover all three), the connection
    listeners and the manual clock their timers run on."""

    connection_listeners: list[Callable[[KafkaConnection], None]]
    clock: ManualClock | None


class CoordinatorService(Protocol):
    """A coordinator as the broker runs it (``kbroker.broker.Service``)."""

    def start(self) -> object: ...

    def stop(self) -> object: ...


def wire_coordinators(broker: CoordinatedBroker) -> tuple[GroupCoordinator, ShareCoordinator, TransactionCoordinator]:
    """New group, share and transaction coordinators of ``broker``, in the order they start, the
    share coordinator hooked into the group coordinator's share groups."""
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
    shares = ShareCoordinator(broker, share_timer)
    # A member leaving its share group releases its records; a deleted share group's state goes.
    groups.share.on_member_removed.append(shares.manager.on_member_removed)
    groups.share.on_group_deleted.append(shares.manager.drop_group)
    txns = TransactionCoordinator(broker, clock)
    return groups, shares, txns


Built = tuple["GroupCoordinator", "ShareCoordinator", "TransactionCoordinator"]


class Coordinators(OnDemand[Built]):
    """The broker's coordinators, built when first needed (see the module's docstring), as one of
    the broker's services: its ``start()`` and ``stop()`` start and stop them (once built), its
    hooks reach them (the image's records, closing connections, transaction verification and the
    partition hooks the broker calls on its services)."""

    topics = COORDINATOR_TOPICS

    def __init__(self, broker: CoordinatedBroker) -> None:
        super().__init__(broker)
        self._broker = broker
        broker.connection_listeners.append(self.on_connection_closed)
        self.hook_producer_state()

    def hook_producer_state(self) -> None:
        """Produce's transaction verification (KIP-890) asks the transaction coordinator of this
        broker (through this object, which builds it when first asked)."""
        producer_state = self._broker.replica_manager.producer_state
        if producer_state is None:
            raise RuntimeError("the replica manager has no producer state: the transaction coordinator verifies through it")
        producer_state.verifier = _Verifier(self)

    # -- the coordinators --------------------------------------------------------------------------------

    @property
    def group(self) -> GroupCoordinator:
        return self.get()[0]

    @property
    def share(self) -> ShareCoordinator:
        return self.get()[1]

    @property
    def txn(self) -> TransactionCoordinator:
        return self.get()[2]

    def built_group(self) -> GroupCoordinator | None:
        """The group coordinator if it was built (building none)."""
        built = self.peek()
        return None if built is None else built[0]

    def _build(self) -> Built:
        return wire_coordinators(self._broker)

    def _start_built(self, built: Built) -> None:
        for coordinator in built:
            coordinator.start()

    async def _stop_built(self, built: Built) -> None:
        for coordinator in reversed(built):
            result = coordinator.stop()
            if asyncio.iscoroutine(result):
                await result

    def _needed_at_start(self) -> bool:
        # also on the manual clock: their timers run on it from the start
        return self._broker.clock is not None or super()._needed_at_start()

    def replace(self) -> None:
        """Forget the (stopped) coordinators: new ones are built when next needed (the control
        plane's reset, which also gives the replica manager a new producer state to hook)."""
        self.forget()
        self.hook_producer_state()

    # -- hooks ----------------------------------------------------------------------------------------------

    def _on_record(self, built: Built, record: object) -> None:
        # a new topic makes the consumer groups' regular-expression resolutions stale
        built[0].on_metadata_record(record)

    def on_connection_closed(self, conn: KafkaConnection) -> None:
        """Closing connections end their share sessions (none before the share coordinator is built)."""
        built = self.peek()
        if built is not None:
            built[1].manager.on_connection_closed(conn)

    def on_partition_leadership(self, topic: str, index: int, leader: bool) -> None:
        """The broker's hook (Kafka's onElection/onResignation) for each coordinator; a partition
        of their topics led here while running needs them."""
        for coordinator in self._needed_for(topic) or ():
            coordinator.on_partition_leadership(topic, index, leader)

    def on_partition_deleted(self, topic: str, index: int) -> None:
        """The broker's hook: a deleted topic's committed offsets and share state go (none to
        remove before the coordinators are built)."""
        built = self.peek()
        if built is not None:
            built[0].on_partition_deleted(topic, index)
            built[1].on_partition_deleted(topic, index)


class _Verifier:
    """The transaction coordinator as produce-side verification asks it
    (``kbroker.replication.producer_manager.TxnVerifier``), built when first asked."""

    def __init__(self, coordinators: Coordinators) -> None:
        self._coordinators = coordinators

    def verify_partition(self, transactional_id: str, producer_id: int, producer_epoch: int, topic: str,
                         index: int) -> ErrorCode:
        return self._coordinators.txn.verify_partition(transactional_id, producer_id, producer_epoch, topic, index)

    def is_coordinator_for(self, transactional_id: str) -> bool:
        return self._coordinators.txn.is_coordinator_for(transactional_id)

    def partition_for(self, transactional_id: str) -> int:
        return self._coordinators.txn.partition_for(transactional_id)

    async def add_partition_from_produce(self, transactional_id: str, producer_id: int, producer_epoch: int,
                                         topic: str, index: int) -> ErrorCode:
        return await self._coordinators.txn.add_partition_from_produce(transactional_id, producer_id, producer_epoch,
                                                                       topic, index)
