"""Re-authentication (KIP-368) of a node's own SASL connections (kbroker/security/client.py) against
the server side of listeners served outside the client server (kbroker/security/inbound.py, the
controller listener): the client re-authenticates in band once 85-95 % of the session lifetime
the server gave has passed, on the same connection; the server answers a re-authentication in
request order and closes a connection whose session expired; a re-authentication with a password
the server no longer accepts fails and aborts the connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from waiting import async_wait_until

from kbroker.security import client
from kbroker.security.client import (
    REAUTH_JITTER,
    REAUTH_WINDOW_FACTOR,
    AuthenticationError,
    ClientSecurity,
    Connector,
    open_connection,
    reauthentication_due,
    reauthentications,
)
from kbroker.security.inbound import InboundSession, inbound_session
from kbroker.security.listeners import ListenerSecurity
from kbroker.security.scram import ScramCredentials
from kbroker_protocol.api import decode_response, encode_request, encode_response
from kbroker_protocol.messages import RequestHeader
from kbroker_protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse


class _Listener:
    """A controller-listener-like server: SASL, then each frame to the session first, ApiVersions
    answered (empty) by the listener itself."""

    def __init__(self, security: ListenerSecurity) -> None:
        self.security = security
        self.sessions: list[InboundSession] = []
        self.closed_by_session: list[str] = []
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        session = await inbound_session(reader, writer, self.security, ScramCredentials(), lambda frame: None)
        if session is None:
            return
        self.sessions.append(session)

        def respond(_cid: int, frame: bytes) -> None:
            writer.write(frame)

        try:
            while True:
                size = int.from_bytes(await reader.readexactly(4), "big")
                frame = await reader.readexactly(size)
                if await session.on_frame(reader, frame, respond):
                    continue
                cid = int.from_bytes(frame[4:8], "big")
                parts = encode_response(cid, 18, 3, ApiVersionsResponse(error_code=0, api_keys=[]))
                payload = b"".join(bytes(p) for p in parts)
                writer.write(len(payload).to_bytes(4, "big") + payload)
        except ConnectionError as exc:
            self.closed_by_session.append(str(exc))
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


def _security(reauth_ms: int, users: dict[str, str] | None = None) -> ListenerSecurity:
    return ListenerSecurity("CONTROLLER", "SASL_PLAINTEXT", sasl_mechanisms=["PLAIN"],
                            plain_users=users if users is not None else {"node": "s3cret"}, reauth_ms=reauth_ms,
                            failed_auth_delay_ms=0)


CLIENT = ClientSecurity("CONTROLLER", "SASL_PLAINTEXT", mechanism="PLAIN", username="node", password="s3cret")


@asynccontextmanager
async def _serving(listener: _Listener) -> AsyncIterator[int]:
    """``listener`` serving on an ephemeral port of 127.0.0.1 (the port), closed after."""
    server = await asyncio.start_server(listener.serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _api_versions(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cid: int) -> None:
    header = RequestHeader(request_api_key=18, request_api_version=3, correlation_id=cid, client_id="t")
    payload = encode_request(header, ApiVersionsRequest(client_software_name="t", client_software_version="1"))
    writer.write(len(payload).to_bytes(4, "big") + payload)
    size = int.from_bytes(await reader.readexactly(4), "big")
    response_header, _ = decode_response(await reader.readexactly(size), 18, 3)
    assert response_header.correlation_id == cid


async def test_the_client_reauthenticates_on_the_same_connection():
    # Kafka's server takes at most one re-authentication a second: a lifetime of 1.2 s re-authenticates
    # after 1.02 to 1.14 s
    listener = _Listener(_security(reauth_ms=1200))
    opener = Connector(CLIENT, "t")
    async with _serving(listener) as port:
        reader, writer = await opener("127.0.0.1", port)
        for round_ in range(1, 3):
            await async_wait_until(lambda: reauthentication_due(writer), 10, 0.01, message="a re-authentication due")
            await opener.reauthenticate_if_due(reader, writer)
            assert reauthentications(writer) == round_
            await _api_versions(reader, writer, round_)  # the connection still serves requests
        assert [s.reauthentications for s in listener.sessions] == [2]
        assert listener.connections == 1 and listener.closed_by_session == []
        writer.close()


async def test_the_reauthentication_time_is_85_to_95_percent_of_the_session_lifetime():
    listener = _Listener(_security(reauth_ms=60_000))
    async with _serving(listener) as port:
        before = time.monotonic()
        reader, writer = await open_connection("127.0.0.1", port, CLIENT, client_id="t")
        after = time.monotonic()
        at = client._sessions[writer].reauthenticate_at
        assert at is not None
        assert before + 60 * REAUTH_WINDOW_FACTOR <= at <= after + 60 * (REAUTH_WINDOW_FACTOR + REAUTH_JITTER)
        assert not reauthentication_due(writer)
        writer.close()


async def test_no_session_lifetime_means_no_reauthentication():
    listener = _Listener(_security(reauth_ms=0))
    async with _serving(listener) as port:
        reader, writer = await open_connection("127.0.0.1", port, CLIENT, client_id="t")
        assert client._sessions[writer].reauthenticate_at is None
        assert not reauthentication_due(writer)
        await _api_versions(reader, writer, 1)
        writer.close()


async def test_the_server_closes_a_connection_whose_session_expired():
    listener = _Listener(_security(reauth_ms=100))
    async with _serving(listener) as port:
        reader, writer = await open_connection("127.0.0.1", port, CLIENT, client_id="t")
        await async_wait_until(lambda: listener.sessions, 10, 0.01, message="an authenticated session")
        session = listener.sessions[0]
        expires = session.auth.session_expires
        assert expires is not None
        await async_wait_until(lambda: time.monotonic() >= expires, 10, 0.01, message="the session expiring")
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await _api_versions(reader, writer, 1)  # not re-authenticated: closed, no answer
        await async_wait_until(lambda: listener.closed_by_session, 10, 0.01,
                               message="the server closing the expired session")
        assert "expired" in listener.closed_by_session[0]


async def test_a_refused_reauthentication_aborts_the_connection():
    users = {"node": "s3cret"}
    listener = _Listener(_security(reauth_ms=300, users=users))
    async with _serving(listener) as port:
        reader, writer = await open_connection("127.0.0.1", port, CLIENT, client_id="t")
        users["node"] = "changed"  # the server no longer accepts the node's password
        await async_wait_until(lambda: reauthentication_due(writer), 10, 0.01, message="a re-authentication due")
        with pytest.raises(AuthenticationError, match="Invalid username or password"):
            await Connector(CLIENT, "t").reauthenticate_if_due(reader, writer)
        assert writer.transport.is_closing()
