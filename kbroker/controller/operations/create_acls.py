"""The controller's side of CreateAcls (key 30), as Kafka's AclControlManager: CLUSTER ALTER for
the forwarded principal, each ACL checked, the new ones written as AccessControlEntryRecords in
one metadata batch (the rules in full: kbroker/api/create_acls.py, the broker's handler).
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
from kbroker.controller.user_op_limits import BATCH_TOO_LARGE_MESSAGE, MAX_RECORDS_PER_USER_OP
from kbroker.metadata.client import Requester
from kbroker.security.acls import (
    ALTER,
    CLUSTER,
    CLUSTER_NAME,
    Acl,
    AclError,
    acl_of_record,
    authorized,
    validate_new_acl,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_acls import CreateAclsRequest, CreateAclsResponse
from kbroker_protocol.messages.metadata_records import AccessControlEntryRecord

if TYPE_CHECKING:
    from kbroker.security.acls import Authorizer


class AclsHost(ControllerHolder, Protocol):
    """CreateAcls as it uses the node: its controller and the authorizer (the checks, the ACLs)."""

    @property
    def authorizer(self) -> Authorizer: ...


Result = CreateAclsResponse.AclCreationResult


async def create_acls(broker: AclsHost, request: CreateAclsRequest, version: int, requester: Requester | None = None) -> CreateAclsResponse:
    """The controller's side (forwarded in an Envelope from any broker), authorized for the
    requester's principal."""
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        return await _create_acls(operation_subject(broker, requester), request)


async def _create_acls(ctx: OperationSubject[AclsHost], request: CreateAclsRequest) -> CreateAclsResponse:
    broker = ctx.broker
    if not authorized(ctx, ALTER, CLUSTER, CLUSTER_NAME):
        return CreateAclsResponse(results=[Result(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None)
                                           for _ in request.creations])
    authorizer = broker.authorizer
    if not authorizer.enabled:
        return CreateAclsResponse(results=[Result(error_code=ErrorCode.SECURITY_DISABLED,
                                                  error_message="No Authorizer is configured.")
                                           for _ in request.creations])
    # the controller's ACLs (Kafka's AclControlManager), which include those not yet committed
    existing = {acl_of_record(r) for r in local_controller(broker).image.acls.values()}
    results: list[Result] = []
    records: list[AccessControlEntryRecord] = []
    for c in request.creations:
        acl = Acl(c.resource_type, c.resource_name, c.resource_pattern_type, c.principal, c.host, c.operation,
                  c.permission_type)
        try:
            validate_new_acl(acl)
        except AclError as exc:
            results.append(Result(error_code=ErrorCode.INVALID_REQUEST, error_message=str(exc)))
            continue
        if acl not in existing:
            existing.add(acl)
            records.append(AccessControlEntryRecord(
                id=uuid.uuid4(), resource_type=acl.resource_type, resource_name=acl.resource_name,
                pattern_type=acl.pattern_type, principal=acl.principal, host=acl.host, operation=acl.operation,
                permission_type=acl.permission_type))
        results.append(Result(error_code=ErrorCode.NONE, error_message=None))
    if len(records) > MAX_RECORDS_PER_USER_OP:  # Kafka's bounded record list: the whole operation fails
        return CreateAclsResponse(results=[
            Result(error_code=ErrorCode.POLICY_VIOLATION, error_message=BATCH_TOO_LARGE_MESSAGE)
            for _ in request.creations])
    if records:
        await local_controller(broker).write(records)
    return CreateAclsResponse(results=results)
