"""UnregisterBroker (key 64), v0, on the controller listener.

Removes a broker's registration (``kafka-cluster.sh unregister``): it leaves every ISR and ELR and
an UnregisterBrokerRecord is committed, as Kafka 4.4's ReplicationControlManager.unregisterBroker;
an unknown id gets BROKER_ID_NOT_REGISTERED, a controller that is not active NOT_CONTROLLER.
Kafka's brokers also accept it on their listeners and forward it to the controller; so do kbroker's
(``kbroker/api/quorum_forwarding.py``), which end on the active controller in the same
``kbroker.controller.operations.quorum.unregister_broker``.
"""

from __future__ import annotations

from kbroker.api.context import HandlerContext
from kbroker.api.registry import CONTROLLER_LISTENER, api
from kbroker.api.services import ClusterControlling
from kbroker.controller.operations.quorum import unregister_broker
from kbroker_protocol.messages.unregister_broker import UnregisterBrokerRequest, UnregisterBrokerResponse


@api(UnregisterBrokerRequest, UnregisterBrokerResponse, 0, 0, listeners=(CONTROLLER_LISTENER,))
async def handle_unregister_broker(ctx: HandlerContext[ClusterControlling], request: UnregisterBrokerRequest) -> UnregisterBrokerResponse:
    return await unregister_broker(ctx.broker, request)
