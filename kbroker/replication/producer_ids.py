"""Producer-id allocation for idempotent producers (InitProducerId with a null TransactionalId).

Ids come from blocks reserved durably in the metadata log by the controller
(``QuorumController.allocate_producer_ids``), so an id is never reused across restarts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kbroker.controller.quorum import QuorumController


class ControllerHolder(Protocol):
    """What the allocator needs of the broker: its controller, present once the broker started."""

    @property
    def controller(self) -> QuorumController | None: ...


class ProducerIdManager:
    def __init__(self, broker: ControllerHolder) -> None:
        self.broker = broker
        self.next_id = 0
        self.end_id = 0

    def allocate(self) -> int:
        if self.next_id >= self.end_id:
            controller = self.broker.controller
            assert controller is not None
            start, count = controller.allocate_producer_ids()
            self.next_id, self.end_id = start, start + count
        pid = self.next_id
        self.next_id += 1
        return pid
