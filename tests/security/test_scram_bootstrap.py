"""``kbroker format --add-scram`` (kbroker/security/scram_bootstrap.py) against Kafka 4.4's
ScramParser: the record it writes authenticates the user, and bad arguments get Kafka's messages."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from kbroker.__main__ import main
from kbroker.security.sasl_client import ScramClient
from kbroker.security.scram import MECHANISMS_BY_NAME, ScramCredentials, ScramServer, salted_password
from kbroker.security.scram_bootstrap import scram_records
from kbroker.storage import read_bootstrap_records, read_meta_properties


@pytest.mark.parametrize("name", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_record_authenticates_the_user(name):
    [record] = scram_records([f' {name}=[name=alice,password="a"] '])  # quotes and spaces stripped
    mechanism = MECHANISMS_BY_NAME[name]
    assert (record.name, record.mechanism, record.iterations) == ("alice", mechanism.type, 4096)
    creds = ScramCredentials()
    creds.on_record(record)
    server = ScramServer(mechanism, creds)
    client = ScramClient(mechanism, "alice", "a")
    client.verify(server.evaluate(client.final(server.evaluate(client.first()))))
    assert server.complete


def test_a_salt_made_from_a_password_is_a_fresh_base36_string():
    # Kafka's ScramFormatter.secureRandomBytes: 130 random bits written in base 36, as ASCII.
    salts = [bytes(scram_records(['SCRAM-SHA-256=[name=a,password=p]'])[0].salt) for _ in range(20)]
    assert len(set(salts)) == 20
    for salt in salts:
        assert 1 <= len(salt) <= 26 and set(salt.decode()) <= set("0123456789abcdefghijklmnopqrstuvwxyz")
    assert any(len(salt) >= 24 for salt in salts)  # (a draw under 24 digits: about 1 in 2,000)


def test_salted_password_and_salt_are_taken_as_given():
    mechanism = MECHANISMS_BY_NAME["SCRAM-SHA-256"]
    salt = b"fixed-salt"
    salted = salted_password(mechanism, "pw", salt, 8192)
    [record] = scram_records([f"SCRAM-SHA-256=[name=bob,salt={base64.b64encode(salt).decode()},"
                              f"saltedpassword={base64.b64encode(salted).decode()},iterations=8192]"])
    assert bytes(record.salt) == salt and record.iterations == 8192


@pytest.mark.parametrize("argument, message", [
    ("SCRAM-SHA-256", "Failed to find equals sign in SCRAM argument 'SCRAM-SHA-256'"),
    ("SCRAM-SHA-1=[name=a,password=b]", "The add-scram mechanism SCRAM-SHA-1 is not supported."),
    ("SCRAM-SHA-256=name=a,password=b]", "Expected configuration string to start with ["),
    ("SCRAM-SHA-256=[name=a,password=b", "Expected configuration string to end with ]"),
    ("SCRAM-SHA-256=[password=b]", "You must supply 'name' to add-scram"),
    ("SCRAM-SHA-256=[name=a]", "You must supply one of 'password' or 'saltedpassword' to add-scram"),
    ("SCRAM-SHA-256=[name=a,saltedpassword=AAAA]", "You must supply 'salt' with 'saltedpassword' to add-scram"),
    ("SCRAM-SHA-256=[name=a,password=b,iterations=x]", "Failed to parse iterations count: x"),
    ("SCRAM-SHA-256=[name=a,password=b,iterations=100]",
     "The 'iterations' value must be >= 4096 for add-scram using SCRAM_SHA_256"),
    ("SCRAM-SHA-512=[name=a,password=b,iterations=20000]",
     "The 'iterations' value must be <= 16384 for add-scram using SCRAM_SHA_512"),
    ("SCRAM-SHA-256=[name=a,password=b,color=red]", "Unknown SCRAM configurations: color"),
    ("SCRAM-SHA-256=[name=a,password=b,nothing]", "No equals sign found in SCRAM component: nothing"),
])
def test_bad_arguments_get_kafkas_messages(argument, message):
    with pytest.raises(ValueError) as info:
        scram_records([argument])
    assert str(info.value) == message


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "server.properties"
    path.write_text("process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:19093\n"
                    "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n"
                    f"controller.listener.names=CONTROLLER\nlog.dirs={tmp_path}/data\n")
    return path


def test_format_writes_the_credentials_into_the_bootstrap_metadata(tmp_path, capsys):
    config = _config(tmp_path)
    assert main(["format", "-t", "MkU3OEVBNTcwNTJENDM2Qk", "-c", str(config), "--add-scram",
                 "SCRAM-SHA-256=[name=alice,password=alice-secret]", "-S",
                 "SCRAM-SHA-512=[name=bob,password=bob-secret]"]) == 0
    records = read_bootstrap_records(tmp_path / "data")
    scram = [(r.name, r.mechanism) for r in records if type(r).__name__ == "UserScramCredentialRecord"]
    assert scram == [("alice", 1), ("bob", 2)]


def test_format_refuses_a_bad_argument_and_writes_nothing(tmp_path, capsys):
    config = _config(tmp_path)
    assert main(["format", "-t", "MkU3OEVBNTcwNTJENDM2Qk", "-c", str(config), "--add-scram",
                 "SCRAM-SHA-256=[name=alice]"]) == 1
    assert "You must supply one of 'password' or 'saltedpassword' to add-scram" in capsys.readouterr().err
    assert read_meta_properties(tmp_path / "data") is None
