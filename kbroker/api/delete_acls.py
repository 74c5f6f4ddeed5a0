"""DeleteAcls (key 31), v1-3, as Kafka's AclApis and AclControlManager: CLUSTER ALTER is required;
without an authorizer SECURITY_DISABLED for every filter; a filter with an UNKNOWN element is
INVALID_REQUEST; else every ACL a filter matches is listed under it and removed
(RemoveAccessControlEntryRecords, one metadata batch for the request). Filters matching more than
10,000 ACLs in all fail every filter with INVALID_REQUEST "Cannot remove more than 10000 acls in a
single delete operation.", nothing removed, as Kafka. Forwarded to the active
controller (an Envelope from other brokers), which writes the records."""

from __future__ import annotations

import uuid

from kbroker.api.authorization import OperationSubject, operation_subject
from kbroker.api.context import BrokerServices, RequestContext, local_controller, requester, response_as
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.controller.client import DELETE_ACLS, Requester, controller_operation
from kbroker.controller.user_op_limits import MAX_RECORDS_PER_USER_OP
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, AclFilter, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.delete_acls import DeleteAclsRequest, DeleteAclsResponse
from kbroker_protocol.messages.metadata_records import RemoveAccessControlEntryRecord

FilterResult = DeleteAclsResponse.DeleteAclsFilterResult
Matching = FilterResult.DeleteAclsMatchingAcl


@api(31, 1, 3)
async def handle_delete_acls(ctx: RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse:
    response = await ctx.broker.controller_client.forward(DELETE_ACLS, request, ctx.api_version, requester(ctx))
    return response_as(response, DeleteAclsResponse)


@controller_operation(DELETE_ACLS)
async def delete_acls(broker: BrokerServices, request: DeleteAclsRequest, version: int, requester: Requester | None = None) -> DeleteAclsResponse:
    """The controller's side (forwarded in an Envelope from any broker), authorized for the
    requester's principal."""
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        return await _delete_acls(operation_subject(broker, requester), request)


async def _delete_acls(ctx: OperationSubject, request: DeleteAclsRequest) -> DeleteAclsResponse:
    if not authorized(ctx, ALTER, CLUSTER, CLUSTER_NAME):
        return DeleteAclsResponse(filter_results=[
            FilterResult(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None, matching_acls=[])
            for _ in request.filters])
    authorizer = ctx.broker.authorizer
    if not authorizer.enabled:
        return DeleteAclsResponse(filter_results=[
            FilterResult(error_code=ErrorCode.SECURITY_DISABLED, error_message="No Authorizer is configured.",
                         matching_acls=[]) for _ in request.filters])
    results: list[FilterResult] = []
    removed: dict[uuid.UUID, None] = {}
    for f in request.filters:
        flt = AclFilter(f.resource_type_filter, f.resource_name_filter, f.pattern_type_filter, f.principal_filter,
                        f.host_filter, f.operation, f.permission_type)
        if flt.unknown():
            what = "patternFilter" if 0 in (flt.resource_type, flt.pattern_type) else "entryFilter"
            results.append(FilterResult(error_code=ErrorCode.INVALID_REQUEST, error_message=f"Unknown {what}.",
                                        matching_acls=[]))
            continue
        matching = []
        for acl_id, acl in authorizer.find(flt):
            if len(removed) >= MAX_RECORDS_PER_USER_OP:  # Kafka's AclControlManager.deleteAclsForFilter
                message = f"Cannot remove more than {MAX_RECORDS_PER_USER_OP} acls in a single delete operation."
                return DeleteAclsResponse(filter_results=[
                    FilterResult(error_code=ErrorCode.INVALID_REQUEST, error_message=message, matching_acls=[])
                    for _ in request.filters])
            removed[acl_id] = None
            matching.append(Matching(error_code=ErrorCode.NONE, error_message=None, resource_type=acl.resource_type,
                                     resource_name=acl.resource_name, pattern_type=acl.pattern_type,
                                     principal=acl.principal, host=acl.host, operation=acl.operation,
                                     permission_type=acl.permission_type))
        results.append(FilterResult(error_code=ErrorCode.NONE, error_message=None, matching_acls=matching))
    if removed:
        await local_controller(ctx.broker).write([RemoveAccessControlEntryRecord(id=acl_id) for acl_id in removed])
    return DeleteAclsResponse(filter_results=results)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(31)
def _delete_acls_error(request: DeleteAclsRequest, version: int, code: int) -> DeleteAclsResponse:
    R = DeleteAclsResponse
    return R(filter_results=[R.DeleteAclsFilterResult(error_code=code, error_message=None, matching_acls=[])
                             for _ in request.filters])
