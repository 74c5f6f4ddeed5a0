"""DescribeUserScramCredentials (key 50), v0, as Kafka's ScramImage.describe.

No users named (null or empty list): every user with a credential. A user named twice gets
DUPLICATE_RESOURCE, one without credentials RESOURCE_NOT_FOUND, with Kafka's messages; the others
their mechanisms and iterations (never the salt or keys).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext
from kbroker.api.error_response import error_response_as, refusal
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.security.acls import CLUSTER, CLUSTER_NAME, DESCRIBE, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.describe_user_scram_credentials import (
    DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
)

if TYPE_CHECKING:
    from kbroker.security.scram import ScramCredentials

Result = DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult
Info = Result.CredentialInfo


class DescribeUserScramCredentialsServices(Authorizing, Protocol):
    """What DescribeUserScramCredentials uses of the broker."""

    scram_credentials: ScramCredentials


@api(DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, 0, 0)
def handle_describe_user_scram_credentials(ctx: RequestContext[DescribeUserScramCredentialsServices], request: DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse:
    if not authorized(ctx, DESCRIBE, CLUSTER, CLUSTER_NAME):
        return error_response_as(DescribeUserScramCredentialsResponse, request, 0, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    known = ctx.broker.scram_credentials.users()
    wanted: dict[str, bool] = {}  # user -> named more than once
    if not request.users:
        wanted = dict.fromkeys(sorted(known), False)
    else:
        for named in request.users:
            wanted[named.name] = named.name in wanted
    results = []
    for user, duplicate in wanted.items():
        if duplicate:
            results.append(Result(user=user, error_code=ErrorCode.DUPLICATE_RESOURCE, credential_infos=[],
                                  error_message="Cannot describe SCRAM credentials for the same user twice in a "
                                  f"single request: {user}"))
        elif user in known:
            results.append(Result(user=user, error_code=ErrorCode.NONE, error_message=None, credential_infos=[
                Info(mechanism=mech, iterations=iterations) for mech, iterations in sorted(known[user].items())]))
        else:
            results.append(Result(user=user, error_code=ErrorCode.RESOURCE_NOT_FOUND, credential_infos=[],
                                  error_message=f"Attempt to describe a user credential that does not exist: {user}"))
    return DescribeUserScramCredentialsResponse(error_code=ErrorCode.NONE, error_message=None, results=results)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(50)
def _describe_user_scram_credentials_error(request: DescribeUserScramCredentialsRequest, version: int, code: int) -> DescribeUserScramCredentialsResponse:
    # Kafka: the top-level code, and one result per user asked for, without the user's name.
    R = DescribeUserScramCredentialsResponse
    return R(error_code=code, error_message=None,
             results=[R.DescribeUserScramCredentialsResult(error_code=code, error_message=None)
                      for _user in request.users or ()])
