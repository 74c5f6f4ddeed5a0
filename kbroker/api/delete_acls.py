"""DeleteAcls (key 31), v1-3, as Kafka's AclApis and AclControlManager: CLUSTER ALTER is required;
without an authorizer SECURITY_DISABLED for every filter; a filter with an UNKNOWN element is
INVALID_REQUEST; else every ACL a filter matches is listed under it and removed
(RemoveAccessControlEntryRecords, one metadata batch for the request). Filters matching more than
10,000 ACLs in all fail every filter with INVALID_REQUEST "Cannot remove more than 10000 acls in a
single delete operation.", nothing removed, as Kafka. Forwarded to the active
controller (an Envelope from other brokers), which writes the records."""

from __future__ import annotations

from kbroker.api.context import RequestContext, requester, response_as
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.metadata.client import DELETE_ACLS
from kbroker_protocol.messages.delete_acls import DeleteAclsRequest, DeleteAclsResponse


@api(31, 1, 3)
async def handle_delete_acls(ctx: RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse:
    response = await ctx.broker.controller_client.forward(DELETE_ACLS, request, ctx.api_version, requester(ctx))
    return response_as(response, DeleteAclsResponse)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(31)
def _delete_acls_error(request: DeleteAclsRequest, version: int, code: int) -> DeleteAclsResponse:
    R = DeleteAclsResponse
    return R(filter_results=[R.DeleteAclsFilterResult(error_code=code, error_message=None, matching_acls=[])
                             for _ in request.filters])
