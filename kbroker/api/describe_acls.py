"""DescribeAcls (key 29), v1-3, as Kafka's AclApis: CLUSTER DESCRIBE is required; without an
authorizer SECURITY_DISABLED; else the ACLs the filter matches, grouped by resource pattern."""

from __future__ import annotations

from typing import Protocol

from kbroker.api.context import RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.security.acls import CLUSTER, CLUSTER_NAME, DESCRIBE, AclFilter, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.describe_acls import DescribeAclsRequest, DescribeAclsResponse

Resource = DescribeAclsResponse.DescribeAclsResource
Description = Resource.AclDescription


class DescribeAclsServices(Authorizing, Protocol):
    """What DescribeAcls uses of the broker."""


@api(DescribeAclsRequest, DescribeAclsResponse, 1, 3)
def handle_describe_acls(ctx: RequestContext[DescribeAclsServices], request: DescribeAclsRequest) -> DescribeAclsResponse:
    if not authorized(ctx, DESCRIBE, CLUSTER, CLUSTER_NAME):
        return DescribeAclsResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None, resources=[])
    authorizer = ctx.broker.authorizer
    if not authorizer.enabled:
        return DescribeAclsResponse(error_code=ErrorCode.SECURITY_DISABLED,
                                    error_message="No Authorizer is configured on the broker", resources=[])
    flt = AclFilter(request.resource_type_filter, request.resource_name_filter, request.pattern_type_filter,
                    request.principal_filter, request.host_filter, request.operation, request.permission_type)
    if flt.unknown():
        return DescribeAclsResponse(error_code=ErrorCode.INVALID_REQUEST,
                                    error_message="Filter contain UNKNOWN elements", resources=[])
    grouped: dict[tuple[int, str, int], list[Description]] = {}
    for _id, acl in authorizer.find(flt):
        grouped.setdefault((acl.resource_type, acl.resource_name, acl.pattern_type), []).append(Description(
            principal=acl.principal, host=acl.host, operation=acl.operation, permission_type=acl.permission_type))
    return DescribeAclsResponse(error_code=ErrorCode.NONE, error_message=None, resources=[
        Resource(resource_type=t, resource_name=n, pattern_type=p, acls=acls)
        for (t, n, p), acls in sorted(grouped.items())])


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(29)
def _describe_acls_error(request: DescribeAclsRequest, version: int, code: int) -> DescribeAclsResponse:
    return DescribeAclsResponse(error_code=code, error_message=None, resources=[])
