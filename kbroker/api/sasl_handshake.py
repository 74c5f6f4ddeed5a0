"""SaslHandshake (key 17), v0-1, outside authentication.

On a SASL listener the handshake is taken by the connection's authenticator
(kbroker/security/sasl.py). What reaches this handler is a handshake on a listener without SASL,
or on an authenticated connection that cannot re-authenticate: Kafka's KafkaApis answers
ILLEGAL_SASL_STATE.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext
from kbroker.api.registry import api
from kbroker.api.services import NoServices
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.sasl_handshake import SaslHandshakeRequest, SaslHandshakeResponse


@api(SaslHandshakeRequest, SaslHandshakeResponse, 0, 1)
def handle_sasl_handshake(ctx: RequestContext[NoServices], request: SaslHandshakeRequest) -> SaslHandshakeResponse:
    return SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=[])
