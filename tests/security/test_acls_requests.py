"""Kafka's authorization errors for every other request on a broker with an authorizer: as real clients
see them, configs per resource, partitions, records and group deletion, the KIP-848 group APIs,
DescribeTopicPartitions and the cluster's operations, ElectLeaders, UpdateFeatures, DescribeLogDirs, and
broker config values shown only to a principal allowed to alter them."""

from __future__ import annotations

import uuid

from security_helpers import allow, client_config, grant, login
from waiting import wait_until
from wire import Wire

from kbroker.security import acls as A
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode


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
