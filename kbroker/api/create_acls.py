"""CreateAcls (key 30), v1-3, as Kafka's AclApis and AclControlManager.

CLUSTER ALTER is required (else CLUSTER_AUTHORIZATION_FAILED for every creation); without an
authorizer every creation gets SECURITY_DISABLED. Each ACL is checked as Kafka checks it
(INVALID_REQUEST with Kafka's message); the valid ones that do not exist yet are written as
AccessControlEntryRecords in one metadata batch (an ACL already there, or twice in the request,
is a success without a new record). More than 10,000 new ACLs in one request fail every creation
with POLICY_VIOLATION "Unable to perform excessively large batch operation." (Kafka's bound on the
records of one controller operation). Forwarded to the active controller (Envelope from other brokers), which writes the records.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext, requester, response_as
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.metadata.client import CREATE_ACLS
from kbroker_protocol.messages.create_acls import CreateAclsRequest, CreateAclsResponse


@api(30, 1, 3)
async def handle_create_acls(ctx: RequestContext, request: CreateAclsRequest) -> CreateAclsResponse:
    response = await ctx.broker.controller_client.forward(CREATE_ACLS, request, ctx.api_version, requester(ctx))
    return response_as(response, CreateAclsResponse)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(30)
def _create_acls_error(request: CreateAclsRequest, version: int, code: int) -> CreateAclsResponse:
    R = CreateAclsResponse
    return R(results=[R.AclCreationResult(error_code=code, error_message=None) for _ in request.creations])
