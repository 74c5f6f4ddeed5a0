"""The controller of this process as a :class:`~kbroker.metadata.client.ControllerClient`.

:class:`LocalControllerClient` runs an operation of :data:`~kbroker.controller.operations.table.OPERATIONS`
(the table of the controller's side of every forwarded API, imported when the first operation
runs) on ``host``'s ``QuorumController``: the single-node path, and the controller's side of a
forwarded request (the Envelope handler decodes the inner request and runs it here). ``OPERATIONS``,
``Operation`` and ``AllOperationsHost`` are the table module's, reachable from here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbroker.controller.errors import ControllerError
from kbroker.controller.operations.host import ControllerHolder
from kbroker.metadata.client import ForwardingOperations, Requester
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.allocate_producer_ids import AllocateProducerIdsResponse

if TYPE_CHECKING:
    from kbroker.controller.operations.table import OPERATIONS, AllOperationsHost, Operation

__all__ = ["OPERATIONS", "AllOperationsHost", "LocalControllerClient", "Operation", "allocate_producer_id_block"]


def __getattr__(name: str) -> Any:
    """The table module's names (``OPERATIONS``...), importing it on first use."""
    if name in ("OPERATIONS", "Operation", "AllOperationsHost"):
        from kbroker.controller.operations import table

        return getattr(table, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class LocalControllerClient(ForwardingOperations):
    """The controller of this process: each operation runs here, on ``host``'s QuorumController."""

    def __init__(self, host: AllOperationsHost) -> None:
        self.host = host

    async def forward(self, api_key: int, request: Any, version: int, requester: Requester | None = None) -> Any:
        from kbroker.controller.operations.table import OPERATIONS

        operation = OPERATIONS.get(api_key)
        if operation is None:
            raise ValueError(f"api {api_key} is not a controller operation")
        return await operation(self.host, request, version, requester)

    async def allocate_producer_ids(self, broker_id: int, broker_epoch: int) -> AllocateProducerIdsResponse:
        return await allocate_producer_id_block(self.host, broker_id, broker_epoch)


async def allocate_producer_id_block(host: ControllerHolder, broker_id: int, broker_epoch: int
                                     ) -> AllocateProducerIdsResponse:
    """A block of producer ids for ``broker_id`` from ``host``'s controller (all the operation uses
    of the node): NOT_CONTROLLER when it runs none, the controller's error (STALE_BROKER_EPOCH...)."""
    controller = host.controller
    if controller is None:
        return AllocateProducerIdsResponse(throttle_time_ms=0, error_code=ErrorCode.NOT_CONTROLLER,
                                           producer_id_start=-1, producer_id_len=0)
    try:
        start, count = await controller.allocate_producer_ids(broker_id, broker_epoch)
    except ControllerError as exc:
        return AllocateProducerIdsResponse(throttle_time_ms=0, error_code=exc.code, producer_id_start=-1,
                                           producer_id_len=0)
    return AllocateProducerIdsResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, producer_id_start=start,
                                       producer_id_len=count)
