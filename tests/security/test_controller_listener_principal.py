"""AlterPartitionReassignments and ListPartitionReassignments sent to a controller's own listener
(``--bootstrap-controller``) are authorized as the connection's principal, as Kafka 4.4's
ControllerApis authorizes ``request.context.principal`` (ALTER / DESCRIBE on the cluster): here the
SASL/PLAIN user of a combined broker+controller node's CONTROLLER listener. A principal without the
ACL is refused with CLUSTER_AUTHORIZATION_FAILED and nothing is written; one with it is served.
(The same APIs through a broker listener, forwarded with the client's principal:
tests/integration/test_partition_reassignment_api.py.)"""

from __future__ import annotations

import io

import pytest
from wire import Wire, create_topic, plain_login

from kbroker.cluster import free_ports
from kbroker.config import BrokerConfig
from kbroker.security import acls as A
from kbroker.storage import format_storage, random_uuid
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

E = ErrorCode
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
# the node's own user first (its inter-broker client), then the users clients log in as
JAAS = (f'{PLAIN} required username="admin" password="admin-secret" user_admin="admin-secret" '
        'user_alice="alice-secret" user_bob="bob-secret";')
Alter = REQUESTS[45]
List = REQUESTS[46]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A formatted combined node: CLIENT and CONTROLLER listeners both SASL_PLAINTEXT (PLAIN),
    the StandardAuthorizer, admin its super user; topic ``t``, and ALTER on the cluster for alice."""
    port, cport = free_ports(2)
    data = tmp_path_factory.mktemp("controller-principal") / "data"
    config = {
        "process.roles": "broker,controller", "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}", "controller.listener.names": "CONTROLLER",
        "listeners": f"CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name": "CLIENT", "log.dirs": str(data),
        "sasl.mechanism.inter.broker.protocol": "PLAIN", "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.client.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.client.plain.sasl.jaas.config": JAAS,
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": A.STANDARD_AUTHORIZER, "super.users": "User:admin",
        "connection.failed.authentication.delay.ms": "0",
    }
    format_storage(BrokerConfig(config, warn=False), random_uuid(), out=io.StringIO())
    with BrokerThread(config, data_dir=str(data)) as b:
        admin = plain_login(f"127.0.0.1:{port}", "admin")
        try:
            create_topic(admin, "t")
            r = admin.call(30, 3, creations=[REQUESTS[30].AclCreation(
                resource_type=A.CLUSTER, resource_name=A.CLUSTER_NAME, resource_pattern_type=A.LITERAL,
                principal="User:alice", host="*", operation=A.ALTER, permission_type=A.ALLOW)])
            assert [x.error_code for x in r.results] == [E.NONE]
        finally:
            admin.close()
        yield b, f"127.0.0.1:{cport}"


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
