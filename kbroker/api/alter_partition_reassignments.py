"""AlterPartitionReassignments (key 45), v0-1.

Moves partitions to new replica sets, as Kafka 4.4's ``ReplicationControlManager``
(``alterPartitionReassignments``, the decision in kbroker.controller.reassignment). The
broker forwards the request to the active controller (``ctx.broker.controller_client``, in an
Envelope on a cluster); :func:`alter_partition_reassignments` is the controller's side, run one
at a time with the controller's other operations.

A reassignment first writes a PartitionChangeRecord whose replicas are the target followed by
the replicas leaving, with ``addingReplicas``/``removingReplicas`` set; the leader's ISR
expansions (AlterPartition) bring the adding replicas in, and the expansion that makes the ISR
hold every adding replica completes it: replicas and ISR become the target, the leader moves off
a removed replica (the leader epoch moves whenever a replica leaves). A target that needs no new
replica (a reordering, or a shrink whose remaining replicas are all in sync) completes at once. A
null replica list cancels the partition's reassignment: the adding replicas leave, the original
replicas stay. Errors per partition, with Kafka's messages: UNKNOWN_TOPIC_OR_PARTITION,
INVALID_REPLICA_ASSIGNMENT (empty list, a broker named twice, a broker not registered, a cancel
that needs an unclean election the topic does not allow), INVALID_REPLICATION_FACTOR (v1 with
``allowReplicationFactorChange`` false and a target of another size: KIP-860),
NO_REASSIGNMENT_IN_PROGRESS (cancel of none). Without ALTER on the cluster the whole request is
CLUSTER_AUTHORIZATION_FAILED. v1 adds ``allowReplicationFactorChange`` (echoed in the response).

A controller also serves it on its controller listener (Kafka's ControllerApis, for clients using
``bootstrap.controllers``): run there when it is the active controller, else NOT_CONTROLLER for
every partition (the client looks for the active one).
"""

from __future__ import annotations

from kbroker.api.authorization import operation_subject
from kbroker.api.context import BrokerServices, HandlerContext, RequestContext, requester, response_as
from kbroker.api.error_response import error_response_as, refusal
from kbroker.api.registry import CONTROLLER_LISTENER, api
from kbroker.config import BROKER_DEFAULTS
from kbroker.controller.client import Requester, controller_active, controller_operation
from kbroker.controller.cluster_control import ClusterControl
from kbroker.controller.errors import ControllerError
from kbroker.controller.reassignment import alter_partition_reassignments
from kbroker.controller.replication_control import ReplicationSettings
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
)

ALTER_PARTITION_REASSIGNMENTS = 45


@api(ALTER_PARTITION_REASSIGNMENTS, 0, 1)
async def handle_alter_partition_reassignments(ctx: RequestContext, request: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse:
    response = await ctx.broker.controller_client.forward(ALTER_PARTITION_REASSIGNMENTS, request, ctx.api_version,
                                                          requester(ctx))
    return response_as(response, AlterPartitionReassignmentsResponse)


@api(ALTER_PARTITION_REASSIGNMENTS, 0, 1, listeners=(CONTROLLER_LISTENER,))
async def handle_alter_partition_reassignments_on_controller(ctx: HandlerContext, request: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse:
    if not controller_active(ctx.broker.controller):
        return error_response_as(AlterPartitionReassignmentsResponse, request, ctx.api_version, int(ErrorCode.NOT_CONTROLLER))
    try:
        return await alter_partition_reassignments_operation(ctx.broker, request, ctx.api_version,
                                                             Requester(client_id=ctx.header.client_id))
    except ControllerError as exc:  # leadership lost while the operation ran
        return error_response_as(AlterPartitionReassignmentsResponse, request, ctx.api_version, int(exc.code))


def replication_settings(broker: BrokerServices) -> ReplicationSettings:
    """The controller's cluster defaults (its ClusterControl's when the node runs one)."""
    cc: ClusterControl | None = getattr(broker.controller, "cluster_control", None)  # (cluster_runtime's)
    if cc is not None:
        return cc.settings
    return ReplicationSettings(
        min_insync_replicas=int(broker.config.get("min.insync.replicas", BROKER_DEFAULTS["min.insync.replicas"])),
        unclean_leader_election_enable=bool(broker.config.get("unclean.leader.election.enable",
                                                             BROKER_DEFAULTS["unclean.leader.election.enable"])),
    )


@controller_operation(ALTER_PARTITION_REASSIGNMENTS)
async def alter_partition_reassignments_operation(broker: BrokerServices, request: AlterPartitionReassignmentsRequest, version: int,
                                                  requester: Requester | None = None) -> AlterPartitionReassignmentsResponse:
    """The controller's side (Kafka's ControllerApis.handleAlterPartitionReassignments)."""
    if not authorized(operation_subject(broker, requester), ALTER, CLUSTER, CLUSTER_NAME):
        return error_response_as(AlterPartitionReassignmentsResponse, request, version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    controller = broker.controller
    assert controller is not None
    async with controller.exclusive():
        response, records = alter_partition_reassignments(controller.image, request, replication_settings(broker))
        if records:
            await controller.write(records)
    return response


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(45)
def _alter_partition_reassignments_error(request: AlterPartitionReassignmentsRequest, version: int, code: int) -> AlterPartitionReassignmentsResponse:
    # AlterPartitionReassignmentsRequest.getErrorResponse: the code at the top and on every
    # partition (ApiError.fromThrowable: no message for an exception carrying the default one)
    R = AlterPartitionReassignmentsResponse
    T = R.ReassignableTopicResponse
    message = None
    return R(error_code=code, error_message=message, responses=[
        T(name=topic.name, partitions=[
            T.ReassignablePartitionResponse(partition_index=p.partition_index, error_code=code, error_message=message)
            for p in topic.partitions])
        for topic in request.topics
    ])
