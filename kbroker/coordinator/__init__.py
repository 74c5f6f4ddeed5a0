"""Coordinators (consumer groups, transactions) over the broker's internal topics.

:func:`build_services` creates them for a broker; each is a service with ``start()``/``stop()``
(either may be a coroutine) that the broker runs after its logs and metadata are loaded.
"""

from __future__ import annotations

from typing import Any


def build_services(broker: Any) -> list[Any]:
    services: list[Any] = []
    # group coordinator: sets broker.group_coordinator and appends itself to services
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator; services.append(TransactionCoordinator(broker))  # noqa: E702, I001, E501
    return services
