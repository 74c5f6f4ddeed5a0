"""ACLs on transactions, idempotent producers and offsets: InitProducerId, AddPartitionsToTxn and
TxnOffsetCommit per topic, offsets deletion, transaction and group listing following the ACLs."""

from __future__ import annotations

import uuid

import pytest
from security_helpers import allow, client_config, grant, login

from kbroker.security import acls as A
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode


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
