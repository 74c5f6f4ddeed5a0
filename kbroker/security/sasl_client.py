"""The client side of SASL, as Kafka's SaslClientAuthenticator with its PlainSaslClient and
ScramSaslClient: SaslHandshake (v1: the tokens then go in SaslAuthenticate requests), then the
mechanism's tokens in SaslAuthenticate v2.

- PLAIN (RFC 4616): one token ``authzid NUL username NUL password`` (an empty authzid).
- SCRAM-SHA-256/512 (RFC 5802 with Kafka's ScramFormatter): client-first ``n,,n=<user>,r=<nonce>``,
  the server's salt and iterations (at least the mechanism's minimum, 4096), client-final with the
  proof; the server's signature is verified, so a server that does not know the password is refused
  too.

A refusal raises :class:`AuthenticationError` with Kafka's client message (the server's message
for a failed SaslAuthenticate).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import secrets
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from kbroker.security.scram import (
    MECHANISMS_BY_NAME,
    ScramMechanism,
    _hmac,
    client_key,
    salted_password,
    server_key,
    stored_key,
)
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import RequestHeader
from kbroker_protocol.messages.sasl_authenticate import SaslAuthenticateRequest
from kbroker_protocol.messages.sasl_handshake import SaslHandshakeRequest
from kbroker_protocol.primitives import Message

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
HANDSHAKE_VERSION, AUTHENTICATE_VERSION = 1, 2
_SIZE = struct.Struct(">i")


class AuthenticationError(ConnectionError):
    """The server refused this node's credentials (or the exchange went wrong): Kafka's
    SaslAuthenticationException / AuthenticationException message. A ConnectionError, so that
    every caller that retries a broken connection retries this one too (after its backoff)."""

    logged = False  # set once kbroker.security.client has logged it (callers then log it at DEBUG)


# (api key, version, request body) -> response body: one request on the connection
Roundtrip = Callable[[int, int, Message], Awaitable[Any]]


def stream_roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client_id: str,
                     max_frame: int) -> Roundtrip:
    """Requests on a connection this exchange has to itself (nothing else in flight)."""
    correlation = 0

    async def call(api_key: int, version: int, body: Message) -> Any:
        nonlocal correlation
        correlation += 1
        header = RequestHeader(request_api_key=api_key, request_api_version=version, correlation_id=correlation,
                               client_id=client_id)
        payload = encode_request(header, body)
        if writer.transport.is_closing():  # a reset closed it (uvloop raises RuntimeError on a write to it)
            raise ConnectionResetError("the connection is closed")
        writer.write(_SIZE.pack(len(payload)) + payload)
        await writer.drain()
        (size,) = _SIZE.unpack(await reader.readexactly(4))
        if size < 4 or size > max_frame:
            raise ConnectionError(f"response of {size} bytes during SASL authentication")
        frame = await reader.readexactly(size)
        response_header, response = decode_response(frame, api_key, version)
        if response_header.correlation_id != correlation:
            raise ConnectionError(f"correlation id {response_header.correlation_id}, expected {correlation}")
        return response
    return call


class _Exchange:
    def __init__(self, call: Roundtrip) -> None:
        self.call = call
        self.session_lifetime_ms = 0

    async def token(self, data: bytes) -> bytes:
        response = await self.call(SASL_AUTHENTICATE, AUTHENTICATE_VERSION, SaslAuthenticateRequest(auth_bytes=data))
        code = response.error_code
        if code != ErrorCode.NONE:
            raise AuthenticationError(response.error_message or f"Authentication failed: {ErrorCode(code).name}")
        # the last response's session lifetime is the one that counts (KIP-368)
        self.session_lifetime_ms = int(response.session_lifetime_ms or 0)
        return bytes(response.auth_bytes)


async def authenticate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mechanism: str, username: str,
                       password: str, *, client_id: str, max_frame: int = 100 * 1024 * 1024) -> int:
    """Authenticate the connection (or re-authenticate it: the same exchange, KIP-368); returns the
    session lifetime in ms the server's last SaslAuthenticate response gave (0: none, no
    re-authentication needed). Raises AuthenticationError, OSError or IncompleteReadError."""
    return await authenticate_with(stream_roundtrip(reader, writer, client_id, max_frame), mechanism, username,
                                   password)


async def authenticate_with(call: Roundtrip, mechanism: str, username: str, password: str) -> int:
    """:func:`authenticate` over ``call`` (a connection whose responses another task reads)."""
    exchange = _Exchange(call)
    await _authenticate(exchange, mechanism, username, password)
    return exchange.session_lifetime_ms


async def _authenticate(exchange: _Exchange, mechanism: str, username: str, password: str) -> None:
    response = await exchange.call(SASL_HANDSHAKE, HANDSHAKE_VERSION, SaslHandshakeRequest(mechanism=mechanism))
    code = response.error_code
    enabled = list(response.mechanisms or [])
    if code == ErrorCode.UNSUPPORTED_SASL_MECHANISM:
        raise AuthenticationError(f"Client SASL mechanism '{mechanism}' not enabled in the server, enabled "
                                  f"mechanisms are {_java_list(enabled)}")
    if code == ErrorCode.ILLEGAL_SASL_STATE:
        raise AuthenticationError(f"Unexpected handshake request with client mechanism {mechanism}, enabled "
                                  f"mechanisms are {_java_list(enabled)}")
    if code != ErrorCode.NONE:
        raise AuthenticationError(f"Unknown error code {ErrorCode(code).name} during SASL handshake")
    if mechanism == "PLAIN":
        await exchange.token(b"\0" + username.encode() + b"\0" + password.encode())
        return
    scram = MECHANISMS_BY_NAME.get(mechanism)
    if scram is None:
        raise AuthenticationError(f"SASL mechanism {mechanism} is not supported by this client")
    await ScramClient(scram, username, password).run(exchange)


def _java_list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _sasl_name(username: str) -> str:
    return username.replace("=", "=3D").replace(",", "=2C")


class ScramClient:
    """One SCRAM exchange (Kafka's ScramSaslClient)."""

    def __init__(self, mechanism: ScramMechanism, username: str, password: str, nonce: str | None = None) -> None:
        self.mechanism = mechanism
        self.username = username
        self.password = password
        self.nonce = nonce or secrets.token_urlsafe(24)

    def first(self) -> bytes:
        self.client_first_bare = f"n={_sasl_name(self.username)},r={self.nonce}"
        return ("n,," + self.client_first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode("utf-8", "replace")
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        if "e" in fields:
            raise AuthenticationError(f"Sasl authentication using {self.mechanism.name} failed with error: "
                                      f"{fields['e']}")
        try:
            nonce, salt, iterations = fields["r"], base64.b64decode(fields["s"], validate=True), int(fields["i"])
        except (KeyError, ValueError) as exc:
            raise AuthenticationError(f"Invalid SCRAM server first message: {exc}") from None
        if not nonce.startswith(self.nonce):
            raise AuthenticationError("Invalid server nonce: does not start with client nonce")
        if iterations < self.mechanism.min_iterations:
            raise AuthenticationError(f"Requested iterations {iterations} is less than minimum "
                                      f"{self.mechanism.min_iterations} for {self.mechanism.name}")
        salted = salted_password(self.mechanism, self.password, salt, iterations)
        without_proof = f"c={base64.b64encode(b'n,,').decode()},r={nonce}"
        self.auth_message = f"{self.client_first_bare},{text},{without_proof}".encode()
        key = client_key(self.mechanism, salted)
        signature = _hmac(self.mechanism, stored_key(self.mechanism, key), self.auth_message)
        proof = bytes(a ^ b for a, b in zip(key, signature, strict=True))
        self.server_key = server_key(self.mechanism, salted)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        text = server_final.decode("utf-8", "replace")
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        if "e" in fields:
            raise AuthenticationError(f"Sasl authentication using {self.mechanism.name} failed with error: "
                                      f"{fields['e']}")
        expected = _hmac(self.mechanism, self.server_key, self.auth_message)
        try:
            received = base64.b64decode(fields.get("v", ""), validate=True)
        except ValueError:
            received = b""
        if not hmac.compare_digest(expected, received):
            raise AuthenticationError("Sasl server signature verification failed")

    async def run(self, exchange: _Exchange) -> None:
        server_first = await exchange.token(self.first())
        server_final = await exchange.token(self.final(server_first))
        self.verify(server_final)
