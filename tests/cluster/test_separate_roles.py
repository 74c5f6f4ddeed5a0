"""Controller-only voters and broker-only observers as separate processes (Kafka's separate mode)."""

from __future__ import annotations

from test_quorum_processes import agreed_leader, create_topic, metadata, quorum_view
from waiting import wait_until

from kbroker_protocol.errors import ErrorCode

E = ErrorCode


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
    # kill -9 of the active controller: the brokers keep working with the new one
    c.kill(leader)
    survivors = [n for n in controllers if n != leader]
    new_leader = wait_until(lambda: agreed_leader(c, survivors), 30, 0.05, "a new leader", c.logs)
    assert new_leader != leader and quorum_view(c, new_leader)[0] == E.NONE
    assert create_topic(c, 5, "after-failover", partitions=1, replication=2) == E.NONE
    for b in brokers:
        wait_until(lambda b=b: {"events", "after-failover"} <= {t.name for t in metadata(c, b).topics}, 20, 0.05,
                   f"the topics on broker {b}", c.logs)
