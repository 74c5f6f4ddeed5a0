"""The coordinators' internal topics in a quorum whose active controller is another process
(issue 14): a broker-only node asks the active controller for ``__consumer_offsets`` /
``__transaction_state`` with a CreateTopics through its controller client (forwarded in an
Envelope), as Kafka's coordinators have their broker's AutoTopicCreationManager do;
FindCoordinator answers COORDINATOR_NOT_AVAILABLE meanwhile, then the coordinator once the
broker's image has the topic, with the coordinator's partitions and replication factor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_fixture import Cluster
from waiting import wait_until

from kbroker_protocol.errors import ErrorCode
from tests.cluster.quorum_helpers import metadata

E = ErrorCode
SETTINGS = {"offsets.topic.num.partitions": "4", "offsets.topic.replication.factor": "2",
            "transaction.state.log.num.partitions": "3", "transaction.state.log.replication.factor": "2",
            "transaction.state.log.min.isr": "1"}


@pytest.fixture
def separate(tmp_path) -> Iterator[Cluster]:
    """Three controller-only voters (1-3) and two broker-only nodes (4, 5)."""
    c = Cluster(tmp_path / "cluster", 3, SETTINGS, brokers=2, separate=True)
    try:
        yield c.start()
    finally:
        c.kill_all()


def find(c: Cluster, node: int, key_type: int, key: str) -> tuple[int, int]:
    """(error code, node id) of FindCoordinator v4 for one key asked at ``node``."""
    w = c.wire(node)
    try:
        coordinator = w.call(10, 4, key_type=key_type, coordinator_keys=[key]).coordinators[0]
    finally:
        w.sock.close()
    return coordinator.error_code, coordinator.node_id


def internal_topic(c: Cluster, node: int, name: str):
    return next((t for t in metadata(c, node).topics if t.name == name), None)


def test_broker_only_nodes_have_the_active_controller_create_the_internal_topics(separate):
    c = separate
    brokers = c.layout.brokers
    assert brokers == [4, 5]
    for b in brokers:
        wait_until(lambda b=b: sorted(x.node_id for x in metadata(c, b).brokers) == brokers, 30, 0.05,
                   f"both brokers in broker {b}'s metadata", c.logs)
    for node, key_type, name, partitions in ((4, 0, "__consumer_offsets", 4), (5, 1, "__transaction_state", 3)):
        assert internal_topic(c, node, name) is None
        # the topic did not exist when the request came: COORDINATOR_NOT_AVAILABLE, as Kafka
        assert find(c, node, key_type, "k") == (E.COORDINATOR_NOT_AVAILABLE, -1)
        code, coordinator = wait_until(lambda n=node, kt=key_type: (r := find(c, n, kt, "k"))[0] == E.NONE and r,
                                       30, 0.05, f"the coordinator of {name}", c.logs)
        assert coordinator in brokers
        for b in brokers:  # created once, by the active controller, with the coordinator's settings
            topic = wait_until(lambda b=b, name=name: internal_topic(c, b, name), 20, 0.05, f"{name} on {b}")
            assert topic.is_internal and topic.error_code == E.NONE
            assert sorted(p.partition_index for p in topic.partitions) == list(range(partitions))
            assert all(sorted(p.replica_nodes) == brokers for p in topic.partitions)
