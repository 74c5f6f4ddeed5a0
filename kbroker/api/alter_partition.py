"""AlterPartition (key 56), v2-3, on the controller listener only.

A partition leader asks the controller to change its ISR, naming the leader and partition epochs
it acts on; the controller commits a PartitionChangeRecord and answers the new leader, epochs and
ISR, as Kafka 4.4's ReplicationControlManager.alterPartition (kbroker.controller.replication_control):
NOT_CONTROLLER from a controller that is not active, STALE_BROKER_EPOCH for the requester's epoch,
then per partition UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION, NOT_CONTROLLER (an epoch newer
than ours), FENCED_LEADER_EPOCH, INVALID_REQUEST (not the leader, or an ISR that is not a subset of
the replicas holding the leader), INVALID_UPDATE_VERSION (a stale partition epoch),
INELIGIBLE_REPLICA (a fenced, shutting-down, unregistered or re-registered replica). v3 carries
each ISR member's broker epoch.

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
from kbroker_protocol.messages.alter_partition import AlterPartitionRequest, AlterPartitionResponse


@api(AlterPartitionRequest, AlterPartitionResponse, 2, 3, listeners=(CONTROLLER_LISTENER,))
async def handle_alter_partition(ctx: HandlerContext[ClusterControlNode], request: AlterPartitionRequest) -> AlterPartitionResponse:
    # (imported here: only a controller of a multi-node quorum serves this API; the single-node start does not load it)
    from kbroker.controller.cluster_runtime import is_active, operation, write
    from kbroker.controller.replication_control import alter_partition
    refused = cluster_action_refused(ctx, request, AlterPartitionResponse)
    if refused is not None:
        return refused
    controller = local_controller(ctx.broker)
    if not is_active(controller):
        return AlterPartitionResponse(error_code=ErrorCode.NOT_CONTROLLER, topics=[])
    async with operation(ctx.broker) as cc:
        response, records = alter_partition(controller.image, request, ctx.api_version, cc.settings)
        if records:
            try:
                await write(controller, records)
            except ControllerError as exc:
                return AlterPartitionResponse(error_code=exc.code, topics=[])
    return response
