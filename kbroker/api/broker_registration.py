"""BrokerRegistration (key 62), v0-4, on the controller listener only.

A broker announces itself (id, incarnation, listeners, supported features, rack, log
directories) to the active controller, which answers its broker epoch once the
RegisterBrokerRecord is committed. The checks, errors and records are Kafka 4.4's
ClusterControlManager.registerBroker (kbroker.controller.cluster_control): INCONSISTENT_CLUSTER_ID,
DUPLICATE_BROKER_REGISTRATION while another incarnation's session is live, UNSUPPORTED_VERSION for
a finalized feature level outside the broker's range, INVALID_REGISTRATION for missing or reused
log directories or no metadata.version; NOT_CONTROLLER from a controller that is not active. v3
adds PreviousBrokerEpoch (clean-shutdown detection).

Before anything else the connection's principal needs CLUSTER_ACTION on the cluster (a broker's:
a super user, or the ACL), as Kafka's ``ControllerApis`` (``authorizeClusterOperation(request,
CLUSTER_ACTION)``): refused, the request's error response with CLUSTER_AUTHORIZATION_FAILED
(``cluster_action_refused``), nothing written.
"""

from __future__ import annotations

from kbroker.api.context import HandlerContext, local_controller
from kbroker.api.controller_listener import ClusterControlNode, cluster_action_refused
from kbroker.api.registry import CONTROLLER_LISTENER, api
from kbroker.controller.errors import ControllerError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)


@api(BrokerRegistrationRequest, BrokerRegistrationResponse, 0, 4, listeners=(CONTROLLER_LISTENER,))
async def handle_broker_registration(ctx: HandlerContext[ClusterControlNode], request: BrokerRegistrationRequest) -> BrokerRegistrationResponse:
    # (imported here: only a controller of a multi-node quorum serves this API; the single-node start does not load it)
    from kbroker.controller.cluster_runtime import is_active, next_write_offset, now_ms, operation, write
    refused = cluster_action_refused(ctx, request, BrokerRegistrationResponse)
    if refused is not None:
        return refused
    controller = local_controller(ctx.broker)
    if not is_active(controller):
        return BrokerRegistrationResponse(error_code=ErrorCode.NOT_CONTROLLER, broker_epoch=-1)
    async with operation(ctx.broker) as cc:
        response, records = cc.register_broker(controller.image, request, ctx.api_version, now_ms(),
                                               next_write_offset(controller))
        if records:
            try:
                await write(controller, records)
            except ControllerError as exc:
                return BrokerRegistrationResponse(error_code=exc.code, broker_epoch=-1)
    return response
