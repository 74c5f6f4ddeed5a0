"""BrokerHeartbeat (key 63), v0-2, on the controller listener only.

Each broker heartbeats every ``broker.heartbeat.interval.ms``; the active controller keeps its
session alive, unfences it once it has caught up with its registration, fences it on request, and
runs controlled shutdown (leaderships moved away first, then ShouldShutDown), as Kafka 4.4's
processBrokerHeartbeat (kbroker.controller.cluster_control). A heartbeat whose epoch is not the
registration's gets STALE_BROKER_EPOCH, one to a controller that is not active NOT_CONTROLLER.
The records are committed before the answer.

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
from kbroker_protocol.messages.broker_heartbeat import BrokerHeartbeatRequest, BrokerHeartbeatResponse


@api(BrokerHeartbeatRequest, BrokerHeartbeatResponse, 0, 2, listeners=(CONTROLLER_LISTENER,))
async def handle_broker_heartbeat(ctx: HandlerContext[ClusterControlNode], request: BrokerHeartbeatRequest) -> BrokerHeartbeatResponse:
    # (imported here: only a controller of a multi-node quorum serves this API; the single-node start does not load it)
    from kbroker.controller.cluster_runtime import is_active, next_write_offset, now_ms, operation, write
    refused = cluster_action_refused(ctx, request, BrokerHeartbeatResponse)
    if refused is not None:
        return refused
    controller = local_controller(ctx.broker)
    if not is_active(controller):
        return BrokerHeartbeatResponse(error_code=ErrorCode.NOT_CONTROLLER, is_fenced=True)
    async with operation(ctx.broker) as cc:
        response, records = cc.heartbeat(controller.image, request, now_ms())
        try:
            if records:
                last = await write(controller, records) + len(records) - 1
            else:
                last = next_write_offset(controller) - 1
        except ControllerError as exc:
            return BrokerHeartbeatResponse(error_code=exc.code, is_fenced=True)
        cc.heartbeat_committed(request.broker_id, last)
    return response
