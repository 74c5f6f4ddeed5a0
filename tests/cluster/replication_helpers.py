"""RF=3 topic creation and partition state queries shared by the replication cluster tests (moved from test_replication_failover)."""

from __future__ import annotations

from cluster_fixture import Cluster
from waiting import wait_until

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_topics import CreateTopicsRequest
from tests.cluster.quorum_helpers import metadata

E = ErrorCode


TOPIC = "rep"


def create_rf3_topic(cluster: Cluster, name: str, min_isr: int = 2) -> None:
    C = CreateTopicsRequest

    def attempt():
        for n in cluster.layout.brokers:  # any broker: a creation is forwarded to the active controller
            if n not in cluster.procs:
                continue
            try:
                w = cluster.wire(n)
                try:
                    resp = w.call(C(topics=[C.CreatableTopic(
                        name=name, num_partitions=1, replication_factor=3, assignments=[],
                        configs=[C.CreatableTopic.CreatableTopicConfig(name="min.insync.replicas",
                                                                        value=str(min_isr))])],
                        timeout_ms=10000), 7)
                finally:
                    w.sock.close()
                return resp.topics[0].error_code == E.NONE
            except OSError:
                continue
        return False

    wait_until(attempt, 30, 0.1, f"creation of {name}", cluster.logs)


def partition_state(cluster: Cluster, node: int, topic: str = TOPIC):
    try:
        md = metadata(cluster, node)
    except OSError:
        return None
    for t in md.topics:
        if t.name == topic and t.error_code == E.NONE and t.partitions:
            return t.partitions[0]
    return None
