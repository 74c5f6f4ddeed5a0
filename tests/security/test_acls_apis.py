"""CreateAcls, DescribeAcls and DeleteAcls on a broker with an authorizer: with confluent-kafka's admin,
validation as Kafka's, the cluster permissions they need, security disabled without an authorizer,
ACLs surviving a restart, an unknown authorizer class, and operations past the record bound."""

from __future__ import annotations

import uuid

import pytest
from security_helpers import acl_config, allow, client_config, login
from wire import Wire

from kbroker.security import acls as A
from kbroker.security.acls import AclFilter
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode


# -- a broker with an authorizer -------------------------------------------------------------------


def test_acl_apis_with_confluent_admin(acl_broker) -> None:
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    admin = AdminClient(client_config(acl_broker, "admin"))
    topic = f"acl-{uuid.uuid4().hex[:6]}"
    bindings = [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                           AclOperation.READ, AclPermissionType.ALLOW),
                AclBinding(ResourceType.GROUP, "grp-", ResourcePatternType.PREFIXED, "User:alice", "*",
                           AclOperation.READ, AclPermissionType.ALLOW)]
    for fut in admin.create_acls(bindings).values():
        assert fut.result(30) is None
    found = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                                                 AclOperation.ANY, AclPermissionType.ANY)).result(30)
    assert sorted(str(b) for b in found) == sorted(str(b) for b in bindings)
    deleted = admin.delete_acls([AclBindingFilter(ResourceType.GROUP, None, ResourcePatternType.ANY, None, None,
                                                  AclOperation.ANY, AclPermissionType.ANY)])
    assert [str(b) for fut in deleted.values() for b in fut.result(30)] == [str(bindings[1])]
    found = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                                                 AclOperation.ANY, AclPermissionType.ANY)).result(30)
    assert [str(b) for b in found] == [str(bindings[0])]


def test_create_acls_validates_as_kafka(acl_broker) -> None:
    C = REQUESTS[30].AclCreation

    def creation(**kw) -> object:
        base = dict(resource_type=A.TOPIC, resource_name="t", resource_pattern_type=A.LITERAL, principal="User:a",
                    host="*", operation=A.READ, permission_type=A.ALLOW)
        base.update(kw)
        return C(**base)

    w = login(acl_broker, "admin")
    try:
        r = w.call(30, 3, creations=[
            creation(resource_type=A.CLUSTER, resource_name="other"), creation(resource_name=""),
            creation(resource_type=A.ANY), creation(resource_pattern_type=A.MATCH), creation(operation=A.ANY),
            creation(permission_type=A.ANY), creation(principal="alice"), creation(host="10.0.0.0/33"),
            creation(resource_type=A.CLUSTER, resource_name="kafka-cluster", operation=A.DESCRIBE)])
        assert [(x.error_code, x.error_message) for x in r.results] == [
            (E.INVALID_REQUEST, "The only valid name for the CLUSTER resource is kafka-cluster"),
            (E.INVALID_REQUEST, "Invalid empty resource name"),
            (E.INVALID_REQUEST, "Invalid resourceType ANY"),
            (E.INVALID_REQUEST, "Invalid patternType MATCH"),
            (E.INVALID_REQUEST, "Invalid operation ANY"),
            (E.INVALID_REQUEST, "Invalid permissionType ANY"),
            (E.INVALID_REQUEST, "Could not parse principal from `alice` (no colon is present separating the "
                                "principal type from the principal name)"),
            (E.INVALID_REQUEST, "Invalid CIDR notation '10.0.0.0/33': '10.0.0.0/33' does not appear to be an IPv4 "
                                "or IPv6 network"),
            (E.NONE, None)]
    finally:
        w.close()


def test_acl_apis_need_cluster_permissions(acl_broker) -> None:
    w = login(acl_broker, "bob")
    try:
        r = w.call(29, 3, resource_type_filter=A.ANY, resource_name_filter=None, pattern_type_filter=A.ANY,
                   principal_filter=None, host_filter=None, operation=A.ANY, permission_type=A.ANY)
        assert r.error_code == E.CLUSTER_AUTHORIZATION_FAILED
        r = w.call(30, 3, creations=[allow(A.TOPIC, "t", "User:bob", A.ALL)])
        assert r.results[0].error_code == E.CLUSTER_AUTHORIZATION_FAILED
        Up = REQUESTS[51].ScramCredentialUpsertion
        r = w.call(51, 0, deletions=[], upsertions=[Up(name="x", mechanism=1, iterations=4096, salt=b"s",
                                                        salted_password=b"p")])
        assert [(x.user, x.error_code) for x in r.results] == [("x", E.CLUSTER_AUTHORIZATION_FAILED)]
    finally:
        w.close()


def test_without_an_authorizer_the_acl_apis_are_security_disabled(tmp_path) -> None:
    with BrokerThread({"listeners": "PLAINTEXT://127.0.0.1:0"}) as b:
        w = Wire(b.bootstrap_servers)
        try:
            r = w.call(29, 3, resource_type_filter=A.ANY, resource_name_filter=None, pattern_type_filter=A.ANY,
                       principal_filter=None, host_filter=None, operation=A.ANY, permission_type=A.ANY)
            assert (r.error_code, r.error_message) == (E.SECURITY_DISABLED, "No Authorizer is configured on the broker")
            assert w.call(3, 12, topics=None).topics is not None  # and everything is allowed
        finally:
            w.close()


def test_acls_survive_a_restart(tmp_path) -> None:
    data = str(tmp_path / "data")
    with BrokerThread(acl_config(), data_dir=data) as b:
        w = login(b, "admin")
        r = w.call(30, 3, creations=[allow(A.TOPIC, "kept", "User:alice", A.READ)])
        assert r.results[0].error_code == E.NONE
        w.close()
    with BrokerThread(acl_config(), data_dir=data) as b:
        assert b.call(lambda: b.broker.authorizer.authorize("User:alice", "127.0.0.1", A.READ, A.TOPIC, "kept"))
        assert not b.call(lambda: b.broker.authorizer.authorize("User:bob", "127.0.0.1", A.READ, A.TOPIC, "kept"))


def test_an_unknown_authorizer_class_stops_start_up() -> None:
    from kbroker.errors import StartupError

    with pytest.raises(StartupError, match="authorizer.class.name"):
        BrokerThread(acl_config(**{"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer"})).start()


def test_acl_operations_past_the_record_bound_fail_whole(acl_broker, monkeypatch) -> None:
    # Kafka: more new ACLs than MAX_RECORDS_PER_USER_OP (10,000; lowered here) fail every creation
    # with POLICY_VIOLATION; filters matching more than it in all fail every filter INVALID_REQUEST.
    from kbroker.controller.operations import create_acls as create_acls_api
    from kbroker.controller.operations import delete_acls as delete_acls_api
    F = REQUESTS[31].DeleteAclsFilter
    topic = f"bound-{uuid.uuid4().hex[:6]}"

    def creation(principal: str) -> object:
        return allow(A.TOPIC, topic, principal, A.READ)

    def matching(principal: str | None) -> object:
        return F(resource_type_filter=A.TOPIC, resource_name_filter=topic, pattern_type_filter=A.LITERAL,
                 principal_filter=principal, host_filter=None, operation=A.ANY, permission_type=A.ANY)

    def described() -> list[str]:
        return sorted(b.principal for _, b in acl_broker.call(lambda: list(acl_broker.broker.authorizer.find(
            AclFilter(A.TOPIC, topic, A.LITERAL, None, None, A.ANY, A.ANY)))))

    w = login(acl_broker, "admin")
    try:
        monkeypatch.setattr(create_acls_api, "MAX_RECORDS_PER_USER_OP", 2)
        batch = (E.POLICY_VIOLATION, "Unable to perform excessively large batch operation.")
        r = w.call(30, 3, creations=[creation("User:a"), creation("User:b"), creation("User:c"), creation("bad")])
        assert [(x.error_code, x.error_message) for x in r.results] == [batch] * 4
        assert described() == []
        r = w.call(30, 3, creations=[creation("User:a"), creation("User:b"), creation("User:a")])  # 2 new records
        assert [x.error_code for x in r.results] == [E.NONE] * 3
        r = w.call(30, 3, creations=[creation("User:c")])
        assert [x.error_code for x in r.results] == [E.NONE]
        assert described() == ["User:a", "User:b", "User:c"]
        monkeypatch.setattr(delete_acls_api, "MAX_RECORDS_PER_USER_OP", 2)
        too_many = (E.INVALID_REQUEST, "Cannot remove more than 2 acls in a single delete operation.", [])
        r = w.call(31, 3, filters=[matching("User:a"), matching(None)])
        assert [(x.error_code, x.error_message, x.matching_acls) for x in r.filter_results] == [too_many] * 2
        assert described() == ["User:a", "User:b", "User:c"]
        r = w.call(31, 3, filters=[matching("User:a"), matching("User:b")])
        assert [(x.error_code, len(x.matching_acls)) for x in r.filter_results] == [(E.NONE, 1), (E.NONE, 1)]
        assert described() == ["User:c"]
    finally:
        w.close()
