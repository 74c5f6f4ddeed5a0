"""The controller's side of CreateDelegationToken (38), RenewDelegationToken (39) and
ExpireDelegationToken (40), as Kafka 4.4's ControllerApis and DelegationTokenControlManager, and
the active controller's sweep of expired tokens (:class:`TokenExpiry`, Kafka's
sweepExpiredDelegationTokens).

The active controller decides and writes the DelegationTokenRecord (RemoveDelegationTokenRecord for
an expiry now):

- create: a token for the requester, or for another owner with CREATE_TOKENS on that USER
  (DELEGATION_TOKEN_AUTHORIZATION_FAILED); renewers must be ``User`` principals
  (INVALID_PRINCIPAL_TYPE); max timestamp now + min(requested, ``delegation.token.max.lifetime.ms``),
  expiry now + ``delegation.token.expiry.time.ms`` (no later than the max);
- renew: the token by its HMAC (DELEGATION_TOKEN_NOT_FOUND), not expired
  (DELEGATION_TOKEN_EXPIRED), by its owner or a renewer (DELEGATION_TOKEN_OWNER_MISMATCH); the new
  expiry is now + min(period, expiry.time.ms), no later than the max;
- expire: a negative period removes the token now; otherwise its expiry becomes now + period.

Without ``delegation.token.secret.key`` each answers DELEGATION_TOKEN_AUTH_DISABLED. The
brokers' handlers (which refuse untrusted connections, then forward) are
kbroker/api/delegation_tokens.py.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from typing import TYPE_CHECKING, Protocol

from kbroker.controller.operations.host import ControllerHolder, operation_subject
from kbroker.metadata.client import Requester, controller_active
from kbroker.security.acls import CREATE_TOKENS, USER, authorized
from kbroker.security.tokens import (
    DelegationTokens,
    TokenInfo,
    add_ms,
    now_ms,
    split_principal,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_delegation_token import (
    CreateDelegationTokenRequest,
    CreateDelegationTokenResponse,
)
from kbroker_protocol.messages.expire_delegation_token import (
    ExpireDelegationTokenRequest,
    ExpireDelegationTokenResponse,
)
from kbroker_protocol.messages.metadata_records import RemoveDelegationTokenRecord
from kbroker_protocol.messages.renew_delegation_token import (
    RenewDelegationTokenRequest,
    RenewDelegationTokenResponse,
)

if TYPE_CHECKING:
    from kbroker.security.acls import Authorizer

log = logging.getLogger(__name__)

USER_TYPE = "User"
ANONYMOUS = "User:ANONYMOUS"
# metadata.version 3.6-IV2 (feature level 14): the first with delegation tokens in KRaft
DELEGATION_TOKEN_MIN_METADATA_VERSION = 14


class TokenHolder(Protocol):
    """A node as :func:`tokens_of` reads it: its delegation tokens."""

    @property
    def delegation_tokens(self) -> DelegationTokens: ...


def tokens_of(host: TokenHolder) -> DelegationTokens:
    return host.delegation_tokens


class TokenExpiryHost(ControllerHolder, TokenHolder, Protocol):
    """The node as the expiry of tokens uses it: its controller (active: it removes the expired
    tokens) and its delegation tokens."""


class TokensHost(TokenExpiryHost, Protocol):
    """The token operations as they use the node: its controller, its delegation tokens and the
    authorizer the forwarded principal is checked with."""

    @property
    def authorizer(self) -> Authorizer: ...


def create_response(version: int, code: int, owner: str, requester_principal: str, *,
                     issue_timestamp_ms: int = -1, expiry_timestamp_ms: int = -1, max_timestamp_ms: int = -1,
                     token_id: str = "", hmac: bytes = b"") -> CreateDelegationTokenResponse:
    """Kafka's CreateDelegationTokenResponse.prepareResponse (timestamps -1 and an empty id and
    HMAC on errors; the requester from v3)."""
    owner_type, owner_name = split_principal(owner)
    response = CreateDelegationTokenResponse(
        throttle_time_ms=0, error_code=code, principal_type=owner_type, principal_name=owner_name,
        issue_timestamp_ms=issue_timestamp_ms, expiry_timestamp_ms=expiry_timestamp_ms,
        max_timestamp_ms=max_timestamp_ms, token_id=token_id, hmac=hmac)
    if version > 2:
        response.token_requester_principal_type, response.token_requester_principal_name = (
            split_principal(requester_principal))
    return response


def owner_of(request: CreateDelegationTokenRequest, requester_principal: str) -> str:
    name = request.owner_principal_name
    if not name:
        return requester_principal
    return f"{request.owner_principal_type}:{name}"


def _metadata_version_ok(host: TokensHost) -> bool:
    level = host.controller.image.features.get("metadata.version") if host.controller is not None else None
    return level is None or level >= DELEGATION_TOKEN_MIN_METADATA_VERSION


async def create_delegation_token(host: TokensHost, request: CreateDelegationTokenRequest, version: int,
                                  requester_: Requester | None = None) -> CreateDelegationTokenResponse:
    """The controller's side (ControllerApis, then DelegationTokenControlManager.createDelegationToken)."""
    subject = operation_subject(host, requester_)
    principal = subject.principal
    owner = owner_of(request, principal)
    if owner != principal and not authorized(subject, CREATE_TOKENS, USER, owner):
        return create_response(version, ErrorCode.DELEGATION_TOKEN_AUTHORIZATION_FAILED, owner, principal)
    tokens = tokens_of(host)
    if not tokens.enabled:
        return create_response(version, ErrorCode.DELEGATION_TOKEN_AUTH_DISABLED, owner, principal)
    if not _metadata_version_ok(host):
        return create_response(version, ErrorCode.UNSUPPORTED_VERSION, owner, principal)
    renewers = []
    for r in request.renewers:
        if r.principal_type != USER_TYPE:
            return create_response(version, ErrorCode.INVALID_PRINCIPAL_TYPE, owner, principal)
        renewers.append(f"{r.principal_type}:{r.principal_name}")
    assert host.controller is not None
    async with host.controller.exclusive():
        now = now_ms()
        max_lifetime = tokens.max_lifetime_ms
        if request.max_lifetime_ms > 0:
            max_lifetime = min(max_lifetime, request.max_lifetime_ms)
        max_ts = add_ms(now, max_lifetime)
        expiry = min(max_ts, add_ms(now, tokens.expiry_time_ms))
        token_id = _random_token_id()
        info = TokenInfo(token_id, owner, principal, renewers, now, max_ts, expiry)
        await host.controller.write([info.to_record()])
    log.info("created delegation token %s for %s (requested by %s)", token_id, owner, principal)
    return create_response(version, ErrorCode.NONE, owner, principal, issue_timestamp_ms=now,
                            expiry_timestamp_ms=expiry, max_timestamp_ms=max_ts, token_id=token_id,
                            hmac=tokens.hmac(token_id))


def _random_token_id() -> str:
    """Kafka's ``Uuid.randomUuid().toString()``: 16 random bytes in URL-safe base64 without
    padding, never starting with '-' (nor the reserved zero and metadata-topic ids)."""
    while True:
        raw = uuid.uuid4().bytes
        text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        if not text.startswith("-") and raw not in (bytes(16), bytes(15) + b"\x01"):
            return text


def _find_token(host: TokensHost, request: RenewDelegationTokenRequest | ExpireDelegationTokenRequest
                ) -> tuple[ErrorCode, TokenInfo | None]:
    """What renew and expire check first: tokens enabled, the metadata version, the token by its
    HMAC; returns (error, token): the token exactly when the error is NONE."""
    tokens = tokens_of(host)
    if not tokens.enabled:
        return ErrorCode.DELEGATION_TOKEN_AUTH_DISABLED, None
    if not _metadata_version_ok(host):
        return ErrorCode.UNSUPPORTED_VERSION, None
    token = tokens.for_hmac(bytes(request.hmac))
    if token is None:
        return ErrorCode.DELEGATION_TOKEN_NOT_FOUND, None
    return ErrorCode.NONE, token


async def renew_delegation_token(host: TokensHost, request: RenewDelegationTokenRequest, version: int,
                                 requester_: Requester | None = None) -> RenewDelegationTokenResponse:
    principal = operation_subject(host, requester_).principal
    assert host.controller is not None
    async with host.controller.exclusive():
        now = now_ms()
        code, token = _find_token(host, request)
        if token is not None:
            if token.expired(now):
                code = ErrorCode.DELEGATION_TOKEN_EXPIRED
            elif not token.may_renew(principal):
                code = ErrorCode.DELEGATION_TOKEN_OWNER_MISMATCH
        if code != ErrorCode.NONE or token is None:
            return RenewDelegationTokenResponse(throttle_time_ms=0, error_code=code, expiry_timestamp_ms=0)
        period = tokens_of(host).expiry_time_ms
        if request.renew_period_ms > 0:
            period = min(period, request.renew_period_ms)
        expiry = min(token.max_ms, now + period)
        await host.controller.write([token.to_record(expiry)])
    return RenewDelegationTokenResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, expiry_timestamp_ms=expiry)


async def expire_delegation_token(host: TokensHost, request: ExpireDelegationTokenRequest, version: int,
                                  requester_: Requester | None = None) -> ExpireDelegationTokenResponse:
    principal = operation_subject(host, requester_).principal
    assert host.controller is not None
    async with host.controller.exclusive():
        now = now_ms()
        code, token = _find_token(host, request)
        if token is not None and not token.may_renew(principal):
            code = ErrorCode.DELEGATION_TOKEN_OWNER_MISMATCH
        if code != ErrorCode.NONE or token is None:
            return ExpireDelegationTokenResponse(throttle_time_ms=0, error_code=code, expiry_timestamp_ms=0)
        if request.expiry_time_period_ms < 0:  # expire now
            await host.controller.write([RemoveDelegationTokenRecord(token_id=token.token_id)])
            log.info("expired delegation token %s of %s", token.token_id, token.owner)
            return ExpireDelegationTokenResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, expiry_timestamp_ms=now)
        if token.expired(now):
            return ExpireDelegationTokenResponse(throttle_time_ms=0, error_code=ErrorCode.DELEGATION_TOKEN_EXPIRED,
                                                 expiry_timestamp_ms=0)
        expiry = min(token.max_ms, add_ms(now, request.expiry_time_period_ms))
        await host.controller.write([token.to_record(expiry)])
    return ExpireDelegationTokenResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, expiry_timestamp_ms=expiry)


# -- expiry: the active controller's sweep -------------------------------------------------------


class TokenExpiry:
    """Kafka's QuorumController sweepExpiredDelegationTokens task: on the active controller, every
    ``delegation.token.expiry.check.interval.ms``, a RemoveDelegationTokenRecord for each token past
    its expiry or max timestamp (at most 1000 a round)."""

    def __init__(self, host: TokenExpiryHost) -> None:
        self.host = host
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if tokens_of(self.host).enabled:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="delegation-token-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        interval = tokens_of(self.host).check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception as exc:  # a lost leadership, a stopped raft node: the next round retries
                log.debug("delegation token expiry sweep failed: %s", exc)

    async def sweep(self) -> int:
        """Remove the expired tokens now (on the active controller); returns how many."""
        controller = self.host.controller
        if not controller_active(controller):
            return 0
        async with controller.exclusive():
            expired = tokens_of(self.host).expired_tokens(now_ms())
            if not expired:
                return 0
            for token in expired:
                log.info("Delegation token expired for token: %s for owner: %s", token.token_id, token.owner)
            await controller.write([RemoveDelegationTokenRecord(token_id=t.token_id) for t in expired])
        return len(expired)
