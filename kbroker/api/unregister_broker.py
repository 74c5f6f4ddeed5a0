"""UnregisterBroker (key 64), v0, on the controller listener.

Removes a broker's registration (``kafka-cluster.sh unregister``): it leaves every ISR and ELR and
an UnregisterBrokerRecord is committed, as Kafka 4.4's ReplicationControlManager.unregisterBroker;
an unknown id gets BROKER_ID_NOT_REGISTERED, a controller that is not active NOT_CONTROLLER.
Kafka's brokers also accept it on their listeners and forward it to the controller; so do kbroker's
(``kbroker/api/quorum_forwarding.py``), which end here on the active controller.
"""

from __future__ import annotations

from kbroker.api.context import HandlerContext, local_controller
from kbroker.api.registry import CONTROLLER_LISTENER, api
from kbroker.controller.errors import ControllerError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.unregister_broker import UnregisterBrokerRequest, UnregisterBrokerResponse


@api(64, 0, 0, listeners=(CONTROLLER_LISTENER,))
async def handle_unregister_broker(ctx: HandlerContext, request: UnregisterBrokerRequest) -> UnregisterBrokerResponse:
    # (imported here: only a controller of a multi-node quorum serves this API; the single-node start does not load it)
    from kbroker.controller.cluster_runtime import is_active, now_ms, operation, write
    controller = local_controller(ctx.broker)
    if not is_active(controller):
        return UnregisterBrokerResponse(error_code=ErrorCode.NOT_CONTROLLER,
                                        error_message=ErrorCode.NOT_CONTROLLER.message)
    async with operation(ctx.broker) as cc:
        response, records = cc.unregister_broker(controller.image, request, now_ms())
        if records:
            try:
                await write(controller, records)
            except ControllerError as exc:
                return UnregisterBrokerResponse(error_code=exc.code, error_message=exc.message)
    return response
