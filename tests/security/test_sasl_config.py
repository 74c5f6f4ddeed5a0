"""SASL configuration: bad settings stop start-up, per-listener settings and several SASL listeners, and
the JAAS line read as Kafka's JaasConfig."""

from __future__ import annotations

import pytest
from sasl_listener_helpers import PLAIN_JAAS, _address, sasl_config
from security_helpers import start_up_error
from wire import Wire

from kbroker.security.jaas import JaasError, parse_jaas, plain_users, server_entry
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode

E = ErrorCode


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"sasl.enabled.mechanisms": None}, "SASL mechanism GSSAPI in sasl.enabled.mechanisms is not supported"),
    ({"sasl.enabled.mechanisms": "PLAIN,OAUTHBEARER"},
     "Listener SASL_PLAINTEXT enables OAUTHBEARER but has no JAAS configuration"),
    ({"listener.name.sasl_plaintext.plain.sasl.jaas.config": None},
     "Listener SASL_PLAINTEXT enables PLAIN but has no JAAS configuration"),
    ({"listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS.rstrip(";")},
     "JAAS config entry not terminated by semi-colon"),
    ({"listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS + PLAIN_JAAS},
     "JAAS config property contains 2 login modules, should be 1 module"),
    ({"listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT,X:KERBEROS"},
     "Invalid security protocol `KERBEROS` defined in listener.security.protocol.map"),
    ({"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT"},
     "No security protocol defined for listener SASL_PLAINTEXT"),
    ({"listener.security.protocol.map": "SASL_PLAINTEXT"},
     "Error parsing configuration property 'listener.security.protocol.map'"),
])
def test_bad_sasl_settings_stop_start_up(changes, message) -> None:
    assert message in start_up_error(sasl_config(), changes)


def test_per_listener_settings_and_several_sasl_listeners() -> None:
    other_jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required user_bob="bob-secret";')
    config = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0,CLIENTS://127.0.0.1:0",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CLIENTS:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.clients.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.clients.plain.sasl.jaas.config": other_jaas,
    }
    with BrokerThread(config) as b:
        for listener, mechanisms, user, password in (("SASL_PLAINTEXT", ["PLAIN"], "alice", "alice-secret"),
                                                     ("CLIENTS", ["PLAIN", "SCRAM-SHA-256"], "bob", "bob-secret")):
            w = Wire(_address(b, listener))
            try:
                assert w.call(17, 1, mechanism="PLAIN").mechanisms == mechanisms
                assert w.call(36, 2, auth_bytes=f"\0{user}\0{password}".encode()).error_code == E.NONE
            finally:
                w.close()
        w = Wire(_address(b, "CLIENTS"))
        try:  # alice is a user of the other listener only
            w.call(17, 1, mechanism="PLAIN")
            assert w.call(36, 2, auth_bytes=b"\0alice\0alice-secret").error_code == E.SASL_AUTHENTICATION_FAILED
        finally:
            w.close()


# -- the JAAS line ---------------------------------------------------------------------------------


def test_jaas_line_is_read_as_kafkas_jaasconfig() -> None:
    entry = server_entry(
        'org.apache.kafka.common.security.plain.PlainLoginModule required /* a comment */\n'
        'username="admin" password="a;b=c" // another\n'
        "user_admin=\"a;b=c\" user_x-y='q\\\"uote' user_plain=bare-word$1;")
    assert entry.flag == "REQUIRED"
    assert plain_users(entry) == {"admin": "a;b=c", "x-y": 'q"uote', "plain": "bare-word$1"}
    for bad, message in (("", "Login module not specified in JAAS config"),
                         ("M", "Login module control flag not specified in JAAS config"),
                         ("M sometimes;", "Invalid login module control flag 'sometimes' in JAAS config"),
                         ("M required user_a=123;", "Value not specified for key 'user_a' in JAAS config"),
                         ("M required user_a;", "Value not specified for key 'user_a' in JAAS config")):
        with pytest.raises(JaasError, match=message):
            parse_jaas(bad)
