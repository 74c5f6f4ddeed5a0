"""The controller's side of AlterUserScramCredentials (key 51), v0, as Kafka's ScramControlManager.

Each user may be named once in a request (else DUPLICATE_RESOURCE for that user, deletion and
upsertion alike); the mechanism must be SCRAM-SHA-256 (1) or SCRAM-SHA-512 (2)
(UNSUPPORTED_SASL_MECHANISM); the name must not be empty and the iterations within the
mechanism's 4096..16384 (UNACCEPTABLE_CREDENTIAL); a deletion must name an existing credential
(RESOURCE_NOT_FOUND). The client sends the salted password; the StoredKey and ServerKey derived
from it are written as UserScramCredentialRecords (RemoveUserScramCredentialRecords for
deletions), all in one metadata batch.

The broker's handler (which forwards the request here) is kbroker/api/alter_user_scram_credentials.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.controller.operations.host import (
    ControllerHolder,
    OperationSubject,
    local_controller,
    operation_subject,
)
from kbroker.metadata.client import Requester
from kbroker.metadata.metadata_records import MetadataRecord
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, authorized
from kbroker.security.scram import MECHANISMS_BY_TYPE, credential_from_salted
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_user_scram_credentials import (
    AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse,
)
from kbroker_protocol.messages.metadata_records import (
    RemoveUserScramCredentialRecord,
    UserScramCredentialRecord,
)

if TYPE_CHECKING:
    from kbroker.security.acls import Authorizer


class ScramHost(ControllerHolder, Protocol):
    """AlterUserScramCredentials as it uses the node: its controller and the authorizer."""

    @property
    def authorizer(self) -> Authorizer: ...


Result = AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult
_DUPLICATE = "A user credential cannot be altered twice in the same request"


def _check_name_and_mechanism(name: str, mechanism: int) -> tuple[int, str] | None:
    if not name:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    if mechanism not in MECHANISMS_BY_TYPE:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    return None


async def alter_user_scram_credentials(broker: ScramHost, request: AlterUserScramCredentialsRequest, version: int, requester: Requester | None = None) -> AlterUserScramCredentialsResponse:
    """The controller's side (forwarded in an Envelope from any broker), authorized for the
    requester's principal."""
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        return await _alter_user_scram_credentials(operation_subject(broker, requester), request)


async def _alter_user_scram_credentials(ctx: OperationSubject[ScramHost], request: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse:
    broker = ctx.broker
    if not authorized(ctx, ALTER, CLUSTER, CLUSTER_NAME):
        return alter_user_scram_credentials_error(request, 0, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    # the controller's credentials (Kafka's ScramControlManager), which include those not yet committed
    credentials = local_controller(broker).image.scram_credentials
    deletions: dict[str, AlterUserScramCredentialsRequest.ScramCredentialDeletion] = {}
    upserts: dict[str, AlterUserScramCredentialsRequest.ScramCredentialUpsertion] = {}
    errors: dict[str, tuple[int, str | None]] = {}
    for d in request.deletions:
        if d.name in errors:
            continue
        if deletions.pop(d.name, None) is not None:
            errors[d.name] = (ErrorCode.DUPLICATE_RESOURCE, _DUPLICATE)
            continue
        problem = _check_name_and_mechanism(d.name, d.mechanism)
        if problem is None and (d.name, d.mechanism) not in credentials:
            problem = (ErrorCode.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist")
        if problem is not None:
            errors[d.name] = problem
        else:
            deletions[d.name] = d
    for u in request.upsertions:
        if u.name in errors:
            continue
        if deletions.pop(u.name, None) is not None or upserts.pop(u.name, None) is not None:
            errors[u.name] = (ErrorCode.DUPLICATE_RESOURCE, _DUPLICATE)
            continue
        problem = _check_name_and_mechanism(u.name, u.mechanism)
        if problem is None:
            mechanism = MECHANISMS_BY_TYPE[u.mechanism]
            if u.iterations < mechanism.min_iterations:
                problem = (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations")
            elif u.iterations > mechanism.max_iterations:
                problem = (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations")
        if problem is not None:
            errors[u.name] = problem
        else:
            upserts[u.name] = u
    results: list[Result] = []
    records: list[MetadataRecord] = []
    for d in deletions.values():
        results.append(Result(user=d.name, error_code=ErrorCode.NONE, error_message=None))
        records.append(RemoveUserScramCredentialRecord(name=d.name, mechanism=d.mechanism))
    for u in upserts.values():
        mechanism = MECHANISMS_BY_TYPE[u.mechanism]
        try:
            cred = credential_from_salted(mechanism, bytes(u.salt), bytes(u.salted_password), u.iterations)
        except ValueError:  # Kafka: ApiError.fromThrowable, an UNKNOWN_SERVER_ERROR without message
            errors[u.name] = (ErrorCode.UNKNOWN_SERVER_ERROR, None)
            continue
        results.append(Result(user=u.name, error_code=ErrorCode.NONE, error_message=None))
        records.append(UserScramCredentialRecord(name=u.name, mechanism=u.mechanism, salt=cred.salt,
                                                 stored_key=cred.stored_key, server_key=cred.server_key,
                                                 iterations=cred.iterations))
    for name, (code, message) in errors.items():
        results.append(Result(user=name, error_code=code, error_message=message))
    if records:
        await local_controller(broker).write(records)
    return AlterUserScramCredentialsResponse(results=results)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


def alter_user_scram_credentials_error(request: AlterUserScramCredentialsRequest, version: int, code: int) -> AlterUserScramCredentialsResponse:
    # Kafka: one result per distinct user named by a deletion or upsertion, sorted.
    R = AlterUserScramCredentialsResponse
    users = sorted({d.name for d in request.deletions} | {u.name for u in request.upsertions})
    return R(results=[R.AlterUserScramCredentialsResult(user=user, error_code=code, error_message=None) for user in users])
