"""The coordinators of a broker (consumer groups, share groups, transactions), made and wired here.

The composition root calls :func:`wire_coordinators`: the broker when it is built
(``kbroker/broker.py``) and the control plane's reset (``kbroker/control/state.py``) when it
replaces them. It assigns each coordinator to the broker attribute the API handlers read and
hooks the share coordinator into closing connections and the transaction coordinator into the
producer state's transaction verification; the coordinators install nothing themselves. Each is
a service with ``start()``/``stop()`` (either may be a coroutine) that the broker runs after its
logs and metadata are loaded.
"""

from __future__ import annotations

from typing import Any


def wire_coordinators(broker: Any) -> list[Any]:
    """The group, share and transaction coordinators of ``broker``, in the order they start."""
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.share_coordinator import ShareCoordinator
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator

    clock = getattr(broker, "clock", None)  # a manual clock (kbroker.control.clock) or None
    timer = clock.group_timer() if clock is not None else None
    share_timer = clock.group_timer() if clock is not None else None
    groups = GroupCoordinator(broker, timer)
    broker.group_coordinator = groups
    shares = ShareCoordinator(broker, share_timer)
    broker.share_coordinator = shares
    # Closing connections end their share sessions (the coordinator's stop() unhooks it).
    broker.connection_listeners.append(shares.manager.on_connection_closed)
    txns = TransactionCoordinator(broker, clock)
    broker.txn_coordinator = txns
    # Produce's transaction verification (KIP-890) asks the coordinator of this broker.
    broker.replica_manager.producer_state.verifier = txns
    return [groups, shares, txns]
