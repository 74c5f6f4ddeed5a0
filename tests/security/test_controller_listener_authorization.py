"""DescribeQuorum, DescribeCluster, UnregisterBroker, UnregisterController, the voter changes and
Envelope sent straight to a controller's listener are authorized for the connection's principal, as
Kafka 4.4's ControllerApis: DescribeQuorum needs DESCRIBE on the cluster; DescribeCluster, the two
Unregister APIs, AddRaftVoter and RemoveRaftVoter ALTER; UpdateRaftVoter and Envelope CLUSTER_ACTION
(for an Envelope, of the connection that sends it, the forwarding broker's, checked before the Envelope is unwrapped:
the principal it carries does not count). Refused: CLUSTER_AUTHORIZATION_FAILED (an Envelope's own
error, with no response data) and nothing written. The node's own user (``admin``, super user) and a
user with the ACL are served.

Users of the combined node's SASL_PLAINTEXT CONTROLLER listener: alice (ALTER and CLUSTER_ACTION on
the cluster), carol (DESCRIBE on the cluster), bob (no ACL)."""

from __future__ import annotations

import uuid

import pytest
from wire import Wire, plain_login

from kbroker.metadata.remote import address_bytes, serialize_principal
from kbroker.security import acls as A
from kbroker.testing import BrokerThread
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RequestHeader
from tests.security.controller_sasl_node import controller_sasl_node

E = ErrorCode
DescribeQuorum = REQUESTS[55]
CreateTopics = REQUESTS[19]
ACLS = [("User:alice", A.ALTER), ("User:alice", A.CLUSTER_ACTION), ("User:carol", A.DESCRIBE)]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """The combined node (controller_sasl_node) with the cluster ACLs of :data:`ACLS`."""
    data = tmp_path_factory.mktemp("controller-authorization") / "data"
    with controller_sasl_node(data, ["alice", "bob", "carol"], ACLS) as found:
        yield found


def _as(controller: str, user: str) -> Wire:
    return plain_login(controller, user)


def _image_offset(b: BrokerThread) -> int:
    return b.call(lambda: b.broker.image.offset)


def _topics(b: BrokerThread) -> set[str]:
    return b.call(lambda: set(b.broker.image.topics))


def _describe_quorum(w: Wire):
    return w.call(55, 2, topics=[DescribeQuorum.TopicData(topic_name="__cluster_metadata", partitions=[
        DescribeQuorum.TopicData.PartitionData(partition_index=0)])])


def test_describe_quorum_needs_describe_on_the_cluster(node) -> None:
    _b, controller = node
    w = _as(controller, "bob")
    try:
        refused = _describe_quorum(w)
    finally:
        w.close()
    assert (refused.error_code, refused.topics) == (E.CLUSTER_AUTHORIZATION_FAILED, [])
    assert refused.error_message == E.CLUSTER_AUTHORIZATION_FAILED.message
    w = _as(controller, "carol")
    try:
        served = _describe_quorum(w)
    finally:
        w.close()
    assert served.error_code == E.NONE
    [partition] = [p for t in served.topics for p in t.partitions]
    assert (partition.error_code, partition.leader_id, [v.replica_id for v in partition.current_voters]) == (
        E.NONE, 1, [1])


def test_unregister_broker_needs_alter_on_the_cluster(node) -> None:
    b, controller = node
    before = _image_offset(b)
    for user in ("bob", "carol"):  # carol's DESCRIBE is not enough
        w = _as(controller, user)
        try:
            # node 1 itself: refused before the controller looks at it, so it stays registered
            assert w.call(64, 0, broker_id=1).error_code == E.CLUSTER_AUTHORIZATION_FAILED
        finally:
            w.close()
    assert _image_offset(b) == before
    assert b.call(lambda: 1 in b.broker.image.brokers)
    w = _as(controller, "alice")
    try:
        # authorized: the controller answers for the broker id (none registered as 99)
        assert w.call(64, 0, broker_id=99).error_code == E.BROKER_ID_NOT_REGISTERED
    finally:
        w.close()


def test_unregister_controller_needs_alter_on_the_cluster(node) -> None:
    b, controller = node
    before = _image_offset(b)
    for user in ("bob", "carol"):
        w = _as(controller, user)
        try:
            assert w.call(94, 0, controller_id=99).error_code == E.CLUSTER_AUTHORIZATION_FAILED
        finally:
            w.close()
    assert _image_offset(b) == before
    w = _as(controller, "alice")
    try:
        served = w.call(94, 0, controller_id=99)
    finally:
        w.close()
    assert (served.error_code, served.error_message) == (
        E.CONTROLLER_ID_NOT_REGISTERED, "Controller ID 99 is not currently registered.")


def _envelope(w: Wire, topic: str, carried: str = "admin"):
    """An Envelope carrying a CreateTopics of ``topic`` on behalf of ``User:<carried>``; its response."""
    T = CreateTopics.CreatableTopic
    inner = CreateTopics(topics=[T(name=topic, num_partitions=1, replication_factor=-1, assignments=[],
                                   configs=[])], timeout_ms=10000, validate_only=False)
    header = RequestHeader(request_api_key=19, request_api_version=7, correlation_id=5, client_id="forwarded")
    return w.call(58, 0, request_data=encode_request(header, inner),
                  request_principal=serialize_principal("User", carried),
                  client_host_address=address_bytes("127.0.0.1"))


def test_an_envelope_needs_cluster_action_of_the_connection_that_sends_it(node) -> None:
    b, controller = node
    before = _image_offset(b)
    for user in ("bob", "carol"):  # carrying the super user's principal does not help
        w = _as(controller, user)
        try:
            refused = _envelope(w, f"from-{user}")
        finally:
            w.close()
        assert (refused.error_code, refused.response_data) == (E.CLUSTER_AUTHORIZATION_FAILED, None)
    assert _image_offset(b) == before
    assert not {"from-bob", "from-carol"} & _topics(b)
    for user in ("alice", "admin"):  # CLUSTER_ACTION by ACL; the node's own user as super user
        w = _as(controller, user)
        try:
            served = _envelope(w, f"from-{user}")
        finally:
            w.close()
        assert (served.error_code, served.response_data is not None) == (E.NONE, True)
        _inner_header, inner = decode_response(served.response_data, 19, 7)
        assert [(t.name, t.error_code) for t in inner.topics] == [(f"from-{user}", E.NONE)]
    assert {"from-alice", "from-admin"} <= _topics(b)


def test_the_carried_principal_is_still_the_one_the_inner_request_is_authorized_for(node) -> None:
    """Passing the Envelope's check does not widen the forwarded request: alice forwarding for bob
    gets bob's answer (no CREATE on the cluster or topic: TOPIC_AUTHORIZATION_FAILED), nothing made."""
    b, controller = node
    w = _as(controller, "alice")
    try:
        served = _envelope(w, "for-bob", carried="bob")
    finally:
        w.close()
    assert served.error_code == E.NONE
    _inner_header, inner = decode_response(served.response_data, 19, 7)
    assert [(t.name, t.error_code) for t in inner.topics] == [("for-bob", E.TOPIC_AUTHORIZATION_FAILED)]
    assert "for-bob" not in _topics(b)


def test_describe_cluster_on_a_controller_needs_alter_on_the_cluster(node) -> None:
    """Unlike on a broker (any principal), as Kafka's handleDescribeCluster on a controller."""
    _b, controller = node
    for user in ("bob", "carol"):
        w = _as(controller, user)
        try:
            refused = w.call(60, 1, include_cluster_authorized_operations=False, endpoint_type=2)
        finally:
            w.close()
        assert (refused.error_code, refused.brokers) == (E.CLUSTER_AUTHORIZATION_FAILED, [])
    w = _as(controller, "alice")
    try:
        served = w.call(60, 1, include_cluster_authorized_operations=False, endpoint_type=2)
    finally:
        w.close()
    assert (served.error_code, served.controller_id, [n.broker_id for n in served.brokers]) == (E.NONE, 1, [1])


def _listener(port: int):
    return REQUESTS[80].Listener(name="CONTROLLER", host="localhost", port=port)


def test_voter_changes_need_alter_and_update_needs_cluster_action(node) -> None:
    """AddRaftVoter/RemoveRaftVoter: ALTER (carol's DESCRIBE is not enough); refused with the code's
    default message (their getErrorResponse). UpdateRaftVoter: CLUSTER_ACTION. Served, the Raft
    checks answer (this static quorum: kraft.version 0)."""
    _b, controller = node
    add = {"cluster_id": None, "timeout_ms": 10000, "voter_id": 2, "voter_directory_id": uuid.uuid4(),
           "listeners": [_listener(1234)]}
    remove = {"cluster_id": None, "voter_id": 1, "voter_directory_id": uuid.uuid4()}
    update = {"cluster_id": None, "current_leader_epoch": -1, "voter_id": 1, "voter_directory_id": uuid.uuid4(),
              "listeners": [REQUESTS[82].Listener(name="CONTROLLER", host="localhost", port=1234)],
              "kraft_version_feature": REQUESTS[82].KRaftVersionFeature(min_supported_version=0,
                                                                         max_supported_version=1)}
    denied = (E.CLUSTER_AUTHORIZATION_FAILED, E.CLUSTER_AUTHORIZATION_FAILED.message)
    for user in ("bob", "carol"):
        w = _as(controller, user)
        try:
            assert (lambda r: (r.error_code, r.error_message))(w.call(80, 1, **add)) == denied
            assert (lambda r: (r.error_code, r.error_message))(w.call(81, 0, **remove)) == denied
            assert w.call(82, 0, **update).error_code == E.CLUSTER_AUTHORIZATION_FAILED
        finally:
            w.close()
    w = _as(controller, "alice")
    try:
        added, removed = w.call(80, 1, **add), w.call(81, 0, **remove)
        updated = w.call(82, 0, **update)
    finally:
        w.close()
    assert (added.error_code, removed.error_code) == (E.UNSUPPORTED_VERSION, E.UNSUPPORTED_VERSION)
    assert removed.error_message == "Cluster doesn't support removing voter because the kraft.version feature is 0"
    assert (updated.error_code, updated.current_leader.leader_id) == (E.FENCED_LEADER_EPOCH, 1)  # epoch -1: stale


def test_controller_registration_and_allocate_producer_ids_need_cluster_action(node) -> None:
    """Requests of controllers and brokers: CLUSTER_ACTION on the cluster (carol's DESCRIBE is not
    enough); refused, nothing written; alice (the ACL) served."""
    b, controller = node
    Reg = REQUESTS[70]
    registration = {"controller_id": 7, "incarnation_id": uuid.uuid4(), "zk_migration_ready": False,
                    "listeners": [Reg.Listener(name="CONTROLLER", host="localhost", port=1234, security_protocol=2)],
                    "features": []}
    before = _image_offset(b)
    for user in ("bob", "carol"):
        w = _as(controller, user)
        try:
            refused = w.call(70, 0, **registration)
            assert (refused.error_code, refused.error_message) == (
                E.CLUSTER_AUTHORIZATION_FAILED, E.CLUSTER_AUTHORIZATION_FAILED.message)
            assert w.call(67, 0, broker_id=1, broker_epoch=-5).error_code == E.CLUSTER_AUTHORIZATION_FAILED
        finally:
            w.close()
    assert _image_offset(b) == before
    assert b.call(lambda: 7 not in b.broker.image.controllers)
    w = _as(controller, "alice")
    try:
        # a stale epoch: answered by the controller, no block handed out
        assert w.call(67, 0, broker_id=1, broker_epoch=-5).error_code == E.STALE_BROKER_EPOCH
        assert w.call(70, 0, **registration).error_code == E.NONE
    finally:
        w.close()
    assert b.call(lambda: 7 in b.broker.controller.image.controllers)  # (the controller's, written before the answer)
