"""What the brokers and controllers send each other on the controller listener needs CLUSTER_ACTION on
the cluster for the connection's principal, as Kafka 4.4's ControllerApis
(``authorizeClusterOperation(request, CLUSTER_ACTION)``, before the Raft client or the controller
looks at the request): the Raft RPCs (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch of the metadata
log, FetchSnapshot), BrokerRegistration, BrokerHeartbeat, AlterPartition and AssignReplicasToDirs.
Refused, the request's error response (``getErrorResponse``) with CLUSTER_AUTHORIZATION_FAILED,
nothing changed; the node's own user (``admin``, a super user) and a user with the ACL are served.

Envelope and AllocateProducerIds as ``(ctx, request)`` handlers (``kbroker.api.envelope.CONTROLLER_APIS``,
registered only by tests) check the same; the broker listeners do not serve them at all.

Users of the combined node's SASL_PLAINTEXT listeners (tests/security/controller_sasl_node.py): alice
(CLUSTER_ACTION on the cluster), carol (ALTER and DESCRIBE on the cluster, not CLUSTER_ACTION), bob
(no ACL). On an SSL controller listener, the client certificate's principal likewise."""

from __future__ import annotations

import io
import ssl
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from waiting import wait_until
from wire import Wire, plain_login

from kbroker.cluster import free_ports
from kbroker.config import BrokerConfig
from kbroker.metadata.features import SUPPORTED_FEATURES
from kbroker.metadata.remote import address_bytes, serialize_principal
from kbroker.raft.wire import METADATA_TOPIC_ID
from kbroker.security import acls as A
from kbroker.storage import format_storage, random_uuid
from kbroker.testing import BrokerThread
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RequestHeader
from tests.security.controller_sasl_node import controller_sasl_node

E = ErrorCode
DENIED = E.CLUSTER_AUTHORIZATION_FAILED
METADATA = "__cluster_metadata"
ACLS = [("User:alice", A.CLUSTER_ACTION), ("User:carol", A.ALTER), ("User:carol", A.DESCRIBE)]
REFUSED_USERS = ("bob", "carol")  # no ACL; cluster ACLs other than CLUSTER_ACTION


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """The combined node (controller_sasl_node) with the cluster ACLs of :data:`ACLS`, and the
    address of its client listener."""
    data = tmp_path_factory.mktemp("controller-cluster-action") / "data"
    with controller_sasl_node(data, ["alice", "bob", "carol"], ACLS) as (b, controller):
        yield b, controller


def _call_as(address: str, user: str, api_key: int, version: int, **fields: Any) -> Any:
    w = plain_login(address, user)
    try:
        return w.call(api_key, version, **fields)
    finally:
        w.close()


def _raft_view(b: BrokerThread) -> tuple[int, int, bool]:
    """(leader, epoch, whether replica 10 fetched as an observer) of the node's Raft client."""
    return b.call(lambda: (b.broker.raft.leader_id, b.broker.raft.epoch, 10 in b.broker.raft.observers))


# -- the Raft RPCs ---------------------------------------------------------------------------------
# Refused: requests that would change the Raft state if they were served (a vote for, or a leader
# at, epoch 1000; a fetch that makes replica 10 an observer). Served: requests the Raft client
# answers without changing its state (replica 9's pre-vote, BeginQuorumEpoch and EndQuorumEpoch at
# epoch 0, older than the node's own leadership; a Fetch and a FetchSnapshot at the leader's epoch).

FUTURE = 1000


def _leader_epoch(b: BrokerThread) -> int:
    return b.call(lambda: b.broker.raft.epoch)


def _vote(b: BrokerThread, refused: bool) -> dict[str, Any]:
    V = REQUESTS[52]
    epoch, last_epoch, last_offset = (FUTURE, FUTURE - 1, 1 << 40) if refused else (0, 0, 0)
    part = V.TopicData.PartitionData(partition_index=0, replica_epoch=epoch, replica_id=9, last_offset_epoch=last_epoch,
                                     last_offset=last_offset, pre_vote=not refused, replica_directory_id=uuid.uuid4(),
                                     voter_directory_id=uuid.UUID(int=0))
    return {"cluster_id": b.broker.cluster_id, "voter_id": 1,
            "topics": [V.TopicData(topic_name=METADATA, partitions=[part])]}


def _begin_quorum_epoch(b: BrokerThread, refused: bool) -> dict[str, Any]:
    Q = REQUESTS[53]
    part = Q.TopicData.PartitionData(partition_index=0, leader_id=9, leader_epoch=FUTURE if refused else 0,
                                     voter_directory_id=uuid.UUID(int=0))
    return {"cluster_id": b.broker.cluster_id, "voter_id": 1,
            "topics": [Q.TopicData(topic_name=METADATA, partitions=[part])], "leader_endpoints": []}


def _end_quorum_epoch(b: BrokerThread, refused: bool) -> dict[str, Any]:
    Q = REQUESTS[54]
    part = Q.TopicData.PartitionData(partition_index=0, leader_id=9, leader_epoch=FUTURE if refused else 0,
                                     preferred_successors=[1], preferred_candidates=[])
    return {"cluster_id": b.broker.cluster_id, "topics": [Q.TopicData(topic_name=METADATA, partitions=[part])],
            "leader_endpoints": []}


def _fetch(b: BrokerThread, refused: bool) -> dict[str, Any]:
    F = REQUESTS[1]
    replica = 10 if refused else 9
    part = F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=_leader_epoch(b), fetch_offset=0,
                                       last_fetched_epoch=0, log_start_offset=0, partition_max_bytes=1 << 20)
    return {"cluster_id": b.broker.cluster_id, "replica_id": replica, "max_wait_ms": 0,
            "replica_state": F.ReplicaState(replica_id=replica, replica_epoch=-1),
            "topics": [F.FetchTopic(topic=METADATA, topic_id=METADATA_TOPIC_ID, partitions=[part])]}


def _fetch_snapshot(b: BrokerThread, refused: bool) -> dict[str, Any]:
    S = REQUESTS[59]
    part = S.TopicSnapshot.PartitionSnapshot(partition=0, current_leader_epoch=_leader_epoch(b),
                                             snapshot_id=S.TopicSnapshot.PartitionSnapshot.SnapshotId(
                                                 end_offset=1, epoch=1), position=0)
    return {"cluster_id": b.broker.cluster_id, "replica_id": 9, "max_bytes": 1 << 20,
            "topics": [S.TopicSnapshot(name=METADATA, partitions=[part])]}


def _partition(response: Any) -> Any:
    [part] = [p for t in (getattr(response, "topics", None) or response.responses) for p in t.partitions]
    return part


RAFT_RPCS: dict[str, tuple[int, int, Callable[[BrokerThread, bool], dict[str, Any]]]] = {
    "Vote": (52, 2, _vote),
    "BeginQuorumEpoch": (53, 1, _begin_quorum_epoch),
    "EndQuorumEpoch": (54, 1, _end_quorum_epoch),
    "Fetch": (1, 18, _fetch),
    "FetchSnapshot": (59, 1, _fetch_snapshot),
}


@pytest.mark.parametrize("name", list(RAFT_RPCS))
def test_a_raft_rpc_without_cluster_action_is_refused(node, name: str) -> None:
    """The top-level CLUSTER_AUTHORIZATION_FAILED alone (no partitions, no leader endpoints), as
    Kafka's getErrorResponse of each; the Raft state as it was."""
    b, controller = node
    api_key, version, fields = RAFT_RPCS[name]
    before = _raft_view(b)
    assert before[1] < FUTURE and not before[2]
    for user in REFUSED_USERS:
        refused = _call_as(controller, user, api_key, version, **fields(b, True))
        assert refused.error_code == DENIED
        assert (getattr(refused, "topics", None) or getattr(refused, "responses", None) or []) == []
        assert refused.node_endpoints == []
    assert _raft_view(b) == before


@pytest.mark.parametrize("name", list(RAFT_RPCS))
def test_a_raft_rpc_with_cluster_action_is_answered_by_the_raft_client(node, name: str) -> None:
    """alice (the ACL) and admin (super user): the Raft client's own answer, naming the leader (node
    1) at its epoch; nothing changes."""
    b, controller = node
    api_key, version, fields = RAFT_RPCS[name]
    leader, epoch, _observer = _raft_view(b)
    for user in ("alice", "admin"):
        served = _call_as(controller, user, api_key, version, **fields(b, False))
        assert served.error_code == E.NONE
        part = _partition(served)
        if name == "Fetch":  # the metadata log from its start: the records the node committed
            assert (part.error_code, part.current_leader.leader_id, part.current_leader.leader_epoch) == (
                E.NONE, leader, epoch)
            assert part.high_watermark > 0 and part.records
        elif name == "FetchSnapshot":  # there is no snapshot 1-1
            assert (part.error_code, part.current_leader.leader_id, part.current_leader.leader_epoch) == (
                E.SNAPSHOT_NOT_FOUND, leader, epoch)
        else:  # epoch 0 is older than the leader's (a Vote's pre-vote: not granted)
            assert (part.error_code, part.leader_id, part.leader_epoch) == (E.FENCED_LEADER_EPOCH, leader, epoch)
            assert getattr(part, "vote_granted", False) is False
    assert _raft_view(b)[:2] == (leader, epoch)


def test_a_fetch_below_v13_is_refused_in_every_partition_too(node) -> None:
    """Kafka's FetchRequest.getErrorResponse: below v13 the code is also in each partition asked for."""
    b, controller = node
    F = REQUESTS[1]
    part = F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                                       log_start_offset=0, partition_max_bytes=1 << 20)
    refused = _call_as(controller, "bob", 1, 12, cluster_id=b.broker.cluster_id, replica_id=9, max_wait_ms=0,
                       session_id=0, session_epoch=-1,
                       topics=[F.FetchTopic(topic=METADATA, partitions=[part])])
    assert refused.error_code == DENIED
    assert [(t.topic, [(p.partition_index, p.error_code, p.high_watermark) for p in t.partitions])
            for t in refused.responses] == [(METADATA, [(0, DENIED, -1)])]


# -- the brokers' requests to the controller -----------------------------------------------------
# Refused: each is one that would change something if it were served (a new broker 7 registered,
# broker 1 fenced); served: one the controller refuses itself (broker 1 registered again under
# another incarnation while its session is live, a broker epoch it is not registered with).

def _broker_epoch(b: BrokerThread) -> int:
    return b.call(lambda: b.broker.image.brokers[1].epoch)


def _brokers(b: BrokerThread) -> dict[int, bool]:
    """Registered broker id -> fenced, in the controller's image."""
    return b.call(lambda: {i: r.fenced for i, r in b.broker.controller.image.brokers.items()})


def _registration(b: BrokerThread, broker_id: int) -> dict[str, Any]:
    R = REQUESTS[62]
    return {"broker_id": broker_id, "cluster_id": b.broker.cluster_id, "incarnation_id": uuid.uuid4(),
            "listeners": [R.Listener(name="CLIENT", host="localhost", port=1234, security_protocol=2)],
            "features": [R.Feature(name=n, min_supported_version=lo, max_supported_version=hi)
                         for n, (lo, hi) in sorted(SUPPORTED_FEATURES.items())],
            "rack": None, "is_migrating_zk_broker": False, "log_dirs": [uuid.uuid4()], "previous_broker_epoch": -1}


def _heartbeat(b: BrokerThread, epoch: int, fence: bool) -> dict[str, Any]:
    return {"broker_id": 1, "broker_epoch": epoch, "current_metadata_offset": 0, "want_fence": fence,
            "want_shut_down": False, "offline_log_dirs": [], "cordoned_log_dirs": []}


# name: (api key, version, the fields refused, the fields served, the controller's answer to those)
BROKER_REQUESTS: dict[str, tuple[int, int, Callable[[BrokerThread], dict[str, Any]],
                                 Callable[[BrokerThread], dict[str, Any]], ErrorCode]] = {
    "BrokerRegistration": (62, 4, lambda b: _registration(b, 7), lambda b: _registration(b, 1),
                           E.DUPLICATE_BROKER_REGISTRATION),
    "BrokerHeartbeat": (63, 2, lambda b: _heartbeat(b, _broker_epoch(b), fence=True),
                        lambda b: _heartbeat(b, -5, fence=False), E.STALE_BROKER_EPOCH),
    "AlterPartition": (56, 3, lambda b: {"broker_id": 1, "broker_epoch": _broker_epoch(b), "topics": []},
                       lambda b: {"broker_id": 1, "broker_epoch": -5, "topics": []}, E.STALE_BROKER_EPOCH),
    "AssignReplicasToDirs": (73, 0, lambda b: {"broker_id": 1, "broker_epoch": _broker_epoch(b), "directories": []},
                             lambda b: {"broker_id": 1, "broker_epoch": -5, "directories": []},
                             E.STALE_BROKER_EPOCH),
}


@pytest.mark.parametrize("name", list(BROKER_REQUESTS))
def test_a_brokers_request_without_cluster_action_is_refused(node, name: str) -> None:
    """The top-level CLUSTER_AUTHORIZATION_FAILED (a BrokerRegistration's epoch -1, a heartbeat's
    broker fenced: the schema's defaults), before the controller looks at it: broker 7 is not
    registered, broker 1 not fenced."""
    b, controller = node
    api_key, version, refused_fields, _served_fields, _answer = BROKER_REQUESTS[name]
    for user in REFUSED_USERS:
        refused = _call_as(controller, user, api_key, version, **refused_fields(b))
        assert refused.error_code == DENIED
        if name == "BrokerRegistration":
            assert refused.broker_epoch == -1
        elif name == "BrokerHeartbeat":
            assert (refused.is_fenced, refused.should_shut_down, refused.is_caught_up) == (True, False, False)
        elif name == "AlterPartition":
            assert refused.topics == []
    assert _brokers(b) == {1: False}


@pytest.mark.parametrize("name", list(BROKER_REQUESTS))
def test_a_brokers_request_with_cluster_action_reaches_the_controller(node, name: str) -> None:
    b, controller = node
    api_key, version, _refused_fields, served_fields, answer = BROKER_REQUESTS[name]
    for user in ("alice", "admin"):
        assert _call_as(controller, user, api_key, version, **served_fields(b)).error_code == answer
    assert _brokers(b) == {1: False}


# -- Envelope and AllocateProducerIds served with a request context ----------------------------------

def _envelope_fields(topic: str) -> dict[str, Any]:
    CreateTopics = REQUESTS[19]
    T = CreateTopics.CreatableTopic
    inner = CreateTopics(topics=[T(name=topic, num_partitions=1, replication_factor=-1, assignments=[], configs=[])],
                         timeout_ms=10000, validate_only=False)
    header = RequestHeader(request_api_key=19, request_api_version=7, correlation_id=5, client_id="forwarded")
    return {"request_data": encode_request(header, inner), "request_principal": serialize_principal("User", "admin"),
            "client_host_address": address_bytes("127.0.0.1")}


def _client_listener(b: BrokerThread) -> str:
    return b.bootstrap_servers.split(",")[0]


def test_the_broker_listener_does_not_serve_envelope_or_allocate_producer_ids(node) -> None:
    """As Kafka's brokers (controller-only APIs): the connection is closed, even for the super user,
    and nothing is unwrapped."""
    b, _controller = node
    for api_key, fields in ((58, _envelope_fields("through-the-client-listener")),
                            (67, {"broker_id": 1, "broker_epoch": -5})):
        w = plain_login(_client_listener(b), "admin")
        try:
            with pytest.raises(ConnectionError):
                w.call(api_key, 0, **fields)
        finally:
            w.close()
    assert b.call(lambda: "through-the-client-listener" not in b.broker.image.topics)


def test_the_context_handlers_of_envelope_and_allocate_producer_ids_need_cluster_action(node, controller_apis) -> None:
    """``CONTROLLER_APIS`` registered (the tests' forwarding between in-process nodes) on the client
    listener: the connection's principal is checked as on the controller listener."""
    b, _controller = node
    client = _client_listener(b)
    for user in REFUSED_USERS:
        refused = _call_as(client, user, 58, 0, **_envelope_fields(f"context-{user}"))
        assert (refused.error_code, refused.response_data) == (DENIED, None)
        ids = _call_as(client, user, 67, 0, broker_id=1, broker_epoch=-5)
        assert (ids.error_code, ids.producer_id_start, ids.producer_id_len) == (DENIED, 0, 0)  # (the defaults)
    assert b.call(lambda: not {"context-bob", "context-carol"} & set(b.broker.image.topics))
    served = _call_as(client, "alice", 58, 0, **_envelope_fields("context-alice"))
    assert served.error_code == E.NONE
    _inner_header, inner = decode_response(served.response_data, 19, 7)
    assert [(t.name, t.error_code) for t in inner.topics] == [("context-alice", E.NONE)]
    assert _call_as(client, "alice", 67, 0, broker_id=1, broker_epoch=-5).error_code == E.STALE_BROKER_EPOCH


# -- an SSL controller listener: the client certificate's principal ------------------------------

def test_on_an_ssl_controller_listener_the_client_certificates_principal_needs_cluster_action(
        certs, tmp_path) -> None:
    """With client authentication the connection's principal is the certificate's subject
    (``User:CN=Alice Client,...``): its metadata-log Fetch is refused until CLUSTER_ACTION is granted
    to it, then served. (The client listener is PLAINTEXT, ``User:ANONYMOUS`` a super user: the
    test's admin.)"""
    port, cport = free_ports(2)
    p = "listener.name.controller."
    config = {
        "process.roles": "broker,controller", "node.id": "1", "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "CLIENT",
        "listeners": f"CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "listener.security.protocol.map": "CLIENT:PLAINTEXT,CONTROLLER:SSL", "log.dirs": str(tmp_path / "data"),
        p + "ssl.keystore.type": "PEM",
        p + "ssl.keystore.certificate.chain": certs.text(certs.server_cert) + certs.text(certs.ca),
        p + "ssl.keystore.key": certs.text(certs.server_key),
        p + "ssl.truststore.type": "PEM", p + "ssl.truststore.location": str(certs.ca),
        p + "ssl.client.auth": "required",
        "authorizer.class.name": A.STANDARD_AUTHORIZER, "super.users": "User:ANONYMOUS",
    }
    format_storage(BrokerConfig(config, warn=False), random_uuid(), out=io.StringIO())
    principal = f"User:{certs.client_dn}"
    with BrokerThread(config, data_dir=str(tmp_path / "data")) as b:
        def fetch() -> Any:
            ctx = ssl.create_default_context(cafile=str(certs.ca))
            ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
            w = Wire(f"127.0.0.1:{cport}")
            w.sock = ctx.wrap_socket(w.sock, server_hostname="localhost")
            try:
                return w.call(1, 18, **_fetch(b, refused=False))
            finally:
                w.close()

        refused = fetch()
        assert (refused.error_code, refused.responses) == (DENIED, [])
        admin = Wire(f"127.0.0.1:{port}")
        try:
            r = admin.call(30, 3, creations=[REQUESTS[30].AclCreation(
                resource_type=A.CLUSTER, resource_name=A.CLUSTER_NAME, resource_pattern_type=A.LITERAL,
                principal=principal, host="*", operation=A.CLUSTER_ACTION, permission_type=A.ALLOW)])
            assert [x.error_code for x in r.results] == [E.NONE]
        finally:
            admin.close()
        wait_until(lambda: b.call(lambda: b.broker.authorizer.authorize(
            principal, "127.0.0.1", A.CLUSTER_ACTION, A.CLUSTER, A.CLUSTER_NAME, log_denied=False)), 30, 0.05,
            "the ACL in the node's authorizer")
        served = fetch()
        assert served.error_code == E.NONE
        assert (_partition(served).error_code, _partition(served).high_watermark > 0) == (E.NONE, True)
