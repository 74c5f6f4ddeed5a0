"""Coordinators (consumer groups, transactions) over the broker's internal topics.

:func:`build_services` creates them for a broker; each is a service with ``start()``/``stop()``
(either may be a coroutine) that the broker runs after its logs and metadata are loaded.
"""

from __future__ import annotations

from typing import Any


def build_services(broker: Any) -> list[Any]:
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.share_coordinator import ShareCoordinator
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator

    clock = getattr(broker, "clock", None)  # a manual clock (kbroker.control.clock) or None
    timer = clock.group_timer() if clock is not None else None
    share_timer = clock.group_timer() if clock is not None else None
    return [GroupCoordinator(broker, timer), ShareCoordinator(broker, share_timer), TransactionCoordinator(broker, clock)]
