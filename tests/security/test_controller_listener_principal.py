"""AlterPartitionReassignments and ListPartitionReassignments sent to a controller's own listener
(``--bootstrap-controller``) are authorized as the connection's principal, as Kafka 4.4's
ControllerApis authorizes ``request.context.principal`` (ALTER / DESCRIBE on the cluster): here the
SASL/PLAIN user of a combined broker+controller node's CONTROLLER listener. A principal without the
ACL is refused with CLUSTER_AUTHORIZATION_FAILED and nothing is written; one with it is served.
(The same APIs through a broker listener, forwarded with the client's principal:
tests/integration/test_partition_reassignment_api.py.)"""

from __future__ import annotations

import pytest
from wire import Wire, create_topic, plain_login

from kbroker.security import acls as A
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.security.controller_sasl_node import controller_sasl_node

E = ErrorCode
Alter = REQUESTS[45]
List = REQUESTS[46]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """The combined node (controller_sasl_node) with topic ``t`` and ALTER on the cluster for alice."""
    data = tmp_path_factory.mktemp("controller-principal") / "data"
    with controller_sasl_node(data, ["alice", "bob"], [("User:alice", A.ALTER)],
                              setup=lambda admin: create_topic(admin, "t")) as found:
        yield found


def _alter(w: Wire) -> object:
    """Partition t-0 onto its own replica set (no move needed: completed at once)."""
    partition = Alter.ReassignableTopic.ReassignablePartition(partition_index=0, replicas=[1])
    return w.call(45, 0, timeout_ms=10000, topics=[Alter.ReassignableTopic(name="t", partitions=[partition])])


def _list(w: Wire) -> object:
    return w.call(46, 0, timeout_ms=10000, topics=[List.ListPartitionReassignmentsTopics(name="t",
                                                                                         partition_indexes=[0])])


def _image_offset(b: BrokerThread) -> int:
    return b.call(lambda: b.broker.image.offset)


def test_a_principal_without_alter_on_the_cluster_is_refused_on_the_controller_listener(node) -> None:
    b, controller = node
    before = _image_offset(b)
    w = plain_login(controller, "bob")
    try:
        r = _alter(w)
        assert r.error_code == E.CLUSTER_AUTHORIZATION_FAILED
        assert [(p.partition_index, p.error_code) for t in r.responses for p in t.partitions] == [
            (0, E.CLUSTER_AUTHORIZATION_FAILED)]
        assert _list(w).error_code == E.CLUSTER_AUTHORIZATION_FAILED
    finally:
        w.close()
    assert _image_offset(b) == before


def test_a_principal_with_alter_on_the_cluster_is_served_on_the_controller_listener(node) -> None:
    _b, controller = node
    w = plain_login(controller, "alice")
    try:
        r = _alter(w)
        assert r.error_code == E.NONE
        assert [(t.name, p.partition_index, p.error_code) for t in r.responses for p in t.partitions] == [
            ("t", 0, E.NONE)]
        listed = _list(w)  # ALTER on the cluster implies DESCRIBE (Kafka's implied operations)
        assert (listed.error_code, listed.topics) == (E.NONE, [])
    finally:
        w.close()
