"""AlterUserScramCredentials (key 51), v0, as Kafka's controller (ScramControlManager).

Each user may be named once in a request (else DUPLICATE_RESOURCE for that user, deletion and
upsertion alike); the mechanism must be SCRAM-SHA-256 (1) or SCRAM-SHA-512 (2)
(UNSUPPORTED_SASL_MECHANISM); the name must not be empty and the iterations within the
mechanism's 4096..16384 (UNACCEPTABLE_CREDENTIAL); a deletion must name an existing credential
(RESOURCE_NOT_FOUND). The client sends the salted password; the StoredKey and ServerKey derived
from it are written as UserScramCredentialRecords (RemoveUserScramCredentialRecords for
deletions), all in one metadata batch.

Forwarded to the active controller (an Envelope from other brokers), which writes the records
(kbroker/controller/operations/alter_user_scram_credentials.py).
"""

from __future__ import annotations

from kbroker.api.context import RequestContext, requester, response_as
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.controller.operations.alter_user_scram_credentials import alter_user_scram_credentials_error
from kbroker.metadata.client import ALTER_USER_SCRAM_CREDENTIALS
from kbroker_protocol.messages.alter_user_scram_credentials import (
    AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse,
)


@api(51, 0, 0)
async def handle_alter_user_scram_credentials(ctx: RequestContext, request: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse:
    response = await ctx.broker.controller_client.forward(ALTER_USER_SCRAM_CREDENTIALS, request, ctx.api_version, requester(ctx))
    return response_as(response, AlterUserScramCredentialsResponse)


# -- the error response (Kafka's getErrorResponse of the request: built with the operation's) -----

refusal(51)(alter_user_scram_credentials_error)
