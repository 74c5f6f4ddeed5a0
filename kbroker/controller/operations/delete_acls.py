"""The controller's side of DeleteAcls (key 31), as Kafka's AclControlManager: CLUSTER ALTER for
the forwarded principal, every ACL a filter matches removed with RemoveAccessControlEntryRecords in
one metadata batch (the rules in full: kbroker/api/delete_acls.py, the broker's handler).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Protocol

from kbroker.controller.operations.host import (
    ControllerHolder,
    OperationSubject,
    local_controller,
    operation_subject,
)
from kbroker.controller.user_op_limits import MAX_RECORDS_PER_USER_OP
from kbroker.metadata.client import Requester
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, AclFilter, acl_of_record, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.delete_acls import DeleteAclsRequest, DeleteAclsResponse
from kbroker_protocol.messages.metadata_records import RemoveAccessControlEntryRecord

if TYPE_CHECKING:
    from kbroker.security.acls import Authorizer


class AclsHost(ControllerHolder, Protocol):
    """DeleteAcls as it uses the node: its controller and the authorizer (the checks, the ACLs)."""

    @property
    def authorizer(self) -> Authorizer: ...


FilterResult = DeleteAclsResponse.DeleteAclsFilterResult
Matching = FilterResult.DeleteAclsMatchingAcl


async def delete_acls(broker: AclsHost, request: DeleteAclsRequest, version: int, requester: Requester | None = None) -> DeleteAclsResponse:
    """The controller's side (forwarded in an Envelope from any broker), authorized for the
    requester's principal."""
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        return await _delete_acls(operation_subject(broker, requester), request)


async def _delete_acls(ctx: OperationSubject[AclsHost], request: DeleteAclsRequest) -> DeleteAclsResponse:
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
    controller_acls = local_controller(ctx.broker).image.acls
    for f in request.filters:
        flt = AclFilter(f.resource_type_filter, f.resource_name_filter, f.pattern_type_filter, f.principal_filter,
                        f.host_filter, f.operation, f.permission_type)
        if flt.unknown():
            what = "patternFilter" if 0 in (flt.resource_type, flt.pattern_type) else "entryFilter"
            results.append(FilterResult(error_code=ErrorCode.INVALID_REQUEST, error_message=f"Unknown {what}.",
                                        matching_acls=[]))
            continue
        matching = []
        # the controller's ACLs (Kafka's AclControlManager), which include those not yet committed
        for acl_id, record in controller_acls.items():
            acl = acl_of_record(record)
            if not flt.matches(acl):
                continue
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
