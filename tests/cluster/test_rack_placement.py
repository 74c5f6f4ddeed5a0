"""Replica placement on a real three-node kbroker cluster (issue 17), and the same checks on a
three-node Apache Kafka 4.4 for reference.

- Racks: nodes started with ``broker.rack`` = a, a, b register their racks with the controller
  (Metadata and DescribeCluster show them), and CreateTopics and CreatePartitions place every
  partition's replicas on both racks, as Kafka 4.4's striped placer does (a round-robin over the
  brokers would put partition 0 on the two brokers of rack a); the partitions that existed are
  kept. A replication factor above the brokers is refused with Kafka's INVALID_REPLICATION_FACTOR
  message.
- Cordoned log dirs (KIP-1066): a node whose dirs are all cordoned (statically, or dynamically
  through IncrementalAlterConfigs sent to that node) gets no new replica until uncordoned.

The exact (random) assignment is not compared with Kafka's, only these properties and the error
codes and messages.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import reference_kafka
from cluster_fixture import Cluster
from waiting import wait_until
from wire import Wire

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_partitions import CreatePartitionsRequest
from kbroker_protocol.messages.create_topics import CreateTopicsRequest
from kbroker_protocol.messages.describe_cluster import DescribeClusterRequest
from kbroker_protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest
from tests.cluster.quorum_helpers import metadata

RACKS = {1: "a", 2: "a", 3: "b"}
TOO_FEW = ("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be "
           "reached because only {n} broker(s) are registered or some brokers have all their log directories "
           "cordoned.")


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


class KafkaNodes:
    """The reference cluster with the two methods the checks use (``wire``, ``node_ids``)."""

    def __init__(self, cluster: reference_kafka.ReferenceKafkaCluster) -> None:
        self.cluster = cluster
        self.node_ids = sorted(cluster.ports)

    def wire(self, node_id: int) -> Wire:
        return Wire(f"127.0.0.1:{self.cluster.ports[node_id][0]}", timeout=10)


def _call(cluster, request, version: int, node_id: int = 1):
    w = cluster.wire(node_id)
    try:
        return w.call(request, version)
    finally:
        w.sock.close()


def _replicas(cluster, name: str, count: int) -> dict[int, list[int]] | None:
    for node_id in cluster.node_ids:
        topics = [t for t in metadata(cluster, node_id).topics if t.name == name]
        if not topics or len(topics[0].partitions) != count:
            return None
    return {p.partition_index: list(p.replica_nodes) for p in topics[0].partitions}


def _create(cluster, name: str, partitions: int, rf: int, validate_only: bool = False) -> tuple[int, str | None]:
    C = CreateTopicsRequest
    resp = _call(cluster, C(topics=[C.CreatableTopic(name=name, num_partitions=partitions, replication_factor=rf,
                                                     assignments=[], configs=[])], timeout_ms=10000,
                            validate_only=validate_only), 7)
    return resp.topics[0].error_code, resp.topics[0].error_message


def _set_cordoned(cluster, node_id: int, value: str) -> None:
    """cordoned.log.dirs of ``node_id``, set through that node (a broker's own configs)."""
    Res = IncrementalAlterConfigsRequest.AlterConfigsResource
    resp = _call(cluster, IncrementalAlterConfigsRequest(resources=[Res(
        resource_type=4, resource_name=str(node_id),
        configs=[Res.AlterableConfig(name="cordoned.log.dirs", config_operation=0, value=value)])],
        validate_only=False), 1, node_id)
    assert resp.responses[0].error_code == ErrorCode.NONE, resp.responses[0].error_message


def _check_racks(cluster) -> None:
    # the racks reach the controller in each BrokerRegistration and every node's metadata
    wait_until(lambda: all({b.node_id: b.rack for b in metadata(cluster, n).brokers} == RACKS
                           for n in cluster.node_ids), timeout=30, message="every broker's rack in Metadata")
    described = _call(cluster, DescribeClusterRequest(include_cluster_authorized_operations=False), 1)
    assert {b.broker_id: b.rack for b in described.brokers} == RACKS

    assert _create(cluster, "spread", 6, 2) == (ErrorCode.NONE, None)
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

    assert _create(cluster, "too-many", 1, 4) == (ErrorCode.INVALID_REPLICATION_FACTOR, TOO_FEW.format(rf=4, n=3))
    assert _create(cluster, "three", 2, 3) == (ErrorCode.NONE, None)
    wait_until(lambda: _replicas(cluster, "three", 2), timeout=30, message="the RF 3 topic on every node")


def _check_cordoned_node_3(cluster, uncordon: str) -> None:
    """Node 3's dirs all cordoned: RF 3 refused, RF 2 never on node 3; then uncordoned."""
    refused = (ErrorCode.INVALID_REPLICATION_FACTOR, TOO_FEW.format(rf=3, n=2))
    # validateOnly places too, and creates nothing while the cordon is not yet known
    wait_until(lambda: _create(cluster, "full", 6, 3, validate_only=True) == refused, timeout=30,
               message="node 3's cordoned dirs recorded")
    assert _create(cluster, "full", 6, 3) == refused
    C = CreateTopicsRequest
    manual = _call(cluster, C(topics=[C.CreatableTopic(
        name="manual", num_partitions=-1, replication_factor=-1, configs=[],
        assignments=[C.CreatableTopic.CreatableReplicaAssignment(partition_index=0, broker_ids=[1, 3])])],
        timeout_ms=10000), 7).topics[0]
    assert (manual.error_code, manual.error_message) == (
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        "The manual partition assignment includes broker 3, but all its log directories are cordoned.")
    if _replicas(cluster, "three", 2) is not None:  # CreatePartitions answers the placer's message as is
        P = CreatePartitionsRequest
        grown = _call(cluster, P(topics=[P.CreatePartitionsTopic(name="three", count=3, assignments=None)],
                                 timeout_ms=10000, validate_only=False), 3).results[0]
        assert (grown.error_code, grown.error_message) == (
            ErrorCode.INVALID_REPLICATION_FACTOR, TOO_FEW.format(rf=3, n=2).split(": ", 1)[1])
    assert _create(cluster, "two", 6, 2) == (ErrorCode.NONE, None)
    placed = wait_until(lambda: _replicas(cluster, "two", 6), timeout=30, message="the topic on every node")
    assert all(3 not in replicas for replicas in placed.values()), placed
    _set_cordoned(cluster, 3, uncordon)
    wait_until(lambda: _create(cluster, "full", 6, 3, validate_only=True) == (ErrorCode.NONE, None), timeout=30,
               message="node 3 uncordoned")
    assert _create(cluster, "full", 6, 3) == (ErrorCode.NONE, None)
    placed = wait_until(lambda: _replicas(cluster, "full", 6), timeout=30, message="the topic on every node")
    assert all(sorted(replicas) == [1, 2, 3] for replicas in placed.values()), placed


def test_replicas_span_the_racks_registered_by_broker_rack(rack_cluster):
    _check_racks(rack_cluster)
    _set_cordoned(rack_cluster, 3, "*")
    _check_cordoned_node_3(rack_cluster, "")


def test_a_broker_with_every_log_dir_cordoned_gets_no_new_replica(tmp_path):
    """KIP-1066 end to end from the static config: node 3 starts with ``cordoned.log.dirs=*``; its
    heartbeats tell the controller. Uncordoned with an empty dynamic value (deleting it would bring
    back the static ``*``)."""
    cluster = Cluster(tmp_path / "cluster", 3)
    with open(cluster.layout.properties_path(3), "a") as f:
        f.write("cordoned.log.dirs=*\n")
    try:
        cluster.start()
        _check_cordoned_node_3(cluster, "")
    finally:
        cluster.kill_all()


def test_kafka_places_replicas_the_same_way(tmp_path):
    """The reference: Apache Kafka 4.4, three combined nodes with the same racks, the same checks."""
    kafka = reference_kafka.start_reference_kafka_cluster(
        3, tmp_path / "kafka", node_overrides={n: {"broker.rack": r} for n, r in RACKS.items()})
    try:
        nodes = KafkaNodes(kafka)
        _check_racks(nodes)
        _set_cordoned(nodes, 3, "*")
        _check_cordoned_node_3(nodes, "")
    finally:
        kafka.stop()
