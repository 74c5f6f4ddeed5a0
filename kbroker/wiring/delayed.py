"""Delayed delivery (``kbroker/delayed.py``) built when first needed (``kbroker.wiring.on_demand``):
with ``__kbroker_delayed`` in the metadata at start-up the broker builds it with its services and
it loads the partitions it leads, as before; otherwise a batch with a delay header
(``broker.delayed``), or the metadata creating ``__kbroker_delayed``, builds and starts it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.wiring.on_demand import OnDemand

if TYPE_CHECKING:
    from kbroker.delayed import DelayedDelivery
    from kbroker.delayed_scheduler import DelayedHost

# kbroker.delayed_records.DELAYED_TOPIC, named here so that knowing it imports nothing of it
DELAYED_TOPIC = "__kbroker_delayed"


class DelayedOnDemand(OnDemand["DelayedDelivery"]):
    """The broker's delayed delivery as one of its services, built when first needed."""

    topics = frozenset({DELAYED_TOPIC})

    def __init__(self, broker: DelayedHost) -> None:
        super().__init__(broker)
        self._broker = broker

    def _build(self) -> DelayedDelivery:
        from kbroker.delayed import DelayedDelivery

        return DelayedDelivery(self._broker)

    def _start_built(self, built: DelayedDelivery) -> None:
        built.start()

    async def _stop_built(self, built: DelayedDelivery) -> None:
        await built.stop()

    def on_partition_leadership(self, topic: str, index: int, leader: bool) -> None:
        delayed = self._needed_for(topic)
        if delayed is not None:
            delayed.on_partition_leadership(topic, index, leader)

    def on_partition_deleted(self, topic: str, index: int) -> None:
        delayed = self.peek()
        if delayed is not None:
            delayed.on_partition_deleted(topic, index)
