"""The console on a broker with SASL users: a login checked by the broker's SASL listener, a session
cookie, every page authorized as the logged-in principal, and the ACL and SCRAM user pages."""

from __future__ import annotations

import pytest

from kbroker.security import acls as A
from kbroker.testing import BrokerThread
from tests.console.helpers import login, page_call

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" '
        'user_alice="alice-secret";')


@pytest.fixture(scope="module")
def broker():
    with BrokerThread({
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "sasl.jaas.config": JAAS,
        "authorizer.class.name": A.STANDARD_AUTHORIZER,
        "super.users": "User:admin",
        "connection.failed.authentication.delay.ms": "0",
        "kbroker.http.listeners": "http://127.0.0.1:0",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
    }) as b:
        yield b


@pytest.fixture(scope="module")
def base(broker) -> str:
    return broker.broker.metrics.http.url


def test_pages_need_a_login_and_a_wrong_password_is_refused(base) -> None:
    status, data, _ = page_call(base, "/api/session")
    assert status == 200
    assert data["login_required"] is True and data["user"] is None
    assert data["mechanisms"] == ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
    for path in ("/api/overview", "/api/topics", "/api/throughput", "/api/acls"):
        status, data, _ = page_call(base, path)
        assert (status, data["login"]) == (401, True), path
    status, data, headers = page_call(base, "/api/login", {"username": "alice", "password": "wrong", "mechanism": "PLAIN"})
    assert status == 401 and "Set-Cookie" not in headers
    assert "Invalid username or password" in data["error"]  # the broker's SASL server's message
    status, data, _ = page_call(base, "/api/login", {"username": "nobody", "password": "x", "mechanism": "SCRAM-SHA-256"})
    assert status == 401
    status, data, _ = page_call(base, "/api/topics", cookie="kbroker_console_session=made-up")
    assert status == 401


def test_session_cookie_and_logout(base) -> None:
    status, data, headers = page_call(base, "/api/login", {"username": "admin", "password": "admin-secret",
                                                      "mechanism": "PLAIN"})
    assert status == 200 and data["principal"] == "User:admin"
    cookie = headers["Set-Cookie"]
    name_value, *attributes = [p.strip() for p in cookie.split(";")]
    assert name_value.startswith("kbroker_console_session=") and len(name_value.split("=", 1)[1]) >= 40
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(attributes)
    assert page_call(base, "/api/session", cookie=name_value)[1]["user"] == "admin"
    assert page_call(base, "/api/overview", cookie=name_value)[0] == 200
    status, data, headers = page_call(base, "/api/logout", {}, cookie=name_value)
    assert status == 200 and data["logged_out"] is True and "Max-Age=0" in headers["Set-Cookie"]
    assert page_call(base, "/api/overview", cookie=name_value)[0] == 401
    assert page_call(base, "/api/session", cookie=name_value)[1]["user"] is None


def test_each_page_is_authorized_as_the_logged_in_principal(base) -> None:
    admin = login(base, "admin", "admin-secret", "PLAIN")
    for topic in ("open-t", "secret-t"):
        status, data, _ = page_call(base, "/api/topics", {"name": topic, "partitions": 1}, cookie=admin)
        assert status == 200, data
    status, data, _ = page_call(base, "/api/acls", {"resource_type": "TOPIC", "resource_name": "open-t",
                                               "principal": "User:alice", "operation": "DESCRIBE"}, cookie=admin)
    assert status == 200, data
    alice = login(base, "alice", "alice-secret", "PLAIN")  # a JAAS (PLAIN) user
    seen = page_call(base, "/api/overview", cookie=alice)[1]
    assert "CLUSTER_AUTHORIZATION_FAILED" in seen["quorum"]["error"]
    assert seen["controller_id"] is None  # the quorum's leader is the controller: unknown without it
    seen = page_call(base, "/api/overview", cookie=admin)[1]
    assert seen["quorum"]["leader_id"] == seen["controller_id"] == 1
    names = [t["name"] for t in page_call(base, "/api/topics", cookie=alice)[1]["topics"]]
    assert "open-t" in names and "secret-t" not in names  # no DESCRIBE on secret-t: not shown
    rows = {t["name"]: t for t in page_call(base, "/api/topics", cookie=alice)[1]["topics"]}
    assert rows["open-t"]["size"] is None  # no DESCRIBE on the cluster: DescribeLogDirs refused, size unknown
    assert isinstance({t["name"]: t for t in page_call(base, "/api/topics", cookie=admin)[1]["topics"]}["open-t"]["size"],
                      int)
    admin_names = [t["name"] for t in page_call(base, "/api/topics", cookie=admin)[1]["topics"]]
    assert {"open-t", "secret-t"} <= set(admin_names)
    status, data, _ = page_call(base, "/api/topics/open-t", cookie=alice)  # DESCRIBE without DESCRIBE_CONFIGS
    assert status == 200 and data["partitions"][0]["leader"] == 1 and data["configs"] is None
    assert "TOPIC_AUTHORIZATION_FAILED" in data["configs_error"]
    status, data, _ = page_call(base, "/api/topics/secret-t", cookie=alice)
    assert (status, data["code"]) == (403, "TOPIC_AUTHORIZATION_FAILED")
    status, data, _ = page_call(base, "/api/topics/open-t/produce", {"value": "hi", "partition": 0}, cookie=alice)
    assert (status, data["code"]) == (403, "TOPIC_AUTHORIZATION_FAILED")  # no WRITE
    status, data, _ = page_call(base, "/api/acls", {}, cookie=alice)  # and no ALTER on the cluster
    assert status == 400 and data["field"] == "resource_type"
    status, data, _ = page_call(base, "/api/acls", {"resource_type": "TOPIC", "resource_name": "open-t",
                                               "principal": "User:alice", "operation": "WRITE"}, cookie=alice)
    assert (status, data["code"]) == (403, "CLUSTER_AUTHORIZATION_FAILED")
    assert page_call(base, "/api/acls", {"resource_type": "TOPIC", "resource_name": "open-t", "principal": "User:alice",
                                    "operation": "WRITE"}, cookie=admin)[0] == 200
    status, data, _ = page_call(base, "/api/topics/open-t/produce", {"value": "hi", "partition": 0}, cookie=alice)
    assert status == 200 and data["offset"] == 0


def test_acl_and_scram_user_pages(base) -> None:
    admin = login(base, "admin", "admin-secret", "PLAIN")
    acl = {"resource_type": "GROUP", "resource_name": "grp-", "pattern_type": "PREFIXED", "principal": "User:carol",
           "host": "*", "operation": "READ", "permission": "ALLOW"}
    assert page_call(base, "/api/acls", acl, cookie=admin)[0] == 200
    rows = page_call(base, "/api/acls", cookie=admin)[1]["acls"]
    assert acl in rows
    status, data, _ = page_call(base, "/api/acls", acl | {"principal": "carol"}, cookie=admin)
    assert status == 400 and "Could not parse principal" in data["error"]  # the broker's CreateAcls check
    status, data, _ = page_call(base, "/api/acls/delete", acl, cookie=admin)
    assert status == 200 and data["deleted"] == [acl]
    assert acl not in page_call(base, "/api/acls", cookie=admin)[1]["acls"]
    assert page_call(base, "/api/acls/delete", acl, cookie=admin)[0] == 404

    status, data, _ = page_call(base, "/api/users", {"user": "carol", "password": "carol-pw", "mechanism": "SCRAM-SHA-512",
                                                "iterations": 8192}, cookie=admin)
    assert status == 200, data
    users = page_call(base, "/api/users", cookie=admin)[1]["users"]
    assert {"user": "carol", "mechanisms": [{"mechanism": "SCRAM-SHA-512", "iterations": 8192}]} in users
    status, data, _ = page_call(base, "/api/users", {"user": "carol", "password": "x", "iterations": 10}, cookie=admin)
    assert status == 400 and data["field"] == "iterations"
    carol = login(base, "carol", "carol-pw")  # the new user logs in, with the default SCRAM-SHA-512
    assert page_call(base, "/api/session", cookie=carol)[1]["principal"] == "User:carol"
    assert page_call(base, "/api/login", {"username": "carol", "password": "carol-pw", "mechanism": "SCRAM-SHA-256"})[0] == 401
    assert page_call(base, "/api/users", cookie=carol)[1]["code"] == "CLUSTER_AUTHORIZATION_FAILED"
    status, data, _ = page_call(base, "/api/users/delete", {"user": "carol", "mechanism": "SCRAM-SHA-512"}, cookie=admin)
    assert status == 200
    assert "carol" not in [u["user"] for u in page_call(base, "/api/users", cookie=admin)[1]["users"]]
    assert page_call(base, "/api/login", {"username": "carol", "password": "carol-pw", "mechanism": "SCRAM-SHA-512"})[0] == 401


def test_an_idle_session_expires_and_drops_its_connections(base, broker, monkeypatch) -> None:
    from kbroker.console import sessions

    cookie = login(base, "admin", "admin-secret", "PLAIN")
    assert page_call(base, "/api/topics", cookie=cookie)[0] == 200
    console = broker.broker.metrics.console
    token = cookie.split("=", 1)[1]
    session = console.sessions._by_token[token]
    assert session.client._conns
    monkeypatch.setattr(sessions, "IDLE_TIMEOUT", 0.0)
    assert page_call(base, "/api/topics", cookie=cookie)[0] == 401
    assert token not in console.sessions._by_token and not session.client._conns
