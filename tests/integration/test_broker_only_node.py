"""A broker-only node (``process.roles=broker``) beside a controller-only node, each a real Broker
in this process on its own thread (the files of ``kbroker.cluster.ClusterLayout``: a static quorum of
one controller, one observer), and the single-node combined start beside them (issue 14).

As Kafka's BrokerServer, the broker-only node runs no controller: no QuorumController, no controller
listener, no controller service (the delegation-token expiry); its image follows the committed
metadata log as an observer's and its metadata changes go to the active controller (its controller
client is the remote one). It still creates topics, elects leaders, serves produce and fetch; its
broker listener neither advertises nor answers the controller-only APIs. The combined node keeps
its own controller, as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbroker.cluster import ClusterLayout
from kbroker.controller.operations.delegation_tokens import TokenExpiry
from kbroker.controller.operations.local import LocalControllerClient
from kbroker.metadata.remote import RemoteControllerClient
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.integration.waiting import wait_until
from tests.integration.wire import Wire, create_topic, produce

E = ErrorCode

# APIs Kafka 4.4 serves on controller listeners only (ApiMessageType.listeners = [controller]):
# Vote, BeginQuorumEpoch, EndQuorumEpoch, AlterPartition, Envelope, FetchSnapshot,
# BrokerRegistration, BrokerHeartbeat, AllocateProducerIds, ControllerRegistration,
# AssignReplicasToDirs, UpdateRaftVoter
CONTROLLER_ONLY = {52, 53, 54, 56, 58, 59, 62, 63, 67, 70, 73, 82}


@pytest.fixture(scope="module")
def separate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerThread, BrokerThread]]:
    """Node 1 controller-only, node 2 broker-only, started (the broker once unfenced)."""
    layout = ClusterLayout.create(Path(tmp_path_factory.mktemp("separate")), 1, brokers=1, separate=True)
    assert layout.roles(1) == "controller" and layout.roles(2) == "broker"
    controller = BrokerThread(layout.properties(1), str(layout.data_dir(1))).start()
    try:
        with BrokerThread(layout.properties(2), str(layout.data_dir(2))) as broker:
            yield controller, broker
    finally:
        controller.stop()


def api_keys(bootstrap: str) -> set[int]:
    w = Wire(bootstrap)
    try:
        return {k.api_key for k in w.call(18, 3, client_software_name="t", client_software_version="1").api_keys}
    finally:
        w.close()


def test_the_broker_only_node_holds_no_controller(separate):
    controller_node, broker_node = separate
    broker = broker_node.broker
    assert broker is not None and not broker.runs_controller
    assert broker.controller is None
    assert isinstance(broker.controller_client, RemoteControllerClient)
    assert not any(isinstance(s, TokenExpiry) for s in broker.services)
    assert broker.raft is not None and broker.raft.port == 0  # no controller listener bound
    assert broker.raft.on_resign is None  # nothing to renounce: it never leads
    # an observer of the quorum, its image fed by the committed log: it holds its own registration
    assert broker.raft.node is not None and broker.node_id not in broker.raft.node.voters
    assert broker_node.call(lambda: broker.image.brokers[broker.node_id].fenced) is False
    # without a controller, the metadata log's high watermark still follows the commits (the
    # metrics' last committed offset reads it)
    raft = broker.raft

    def watermarks() -> tuple[int, int]:
        assert broker.metadata_log is not None
        return broker.metadata_log.high_watermark, raft.high_watermark

    wait_until(lambda: (w := broker_node.call(watermarks))[0] == w[1] > 0, 20,
               message="the metadata log's high watermark at the Raft high watermark")
    # the controller-only node has its controller (and its delegation-token expiry)
    other = controller_node.broker
    assert other is not None and other.controller is not None and other.runs_controller
    assert any(isinstance(s, TokenExpiry) for s in other.services)


def test_the_broker_only_node_creates_elects_and_serves(separate):
    controller_node, broker_node = separate
    w = Wire(broker_node.bootstrap_servers)
    try:
        create_topic(w, "made-on-the-broker", partitions=2)  # forwarded to the active controller
        # the controller's image has it (it wrote it), and the broker's once committed
        controller = controller_node.broker
        assert controller is not None and controller.controller is not None
        assert controller_node.call(lambda: controller.controller.image.topic("made-on-the-broker")) is not None
        broker = broker_node.broker
        assert broker is not None
        wait_until(lambda: broker_node.call(lambda: broker.partition("made-on-the-broker", 1)) is not None, 20,
                   message="the broker's image applied the committed topic (its partitions opened)")
        assert produce(w, "made-on-the-broker", 1, 3) == 0
        assert produce(w, "made-on-the-broker", 1, 2) == 3
        F = REQUESTS[1]
        fetched = w.call(1, 12, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                         session_id=0, session_epoch=-1, rack_id="", forgotten_topics_data=[],
                         topics=[F.FetchTopic(topic="made-on-the-broker", partitions=[F.FetchTopic.FetchPartition(
                             partition=1, current_leader_epoch=-1, fetch_offset=0, log_start_offset=-1,
                             partition_max_bytes=1 << 20)])])
        part = fetched.responses[0].partitions[0]
        assert part.error_code == E.NONE and part.high_watermark == 5
        # ElectLeaders, forwarded: the only replica leads already
        El = REQUESTS[43]
        elected = w.call(43, 2, election_type=0, timeout_ms=10000, topic_partitions=[
            El.TopicPartitions(topic="made-on-the-broker", partitions=[0, 1])])
        assert elected.error_code == E.NONE
        codes = {p.partition_id: p.error_code for t in elected.replica_election_results for p in t.partition_result}
        assert codes == {0: E.ELECTION_NOT_NEEDED, 1: E.ELECTION_NOT_NEEDED}
    finally:
        w.close()


def test_the_broker_listener_neither_advertises_nor_answers_controller_only_apis(separate):
    _, broker_node = separate
    keys = api_keys(broker_node.bootstrap_servers)
    assert 19 in keys and 43 in keys  # CreateTopics, ElectLeaders: forwarded
    assert not keys & CONTROLLER_ONLY
    # BrokerRegistration on the broker listener: refused, the connection closed (Kafka's SocketServer
    # closes a connection sending an API its listener does not enable)
    w = Wire(broker_node.bootstrap_servers, timeout=10)
    try:
        with pytest.raises(ConnectionError):
            w.call(62, 0, broker_id=9, cluster_id="x", incarnation_id=uuid.uuid4(), listeners=[], features=[],
                   rack=None)
    finally:
        w.close()


def test_a_combined_single_node_keeps_its_controller():
    with BrokerThread() as node:
        broker = node.broker
        assert broker is not None and broker.runs_controller and broker.controller is not None
        assert isinstance(broker.controller_client, LocalControllerClient)
        assert any(isinstance(s, TokenExpiry) for s in broker.services)
        w = Wire(node.bootstrap_servers)
        try:
            create_topic(w, "combined")
            assert produce(w, "combined", 0, 2) == 0
        finally:
            w.close()
