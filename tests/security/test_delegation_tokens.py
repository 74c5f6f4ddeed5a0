"""Delegation tokens at the wire (CreateDelegationToken, RenewDelegationToken, ExpireDelegationToken,
DescribeDelegationToken) and SCRAM logins with a token (``tokenauth=true``), as Kafka 4.4: who may
ask (not on PLAINTEXT, not with a token), owners and renewers, expiry, DELEGATION_TOKEN ACLs, the
records surviving a restart. Kafka's own ``kafka-delegation-tokens.sh`` and a Java client logging
in with a token: tests/security/test_kafka_tools_security.py."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from waiting import wait_until
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.messages import REQUESTS
from tests.security.delegation_token_helpers import (
    SECRET,
    E,
    address,
    create,
    describe,
    login_plain,
    scram_token_login,
    token_config,
)


@pytest.fixture(scope="module")
def broker():
    with BrokerThread(token_config(**{"delegation.token.expiry.check.interval.ms": "200"})) as b:
        yield b


def _closed(w: Wire) -> bool:
    w.sock.settimeout(10)
    try:
        return w.sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_token_lifecycle_and_login(broker) -> None:
    sasl = address(broker, "SASL_PLAINTEXT")
    alice = login_plain(sasl, "alice")
    before = int(time.time() * 1000)
    r = create(alice, renewers=("User:bob",))
    after = int(time.time() * 1000)
    assert r.error_code == E.NONE
    assert (r.principal_type, r.principal_name) == ("User", "alice")
    assert (r.token_requester_principal_type, r.token_requester_principal_name) == ("User", "alice")
    assert before <= r.issue_timestamp_ms <= after
    # Kafka's defaults: expiry one day, max lifetime seven days
    assert r.expiry_timestamp_ms == r.issue_timestamp_ms + 86400000
    assert r.max_timestamp_ms == r.issue_timestamp_ms + 7 * 86400000
    assert r.hmac == hmac.new(SECRET.encode(), r.token_id.encode(), hashlib.sha512).digest()
    token_id, token_hmac = r.token_id, bytes(r.hmac)
    assert len(token_id) == 22 and not token_id.startswith("-")  # Kafka's Uuid.toString

    d = describe(alice)
    assert d.error_code == E.NONE
    [t] = [t for t in d.tokens if t.token_id == token_id]
    assert (t.principal_name, t.hmac, [x.principal_name for x in t.renewers]) == ("alice", token_hmac, ["bob"])
    assert (t.token_requester_principal_type, t.token_requester_principal_name) == ("User", "alice")
    assert describe(alice, owners=[]).tokens == []  # an empty owner list describes nothing
    assert [t.token_id for t in describe(alice, owners=["User:alice"]).tokens] == [token_id]
    assert describe(alice, owners=["User:nobody"]).tokens == []

    # log in with the token, both SCRAM mechanisms: the principal is the owner, token-authenticated
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        w, final = scram_token_login(sasl, token_id, token_hmac, mechanism)
        try:
            assert final.error_code == E.NONE, final.error_message
            # the session ends at the token's expiry (no connections.max.reauth.ms here)
            assert 0 < final.session_lifetime_ms <= 86400000
            assert w.call(3, 12, topics=[]).brokers
            # a token-authenticated connection may not use the token APIs
            assert create(w).error_code == E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
            assert describe(w).error_code == E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
            rr = w.call(39, 2, hmac=token_hmac, renew_period_ms=-1)
            assert (rr.error_code, rr.expiry_timestamp_ms) == (E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, -1)
            assert w.call(40, 2, hmac=token_hmac, expiry_time_period_ms=-1).error_code == \
                E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
        finally:
            w.close()
    conns = broker.call(lambda: [(c.principal, getattr(c, "token_authenticated", False))
                                 for c in broker.broker.connections if not c.closed])
    assert ("User:alice", False) in conns

    # a wrong password, an unknown token id: Kafka's generic failure
    w, final = scram_token_login(sasl, token_id, token_hmac, password="not-the-hmac")
    assert final.error_code == E.SASL_AUTHENTICATION_FAILED
    assert final.error_message == ("Authentication failed during authentication due to invalid credentials with "
                                   "SASL mechanism SCRAM-SHA-256")
    w.close()
    w, first = scram_token_login(sasl, "no-such-token", token_hmac)
    assert first.error_code == E.SASL_AUTHENTICATION_FAILED
    w.close()

    # renew: the owner and the renewer may, carol may not; the period is capped by the default
    bob, carol = login_plain(sasl, "bob"), login_plain(sasl, "carol")
    rr = bob.call(39, 2, hmac=token_hmac, renew_period_ms=60000)
    assert rr.error_code == E.NONE
    assert int(time.time() * 1000) - 60000 <= rr.expiry_timestamp_ms - 60000 <= int(time.time() * 1000)
    assert carol.call(39, 2, hmac=token_hmac, renew_period_ms=60000).error_code == E.DELEGATION_TOKEN_OWNER_MISMATCH
    assert carol.call(40, 2, hmac=token_hmac, expiry_time_period_ms=-1).error_code == \
        E.DELEGATION_TOKEN_OWNER_MISMATCH
    assert alice.call(39, 1, hmac=b"unknown", renew_period_ms=1).error_code == E.DELEGATION_TOKEN_NOT_FOUND
    assert alice.call(40, 1, hmac=b"unknown", expiry_time_period_ms=1).error_code == E.DELEGATION_TOKEN_NOT_FOUND
    # bob (a renewer) sees the token; without an authorizer so does anyone (Kafka authorizes all)
    assert [t.token_id for t in describe(bob).tokens] == [token_id]
    assert [t.token_id for t in describe(carol).tokens] == [token_id]
    # the renewal is what every later describe shows
    [t] = describe(alice).tokens
    assert t.expiry_timestamp == rr.expiry_timestamp_ms

    # expire now: the token is gone and no longer logs in
    ex = alice.call(40, 2, hmac=token_hmac, expiry_time_period_ms=-1)
    assert ex.error_code == E.NONE
    assert describe(alice).tokens == []
    assert alice.call(39, 2, hmac=token_hmac, renew_period_ms=1).error_code == E.DELEGATION_TOKEN_NOT_FOUND
    w, first = scram_token_login(sasl, token_id, token_hmac)
    assert (first.error_code, first.error_message) == (
        E.SASL_AUTHENTICATION_FAILED,
        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256")
    assert _closed(w)
    for c in (w, alice, bob, carol):
        c.close()


def test_an_expired_token_is_refused_then_removed(broker) -> None:
    sasl = address(broker, "SASL_PLAINTEXT")
    alice = login_plain(sasl, "alice")
    try:
        r = create(alice, max_lifetime_ms=600000)
        assert r.error_code == E.NONE
        assert r.max_timestamp_ms == r.issue_timestamp_ms + 600000  # the requested max, under the default
        token_id, token_hmac = r.token_id, bytes(r.hmac)
        # expiry in 1 ms: once past, renewing or expiring it again is DELEGATION_TOKEN_EXPIRED ...
        ex = alice.call(40, 2, hmac=token_hmac, expiry_time_period_ms=1)
        assert ex.error_code == E.NONE
        assert ex.expiry_timestamp_ms <= int(time.time() * 1000) + 1
        # ... and the active controller's sweep (every 200 ms here) removes it
        assert wait_until(lambda: not describe(alice).tokens, timeout=30)
        w, first = scram_token_login(sasl, token_id, token_hmac)
        assert first.error_code == E.SASL_AUTHENTICATION_FAILED
        w.close()
    finally:
        alice.close()


def test_expired_tokens_are_still_removed_after_a_control_reset() -> None:
    # The reset stops the broker's services and starts them again (kbroker/control/state.py):
    # the active controller's sweep runs on, as on a fresh broker.
    with BrokerThread(token_config(**{"delegation.token.expiry.check.interval.ms": "200"})) as b:
        b.reset()
        alice = login_plain(address(b, "SASL_PLAINTEXT"), "alice")
        try:
            r = create(alice)
            assert r.error_code == E.NONE
            assert alice.call(40, 2, hmac=bytes(r.hmac), expiry_time_period_ms=1).error_code == E.NONE
            assert wait_until(lambda: not describe(alice).tokens, timeout=30)
        finally:
            alice.close()


def test_a_session_on_an_expired_token_ends_at_its_next_request() -> None:
    # no sweep for an hour: the token is past its expiry but still in the metadata
    with BrokerThread(token_config()) as b:
        sasl = address(b, "SASL_PLAINTEXT")
        alice = login_plain(sasl, "alice")
        r = create(alice)
        rr = alice.call(40, 2, hmac=r.hmac, expiry_time_period_ms=0)
        assert rr.error_code == E.NONE
        assert wait_until(lambda: int(time.time() * 1000) > rr.expiry_timestamp_ms, timeout=5)
        assert alice.call(39, 2, hmac=r.hmac, renew_period_ms=1000).error_code == E.DELEGATION_TOKEN_EXPIRED
        assert alice.call(40, 2, hmac=r.hmac, expiry_time_period_ms=1000).error_code == E.DELEGATION_TOKEN_EXPIRED
        # Kafka: the login completes with a session lifetime of 0, and the next request closes
        w, final = scram_token_login(sasl, r.token_id, bytes(r.hmac))
        assert (final.error_code, final.session_lifetime_ms) == (E.NONE, 0)
        with pytest.raises(ConnectionError):
            w.call(3, 12, topics=[])
        w.close()
        alice.close()


def test_token_requests_on_plaintext_are_not_allowed(broker) -> None:
    w = Wire(address(broker, "PLAINTEXT"))
    try:
        r = create(w)
        assert (r.error_code, r.principal_name, r.token_id, r.issue_timestamp_ms) == (
            E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, "ANONYMOUS", "", -1)
        assert w.call(39, 2, hmac=b"x", renew_period_ms=1).error_code == E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
        assert w.call(40, 2, hmac=b"x", expiry_time_period_ms=1).error_code == E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
        assert describe(w).error_code == E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
    finally:
        w.close()


def test_renewers_must_be_users_and_owners_need_create_tokens(broker) -> None:
    w = login_plain(address(broker, "SASL_PLAINTEXT"), "alice")
    try:
        r = create(w, renewers=("Group:ops",))
        assert r.error_code == E.INVALID_PRINCIPAL_TYPE
        # no authorizer here: alice may create a token for bob
        r = create(w, owner="User:bob", version=3)
        assert r.error_code == E.NONE
        assert (r.principal_name, r.token_requester_principal_name) == ("bob", "alice")
        # v1 has no requester fields
        r1 = create(w, version=1)
        assert r1.error_code == E.NONE and r1.principal_name == "alice"
        # the requester counts as the owner's for describe
        assert r.token_id in {t.token_id for t in describe(w, owners=["User:bob"]).tokens}
    finally:
        w.close()


def test_without_the_secret_key_tokens_are_disabled() -> None:
    config = token_config()
    del config["delegation.token.secret.key"]
    with BrokerThread(config) as b:
        w = login_plain(address(b, "SASL_PLAINTEXT"), "alice")
        try:
            r = create(w)
            assert (r.error_code, r.principal_name) == (E.DELEGATION_TOKEN_AUTH_DISABLED, "alice")
            assert w.call(39, 2, hmac=b"x", renew_period_ms=1).error_code == E.DELEGATION_TOKEN_AUTH_DISABLED
            assert w.call(40, 2, hmac=b"x", expiry_time_period_ms=1).error_code == E.DELEGATION_TOKEN_AUTH_DISABLED
            assert describe(w).error_code == E.DELEGATION_TOKEN_AUTH_DISABLED
        finally:
            w.close()


def test_acls_decide_who_creates_for_others_and_who_describes() -> None:
    config = token_config(**{"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                             "super.users": "User:admin"})
    with BrokerThread(config) as b:
        sasl = address(b, "SASL_PLAINTEXT")
        admin, alice, bob = (login_plain(sasl, u) for u in ("admin", "alice", "bob"))
        try:
            # for oneself needs no ACL; for another owner CREATE_TOKENS on that USER
            assert create(alice).error_code == E.NONE
            r = create(alice, owner="User:bob")
            assert r.error_code == E.DELEGATION_TOKEN_AUTHORIZATION_FAILED
            Req = REQUESTS[30]

            def allow(principal: str, resource_type: int, name: str, operation: int) -> None:
                res = admin.call(30, 3, creations=[Req.AclCreation(
                    resource_type=resource_type, resource_name=name, resource_pattern_type=3, principal=principal,
                    host="*", operation=operation, permission_type=3)])
                assert res.results[0].error_code == E.NONE

            allow("User:alice", 7, "User:bob", 13)  # USER User:bob, CREATE_TOKENS
            assert create(alice, owner="User:bob").error_code == E.NONE
            # bob sees his token; he sees alice's own only with DESCRIBE_TOKENS on User:alice
            # or DESCRIBE on the token
            alice_tokens = {t.token_id for t in describe(alice).tokens if t.principal_name == "alice"}
            assert len(alice_tokens) == 1
            assert {t.principal_name for t in describe(bob).tokens} == {"bob"}
            allow("User:bob", 7, "User:alice", 14)  # USER User:alice, DESCRIBE_TOKENS
            assert {t.principal_name for t in describe(bob).tokens} == {"alice", "bob"}
            admin_view = describe(admin)  # a super user sees every token
            assert {t.principal_name for t in admin_view.tokens} == {"alice", "bob"}
            # DESCRIBE on one DELEGATION_TOKEN resource shows that token only
            carol = login_plain(sasl, "carol")
            try:
                assert describe(carol).tokens == []
                [alice_token] = alice_tokens
                allow("User:carol", 6, alice_token, 8)  # DELEGATION_TOKEN <id>, DESCRIBE
                assert [t.token_id for t in describe(carol).tokens] == [alice_token]
            finally:
                carol.close()
        finally:
            for w in (admin, alice, bob):
                w.close()


def test_tokens_survive_a_restart(tmp_path) -> None:
    config = token_config(**{"log.dirs": str(tmp_path / "data")})
    with BrokerThread(config) as b:
        alice = login_plain(address(b, "SASL_PLAINTEXT"), "alice")
        r = create(alice)
        renewed = alice.call(39, 2, hmac=r.hmac, renew_period_ms=120000)
        assert renewed.error_code == E.NONE
        alice.close()
    with BrokerThread(config) as b:
        sasl = address(b, "SASL_PLAINTEXT")
        alice = login_plain(sasl, "alice")
        [t] = describe(alice).tokens
        assert (t.token_id, t.expiry_timestamp, bytes(t.hmac)) == (r.token_id, renewed.expiry_timestamp_ms,
                                                                   bytes(r.hmac))
        alice.close()
        w, final = scram_token_login(sasl, r.token_id, bytes(r.hmac))
        assert final.error_code == E.NONE
        w.close()


async def test_forwarded_token_requests_run_on_the_controller_for_the_envelopes_principal() -> None:
    """Create/renew/expire as another broker forwards them (an Envelope carrying the client's
    principal): the controller decides for that principal and writes the records."""
    from kbroker.api.envelope import envelope
    from kbroker.metadata.remote import serialize_principal
    from kbroker.testing import EmbeddedBroker
    from kbroker_protocol.api import decode_response, encode_request
    from kbroker_protocol.messages import RequestHeader
    from kbroker_protocol.messages.envelope import EnvelopeRequest

    node = EmbeddedBroker({"delegation.token.secret.key": SECRET})
    await node.start()
    try:
        async def forwarded(api_key: int, version: int, user: str, **fields):
            header = RequestHeader(request_api_key=api_key, request_api_version=version, correlation_id=3,
                                   client_id="inner")
            outer = await envelope(node.broker, EnvelopeRequest(
                request_data=encode_request(header, REQUESTS[api_key](**fields)),
                request_principal=serialize_principal("User", user), client_host_address=b"\x7f\x00\x00\x01"))
            assert outer.error_code == E.NONE
            return decode_response(outer.response_data, api_key, version)[1]

        created = await forwarded(38, 3, "alice", renewers=[], max_lifetime_ms=-1)
        assert (created.error_code, created.principal_name, created.token_requester_principal_name) == (
            E.NONE, "alice", "alice")
        token = node.broker.delegation_tokens.tokens[created.token_id]
        assert (token.owner, token.requester) == ("User:alice", "User:alice")
        renewed = await forwarded(39, 2, "bob", hmac=created.hmac, renew_period_ms=1000)
        assert renewed.error_code == E.DELEGATION_TOKEN_OWNER_MISMATCH
        renewed = await forwarded(39, 2, "alice", hmac=created.hmac, renew_period_ms=1000)
        assert renewed.error_code == E.NONE
        assert node.broker.delegation_tokens.tokens[created.token_id].expiry_ms == renewed.expiry_timestamp_ms
        expired = await forwarded(40, 2, "alice", hmac=created.hmac, expiry_time_period_ms=-1)
        assert expired.error_code == E.NONE
        assert created.token_id not in node.broker.delegation_tokens.tokens
        assert created.token_id not in node.broker.image.delegation_tokens
    finally:
        await node.stop()


def test_ssl_connections_need_a_client_certificate_for_token_requests(certs) -> None:
    """Kafka's allowTokenRequests: an SSL connection without a client certificate (ANONYMOUS) may
    not use the token APIs; one with a certificate may (its principal owns the token)."""
    import ssl

    from security_helpers import ssl_listener_config

    config = ssl_listener_config(certs, client_auth="requested", **{"delegation.token.secret.key": SECRET})
    with BrokerThread(config) as b:
        def tls_wire(with_cert: bool) -> Wire:
            ctx = ssl.create_default_context(cafile=str(certs.ca))
            if with_cert:
                ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
            w = Wire(b.bootstrap_servers)
            w.sock = ctx.wrap_socket(w.sock, server_hostname="localhost")
            return w

        anonymous, with_cert = tls_wire(False), tls_wire(True)
        try:
            assert create(anonymous).error_code == E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
            assert describe(anonymous).error_code == E.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
            r = create(with_cert)
            assert (r.error_code, r.principal_type, r.principal_name) == (E.NONE, "User", certs.client_dn)
            assert [t.token_id for t in describe(with_cert).tokens] == [r.token_id]
        finally:
            anonymous.close()
            with_cert.close()
