"""AlterPartitionReassignments (key 45), v0-1.

Moves partitions to new replica sets, as Kafka 4.4's ``ReplicationControlManager``
(``alterPartitionReassignments``, the decision in kbroker.controller.reassignment). The
broker forwards the request to the active controller (``ctx.broker.controller_client``, in an
Envelope on a cluster); ``kbroker.controller.operations.reassignments`` is the controller's side, run one
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
``bootstrap.controllers``): run there when it is the active controller, authorized as the
connection's principal (``controller_requester``: Kafka's ``request.context.principal``), else
NOT_CONTROLLER for every partition (the client looks for the active one), as
:func:`kbroker.api.active_controller.served_by_active_controller` serves both reassignment APIs.
"""

from __future__ import annotations

from kbroker.api.active_controller import served_by_active_controller
from kbroker.api.context import HandlerContext, RequestContext, requester, response_as
from kbroker.api.controller_listener import controller_requester
from kbroker.api.error_response import refusal
from kbroker.api.registry import CONTROLLER_LISTENER, api
from kbroker.api.services import Forwarding
from kbroker.controller.operations.reassignments import (
    ReassignmentHost,
    alter_partition_reassignments_error,
    alter_partition_reassignments_operation,
)
from kbroker.metadata.client import ALTER_PARTITION_REASSIGNMENTS
from kbroker.security.acls import ALTER
from kbroker_protocol.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
)


@api(AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, 0, 1)
async def handle_alter_partition_reassignments(ctx: RequestContext[Forwarding], request: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse:
    response = await ctx.broker.controller_client.forward(ALTER_PARTITION_REASSIGNMENTS, request, ctx.api_version,
                                                          requester(ctx))
    return response_as(response, AlterPartitionReassignmentsResponse)


@api(AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, 0, 1, listeners=(CONTROLLER_LISTENER,))
async def handle_alter_partition_reassignments_on_controller(ctx: HandlerContext[ReassignmentHost], request: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse:
    return await served_by_active_controller(ctx, request, AlterPartitionReassignmentsResponse, ALTER, lambda: alter_partition_reassignments_operation(
        ctx.broker, request, ctx.api_version, controller_requester(ctx.header)))


# -- the error response (Kafka's getErrorResponse of the request: built with the operation's) -----

refusal(ALTER_PARTITION_REASSIGNMENTS)(alter_partition_reassignments_error)
