"""Controller-only voters and broker-only observers as separate processes (Kafka's separate mode)."""

from __future__ import annotations

import reference_kafka
from waiting import wait_until

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.cluster.quorum_helpers import agreed_leader, create_topic, metadata, quorum_view

E = ErrorCode


def describe_cluster_ids(c, node_id: int) -> list[int]:
    """The broker ids DescribeCluster v2 names on ``node_id``, fenced ones included."""
    w = c.wire(node_id)
    try:
        resp = w.call(60, 2, include_cluster_authorized_operations=False, endpoint_type=1,
                      include_fenced_brokers=True)
    finally:
        w.sock.close()
    assert resp.error_code == E.NONE
    return sorted(b.broker_id for b in resp.brokers)


def unregister(c, via: int, broker_id: int):
    w = c.wire(via)
    try:
        return w.call(64, 0, broker_id=broker_id)
    finally:
        w.sock.close()


def auto_create_metadata(c, node_id: int, name: str):
    """The Metadata v12 answer of ``node_id`` for ``name``, auto-creation allowed."""
    w = c.wire(node_id)
    try:
        resp = w.call(3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=name)], allow_auto_topic_creation=True)
    finally:
        w.sock.close()
    [topic] = resp.topics
    return topic


def test_brokers_observe_the_quorum_and_survive_a_controller_failover(separate_cluster):
    c = separate_cluster
    controllers, brokers = c.layout.controllers, c.layout.brokers
    assert (controllers, brokers) == ([1, 2, 3], [4, 5])
    leader = wait_until(lambda: agreed_leader(c, controllers), 30, 0.05, "a leader", c.logs)
    # the brokers registered; only they are brokers in Metadata (controllers are not)
    for b in brokers:
        m = wait_until(lambda b=b: (m := metadata(c, b)) and sorted(x.node_id for x in m.brokers) == brokers and m,
                       20, 0.05, f"both brokers in broker {b}'s metadata", c.logs)
        assert m.controller_id in brokers
    # the leader lists the brokers as observers of the metadata log
    p = c.describe_quorum(leader).topics[0].partitions[0]
    assert sorted(v.replica_id for v in p.current_voters) == controllers
    assert sorted(o.replica_id for o in p.observers) == brokers
    # CreateTopics through a broker: forwarded to the active controller, visible on both brokers
    assert create_topic(c, 4, "events", partitions=2, replication=2) == E.NONE
    for b in brokers:
        wait_until(lambda b=b: "events" in {t.name for t in metadata(c, b).topics}, 10, 0.05, f"events on {b}")
    # Metadata auto-creation on a broker-only node: asked of the active controller through its
    # controller client (issue 14) and awaited; the topic is answered with its partitions once the
    # broker's image has it (UNKNOWN_TOPIC_OR_PARTITION before, as Kafka), then on both brokers
    first = auto_create_metadata(c, 5, "auto-made")
    assert (first.error_code, bool(first.partitions)) in {(E.UNKNOWN_TOPIC_OR_PARTITION, False), (E.NONE, True)}
    for b in brokers:
        wait_until(lambda b=b: (t := auto_create_metadata(c, b, "auto-made")).error_code == E.NONE and t.partitions,
                   20, 0.05, f"auto-made on broker {b}", c.logs)
    # kill -9 of the active controller: the brokers keep working with the new one
    c.kill(leader)
    survivors = [n for n in controllers if n != leader]
    new_leader = wait_until(lambda: agreed_leader(c, survivors), 30, 0.05, "a new leader", c.logs)
    assert new_leader != leader and quorum_view(c, new_leader)[0] == E.NONE
    assert create_topic(c, 5, "after-failover", partitions=1, replication=2) == E.NONE
    for b in brokers:
        wait_until(lambda b=b: {"events", "after-failover"} <= {t.name for t in metadata(c, b).topics}, 20, 0.05,
                   f"the topics on broker {b}", c.logs)

    # Kafka 4.4's kafka-cluster.sh unregister --bootstrap-server against broker 4 for the killed
    # broker 5: broker 4 forwards UnregisterBroker to the active controller (an Envelope), which
    # commits the UnregisterBrokerRecord; broker 5 leaves every broker's image, fenced ones included
    c.kill(5)
    tool = reference_kafka.run_tool("org.apache.kafka.tools.ClusterTool",
                                    ["unregister", "--bootstrap-server", c.bootstrap(4), "--id", "5"], timeout=180)
    assert tool.returncode == 0, tool.stdout + tool.stderr
    assert "Broker 5 is no longer registered." in tool.stdout
    wait_until(lambda: describe_cluster_ids(c, 4) == [4], 20, 0.05, "broker 5 unregistered on broker 4", c.logs)
    again = unregister(c, 4, 5)
    assert again.error_code == E.BROKER_ID_NOT_REGISTERED
    assert again.error_message == "Broker ID 5 is not currently registered"
