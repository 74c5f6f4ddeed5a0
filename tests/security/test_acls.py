"""ACLs as Kafka's StandardAuthorizer: the decision rules, CreateAcls/DescribeAcls/DeleteAcls (with
confluent-kafka's AdminClient and at the wire), and what real clients see when denied."""

from __future__ import annotations

import uuid

import pytest
from security_helpers import acl_config, allow, client_config, grant, login
from waiting import wait_until
from wire import Wire

from kbroker.security import acls as A
from kbroker.security.acls import Acl, AclFilter, Authorizer
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode


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


def test_clients_see_kafkas_authorization_errors(acl_broker) -> None:
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        NewTopic,
        ResourcePatternType,
        ResourceType,
    )

    topic = f"alice-{uuid.uuid4().hex[:6]}"
    group = f"grp-{uuid.uuid4().hex[:6]}"
    admin = AdminClient(client_config(acl_broker, "admin"))
    assert admin.create_topics([NewTopic(topic, 1)])[topic].result(30) is None
    allow = [AclBinding(ResourceType.TOPIC, "alice-", ResourcePatternType.PREFIXED, "User:alice", "*", op,
                        AclPermissionType.ALLOW) for op in (AclOperation.WRITE, AclOperation.READ)]
    allow.append(AclBinding(ResourceType.GROUP, group, ResourcePatternType.LITERAL, "User:alice", "*",
                            AclOperation.READ, AclPermissionType.ALLOW))
    for fut in admin.create_acls(allow).values():
        fut.result(30)

    # alice writes and reads her topic with her group
    p = Producer(client_config(acl_broker, "alice"))
    p.produce(topic, b"hello")
    assert p.flush(30) == 0
    c = Consumer(client_config(acl_broker, "alice", **{"group.id": group, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got: list = []
    try:
        def polled() -> bool:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
            return bool(got)
        wait_until(polled, timeout=60)
    finally:
        c.close()
    assert got == [b"hello"]

    # bob may not: his produce fails with TOPIC_AUTHORIZATION_FAILED
    delivered: list = []
    p = Producer(client_config(acl_broker, "bob", **{"message.timeout.ms": 10000}))
    p.produce(topic, b"nope", on_delivery=lambda err, msg: delivered.append(err))
    p.flush(30)
    assert delivered and delivered[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # his metadata does not list the topic, and naming it answers TOPIC_AUTHORIZATION_FAILED
    w = login(acl_broker, "bob")
    try:
        listed = w.call(3, 12, topics=None, allow_auto_topic_creation=False)
        assert topic not in {t.name for t in listed.topics}
        named = w.call(3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=topic)], allow_auto_topic_creation=True)
        assert [(t.name, t.error_code) for t in named.topics] == [(topic, E.TOPIC_AUTHORIZATION_FAILED)]
        # FindCoordinator and JoinGroup on a group he has no ACL for
        fc = w.call(10, 4, key_type=0, coordinator_keys=[group])
        assert fc.coordinators[0].error_code == E.GROUP_AUTHORIZATION_FAILED
        hb = w.call(12, 4, group_id=group, generation_id=1, member_id="m", group_instance_id=None)
        assert hb.error_code == E.GROUP_AUTHORIZATION_FAILED
        ct = w.call(19, 7, topics=[REQUESTS[19].CreatableTopic(name="bob-topic", num_partitions=1,
                                                                replication_factor=1, assignments=[], configs=[])],
                    timeout_ms=10000, validate_only=False)
        assert [(t.error_code, t.error_message) for t in ct.topics] == [
            (E.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")]
    finally:
        w.close()
    # and his consumer is refused at the group
    c = Consumer(client_config(acl_broker, "bob", **{"group.id": group, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    errors: list = []
    try:
        def refused() -> bool:
            try:
                m = c.poll(0.5)
            except KafkaException as exc:
                errors.append(exc.args[0])
                return True
            if m is not None and m.error() is not None:
                errors.append(m.error())
            return any(e.code() in (KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED)
                       for e in errors)
        wait_until(refused, timeout=60)
    finally:
        c.close()


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


def test_offsets_deletion_and_transactions_are_checked(acl_broker) -> None:
    Q = REQUESTS
    topic, other, group = f"alice-{uuid.uuid4().hex[:6]}", f"secret-{uuid.uuid4().hex[:6]}", f"grp-{uuid.uuid4().hex[:6]}"
    grant(acl_broker, allow(A.TOPIC, topic, "User:alice", A.READ),
          allow(A.GROUP, group, "User:alice", A.READ), topics=(topic, other))
    w = login(acl_broker, "alice")
    try:
        LO = Q[2]
        r = w.call(2, 9, replica_id=-1, isolation_level=0, topics=[
            LO.ListOffsetsTopic(name=n, partitions=[LO.ListOffsetsTopic.ListOffsetsPartition(
                partition_index=0, current_leader_epoch=-1, timestamp=-1)]) for n in (topic, other)])
        assert [(t.name, t.partitions[0].error_code) for t in r.topics] == [
            (topic, E.NONE), (other, E.TOPIC_AUTHORIZATION_FAILED)]
        OC = Q[8]
        r = w.call(8, 8, group_id=group, generation_id_or_member_epoch=-1, member_id="", group_instance_id=None,
                   topics=[OC.OffsetCommitRequestTopic(name=n, partitions=[
                       OC.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                           partition_index=0, committed_offset=0, committed_leader_epoch=-1, committed_metadata="")])
                       for n in (topic, other)])
        assert [(t.name, t.partitions[0].error_code) for t in r.topics] == [
            (topic, E.NONE), (other, E.TOPIC_AUTHORIZATION_FAILED)]
        r = w.call(8, 8, group_id="not-hers", generation_id_or_member_epoch=-1, member_id="", group_instance_id=None,
                   topics=[OC.OffsetCommitRequestTopic(name=topic, partitions=[
                       OC.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                           partition_index=0, committed_offset=0, committed_leader_epoch=-1, committed_metadata="")])])
        assert r.topics[0].partitions[0].error_code == E.GROUP_AUTHORIZATION_FAILED
        OF = Q[9]
        r = w.call(9, 7, group_id=group, require_stable=False, topics=[
            OF.OffsetFetchRequestTopic(name=n, partition_indexes=[0]) for n in (topic, other)])
        assert sorted((t.name, t.partitions[0].error_code) for t in r.topics) == sorted(
            [(topic, E.NONE), (other, E.TOPIC_AUTHORIZATION_FAILED)])
        r = w.call(9, 7, group_id="not-hers", require_stable=False, topics=None)
        assert r.error_code == E.GROUP_AUTHORIZATION_FAILED
        r = w.call(20, 6, topics=[Q[20].DeleteTopicState(name=topic)], timeout_ms=10000)
        assert r.responses[0].error_code == E.TOPIC_AUTHORIZATION_FAILED
        r = w.call(22, 5, transactional_id="alice-txn", transaction_timeout_ms=60000, producer_id=-1,
                   producer_epoch=-1)
        assert r.error_code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    finally:
        w.close()


def test_transactions_and_group_listing_follow_the_acls(acl_broker) -> None:
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        NewTopic,
        ResourcePatternType,
        ResourceType,
    )

    topic, txn = f"alice-tx-{uuid.uuid4().hex[:6]}", f"alice-txn-{uuid.uuid4().hex[:6]}"
    admin = AdminClient(client_config(acl_broker, "admin"))
    assert admin.create_topics([NewTopic(topic, 1)])[topic].result(30) is None
    grants = [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.WRITE, AclPermissionType.ALLOW),
              AclBinding(ResourceType.TRANSACTIONAL_ID, txn, ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.WRITE, AclPermissionType.ALLOW)]
    for fut in admin.create_acls(grants).values():
        fut.result(30)
    p = Producer(client_config(acl_broker, "alice", **{"transactional.id": txn}))
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, b"in-txn")
    p.commit_transaction(30)
    # another transactional id is refused at InitProducerId
    other = Producer(client_config(acl_broker, "alice", **{"transactional.id": f"{txn}-other"}))
    with pytest.raises(KafkaException) as info:
        other.init_transactions(30)
    assert "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in str(info.value) or "authorization" in str(info.value).lower()

    OC = REQUESTS[8]
    w = login(acl_broker, "admin")
    try:  # a group with committed offsets exists, and the admin lists it
        r = w.call(8, 8, group_id="admins-group", generation_id_or_member_epoch=-1, member_id="",
                   group_instance_id=None, topics=[OC.OffsetCommitRequestTopic(name=topic, partitions=[
                       OC.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                           partition_index=0, committed_offset=0, committed_leader_epoch=-1, committed_metadata="")])])
        assert r.topics[0].partitions[0].error_code == E.NONE
        assert "admins-group" in {g.group_id for g in w.call(16, 4, states_filter=[]).groups}
    finally:
        w.close()
    w = login(acl_broker, "bob")
    try:
        r = w.call(15, 5, groups=["some-group"], include_authorized_operations=False)
        assert r.groups[0].error_code == E.GROUP_AUTHORIZATION_FAILED
        assert w.call(16, 4, states_filter=[]).groups == []  # bob may describe no group
        r = w.call(26, 3, transactional_id=txn, producer_id=1, producer_epoch=0, committed=True)
        assert r.error_code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    finally:
        w.close()


def test_configs_are_checked_per_resource(acl_broker) -> None:
    Q = REQUESTS
    topic = f"cfg-{uuid.uuid4().hex[:6]}"
    grant(acl_broker, allow(A.TOPIC, topic, "User:alice", A.ALTER_CONFIGS), topics=(topic,))
    D, Inc = Q[32], Q[44]

    def describe(w: Wire) -> list:
        r = w.call(32, 4, resources=[D.DescribeConfigsResource(resource_type=2, resource_name=topic,
                                                               configuration_keys=["retention.ms"]),
                                     D.DescribeConfigsResource(resource_type=4, resource_name="",
                                                               configuration_keys=["log.retention.hours"])],
                   include_synonyms=False, include_documentation=False)
        return [(x.error_code, [c.value for c in x.configs]) for x in r.results]

    def alter(w: Wire, value: str) -> int:
        r = w.call(44, 1, resources=[Inc.AlterConfigsResource(resource_type=2, resource_name=topic, configs=[
            Inc.AlterConfigsResource.AlterableConfig(name="retention.ms", config_operation=0, value=value)])],
                   validate_only=False)
        return r.responses[0].error_code

    bob, alice = login(acl_broker, "bob"), login(acl_broker, "alice")
    try:
        assert [code for code, _ in describe(bob)] == [E.TOPIC_AUTHORIZATION_FAILED, E.CLUSTER_AUTHORIZATION_FAILED]
        assert alter(bob, "1000") == E.TOPIC_AUTHORIZATION_FAILED
        assert alter(alice, "2000") == E.NONE
        # ALTER_CONFIGS implies DESCRIBE_CONFIGS: alice sees her change; the broker is not hers
        assert describe(alice) == [(E.NONE, ["2000"]), (E.CLUSTER_AUTHORIZATION_FAILED, [])]
    finally:
        bob.close()
        alice.close()


def test_partitions_records_and_group_deletion_are_checked(acl_broker) -> None:
    Q = REQUESTS
    topic = f"del-{uuid.uuid4().hex[:6]}"
    grant(acl_broker, topics=(topic,))
    w = login(acl_broker, "bob")
    try:
        r = w.call(37, 3, topics=[Q[37].CreatePartitionsTopic(name=topic, count=2, assignments=None)],
                   timeout_ms=10000, validate_only=False)
        assert r.results[0].error_code == E.TOPIC_AUTHORIZATION_FAILED
        DR = Q[21]
        r = w.call(21, 2, topics=[DR.DeleteRecordsTopic(name=topic, partitions=[
            DR.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=0, offset=0)])], timeout_ms=10000)
        assert r.topics[0].partitions[0].error_code == E.TOPIC_AUTHORIZATION_FAILED
        r = w.call(42, 2, groups_names=["someone-elses"])
        assert r.results[0].error_code == E.GROUP_AUTHORIZATION_FAILED
    finally:
        w.close()
    assert b_partitions(acl_broker, topic) == 1


def b_partitions(b: BrokerThread, topic: str) -> int:
    return b.call(lambda: len(b.broker.image.topic(topic).partitions))


def test_kip848_group_apis_are_checked(acl_broker) -> None:
    w = login(acl_broker, "bob")
    try:
        r = w.call(68, 1, group_id="not-bobs", member_id="m" * 22, member_epoch=0, instance_id=None, rack_id=None,
                   rebalance_timeout_ms=30000, subscribed_topic_names=["x"], subscribed_topic_regex=None,
                   server_assignor=None, topic_partitions=[])
        assert r.error_code == E.GROUP_AUTHORIZATION_FAILED
        r = w.call(69, 1, group_ids=["not-bobs"], include_authorized_operations=False)
        assert r.groups[0].error_code == E.GROUP_AUTHORIZATION_FAILED
    finally:
        w.close()


def test_describe_topic_partitions_and_cluster_follow_the_acls(acl_broker) -> None:
    Q = REQUESTS
    mine, theirs = f"alice-dtp-{uuid.uuid4().hex[:6]}", f"other-dtp-{uuid.uuid4().hex[:6]}"
    grant(acl_broker, allow(A.TOPIC, mine, "User:bob", A.READ), topics=(mine, theirs))
    admin = login(acl_broker, "admin")
    try:
        r = admin.call(60, 1, include_cluster_authorized_operations=True, endpoint_type=1)
        assert r.cluster_authorized_operations == sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))
    finally:
        admin.close()
    w = login(acl_broker, "bob")
    try:
        T = Q[75].TopicRequest
        r = w.call(75, 0, topics=[T(name=theirs), T(name=mine)], response_partition_limit=100, cursor=None)
        assert [(t.name, t.error_code) for t in r.topics] == [(mine, E.NONE), (theirs, E.TOPIC_AUTHORIZATION_FAILED)]
        # READ gives bob READ and DESCRIBE on his topic (bits 3 and 8)
        assert r.topics[0].topic_authorized_operations == (1 << 3) | (1 << 8)
        everything = w.call(75, 0, topics=[], response_partition_limit=2000, cursor=None)
        assert mine in {t.name for t in everything.topics} and theirs not in {t.name for t in everything.topics}
        r = w.call(60, 1, include_cluster_authorized_operations=True, endpoint_type=1)
        assert r.cluster_authorized_operations == 0
    finally:
        w.close()


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


def test_idempotent_producer_id_needs_write_somewhere(acl_broker) -> None:
    grant(acl_broker, allow(A.TOPIC, f"idem-{uuid.uuid4().hex[:6]}", "User:alice", A.WRITE))
    for user, code in (("alice", E.NONE), ("bob", E.CLUSTER_AUTHORIZATION_FAILED)):
        w = login(acl_broker, user)
        try:
            r = w.call(22, 5, transactional_id=None, transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1)
            assert r.error_code == code, user
        finally:
            w.close()


def test_add_partitions_to_txn_checks_each_topic(acl_broker) -> None:
    Q = REQUESTS
    txn, mine, other = (f"{p}-{uuid.uuid4().hex[:6]}" for p in ("aptxn", "apt-mine", "apt-other"))
    grant(acl_broker, allow(A.TRANSACTIONAL_ID, txn, "User:alice", A.WRITE),
          allow(A.TOPIC, mine, "User:alice", A.WRITE))
    w = login(acl_broker, "alice")
    try:
        T = Q[24].AddPartitionsToTxnTopic
        r = w.call(24, 3, v3_and_below_transactional_id=txn, v3_and_below_producer_id=1,
                   v3_and_below_producer_epoch=0, v3_and_below_topics=[T(name=mine, partitions=[0]),
                                                                       T(name=other, partitions=[0])])
        got = {t.name: t.results_by_partition[0].partition_error_code for t in r.results_by_topic_v3_and_below}
        assert got == {mine: E.OPERATION_NOT_ATTEMPTED, other: E.TOPIC_AUTHORIZATION_FAILED}
    finally:
        w.close()


def test_txn_offset_commit_checks_each_topic(acl_broker) -> None:
    Q = REQUESTS
    txn, group, mine, other = (f"{p}-{uuid.uuid4().hex[:6]}" for p in ("tctxn", "tcgrp", "tc-mine", "tc-other"))
    grant(acl_broker, allow(A.TRANSACTIONAL_ID, txn, "User:alice", A.WRITE),
          allow(A.GROUP, group, "User:alice", A.READ), allow(A.TOPIC, mine, "User:alice", A.READ))
    w = login(acl_broker, "alice")
    try:
        T = Q[28].TxnOffsetCommitRequestTopic
        P = T.TxnOffsetCommitRequestPartition
        r = w.call(28, 3, transactional_id=txn, group_id=group, producer_id=1, producer_epoch=0, generation_id_or_member_epoch=-1,
                   member_id="", group_instance_id=None, topics=[
                       T(name=n, partitions=[P(partition_index=0, committed_offset=0, committed_leader_epoch=-1,
                                               committed_metadata="")]) for n in (mine, other)])
        got = {t.name: t.partitions[0].error_code for t in r.topics}
        assert got[other] == E.TOPIC_AUTHORIZATION_FAILED
        assert got[mine] != E.TOPIC_AUTHORIZATION_FAILED  # (the topic does not exist: answered as such)
    finally:
        w.close()


def test_elect_leaders_and_update_features_need_alter_on_the_cluster(acl_broker) -> None:
    """Both run on the controller (forwarded), authorized for the principal the request came with."""
    Q = REQUESTS
    for user, refused in (("bob", True), ("admin", False)):
        w = login(acl_broker, user)
        try:
            r = w.call(43, 2, election_type=0, topic_partitions=None, timeout_ms=10000)
            assert (r.error_code == E.CLUSTER_AUTHORIZATION_FAILED) is refused, (user, r)
            r = w.call(57, 1, timeout_ms=10000, validate_only=True, feature_updates=[
                Q[57].FeatureUpdateKey(feature="group.version", max_version_level=1, upgrade_type=1)])
            assert (r.error_code == E.CLUSTER_AUTHORIZATION_FAILED) is refused, (user, r)
        finally:
            w.close()


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


def test_describe_log_dirs_needs_describe_on_the_cluster(acl_broker) -> None:
    """As Kafka's handleDescribeLogDirsRequest: without DESCRIBE on the cluster, no log dirs (which
    would name every hosted topic) and CLUSTER_AUTHORIZATION_FAILED (v3+)."""
    for user, code in (("alice", E.CLUSTER_AUTHORIZATION_FAILED), ("admin", E.NONE)):
        w = login(acl_broker, user)
        try:
            r = w.call(35, 4, topics=None)
            assert r.error_code == code
            assert (r.results == []) == (code != E.NONE)
        finally:
            w.close()


def test_broker_config_values_are_checked_only_for_a_principal_allowed_to_alter_them(acl_broker) -> None:
    """Kafka's ConfigAdminManager.preprocess authorizes a BROKER resource before it validates it: a
    principal without ALTER_CONFIGS on the cluster gets CLUSTER_AUTHORIZATION_FAILED, not the
    answer about this broker's log dirs that an invalid ``cordoned.log.dirs`` gets."""
    R = REQUESTS[44]
    node = str(acl_broker.broker.node_id)

    def alter(user: str) -> tuple[int, str | None]:
        w = login(acl_broker, user)
        try:
            r = w.call(44, 1, validate_only=True, resources=[R.AlterConfigsResource(
                resource_type=4, resource_name=node, configs=[R.AlterConfigsResource.AlterableConfig(
                    name="cordoned.log.dirs", config_operation=0, value="/not/a/log/dir")])])
            return r.responses[0].error_code, r.responses[0].error_message
        finally:
            w.close()

    assert alter("bob")[0] == E.CLUSTER_AUTHORIZATION_FAILED
    code, message = alter("admin")
    assert code == E.INVALID_REQUEST and message is not None and "/not/a/log/dir" in message
