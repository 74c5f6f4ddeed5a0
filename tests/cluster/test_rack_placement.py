"""Rack-aware replica placement on a real three-node kbroker cluster (issue 17): nodes started with
``broker.rack`` = a, a, b register their racks with the controller (Metadata and DescribeCluster
show them), and CreateTopics and CreatePartitions place every partition's replicas on both racks,
as Kafka 4.4's striped placer does (a round-robin over the brokers would put partition 0 on the two
brokers of rack a). A replication factor above the brokers is refused with Kafka's
INVALID_REPLICATION_FACTOR message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_fixture import Cluster
from test_quorum_processes import metadata
from waiting import wait_until

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_partitions import CreatePartitionsRequest
from kbroker_protocol.messages.create_topics import CreateTopicsRequest
from kbroker_protocol.messages.describe_cluster import DescribeClusterRequest

RACKS = {1: "a", 2: "a", 3: "b"}


@pytest.fixture
def rack_cluster(tmp_path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "cluster", 3)
    for node_id, rack in RACKS.items():
        with open(c.layout.properties_path(node_id), "a") as f:
            f.write(f"broker.rack={rack}\n")
    try:
        yield c.start()
    finally:
        c.kill_all()


def _call(cluster: Cluster, request, version: int):
    w = cluster.wire(1)
    try:
        return w.call(request, version)
    finally:
        w.sock.close()


def _replicas(cluster: Cluster, name: str, count: int) -> dict[int, list[int]] | None:
    for node_id in cluster.node_ids:
        topics = [t for t in metadata(cluster, node_id).topics if t.name == name]
        if not topics or len(topics[0].partitions) != count:
            return None
    return {p.partition_index: list(p.replica_nodes) for p in topics[0].partitions}


def test_replicas_span_the_racks_registered_by_broker_rack(rack_cluster):
    cluster = rack_cluster
    # the racks reach the controller in each BrokerRegistration and every node's metadata
    wait_until(lambda: all({b.node_id: b.rack for b in metadata(cluster, n).brokers} == RACKS
                           for n in cluster.node_ids), timeout=30, message="every broker's rack in Metadata")
    described = _call(cluster, DescribeClusterRequest(include_cluster_authorized_operations=False), 1)
    assert {b.broker_id: b.rack for b in described.brokers} == RACKS

    C = CreateTopicsRequest
    resp = _call(cluster, C(topics=[C.CreatableTopic(name="spread", num_partitions=6, replication_factor=2,
                                                     assignments=[], configs=[])], timeout_ms=10000), 7)
    assert resp.topics[0].error_code == ErrorCode.NONE, resp.topics[0].error_message
    placed = wait_until(lambda: _replicas(cluster, "spread", 6), timeout=30, message="the topic on every node")
    for replicas in placed.values():
        assert len(set(replicas)) == 2
        assert {RACKS[b] for b in replicas} == {"a", "b"}, placed

    P = CreatePartitionsRequest
    resp = _call(cluster, P(topics=[P.CreatePartitionsTopic(name="spread", count=10, assignments=None)],
                            timeout_ms=10000, validate_only=False), 3)
    assert resp.results[0].error_code == ErrorCode.NONE, resp.results[0].error_message
    grown = wait_until(lambda: _replicas(cluster, "spread", 10), timeout=30, message="the new partitions")
    assert {p: grown[p] for p in placed} == placed  # the existing partitions are kept as they were
    for p in range(6, 10):
        assert {RACKS[b] for b in grown[p]} == {"a", "b"}, grown

    resp = _call(cluster, C(topics=[C.CreatableTopic(name="too-many", num_partitions=1, replication_factor=4,
                                                     assignments=[], configs=[])], timeout_ms=10000), 7)
    assert (resp.topics[0].error_code, resp.topics[0].error_message) == (
        ErrorCode.INVALID_REPLICATION_FACTOR,
        "Unable to replicate the partition 4 time(s): The target replication factor of 4 cannot be reached "
        "because only 3 broker(s) are registered or some brokers have all their log directories cordoned.")
