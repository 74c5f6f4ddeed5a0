"""UnregisterBroker (key 64), v0, on the controller listener.

Removes a broker's registration (``kafka-cluster.sh unregister``): it leaves every ISR and ELR and
an UnregisterBrokerRecord is committed, as Kafka 4.4's ReplicationControlManager.unregisterBroker;
an unknown id gets BROKER_ID_NOT_REGISTERED, a controller that is not active NOT_CONTROLLER.
Kafka's brokers also accept it on their listeners and forward it to the controller; so do kbroker's
(``kbroker/api/quorum_forwarding.py``), which end on the active controller in the same
``kbroker.controller.operations.quorum.unregister_broker``.

On the controller listener the connection's principal needs ALTER on the cluster, as Kafka's
``ControllerApis.handleUnregisterBroker`` (``authorizeClusterOperation(request, ALTER)``): refused,
the request's error response, CLUSTER_AUTHORIZATION_FAILED, and nothing is written.
"""

from __future__ import annotations

from typing import Protocol

from kbroker.api.context import HandlerContext
from kbroker.api.controller_listener import connection_authorized
from kbroker.api.registry import CONTROLLER_LISTENER, api
from kbroker.api.services import Authorizing, ClusterControlling
from kbroker.controller.operations.quorum import unregister_broker, unregister_broker_error
from kbroker.security.acls import ALTER
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.unregister_broker import UnregisterBrokerRequest, UnregisterBrokerResponse


class UnregisteringNode(ClusterControlling, Authorizing, Protocol):
    """The node as this handler uses it: its controller, and the authorizer."""


@api(UnregisterBrokerRequest, UnregisterBrokerResponse, 0, 0, listeners=(CONTROLLER_LISTENER,))
async def handle_unregister_broker(ctx: HandlerContext[UnregisteringNode], request: UnregisterBrokerRequest) -> UnregisterBrokerResponse:
    if not connection_authorized(ctx.broker, ALTER):
        return unregister_broker_error(request, ctx.api_version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    return await unregister_broker(ctx.broker, request)
