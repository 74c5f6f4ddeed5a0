"""The SASL handshake at the wire: SaslHandshake/SaslAuthenticate for PLAIN and SCRAM, v0 raw tokens, and
the requests, mechanisms and frames that close the connection or are an illegal SASL state."""

from __future__ import annotations

import struct

import pytest
from sasl_listener_helpers import (  # noqa: F401 (fixtures)
    MECHANISMS,
    ScramClient,
    _authenticate_scram,
    _closed,
    _upsert,
    broker_fixture,
    plaintext_fixture,
    sasl_fixture,
)
from wire import Wire

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode


def _raw(wire: Wire, token: bytes) -> bytes:
    wire.sock.sendall(struct.pack(">i", len(token)) + token)
    (size,) = struct.unpack(">i", wire._read_exact(4))
    return wire._read_exact(size)


# -- the handshake at the wire ---------------------------------------------------------------------


def test_plain_wrong_password_answers_kafkas_failure_then_closes(sasl) -> None:
    w = Wire(sasl)
    try:
        assert w.call(17, 1, mechanism="PLAIN").mechanisms == MECHANISMS.split(",")
        r = w.call(36, 2, auth_bytes=b"\0alice\0nope")
        assert (r.error_code, r.error_message) == (E.SASL_AUTHENTICATION_FAILED,
                                                   "Authentication failed: Invalid username or password")
        assert _closed(w)
    finally:
        w.close()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_at_the_wire(plaintext, sasl, mechanism) -> None:
    admin = Wire(plaintext)
    try:
        assert _upsert(admin, "wire-user", "pw1", mechanism=1 if mechanism == "SCRAM-SHA-256" else 2
                       ).results[0].error_code == E.NONE
    finally:
        admin.close()
    w = Wire(sasl)
    try:
        final = _authenticate_scram(w, mechanism, "wire-user", "pw1")
        assert final.error_code == E.NONE and final.session_lifetime_ms == 0
        assert w.call(3, 12, topics=[]).brokers  # served once authenticated
    finally:
        w.close()
    for user, password in (("wire-user", "wrong"), ("nobody", "pw1")):
        w = Wire(sasl)
        try:
            final = w.call(17, 1, mechanism=mechanism)
            client = ScramClient(mechanism, user, password)
            first = w.call(36, 1, auth_bytes=client.first())
            if user == "nobody":  # unknown users fail at the first message, with the same words
                final = first
            else:
                final = w.call(36, 1, auth_bytes=client.final(first.auth_bytes))
            assert (final.error_code, final.error_message) == (
                E.SASL_AUTHENTICATION_FAILED,
                f"Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}")
            assert _closed(w)
        finally:
            w.close()


def test_handshake_v0_takes_raw_tokens(plaintext, sasl) -> None:
    w = Wire(sasl)
    try:
        assert w.call(18, 3, client_software_name="t", client_software_version="1").error_code == E.NONE
        assert w.call(17, 0, mechanism="PLAIN").error_code == E.NONE
        assert _raw(w, b"\0alice\0alice-secret") == b""  # Kafka answers PLAIN's last token with an empty one
        assert w.call(3, 12, topics=[]).brokers
    finally:
        w.close()
    admin = Wire(plaintext)
    _upsert(admin, "raw-user", "raw-pw")
    admin.close()
    w = Wire(sasl)
    try:
        assert w.call(17, 0, mechanism="SCRAM-SHA-256").error_code == E.NONE
        client = ScramClient("SCRAM-SHA-256", "raw-user", "raw-pw")
        server_first = _raw(w, client.first())
        assert client.verify(_raw(w, client.final(server_first)))
        assert w.call(3, 12, topics=[]).brokers
    finally:
        w.close()
    w = Wire(sasl)
    try:  # v0 failure: no answer, the connection closes
        w.call(17, 0, mechanism="PLAIN")
        w.sock.sendall(struct.pack(">i", 12) + b"\0alice\0wrong")
        assert _closed(w)
    finally:
        w.close()


@pytest.mark.parametrize("before", ["nothing", "api-versions"])
def test_a_request_before_authentication_closes_the_connection(sasl, before) -> None:
    w = Wire(sasl)
    try:
        if before == "api-versions":
            assert w.call(18, 3, client_software_name="t", client_software_version="1").error_code == E.NONE
        w.send(REQUESTS[3](topics=[]), 12)
        assert _closed(w)
    finally:
        w.close()


def test_api_versions_twice_before_the_handshake_closes_the_connection(sasl) -> None:
    w = Wire(sasl)
    try:
        assert w.call(18, 3, client_software_name="t", client_software_version="1").error_code == E.NONE
        w.send(REQUESTS[18](client_software_name="t", client_software_version="1"), 3)
        assert _closed(w)
    finally:
        w.close()


def test_another_request_during_authentication_is_an_illegal_sasl_state(sasl) -> None:
    w = Wire(sasl)
    try:
        assert w.call(17, 1, mechanism="PLAIN").error_code == E.NONE
        assert w.call(16, 4).error_code == E.ILLEGAL_SASL_STATE  # ListGroups
        assert _closed(w)
    finally:
        w.close()


def test_unsupported_mechanism_lists_the_enabled_ones_and_closes(sasl) -> None:
    w = Wire(sasl)
    try:
        r = w.call(17, 1, mechanism="GSSAPI")
        assert (r.error_code, r.mechanisms) == (E.UNSUPPORTED_SASL_MECHANISM, MECHANISMS.split(","))
        assert _closed(w)
    finally:
        w.close()


def test_an_oversized_frame_before_authentication_closes_the_connection(sasl) -> None:
    w = Wire(sasl)
    try:
        w.sock.sendall(struct.pack(">i", 524288 + 1) + b"\0" * 1024)
        assert _closed(w)
    finally:
        w.close()


def test_sasl_apis_on_a_plaintext_listener_are_an_illegal_sasl_state(plaintext) -> None:
    w = Wire(plaintext)
    try:
        assert w.call(17, 1, mechanism="PLAIN").error_code == E.ILLEGAL_SASL_STATE
        r = w.call(36, 2, auth_bytes=b"x")
        assert (r.error_code, r.error_message) == (
            E.ILLEGAL_SASL_STATE, "SaslAuthenticate request received after successful authentication")
        assert w.call(3, 12, topics=[]).brokers
    finally:
        w.close()
