"""Security on a listener served outside the broker's client server: the controller listener,
where the raft driver answers Vote/Fetch/... and the controller APIs (kbroker/raft/io.py).

:func:`controller_listener_security` reads the controller listener's settings as
:func:`kbroker.security.listeners.build_listener_security` reads a client listener's (its TLS
context, SASL mechanisms and users, Kafka's checks and messages). :func:`authenticate_inbound`
runs Kafka's server-side SASL exchange (kbroker.security.sasl.SaslAuthenticator) on a newly
accepted stream before the listener's own request loop takes it over: an ApiVersions request
before the handshake is answered by the listener (``on_api_versions``); a failed authentication
is answered after ``connection.failed.authentication.delay.ms`` and the connection closed.

Re-authentication (KIP-368): :func:`inbound_session` returns, for an authenticated connection, the
:class:`InboundSession` the listener's request loop hands every later frame: a SaslHandshake then
runs the exchange again on the same connection (the answers in request order through the
listener's ``respond``), and a request after the session expired (``connections.max.reauth.ms``)
closes the connection, as Kafka's server does on every listener.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kbroker.config import BrokerConfig
from kbroker.security.listeners import ListenerSecurity, _sasl_settings
from kbroker.security.sasl import API_VERSIONS, SaslAuthenticator
from kbroker.security.scram import ScramCredentials
from kbroker.security.tls import PrincipalMapper, build_server_context, certificate_principal
from kbroker_protocol.api import decode_request, encode_response
from kbroker_protocol.exceptions import ProtocolError

if TYPE_CHECKING:
    from kbroker_protocol.messages.request_header import RequestHeader
    from kbroker_protocol.primitives import Message

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
_API_KEY = struct.Struct(">h")


def controller_listener_security(config: BrokerConfig) -> ListenerSecurity | None:
    """The first controller listener's security (None: PLAINTEXT, or no controller listener);
    raises ConfigError as a client listener's settings do."""
    if not config.controller_listeners:
        return None
    endpoint = config.controller_listeners[0]
    name, protocol = endpoint.listener, endpoint.security_protocol
    if protocol == "PLAINTEXT":
        return None
    sec = ListenerSecurity(name, protocol, failed_auth_delay_ms=config["connection.failed.authentication.delay.ms"])
    if protocol in ("SSL", "SASL_SSL"):
        sec.ssl_context = build_server_context(config, name)
    if protocol == "SSL":
        key = f"listener.name.{name.lower()}.ssl.principal.mapping.rules" \
            if (name, "ssl.principal.mapping.rules") in config.listener_overrides else "ssl.principal.mapping.rules"
        sec.principal_mapper = PrincipalMapper(config.listener_value(name, "ssl.principal.mapping.rules"), key)
    if sec.sasl:
        _sasl_settings(config, sec)
    return sec


class _Stream:
    """What SaslAuthenticator needs of a connection, over an asyncio stream."""

    def __init__(self, writer: asyncio.StreamWriter, peer: str) -> None:
        self.writer = writer
        self.peer = peer
        self.broker = None
        self.token_authenticated = False
        self.principal: str | None = None
        self.closed = False
        self.failure: tuple[Any, Message | None, int] | None = None
        # after authentication: the listener's way to answer in request order (correlation id, frame)
        self.respond: Callable[[int, bytes], None] | None = None

    def send_response(self, header: RequestHeader, response: Message) -> None:
        parts = encode_response(header.correlation_id, header.request_api_key, header.request_api_version, response)
        payload = b"".join(bytes(p) for p in parts)
        if self.respond is not None:
            self.respond(header.correlation_id, _SIZE.pack(len(payload)) + payload)
        else:
            self._write(_SIZE.pack(len(payload)) + payload)

    def send_raw(self, payload: bytes) -> None:
        self._write(_SIZE.pack(len(payload)) + payload)

    def _write(self, frame: bytes) -> None:
        if self.writer.is_closing():
            # the client went away (a reset closes the transport at once, and uvloop raises
            # RuntimeError on a write to it): a disconnect, which closes the connection
            raise ConnectionResetError(f"the connection from {self.peer} is closed")
        self.writer.write(frame)

    def authenticated(self, principal: str | None) -> None:
        self.principal = principal

    def fail_authentication(self, header: RequestHeader | None, response: Message | None, delay_ms: int) -> None:
        self.failure = (header, response, delay_ms)

    def close(self) -> None:
        self.closed = True


def tls_principal(writer: asyncio.StreamWriter, mapper: PrincipalMapper) -> str | None:
    """An SSL listener's principal for a new connection (the client certificate's, mapped; without
    one ``User:ANONYMOUS``), or None when no mapping rule applies: the connection is closed."""
    try:
        return certificate_principal(writer.get_extra_info("ssl_object"), mapper) or "User:ANONYMOUS"
    except LookupError as exc:
        log.info("closing connection from %s: %s", writer.get_extra_info("peername"), exc)
        writer.close()
        return None


async def authenticate_inbound(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, security: ListenerSecurity,
                               credentials: ScramCredentials, on_api_versions: Callable[[bytes], None],
                               error_response: Callable[[int, int, Message, int], Message | None] | None = None) -> str | None:
    """Authenticate the client of a new connection; returns its principal (``User:<name>``), or
    None when the connection failed authentication (it is closed by then)."""
    session = await inbound_session(reader, writer, security, credentials, on_api_versions, error_response)
    return None if session is None else session.principal


async def inbound_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, security: ListenerSecurity,
                          credentials: ScramCredentials, on_api_versions: Callable[[bytes], None],
                          error_response: Callable[[int, int, Message, int], Message | None] | None = None) -> InboundSession | None:
    """Authenticate the client of a new connection; returns its session (which serves its
    re-authentications), or None when the connection failed authentication (it is closed by then)."""
    address = writer.get_extra_info("peername")
    peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) >= 2 else str(address)
    stream = _Stream(writer, peer)
    auth = SaslAuthenticator(stream, security, credentials, error_response or (lambda *_: None))
    try:
        if not await _exchange(reader, writer, stream, auth, security, None, on_api_versions):
            return None
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        # Kafka's Selector: "Connection with {} disconnected", at debug level
        log.debug("the connection from %s closed during SASL authentication: %r", peer, exc)
        _closed(writer)
        return None
    log.debug("authenticated %s on the connection from %s", auth.principal, peer)
    return InboundSession(stream, auth, security)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: _Stream,
                    auth: SaslAuthenticator, security: ListenerSecurity, frame: bytes | None,
                    on_api_versions: Callable[[bytes], None] | None) -> bool:
    """Run the SASL exchange (from ``frame`` when given: a request the authenticator already said
    it wants, else from the next frame) until it completes (True) or fails (False, the connection
    closed)."""
    peer = stream.peer
    wanted = frame is not None
    while True:
        if frame is None:
            (size,) = _SIZE.unpack(await reader.readexactly(4))
            if size < 0 or size > security.max_receive_size:
                log.info("closing connection from %s: a frame of %d bytes during SASL authentication", peer, size)
                return _close(writer)
            frame = await reader.readexactly(size)
        if auth.raw_tokens:
            auth.on_raw_token(frame)
        else:
            try:
                header, body = decode_request(frame)
            except ProtocolError as exc:
                log.info("closing connection from %s: undecodable request during SASL authentication: %s",
                         peer, exc)
                return _close(writer)
            if wanted or auth.wants(header.request_api_key):
                auth.on_request(header, body)
            elif header.request_api_key == API_VERSIONS and on_api_versions is not None:
                on_api_versions(frame)
        frame = None
        wanted = False
        if stream.failure is not None:
            header, response, delay_ms = stream.failure
            await asyncio.sleep(delay_ms / 1000)
            if header is not None and response is not None:
                stream.send_response(header, response)
                await writer.drain()
            return _close(writer)
        if stream.closed:
            return _close(writer)
        await writer.drain()
        if auth.complete:
            return True


class InboundSession:
    """An authenticated connection's SASL session on a listener served outside the client server."""

    def __init__(self, stream: _Stream, auth: SaslAuthenticator, security: ListenerSecurity) -> None:
        self.stream = stream
        self.auth = auth
        self.security = security

    @property
    def principal(self) -> str:
        return self.auth.principal or "User:ANONYMOUS"

    @property
    def reauthentications(self) -> int:
        return self.auth.reauthentications

    async def on_frame(self, reader: asyncio.StreamReader, frame: bytes, respond: Callable[[int, bytes], None]) -> bool:
        """A frame read after authentication: True when it was the session's (a re-authentication,
        run to its end, its answers given to ``respond`` in request order); False when the
        listener serves it. Raises ConnectionError when the connection must close (its session
        expired, or the re-authentication failed)."""
        if len(frame) < 2:
            return False
        (api_key,) = _API_KEY.unpack_from(frame)
        if not self.auth.wants(api_key):
            return False
        stream = self.stream
        if stream.closed:
            raise ConnectionError("the SASL session expired (connections.max.reauth.ms)")
        stream.respond = respond
        try:
            if not await _exchange(reader, stream.writer, stream, self.auth, self.security, frame, None):
                raise ConnectionError("SASL re-authentication failed")
        finally:
            stream.respond = None
        return True


def _close(writer: asyncio.StreamWriter) -> bool:
    """Close the connection: the exchange failed."""
    writer.close()
    return False


def _closed(writer: asyncio.StreamWriter) -> None:
    """Close the connection; the principal of a failed authentication: None."""
    writer.close()
    return None
