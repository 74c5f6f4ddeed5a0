"""ACLs as Kafka's StandardAuthorizer decides them: the decision rules, ACL binding filters, and
authorizeByResourceType."""

from __future__ import annotations

import uuid

from kbroker.security import acls as A
from kbroker.security.acls import Acl, AclFilter, Authorizer


def _authorizer(*acls: Acl, allow_if_none: bool = False, super_users: str = "") -> Authorizer:
    a = Authorizer()
    a.configure({"authorizer.class.name": A.STANDARD_AUTHORIZER, "super.users": super_users,
                 "allow.everyone.if.no.acl.found": allow_if_none})
    for acl in acls:
        a.acls[uuid.uuid4()] = acl
    return a


def _acl(name: str, op: int, perm: int = A.ALLOW, principal: str = "User:alice", host: str = "*",
         pattern: int = A.LITERAL, rtype: int = A.TOPIC) -> Acl:
    return Acl(rtype, name, pattern, principal, host, op, perm)


# -- the decision ---------------------------------------------------------------------------------


def test_standard_authorizer_rules() -> None:
    a = _authorizer(_acl("orders", A.READ), _acl("orders", A.READ, A.DENY, principal="User:bob"),
                    _acl("pay-", A.WRITE, pattern=A.PREFIXED), _acl("*", A.DESCRIBE, principal="User:*"),
                    _acl("audit", A.ALL, A.DENY, principal="User:*"), _acl("audit", A.ALL),
                    _acl("net", A.READ, host="10.0.0.0/8"), super_users="User:root;User:ops")
    ok = a.authorize
    assert ok("User:alice", "1.2.3.4", A.READ, A.TOPIC, "orders")
    assert ok("User:alice", "1.2.3.4", A.DESCRIBE, A.TOPIC, "orders")  # READ implies DESCRIBE
    assert not ok("User:alice", "1.2.3.4", A.WRITE, A.TOPIC, "orders")  # ACLs on the resource, none matches
    assert not ok("User:bob", "1.2.3.4", A.READ, A.TOPIC, "orders")  # DENY
    assert ok("User:bob", "1.2.3.4", A.DESCRIBE, A.TOPIC, "orders")  # a DENY of READ does not deny DESCRIBE
    assert ok("User:alice", "1.2.3.4", A.WRITE, A.TOPIC, "pay-eu")  # PREFIXED
    assert not ok("User:alice", "1.2.3.4", A.WRITE, A.TOPIC, "pa")
    assert ok("User:carol", "1.2.3.4", A.DESCRIBE, A.TOPIC, "anything")  # User:* on the * wildcard
    assert not ok("User:alice", "1.2.3.4", A.READ, A.TOPIC, "audit")  # DENY ALL wins over ALLOW ALL
    assert ok("User:root", "1.2.3.4", A.READ, A.TOPIC, "audit")  # super users
    assert ok("User:alice", "10.1.2.3", A.READ, A.TOPIC, "net")  # CIDR host
    assert not ok("User:alice", "11.1.2.3", A.READ, A.TOPIC, "net")
    assert not ok("User:alice", "1.2.3.4", A.READ, A.GROUP, "g")  # no ACLs: denied by default
    assert _authorizer(allow_if_none=True).authorize("User:x", "h", A.READ, A.GROUP, "g")
    assert not _authorizer(_acl("g", A.READ, rtype=A.GROUP), allow_if_none=True).authorize(
        "User:x", "h", A.READ, A.GROUP, "g")  # ACLs on the resource: allow.everyone does not apply
    alter_configs = _authorizer(_acl("t", A.ALTER_CONFIGS))
    assert alter_configs.authorize("User:alice", "h", A.DESCRIBE_CONFIGS, A.TOPIC, "t")


def test_filters_match_as_kafkas_acl_binding_filter() -> None:
    literal, prefixed, wildcard = _acl("foo", A.READ), _acl("fo", A.READ, pattern=A.PREFIXED), _acl("*", A.READ)

    def f(name: str | None, pattern: int, **kw) -> AclFilter:
        return AclFilter(kw.get("rtype", A.ANY), name, pattern, kw.get("principal"), None, A.ANY, A.ANY)

    assert [f("foo", A.MATCH).matches(x) for x in (literal, prefixed, wildcard)] == [True, True, True]
    assert [f("foo", A.ANY).matches(x) for x in (literal, prefixed, wildcard)] == [True, False, False]
    assert [f("fo", A.PREFIXED).matches(x) for x in (literal, prefixed, wildcard)] == [False, True, False]
    assert [f(None, A.ANY).matches(x) for x in (literal, prefixed, wildcard)] == [True, True, True]
    assert not f(None, A.ANY, rtype=A.GROUP).matches(literal)
    assert not f(None, A.ANY, principal="User:bob").matches(literal)


def test_authorize_by_resource_type_as_kafka() -> None:
    def by_type(*acls: Acl) -> bool:
        return _authorizer(*acls).authorize_by_resource_type("User:alice", "1.2.3.4", A.WRITE, A.TOPIC)

    assert not by_type()
    assert by_type(_acl("t", A.WRITE))
    assert by_type(_acl("t", A.ALL, principal="User:*"))
    assert not by_type(_acl("t", A.READ))
    assert not by_type(_acl("t", A.WRITE), _acl("t", A.WRITE, A.DENY))  # the same literal denied
    assert not by_type(_acl("team-a", A.WRITE), _acl("team", A.WRITE, A.DENY, pattern=A.PREFIXED))
    assert by_type(_acl("team-a", A.WRITE), _acl("other", A.WRITE, A.DENY, pattern=A.PREFIXED))
    assert not by_type(_acl("t", A.WRITE), _acl("*", A.WRITE, A.DENY))  # a wildcard DENY refuses all
    assert by_type(_acl("*", A.WRITE))
