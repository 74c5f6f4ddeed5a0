"""CreateDelegationToken (38, v1-3), RenewDelegationToken (39, v1-2), ExpireDelegationToken
(40, v1-2) and DescribeDelegationToken (41, v1-3), as Kafka 4.4's KafkaApis, ControllerApis and
DelegationTokenControlManager.

A broker refuses the token APIs on a connection that cannot be trusted with them (Kafka's
``allowTokenRequests``): one authenticated with a delegation token, a PLAINTEXT listener, an SSL
connection without a client certificate: DELEGATION_TOKEN_REQUEST_NOT_ALLOWED. Create, renew and
expire are then forwarded to the active controller, which decides and writes the
DelegationTokenRecord (RemoveDelegationTokenRecord for an expiry now) through the controller
client, as the other metadata writes (kbroker/controller/operations/delegation_tokens.py):

- create: a token for the requester, or for another owner with CREATE_TOKENS on that USER
  (DELEGATION_TOKEN_AUTHORIZATION_FAILED); renewers must be ``User`` principals
  (INVALID_PRINCIPAL_TYPE); max timestamp now + min(requested, ``delegation.token.max.lifetime.ms``),
  expiry now + ``delegation.token.expiry.time.ms`` (no later than the max);
- renew: the token by its HMAC (DELEGATION_TOKEN_NOT_FOUND), not expired
  (DELEGATION_TOKEN_EXPIRED), by its owner or a renewer (DELEGATION_TOKEN_OWNER_MISMATCH); the new
  expiry is now + min(period, expiry.time.ms), no later than the max;
- expire: a negative period removes the token now; otherwise its expiry becomes now + period.

Without ``delegation.token.secret.key`` every one answers DELEGATION_TOKEN_AUTH_DISABLED.
Describe is served by the broker from its copy of the tokens: an empty owner list describes
nothing, null every token; a principal sees the tokens it owns, requested or may renew, and others
with DESCRIBE on the DELEGATION_TOKEN or DESCRIBE_TOKENS on the owner's USER resource.

The active controller removes expired tokens every ``delegation.token.expiry.check.interval.ms``
(``TokenExpiry`` there, Kafka's sweepExpiredDelegationTokens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext, requester, response_as
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Authorizing, Forwarding
from kbroker.controller.operations.delegation_tokens import (
    ANONYMOUS,
    USER_TYPE,
    create_response,
    owner_of,
    tokens_of,
)
from kbroker.metadata.client import (
    CREATE_DELEGATION_TOKEN,
    EXPIRE_DELEGATION_TOKEN,
    RENEW_DELEGATION_TOKEN,
)
from kbroker.security.acls import CREATE_TOKENS, DELEGATION_TOKEN, DESCRIBE, DESCRIBE_TOKENS, USER, authorized
from kbroker.security.tokens import ERROR_TIMESTAMP, split_principal
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_delegation_token import (
    CreateDelegationTokenRequest,
    CreateDelegationTokenResponse,
)
from kbroker_protocol.messages.describe_delegation_token import (
    DescribeDelegationTokenRequest,
    DescribeDelegationTokenResponse,
)
from kbroker_protocol.messages.expire_delegation_token import (
    ExpireDelegationTokenRequest,
    ExpireDelegationTokenResponse,
)
from kbroker_protocol.messages.renew_delegation_token import (
    RenewDelegationTokenRequest,
    RenewDelegationTokenResponse,
)

if TYPE_CHECKING:
    from kbroker.security.tokens import DelegationTokens

Described = DescribeDelegationTokenResponse.DescribedDelegationToken
Renewer = Described.DescribedDelegationTokenRenewer


class TokenCreation(Forwarding, Authorizing, Protocol):
    """What CreateDelegationToken uses: the controller (where tokens are created) and the
    authorizer (CREATE_TOKENS for another owner). RenewDelegationToken and ExpireDelegationToken
    use only the controller (:class:`~kbroker.api.services.Forwarding`: it authorizes them)."""


class TokenDescription(Authorizing, Protocol):
    """What DescribeDelegationToken uses: this node's token cache and the authorizer (DESCRIBE on
    each token, or DESCRIBE_TOKENS on its owner)."""

    delegation_tokens: DelegationTokens


def token_requests_allowed(ctx: RequestContext[object]) -> bool:
    """Kafka's KafkaApis.allowTokenRequests."""
    conn = ctx.connection
    if getattr(conn, "token_authenticated", False):
        return False
    security = getattr(conn, "security", None)
    protocol = security.protocol if security is not None else "PLAINTEXT"
    if protocol == "PLAINTEXT":
        return False
    return not (protocol == "SSL" and conn.principal == ANONYMOUS)


# -- CreateDelegationToken ----------------------------------------------------------------------


@api(CreateDelegationTokenRequest, CreateDelegationTokenResponse, 1, 3)
async def handle_create_delegation_token(ctx: RequestContext[TokenCreation], request: CreateDelegationTokenRequest
                                         ) -> CreateDelegationTokenResponse:
    principal = ctx.connection.principal
    owner = owner_of(request, principal)
    version = ctx.api_version
    if not token_requests_allowed(ctx):
        return create_response(version, ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, owner, principal)
    if owner != principal and not authorized(ctx, CREATE_TOKENS, USER, owner):
        return create_response(version, ErrorCode.DELEGATION_TOKEN_AUTHORIZATION_FAILED, owner, principal)
    if any(r.principal_type != USER_TYPE for r in request.renewers):
        return create_response(version, ErrorCode.INVALID_PRINCIPAL_TYPE, owner, principal)
    response = await ctx.broker.controller_client.forward(CREATE_DELEGATION_TOKEN, request, version, requester(ctx))
    return response_as(response, CreateDelegationTokenResponse)


# -- RenewDelegationToken / ExpireDelegationToken ----------------------------------------------


@api(RenewDelegationTokenRequest, RenewDelegationTokenResponse, 1, 2)
async def handle_renew_delegation_token(ctx: RequestContext[Forwarding], request: RenewDelegationTokenRequest
                                        ) -> RenewDelegationTokenResponse:
    if not token_requests_allowed(ctx):
        return RenewDelegationTokenResponse(throttle_time_ms=0, error_code=ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED,
                                            expiry_timestamp_ms=ERROR_TIMESTAMP)
    response = await ctx.broker.controller_client.forward(RENEW_DELEGATION_TOKEN, request, ctx.api_version,
                                                          requester(ctx))
    return response_as(response, RenewDelegationTokenResponse)


@api(ExpireDelegationTokenRequest, ExpireDelegationTokenResponse, 1, 2)
async def handle_expire_delegation_token(ctx: RequestContext[Forwarding], request: ExpireDelegationTokenRequest
                                         ) -> ExpireDelegationTokenResponse:
    if not token_requests_allowed(ctx):
        return ExpireDelegationTokenResponse(throttle_time_ms=0,
                                             error_code=ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED,
                                             expiry_timestamp_ms=ERROR_TIMESTAMP)
    response = await ctx.broker.controller_client.forward(EXPIRE_DELEGATION_TOKEN, request, ctx.api_version,
                                                          requester(ctx))
    return response_as(response, ExpireDelegationTokenResponse)


# -- DescribeDelegationToken ---------------------------------------------------------------------


@api(DescribeDelegationTokenRequest, DescribeDelegationTokenResponse, 1, 3)
def handle_describe_delegation_token(ctx: RequestContext[TokenDescription], request: DescribeDelegationTokenRequest
                                     ) -> DescribeDelegationTokenResponse:
    version = ctx.api_version
    tokens = tokens_of(ctx.broker)
    if not token_requests_allowed(ctx):
        return DescribeDelegationTokenResponse(throttle_time_ms=0, error_code=ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED,
                                               tokens=[])
    if not tokens.enabled:
        return DescribeDelegationTokenResponse(throttle_time_ms=0, error_code=ErrorCode.DELEGATION_TOKEN_AUTH_DISABLED,
                                               tokens=[])
    owners = None if request.owners is None else [f"{o.principal_type}:{o.principal_name}" for o in request.owners]
    if owners is not None and not owners:
        return DescribeDelegationTokenResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, tokens=[])
    principal = ctx.connection.principal
    out = []
    for token in tokens.tokens.values():
        # Kafka's DelegationTokenManager.filterToken
        if owners is not None and not any(token.owner_or_renewer(o) for o in owners):
            continue
        if not (token.owner_or_renewer(principal) or authorized(ctx, DESCRIBE, DELEGATION_TOKEN, token.token_id)
                or authorized(ctx, DESCRIBE_TOKENS, USER, token.owner)):
            continue
        owner_type, owner_name = split_principal(token.owner)
        described = Described(
            principal_type=owner_type, principal_name=owner_name, issue_timestamp=token.issue_ms,
            expiry_timestamp=token.expiry_ms, max_timestamp=token.max_ms, token_id=token.token_id,
            hmac=tokens.hmac(token.token_id),
            renewers=[Renewer(principal_type=k, principal_name=n) for k, n in map(split_principal, token.renewers)])
        if version > 2:
            described.token_requester_principal_type, described.token_requester_principal_name = (
                split_principal(token.requester))
        out.append(described)
    return DescribeDelegationTokenResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, tokens=out)


# -- the error responses (Kafka's getErrorResponse of each request) ----------------------------


def _create_error(request: object, version: int, code: int) -> CreateDelegationTokenResponse:
    return create_response(version, code, ANONYMOUS, ANONYMOUS)


refusal(38)(_create_error)
refusal(39)(lambda request, version, code: RenewDelegationTokenResponse(throttle_time_ms=0, error_code=code))
refusal(40)(lambda request, version, code: ExpireDelegationTokenResponse(throttle_time_ms=0, error_code=code))
refusal(41)(lambda request, version, code: DescribeDelegationTokenResponse(throttle_time_ms=0, error_code=code,
                                                                           tokens=[]))
