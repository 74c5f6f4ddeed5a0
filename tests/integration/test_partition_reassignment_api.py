"""AlterPartitionReassignments (45) and ListPartitionReassignments (46) at the wire on one broker:
Kafka's errors, the whole-request CLUSTER_AUTHORIZATION_FAILED without ALTER/DESCRIBE on the
cluster (the forwarded principal's), nothing written by a refused request. (The moves themselves:
tests/replication/test_reassignment.py and tests/cluster/test_reassign_partitions_tool.py.)"""

from __future__ import annotations

import pytest
from wire import Wire

from kbroker.security import acls as A
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode
JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" '
        'user_bob="bob-secret";')
Alter = REQUESTS[45]
List = REQUESTS[46]


@pytest.fixture(scope="module")
def broker():
    config = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.jaas.config": JAAS,
        "authorizer.class.name": A.STANDARD_AUTHORIZER,
        "super.users": "User:admin",
        "connection.failed.authentication.delay.ms": "0",
    }
    with BrokerThread(config) as b:
        w = _login(b, "admin")
        try:
            r = w.call(19, 7, timeout_ms=10000, validate_only=False, topics=[
                REQUESTS[19].CreatableTopic(name="t", num_partitions=2, replication_factor=1, assignments=[],
                                            configs=[])])
            assert r.topics[0].error_code == E.NONE
        finally:
            w.close()
        yield b


def _login(b: BrokerThread, user: str) -> Wire:
    w = Wire(b.bootstrap_servers)
    w.call(17, 1, mechanism="PLAIN")
    assert w.call(36, 2, auth_bytes=f"\0{user}\0{user}-secret".encode()).error_code == E.NONE
    return w


def _alter(w: Wire, targets: dict[tuple[str, int], list[int] | None], version: int = 1, **kw):
    topics: dict[str, list] = {}
    for (name, index), replicas in targets.items():
        topics.setdefault(name, []).append(Alter.ReassignableTopic.ReassignablePartition(partition_index=index,
                                                                                         replicas=replicas))
    return w.call(45, version, timeout_ms=10000,
                  topics=[Alter.ReassignableTopic(name=n, partitions=ps) for n, ps in topics.items()], **kw)


def _errors(r) -> dict:
    return {(t.name, p.partition_index): (p.error_code, p.error_message) for t in r.responses for p in t.partitions}


def _image_state(b: BrokerThread):
    image = b.broker.image
    return image.offset, [(p.replicas, p.isr, p.leader_epoch, p.partition_epoch)
                          for p in image.topic("t").partitions.values()]


def test_bad_reassignments_get_kafkas_errors_and_write_nothing(broker) -> None:
    before = _image_state(broker)
    w = _login(broker, "admin")
    try:
        node = broker.broker.node_id
        r = _alter(w, {("t", 0): [node, 42], ("t", 1): [node, node], ("t", 7): [node], ("nope", 0): [node]})
        assert r.error_code == E.NONE and r.allow_replication_factor_change is True
        assert _errors(r) == {
            ("t", 0): (E.INVALID_REPLICA_ASSIGNMENT,
                       "The manual partition assignment includes broker 42, but no such broker is registered."),
            ("t", 1): (E.INVALID_REPLICA_ASSIGNMENT,
                       f"The manual partition assignment includes the broker {node} more than once."),
            ("t", 7): (E.UNKNOWN_TOPIC_OR_PARTITION, "Unable to find partition t:7."),
            ("nope", 0): (E.UNKNOWN_TOPIC_OR_PARTITION, "Unable to find a topic named nope."),
        }
        r = _alter(w, {("t", 0): [], ("t", 1): None}, version=0)
        assert _errors(r) == {
            ("t", 0): (E.INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes an empty replica list."),
            ("t", 1): (E.NO_REASSIGNMENT_IN_PROGRESS, None),
        }
        r = _alter(w, {("t", 0): [node, 42]}, allow_replication_factor_change=False)
        assert _errors(r)[("t", 0)][0] == E.INVALID_REPLICA_ASSIGNMENT  # checked before the factor
        r = w.call(46, 0, timeout_ms=10000, topics=None)
        assert (r.error_code, r.topics) == (E.NONE, [])
        # the same target as now: accepted, nothing to write
        r = _alter(w, {("t", 0): [node]})
        assert _errors(r) == {("t", 0): (E.NONE, None)}
    finally:
        w.close()
    assert _image_state(broker) == before


def test_reassignment_apis_need_alter_and_describe_on_the_cluster(broker) -> None:
    before = _image_state(broker)
    w = _login(broker, "bob")
    try:
        r = _alter(w, {("t", 0): [broker.broker.node_id], ("t", 1): None})
        assert r.error_code == E.CLUSTER_AUTHORIZATION_FAILED
        assert [(k, code) for k, (code, _) in _errors(r).items()] == [
            (("t", 0), E.CLUSTER_AUTHORIZATION_FAILED), (("t", 1), E.CLUSTER_AUTHORIZATION_FAILED)]
        r = w.call(46, 0, timeout_ms=10000, topics=[List.ListPartitionReassignmentsTopics(name="t",
                                                                                          partition_indexes=[0])])
        assert r.error_code == E.CLUSTER_AUTHORIZATION_FAILED
        assert [(t.name, [p.partition_index for p in t.partitions]) for t in r.topics] == [("t", [0])]
    finally:
        w.close()
    assert _image_state(broker) == before
