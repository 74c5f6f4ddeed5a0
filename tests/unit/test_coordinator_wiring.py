"""The composition root wires the coordinators (issue 14): a coordinator installs nothing into the
broker it is given; ``kbroker.wiring.coordinators`` makes them (``wire_coordinators``, when the
broker's ``Coordinators`` first needs them) and hooks them in."""

from __future__ import annotations

from typing import Any

from kbroker.broker import Broker
from kbroker.config import BrokerConfig
from kbroker.coordinator.group_coordinator import GroupCoordinator
from kbroker.coordinator.group_coordinator_core import OFFSETS_TOPIC
from kbroker.coordinator.share_coordinator import ShareCoordinator
from kbroker.coordinator.share_state import STATE_TOPIC
from kbroker.coordinator.txn_coordinator import TransactionCoordinator
from kbroker.coordinator.txn_log import TRANSACTION_STATE_TOPIC
from kbroker.wiring.coordinators import COORDINATOR_TOPICS, Coordinators


class _RecordingBroker:
    """Forwards reads to a real (unstarted) broker and records every attribute set on it."""

    def __init__(self, broker: Broker) -> None:
        object.__setattr__(self, "_broker", broker)
        object.__setattr__(self, "assigned", [])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self.assigned.append(name)
        setattr(self._broker, name, value)


def test_the_broker_wires_its_coordinators() -> None:
    broker = Broker(BrokerConfig({"node.id": "1"}))
    coordinators = broker.services[0]
    assert isinstance(coordinators, Coordinators) and broker.coordinators is coordinators
    # hooked once, before anything is built: closing connections, the image, transaction verification
    assert broker.connection_listeners == [coordinators.on_connection_closed]
    assert broker.image.listeners.count(coordinators.on_metadata_record) == 1
    assert broker.replica_manager.producer_state.verifier is not None
    assert not coordinators.built
    groups, shares, txns = broker.group_coordinator, broker.share_coordinator, broker.txn_coordinator
    assert coordinators.built
    assert isinstance(groups, GroupCoordinator) and broker.group_coordinator is groups
    assert isinstance(shares, ShareCoordinator) and broker.share_coordinator is shares
    assert isinstance(txns, TransactionCoordinator) and broker.txn_coordinator is txns
    assert not groups.started  # built before the broker starts: started with its services
    # a share group member leaving releases its records, a deleted share group's state goes
    assert groups.share.on_member_removed == [shares.manager.on_member_removed]
    assert groups.share.on_group_deleted == [shares.manager.drop_group]


def test_the_verifier_builds_the_transaction_coordinator() -> None:
    broker = Broker(BrokerConfig({"node.id": "1"}))
    verifier = broker.replica_manager.producer_state.verifier
    assert verifier is not None and not broker.coordinators.built
    index = verifier.partition_for("some-transactional-id")
    assert broker.coordinators.built
    assert broker.txn_coordinator is not None
    assert index == broker.txn_coordinator.partition_for("some-transactional-id")


def test_the_coordinator_topics_are_the_coordinators_own() -> None:
    assert COORDINATOR_TOPICS == {OFFSETS_TOPIC, STATE_TOPIC, TRANSACTION_STATE_TOPIC}


def test_a_coordinator_installs_nothing_into_its_broker() -> None:
    real = Broker(BrokerConfig({"node.id": "1"}))
    verifier = real.replica_manager.producer_state.verifier
    listeners = list(real.connection_listeners)
    host = _RecordingBroker(real)
    GroupCoordinator(host)
    ShareCoordinator(host)
    TransactionCoordinator(host)
    assert host.assigned == []
    assert real.replica_manager.producer_state.verifier is verifier
    assert real.connection_listeners == listeners


async def test_starting_a_coordinator_installs_nothing() -> None:
    """start() loads and schedules; it hooks nothing into the broker or another coordinator."""
    real = Broker(BrokerConfig({"node.id": "1", "kbroker.clock": "manual"}))
    groups = real.group_coordinator
    assert groups is not None and real.clock is not None

    def hooks() -> tuple[object, ...]:
        return (list(real.connection_listeners), list(real.image.listeners), list(groups.share.on_member_removed),
                list(groups.share.on_group_deleted), real.replica_manager.producer_state.verifier)

    before = hooks()
    host = _RecordingBroker(real)
    clock = real.clock
    for service in (GroupCoordinator(host, clock.group_timer()), ShareCoordinator(host, clock.group_timer()),
                    TransactionCoordinator(host, clock)):
        result = service.start()
        if result is not None:
            await result
    assert host.assigned == []
    assert hooks() == before


async def test_replacing_forgets_the_stopped_coordinators() -> None:
    """As the control plane's reset does: the old coordinators stop, new ones are built when next
    needed, the new producer state is hooked."""
    from kbroker.replication.producer_manager import ProducerStateManager

    broker = Broker(BrokerConfig({"node.id": "1"}))
    old = (broker.group_coordinator, broker.share_coordinator, broker.txn_coordinator)
    await broker.coordinators.stop()
    broker.replica_manager.producer_state = ProducerStateManager()
    broker.coordinators.replace()
    assert not broker.coordinators.built
    assert broker.replica_manager.producer_state.verifier is not None
    fresh = (broker.group_coordinator, broker.share_coordinator, broker.txn_coordinator)
    assert all(a is not b for a, b in zip(old, fresh, strict=True))
    assert fresh[0].share.on_member_removed == [fresh[1].manager.on_member_removed]
    # one hook each, reaching the new coordinators
    assert broker.connection_listeners == [broker.coordinators.on_connection_closed]
    assert broker.image.listeners.count(broker.coordinators.on_metadata_record) == 1


def test_the_control_plane_sets_the_dispatcher_hook_through_the_composition_root() -> None:
    """ControlPlane switches the dispatcher's request hook through the callback it was given
    (the broker's), not by assigning the broker's attribute."""
    from kbroker.control.plane import ControlPlane

    real = Broker(BrokerConfig({"node.id": "1"}))
    host = _RecordingBroker(real)
    hooks: list[object] = []
    control = ControlPlane(host, hooks.append)
    control.set_disk_full(True)
    control.set_disk_full(False)
    assert hooks == [control, None]
    assert host.assigned == []
    real.control.set_disk_full(True)
    assert real.request_hooks is real.control
    real.control.set_disk_full(False)
    assert real.request_hooks is None
