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

When they are built: a broker starting on metadata that holds one of their internal topics
(``__consumer_offsets``, ``__share_group_state``, ``__transaction_state``: a restart) builds and
starts them with its services, so their state loads at start-up as Kafka's coordinators load it on
election; so does a broker on the manual clock (their timers run on it from the start). Otherwise
nothing needs them yet, and importing and building them (a sixth of the single node's start-up
CPU) waits for the first use: a handler or anything else reading ``group_coordinator``,
``share_coordinator`` or ``txn_coordinator``, a transactional batch to verify, or the metadata
creating one of their topics (at its TopicRecord, before any of its partitions is opened here).
Built then, each is started at once, as it would have been at start-up with nothing to load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.coordinator.hosts import GroupsHost, TxnHost
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


class Coordinators:
    """The broker's coordinators, built when first needed (see the module's docstring), as one of
    the broker's services: its ``start()`` and ``stop()`` start and stop them (once built), its
    hooks reach them (the image's records, closing connections, transaction verification and the
    partition hooks the broker calls on its services)."""

    def __init__(self, broker: CoordinatedBroker) -> None:
        self._broker = broker
        self._built: tuple[GroupCoordinator, ShareCoordinator, TransactionCoordinator] | None = None
        self._running = False  # between start() and stop(): a coordinator built now is started at once
        self._started = False  # the built ones were started
        self._loop: asyncio.AbstractEventLoop | None = None  # the broker's, where they are started
        broker.image.listeners.append(self.on_metadata_record)
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
    def built(self) -> bool:
        return self._built is not None

    @property
    def group(self) -> GroupCoordinator:
        return self._ensure()[0]

    @property
    def share(self) -> ShareCoordinator:
        return self._ensure()[1]

    @property
    def txn(self) -> TransactionCoordinator:
        return self._ensure()[2]

    def built_group(self) -> GroupCoordinator | None:
        """The group coordinator if it was built (building none)."""
        return None if self._built is None else self._built[0]

    def _ensure(self) -> tuple[GroupCoordinator, ShareCoordinator, TransactionCoordinator]:
        built = self._built
        if built is not None:
            return built
        loop = self._loop
        if self._running and loop is not None and not _running_on(loop):
            # read from another thread (a test's, the metrics endpoint's): built and started on the
            # broker's loop, where their timers and tasks run
            asyncio.run_coroutine_threadsafe(_call(self._ensure), loop).result()
            assert self._built is not None
            return self._built
        built = self._built = wire_coordinators(self._broker)
        if self._running:
            self._start_built(built)
        return built

    def _start_built(self, built: tuple[GroupCoordinator, ShareCoordinator, TransactionCoordinator]) -> None:
        self._started = True
        for coordinator in built:
            coordinator.start()

    # -- the broker's service ---------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = True
        image = self._broker.image
        if self._built is not None or self._broker.clock is not None \
                or any(image.topic(name) is not None for name in COORDINATOR_TOPICS):
            built = self._ensure()  # started by it if it builds them now
            if not self._started:
                self._start_built(built)  # built before the broker started

    async def stop(self) -> None:
        was_running, self._running = self._running, False
        if self._built is None or not was_running:
            return
        for coordinator in reversed(self._built):
            result = coordinator.stop()
            if asyncio.iscoroutine(result):
                await result

    def replace(self) -> None:
        """Forget the (stopped) coordinators: new ones are built when next needed (the control
        plane's reset, which also gives the replica manager a new producer state to hook)."""
        self._built = None
        self._started = False
        self.hook_producer_state()

    # -- hooks ----------------------------------------------------------------------------------------------

    def on_metadata_record(self, record: object) -> None:
        """The metadata image's listener: a new topic makes the consumer groups' regular-expression
        resolutions stale; the creation of a coordinator's internal topic needs the coordinators."""
        if self._built is None:
            if not self._running or type(record).__name__ != "TopicRecord" \
                    or getattr(record, "name", None) not in COORDINATOR_TOPICS:
                return
        self.group.on_metadata_record(record)

    def on_connection_closed(self, conn: KafkaConnection) -> None:
        """Closing connections end their share sessions (none before the share coordinator is built)."""
        if self._built is not None:
            self._built[1].manager.on_connection_closed(conn)

    def on_partition_leadership(self, topic: str, index: int, leader: bool) -> None:
        """The broker's hook (Kafka's onElection/onResignation) for each coordinator; a partition
        of their topics led here while running needs them."""
        if self._built is None and not (self._running and topic in COORDINATOR_TOPICS):
            return
        for coordinator in self._ensure():
            coordinator.on_partition_leadership(topic, index, leader)

    def on_partition_deleted(self, topic: str, index: int) -> None:
        """The broker's hook: a deleted topic's committed offsets and share state go (none to
        remove before the coordinators are built)."""
        if self._built is None:
            return
        for coordinator in (self._built[0], self._built[1]):
            coordinator.on_partition_deleted(topic, index)


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


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()
