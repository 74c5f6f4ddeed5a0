"""SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners, as Kafka's SaslServerAuthenticator.

Before authentication a connection may send ApiVersions (once) and SaslHandshake; any other
request closes it without an answer (Kafka: "Unexpected Kafka request of type X during SASL
handshake"), and a frame may be at most ``sasl.server.max.receive.size`` bytes. SaslHandshake names
a mechanism of the listener's ``sasl.enabled.mechanisms`` (else UNSUPPORTED_SASL_MECHANISM with the
enabled list, then the connection closes). After a v0 handshake the tokens come as raw
size-prefixed frames; after v1 inside SaslAuthenticate requests, where any other request is
answered with ILLEGAL_SASL_STATE and closes the connection. A failed exchange answers
SASL_AUTHENTICATION_FAILED (Kafka's messages) and the connection closes; both wait
``connection.failed.authentication.delay.ms``.

Re-authentication (KIP-368): with ``connections.max.reauth.ms`` > 0 the final SaslAuthenticate
response carries the session lifetime; the client re-authenticates with a new SaslHandshake on the
same connection (same mechanism and principal; at most once a second, as Kafka), and a request
after the session expired closes the connection.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kbroker.security.scram import (
    MECHANISMS_BY_NAME,
    SaslFailure,
    SaslInternalError,
    ScramCredentials,
    ScramServer,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.sasl_authenticate import SaslAuthenticateResponse
from kbroker_protocol.messages.sasl_handshake import SaslHandshakeResponse

if TYPE_CHECKING:
    from kbroker.security.listeners import ListenerSecurity
    from kbroker.security.oauthbearer import OAuthBearerServer
    from kbroker_protocol.messages.request_header import RequestHeader
    from kbroker_protocol.messages.sasl_handshake import SaslHandshakeRequest
    from kbroker_protocol.primitives import Message

log = logging.getLogger(__name__)

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36


class PlainServer:
    """SASL/PLAIN (RFC 4616) as Kafka's PlainSaslServer, users from the listener's JAAS line."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.complete = False
        self.authorization_id: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        tokens = token.decode("utf-8", "replace").split("\0", 3)
        if len(tokens) != 3:
            message = f"Invalid SASL/PLAIN response: expected 3 tokens, got {min(len(tokens), 4)}"
            raise SaslFailure(message, message)
        authzid, username, password = tokens
        if not username:
            raise SaslFailure("no username", "Authentication failed: username not specified")
        if not password:
            raise SaslFailure("no password", "Authentication failed: password not specified")
        expected = self.users.get(username)
        # Constant time whether or not the user exists.
        ok = hmac.compare_digest(password.encode(), (expected if expected is not None else "\0" + password).encode())
        if not ok or expected is None:
            raise SaslFailure("invalid credentials", "Authentication failed: Invalid username or password")
        if authzid and authzid != username:
            message = "Authentication failed: Client requested an authorization id that is different from username"
            raise SaslFailure(message, message)
        self.authorization_id = username
        self.complete = True
        return b""


class SaslAuthenticator:
    """One connection's SASL state. The connection asks :meth:`wants` for each request (and
    :attr:`raw_tokens` for each frame) and hands over what the authenticator takes."""

    def __init__(self, connection: Any, security: ListenerSecurity, credentials: ScramCredentials,
                 error_response: Callable[[int, int, Message, int], Message | None]) -> None:
        """``error_response(api_key, version, request, code)``: the request type's error response
        (kbroker.api.error_response), or None when there is none."""
        self.connection = connection
        self.error_response = error_response
        self.security = security
        self.credentials = credentials
        self.state = "initial"  # initial, handshake, authenticate, complete, failed
        self.raw_tokens = False  # after a v0 SaslHandshake: tokens are raw frames
        self.mechanism: str | None = None
        self.server: PlainServer | ScramServer | OAuthBearerServer | None = None
        self.principal: str | None = None
        self.supports_reauth = False  # the client sent SaslAuthenticate v1+
        self.session_expires: float | None = None  # time.monotonic() deadline
        self.reauthenticating = False
        self.reauthentications = 0  # completed re-authentications of this connection
        self._bad_mechanism = ""
        self._last_reauth = 0.0

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    def wants(self, api_key: int) -> bool:
        """Whether the request is the authenticator's (else the broker serves it)."""
        if self.state == "complete":
            if api_key == SASL_HANDSHAKE and self._may_reauthenticate():
                return True
            if self.session_expires is not None and time.monotonic() >= self.session_expires:
                log.info("closing connection from %s: its SASL session expired (connections.max.reauth.ms, "
                         "listener %s)", self.connection.peer, self.security.listener)
                self.connection.close()
                return True
            return False
        if api_key == API_VERSIONS and self.state == "initial":
            self.state = "handshake"
            return False
        return True

    def _may_reauthenticate(self) -> bool:
        """Kafka's KafkaChannel.maybeBeginServerReauthentication: only a session with an expiry
        (connections.max.reauth.ms), at most once a second; otherwise the handshake is served as
        any request (ILLEGAL_SASL_STATE)."""
        if self.session_expires is None:
            return False
        now = time.monotonic()
        if self._last_reauth and now - self._last_reauth < 1.0:
            return False
        self._last_reauth = now
        return True

    # -- requests before (or during) authentication -----------------------------------------

    def on_request(self, header: RequestHeader, body: Any) -> None:
        api_key = header.request_api_key
        conn = self.connection
        if self.state == "complete":  # a SaslHandshake: re-authentication (KIP-368)
            self.reauthenticating = True
            self.state = "handshake"
        if self.state == "failed":
            return
        if self.state in ("initial", "handshake"):
            if api_key == SASL_HANDSHAKE:
                self._handshake(header, body)
                return
            what = "ApiVersions request received twice" if api_key == API_VERSIONS else \
                f"Unexpected Kafka request of type {api_key} during SASL handshake"
            log.info("closing connection from %s: %s", conn.peer, what)
            conn.close()
            return
        # authenticate, v1+ framing
        if api_key != SASL_AUTHENTICATE:
            log.info("closing connection from %s: Unexpected Kafka request of type %d during SASL authentication",
                     conn.peer, api_key)
            self._fail(header, self.error_response(api_key, header.request_api_version, body,
                                                   int(ErrorCode.ILLEGAL_SASL_STATE)))
            return
        if header.request_api_version > 0:
            self.supports_reauth = True
        self._evaluate(bytes(body.auth_bytes), header)

    def on_raw_token(self, frame: bytes | memoryview) -> None:
        """A token after a v0 SaslHandshake: evaluated, the answer goes back as a raw frame."""
        self._evaluate(bytes(frame), None)

    def _handshake(self, header: RequestHeader, body: SaslHandshakeRequest) -> None:
        mechanisms = self.security.sasl_mechanisms
        mechanism = body.mechanism
        if mechanism not in mechanisms:
            log.info("closing connection from %s: SASL mechanism '%s' requested by client is not supported",
                     self.connection.peer, mechanism)
            self._fail(header, SaslHandshakeResponse(error_code=ErrorCode.UNSUPPORTED_SASL_MECHANISM,
                                                     mechanisms=list(mechanisms)))
            return
        if self.reauthenticating and mechanism != self.mechanism:
            # Kafka: REAUTH_BAD_MECHANISM, the failure is reported on the next token
            self.connection.send_response(header, SaslHandshakeResponse(error_code=ErrorCode.NONE,
                                                                        mechanisms=list(mechanisms)))
            self._bad_mechanism = (f"SASL mechanism '{mechanism}' requested by client is not supported for "
                                   f"re-authentication of mechanism '{self.mechanism}'")
            self.state = "authenticate"
            self.raw_tokens = header.request_api_version == 0
            self.server = None
            return
        self.mechanism = mechanism
        self.server = self._new_server(mechanism)
        self.state = "authenticate"
        self.raw_tokens = header.request_api_version == 0
        self.connection.send_response(header, SaslHandshakeResponse(error_code=ErrorCode.NONE,
                                                                    mechanisms=list(mechanisms)))

    def _new_server(self, mechanism: str) -> PlainServer | ScramServer | OAuthBearerServer:
        if mechanism == "PLAIN":
            return PlainServer(self.security.plain_users)
        if mechanism == "OAUTHBEARER":
            from kbroker.security.oauthbearer import OAuthBearerServer  # loaded on first use

            return OAuthBearerServer(self.security.oauth_validator)
        broker = self.connection.broker  # None: the controller listener's inbound stream (no tokens)
        return ScramServer(MECHANISMS_BY_NAME[mechanism], self.credentials,
                           None if broker is None else broker.delegation_tokens)

    def _evaluate(self, token: bytes, header: RequestHeader | None) -> None:
        server = self.server
        try:
            if server is None:  # re-authentication asked for another mechanism
                message = self._bad_mechanism
                raise SaslFailure(message, message)
            challenge = server.evaluate(token)
            lifetime_ms = 0
            if server.complete:
                principal = f"User:{server.authorization_id}"
                if self.reauthenticating and principal != self.principal:
                    message = f"Cannot change principals during re-authentication from {self.principal}: {principal}"
                    raise SaslFailure(message, message)
                lifetime_ms = self._start_session(getattr(server, "credential_expiry_ms", None))
                self.principal = principal
                # KafkaPrincipal.tokenAuthenticated: such a connection may not use the token APIs
                self.connection.token_authenticated = getattr(server, "token_authenticated", False)
        except SaslInternalError as exc:
            # an unexpected exception in Kafka's SaslServer: the channel is closed, no answer
            log.info("closing connection from %s: %s", self.connection.peer, exc)
            self.state = "failed"
            self.connection.close()
            return
        except SaslFailure as exc:
            message = exc.client_message or (
                f"Authentication failed during {'re-authentication' if self.reauthenticating else 'authentication'}"
                f" due to invalid credentials with SASL mechanism {self.mechanism}")
            log.info("failed authentication with %s (%s): %s", self.connection.peer, message, exc)
            if header is None:
                self._fail(None, None)  # v0: the connection just closes
            else:
                self._fail(header, SaslAuthenticateResponse(error_code=ErrorCode.SASL_AUTHENTICATION_FAILED,
                                                            error_message=message))
            return
        if header is None:
            self.connection.send_raw(challenge)  # Kafka answers even an empty token (PLAIN's last)
        else:
            self.connection.send_response(header, SaslAuthenticateResponse(
                # Kafka leaves the message at its generated default, the empty string
                error_code=ErrorCode.NONE, error_message="", auth_bytes=challenge, session_lifetime_ms=lifetime_ms))
        if server.complete:
            self.state = "complete"
            self.raw_tokens = False
            if self.reauthenticating:
                self.reauthentications += 1
                log.info("re-authenticated %s on the connection from %s (listener %s)", self.principal,
                         self.connection.peer, self.security.listener)
            self.reauthenticating = False
            self.connection.authenticated(self.principal)

    def _start_session(self, credential_expiry_ms: int | None = None) -> int:
        """The session lifetime sent to the client, as Kafka's calcCompletionTimesAndReturnSessionLifetimeMs:
        connections.max.reauth.ms, cut at the credential's expiry (a delegation token's or an
        OAuth token's, wall-clock ms) when it has one; 0 and no expiry when neither."""
        max_ms = self.security.reauth_ms_by_mechanism.get(self.mechanism or "", self.security.reauth_ms)
        if credential_expiry_ms is None and max_ms <= 0:
            self.session_expires = None
            return 0
        if credential_expiry_ms is None:
            lifetime = max_ms
        else:
            left = max(0, credential_expiry_ms - int(time.time() * 1000))
            lifetime = left if max_ms <= 0 else min(left, max_ms)
        self.session_expires = time.monotonic() + lifetime / 1000
        return lifetime

    def _fail(self, header: RequestHeader | None, response: Message | None) -> None:
        self.state = "failed"
        self.connection.fail_authentication(header, response, self.security.failed_auth_delay_ms)
