"""AlterUserScramCredentials and DescribeUserScramCredentials: validation as Kafka's, and the credentials
surviving a restart."""

from __future__ import annotations

from sasl_listener_helpers import (  # noqa: F401 (fixtures)
    _address,
    _authenticate_scram,
    _salted,
    _upsert,
    broker_fixture,
    plaintext_fixture,
    sasl_config,
)
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode


# -- AlterUserScramCredentials / DescribeUserScramCredentials --------------------------------------


def test_alter_user_scram_credentials_validates_as_kafka(plaintext) -> None:
    Req = REQUESTS[51]
    w = Wire(plaintext)

    def up(name: str, mechanism: int = 1, iterations: int = 4096) -> object:
        return Req.ScramCredentialUpsertion(name=name, mechanism=mechanism, iterations=iterations, salt=b"salt",
                                            salted_password=_salted(1, "p", b"salt", 4096))

    try:
        r = w.call(51, 0, deletions=[Req.ScramCredentialDeletion(name="ghost", mechanism=1),
                                     Req.ScramCredentialDeletion(name="dup", mechanism=1)],
                   upsertions=[up("few", iterations=4095), up("many", iterations=16385), up("", 1),
                               up("mech", mechanism=3), up("dup"), up("ok", iterations=16384)])
        got = {x.user: (x.error_code, x.error_message) for x in r.results}
        assert got == {
            "ghost": (E.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist"),
            "dup": (E.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist"),
            "few": (E.UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
            "many": (E.UNACCEPTABLE_CREDENTIAL, "Too many iterations"),
            "": (E.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"),
            "mech": (E.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
            "ok": (E.NONE, None),
        }
        r = w.call(51, 0, deletions=[Req.ScramCredentialDeletion(name="ok", mechanism=1)],
                   upsertions=[up("ok", mechanism=2), up("twice"), up("twice")])
        got = {x.user: (x.error_code, x.error_message) for x in r.results}
        assert got == {
            "ok": (E.DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request"),
            "twice": (E.DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request"),
        }
        D = REQUESTS[50]
        d = w.call(50, 0, users=[D.UserName(name="ok"), D.UserName(name="ghost"), D.UserName(name="x"),
                                 D.UserName(name="x")])
        got = {x.user: (x.error_code, x.error_message, [(c.mechanism, c.iterations) for c in x.credential_infos])
               for x in d.results}
        assert got == {
            "ok": (E.NONE, None, [(1, 16384)]),
            "ghost": (E.RESOURCE_NOT_FOUND, "Attempt to describe a user credential that does not exist: ghost", []),
            "x": (E.DUPLICATE_RESOURCE,
                  "Cannot describe SCRAM credentials for the same user twice in a single request: x", []),
        }
        r = w.call(51, 0, deletions=[Req.ScramCredentialDeletion(name="ok", mechanism=1)], upsertions=[])
        assert [(x.user, x.error_code) for x in r.results] == [("ok", E.NONE)]
        assert "ok" not in {x.user for x in w.call(50, 0, users=None).results}
    finally:
        w.close()


def test_scram_credentials_survive_a_restart(tmp_path) -> None:
    data = str(tmp_path / "data")
    with BrokerThread(sasl_config(), data_dir=data) as b:
        w = Wire(_address(b, "PLAINTEXT"))
        assert _upsert(w, "kept", "kept-pw", mechanism=2).results[0].error_code == E.NONE
        w.close()
    with BrokerThread(sasl_config(), data_dir=data) as b:
        w = Wire(_address(b, "SASL_PLAINTEXT"))
        try:
            assert _authenticate_scram(w, "SCRAM-SHA-512", "kept", "kept-pw").error_code == E.NONE
        finally:
            w.close()
