"""The server side of a SASL exchange on a listener served outside the client server (the
controller listener, kbroker/security/inbound.py) whose client resets its connection while an
answer is being made: a handshake answer, the answer to a failed authentication (written after
``connection.failed.authentication.delay.ms``, the likeliest moment for a client to give up), a
raw token's answer (after a v0 handshake). Once the loop has seen the reset, uvloop (the loop
kbroker runs on) raises ``RuntimeError`` ("the handler is closed") on a write to the connection,
which escaped :func:`inbound_session` and ended the raft listener's connection task with an error
and a traceback; the connection is now closed as one whose client went away (Kafka's Selector
closes a channel whose peer disconnected during authentication, at debug level), on either loop.

The reset is made deterministic as in tests/unit/test_http_write_after_reset.py: the requests the
exchange reads come from a reader the test feeds, the answers go to the real connection, and each
request after the reset is fed only once the server's end has seen it."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest
from event_loops import LOOPS, reset_seen
from waiting import turns_until

from kbroker.security.inbound import inbound_session
from kbroker.security.listeners import ListenerSecurity
from kbroker.security.scram import ScramCredentials
from kbroker_protocol.api import encode_request
from kbroker_protocol.messages import RequestHeader
from kbroker_protocol.messages.sasl_authenticate import SaslAuthenticateRequest
from kbroker_protocol.messages.sasl_handshake import SaslHandshakeRequest
from kbroker_protocol.primitives import Message

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
def _request(api_key: int, version: int, correlation_id: int, body: Message) -> bytes:
    header = RequestHeader(request_api_key=api_key, request_api_version=version, correlation_id=correlation_id,
                           client_id="reset-test")
    payload = encode_request(header, body)
    return struct.pack(">i", len(payload)) + payload


def _handshake(version: int) -> bytes:
    return _request(SASL_HANDSHAKE, version, 1, SaslHandshakeRequest(mechanism="PLAIN"))


def _authenticate(password: str) -> bytes:
    return _request(SASL_AUTHENTICATE, 2, 2, SaslAuthenticateRequest(auth_bytes=f"\0node\0{password}".encode()))


def _raw_token(password: str) -> bytes:
    token = f"\0node\0{password}".encode()
    return struct.pack(">i", len(token)) + token


# (what the client sent before resetting, answered while it was there; what it sent last, answered after)
CASES = {
    "handshake": ([], _handshake(1)),
    "failed authentication": ([_handshake(1)], _authenticate("wrong")),
    "raw token": ([_handshake(0)], _raw_token("s3cret")),
}


async def _exchange_with_a_reset(before: list[bytes], last: bytes) -> tuple[object, asyncio.StreamWriter]:
    """Run inbound_session on a real connection: ``before`` answered, then the client resets, then
    (once the server's end has seen the reset) ``last`` is read; what inbound_session returned (or
    raised), and the server's writer."""
    accepted: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append((reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    client = socket.create_connection((host, port))
    client.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await turns_until(lambda: bool(accepted), "the connection accepted")
        reader, writer = accepted[0]
        requests = asyncio.StreamReader()
        security = ListenerSecurity("CONTROLLER", "SASL_PLAINTEXT", sasl_mechanisms=["PLAIN"],
                                    plain_users={"node": "s3cret"}, failed_auth_delay_ms=0)

        async def session() -> object:
            try:
                return await inbound_session(requests, writer, security, ScramCredentials(), lambda frame: None)
            except Exception as exc:  # noqa: BLE001 - what the listener's connection task would have got
                return exc

        task = asyncio.create_task(session())
        for frame in before:
            requests.feed_data(frame)
            (size,) = struct.unpack(">i", await loop.sock_recv(client, 4))  # its answer: the client was there
            assert size > 0
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset
        await reset_seen(reader, writer)
        assert not task.done()
        requests.feed_data(last)
        return await task, writer
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("case", CASES)
def test_an_answer_to_a_client_that_reset_during_authentication_closes_the_connection(
        case: str, loop_name: str, caplog: pytest.LogCaptureFixture) -> None:
    """inbound_session returns None (the connection failed authentication: it is closed) instead of
    raising, and logs nothing above debug about a client that went away."""
    before, last = CASES[case]
    caplog.set_level(logging.DEBUG, logger="kbroker.security")
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        result, writer = runner.run(_exchange_with_a_reset(before, last))
    assert result is None, f"inbound_session gave {result!r}"
    assert writer.is_closing()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
