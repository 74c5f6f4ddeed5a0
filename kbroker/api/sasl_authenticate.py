"""SaslAuthenticate (key 36), v0-2, outside authentication.

During authentication on a SASL listener the tokens are evaluated by the connection's
authenticator (kbroker/security/sasl.py). What reaches this handler is a SaslAuthenticate with no
exchange under way (a listener without SASL, or after authentication completed): Kafka's KafkaApis
answers ILLEGAL_SASL_STATE with this message.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import NoServices
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.sasl_authenticate import SaslAuthenticateRequest, SaslAuthenticateResponse


@api(SaslAuthenticateRequest, SaslAuthenticateResponse, 0, 2)
def handle_sasl_authenticate(ctx: RequestContext[NoServices], request: SaslAuthenticateRequest) -> SaslAuthenticateResponse:
    return SaslAuthenticateResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE,
                                    error_message="SaslAuthenticate request received after successful authentication")


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(36)
def _sasl_authenticate_error(request: SaslAuthenticateRequest, version: int, code: int) -> SaslAuthenticateResponse:
    return SaslAuthenticateResponse(error_code=code, error_message=None)
