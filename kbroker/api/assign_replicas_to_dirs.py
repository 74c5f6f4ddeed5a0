"""AssignReplicasToDirs (key 73), v0, on the controller listener only (KIP-858).

A broker with several log dirs says in which dir each of its replicas lives; the active controller
records it in the partitions' ``Directories`` (kbroker.controller.dir_control, as Kafka 4.4's
handleAssignReplicasToDirs). UNSUPPORTED_VERSION below metadata.version 17 (IBP_3_7_IV2),
NOT_CONTROLLER from a controller that is not active. The records are committed before the answer.

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
from kbroker_protocol.messages.assign_replicas_to_dirs import (
    AssignReplicasToDirsRequest,
    AssignReplicasToDirsResponse,
)


@api(AssignReplicasToDirsRequest, AssignReplicasToDirsResponse, 0, 0, listeners=(CONTROLLER_LISTENER,))
async def handle_assign_replicas_to_dirs(ctx: HandlerContext[ClusterControlNode], request: AssignReplicasToDirsRequest) -> AssignReplicasToDirsResponse:
    from kbroker.controller.cluster_runtime import is_active, operation, write
    from kbroker.controller.dir_control import assign_replicas_to_dirs
    from kbroker.metadata.directories import MV_DIRECTORY_ASSIGNMENT
    from kbroker.metadata.features import METADATA_VERSION
    refused = cluster_action_refused(ctx, request, AssignReplicasToDirsResponse)
    if refused is not None:
        return refused
    controller = local_controller(ctx.broker)
    if not is_active(controller):
        return AssignReplicasToDirsResponse(error_code=ErrorCode.NOT_CONTROLLER)
    async with operation(ctx.broker) as cc:
        if controller.image.features.get(METADATA_VERSION, 0) < MV_DIRECTORY_ASSIGNMENT:
            return AssignReplicasToDirsResponse(error_code=ErrorCode.UNSUPPORTED_VERSION)
        response, records = assign_replicas_to_dirs(controller.image, cc.settings, request)
        if records:
            try:
                await write(controller, records)
            except ControllerError as exc:
                return AssignReplicasToDirsResponse(error_code=exc.code)
    return response
