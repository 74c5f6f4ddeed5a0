"""ListPartitionReassignments (key 46), v0.

The reassignments under way, as Kafka 4.4's ``ReplicationControlManager.listPartitionReassignments``:
for a null topic list every partition with adding or removing replicas, else those of the named
partitions (unknown topics and partitions, and partitions not being reassigned, are left out),
each with its replicas (the target then the leaving ones), adding and removing replicas. The
broker forwards the request to the active controller, which answers from its image (the one it
writes reassignments to). Without DESCRIBE on the cluster the whole request is
CLUSTER_AUTHORIZATION_FAILED. A controller also serves it on its controller listener (Kafka's
ControllerApis): answered by the active controller, NOT_CONTROLLER from another, authorized as the
connection's principal there (``controller_requester``;
:func:`kbroker.api.active_controller.served_by_active_controller`).
"""

from __future__ import annotations

from kbroker.api.active_controller import served_by_active_controller
from kbroker.api.context import HandlerContext, RequestContext, requester, response_as
from kbroker.api.controller_listener import controller_requester
from kbroker.api.error_response import refusal
from kbroker.api.registry import CONTROLLER_LISTENER, api
from kbroker.api.services import Forwarding
from kbroker.controller.operations.reassignments import (
    ReassignmentListing,
    list_partition_reassignments_error,
    list_partition_reassignments_operation,
)
from kbroker.metadata.client import LIST_PARTITION_REASSIGNMENTS
from kbroker.security.acls import DESCRIBE
from kbroker_protocol.messages.list_partition_reassignments import (
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
)


@api(ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, 0, 0)
async def handle_list_partition_reassignments(ctx: RequestContext[Forwarding], request: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse:
    response = await ctx.broker.controller_client.forward(LIST_PARTITION_REASSIGNMENTS, request, ctx.api_version,
                                                          requester(ctx))
    return response_as(response, ListPartitionReassignmentsResponse)


@api(ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, 0, 0, listeners=(CONTROLLER_LISTENER,))
async def handle_list_partition_reassignments_on_controller(ctx: HandlerContext[ReassignmentListing], request: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse:
    return await served_by_active_controller(ctx, request, ListPartitionReassignmentsResponse, DESCRIBE, lambda: list_partition_reassignments_operation(
        ctx.broker, request, ctx.api_version, controller_requester(ctx.header)))


# -- the error response (Kafka's getErrorResponse of the request: built with the operation's) -----

refusal(LIST_PARTITION_REASSIGNMENTS)(list_partition_reassignments_error)
