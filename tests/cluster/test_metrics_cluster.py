"""Partition health in /metrics on a three-node cluster (issue 21): partitions whose only replica
is on a stopped node are counted offline by the other nodes
(``kafka_controller_kafkacontroller_offlinepartitionscount``, Kafka's OfflinePartitionsCount); a
replicated partition whose leader stopped moves and is counted under-replicated by its new leader,
not offline; both counts go back to 0 once the node is back."""

from __future__ import annotations

from cluster_fixture import FAST_SESSIONS, Cluster
from metrics_http import get
from prometheus_client.parser import text_string_to_metric_families
from waiting import wait_until

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_topics import CreateTopicsRequest
from tests.cluster.quorum_helpers import metadata

SETTINGS = dict(FAST_SESSIONS, **{"kbroker.http.listeners": "http://127.0.0.1:0"})
OFFLINE = "kafka_controller_kafkacontroller_offlinepartitionscount"
UNDER = "kafka_server_replicamanager_underreplicatedpartitions"
GLOBAL = "kafka_controller_kafkacontroller_globalpartitioncount"
# topic -> replicas of each partition: two partitions only on node 3, one only on node 2, one on all three led by 3
TOPICS = {"alone": [[3], [3], [2]], "shared": [[3, 1, 2]]}


def gauges(cluster: Cluster, node: int) -> dict[str, float]:
    """The unlabelled samples of ``node``'s /metrics."""
    status, _, text = get(cluster.http_url(node) + "/metrics")
    assert status == 200
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def leaders(cluster: Cluster, node: int) -> dict[tuple[str, int], tuple[int, list[int]]]:
    """(topic, partition) -> (leader, ISR) of TOPICS as ``node``'s Metadata has them."""
    return {(t.name, p.partition_index): (p.leader_id, sorted(p.isr_nodes))
            for t in metadata(cluster, node).topics if t.name in TOPICS for p in t.partitions}


def test_partitions_without_a_live_leader_are_counted_offline(tmp_path):
    cluster = Cluster(tmp_path / "cluster", 3, SETTINGS)
    try:
        cluster.start()
        for node in cluster.node_ids:
            wait_until(lambda n=node: cluster.http_url(n), 30, 0.05, f"node {node}'s HTTP listener", cluster.logs)
        C = CreateTopicsRequest
        w = cluster.wire(1)
        try:
            resp = w.call(C(topics=[C.CreatableTopic(
                name=name, num_partitions=-1, replication_factor=-1, configs=[],
                assignments=[C.CreatableTopic.CreatableReplicaAssignment(partition_index=i, broker_ids=r)
                             for i, r in enumerate(replicas)]) for name, replicas in TOPICS.items()],
                timeout_ms=10000), 7)
        finally:
            w.sock.close()
        assert [t.error_code for t in resp.topics] == [ErrorCode.NONE] * 2
        everywhere = {("alone", 0): (3, [3]), ("alone", 1): (3, [3]), ("alone", 2): (2, [2]),
                      ("shared", 0): (3, [1, 2, 3])}
        for node in cluster.node_ids:
            wait_until(lambda n=node: leaders(cluster, n) == everywhere, 30, 0.05, f"the topics on node {node}",
                       lambda n=node: leaders(cluster, n))
        for node in cluster.node_ids:
            g = gauges(cluster, node)
            assert (g[OFFLINE], g[GLOBAL], g[UNDER]) == (0, 4, 0), (node, g)

        cluster.kill(3)
        # node 3 fenced once its session expires: its two single-replica partitions lose their
        # leader; "shared" moves to node 1 (first live replica) with a smaller ISR
        for node in (1, 2):
            wait_until(lambda n=node: gauges(cluster, n)[OFFLINE] == 2, 60, 0.1,
                       f"two offline partitions on node {node}", lambda n=node: (gauges(cluster, n), cluster.logs()))
        seen = wait_until(lambda: (s := leaders(cluster, 1))[("shared", 0)] == (1, [1, 2]) and s, 30, 0.05,
                          "shared led by node 1", lambda: leaders(cluster, 1))
        assert seen[("alone", 0)][0] == seen[("alone", 1)][0] == -1 and seen[("alone", 2)] == (2, [2])
        wait_until(lambda: gauges(cluster, 1)[UNDER] == 1, 30, 0.05, "node 1 leading an under-replicated partition",
                   lambda: gauges(cluster, 1))
        assert (gauges(cluster, 2)[UNDER], gauges(cluster, 2)[GLOBAL], gauges(cluster, 1)[GLOBAL]) == (0, 4, 4)

        cluster.start_node(3)
        wait_until(lambda: cluster.http_url(3), 30, 0.05, "node 3's HTTP listener", cluster.logs)
        for node in cluster.node_ids:
            wait_until(lambda n=node: gauges(cluster, n)[OFFLINE] == 0, 60, 0.1,
                       f"no offline partition on node {node}", lambda n=node: (gauges(cluster, n), cluster.logs()))
        wait_until(lambda: sum(gauges(cluster, n)[UNDER] for n in cluster.node_ids) == 0, 60, 0.1,
                   "no under-replicated partition", lambda: leaders(cluster, 1))
    finally:
        cluster.kill_all()
