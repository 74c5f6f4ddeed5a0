"""Three kbroker nodes (broker + controller each) as real processes forming a KRaft quorum."""

from __future__ import annotations

import threading

from waiting import wait_until

from tests.cluster.quorum_helpers import E, agreed_leader, create_topic, metadata, quorum_view


def create_via_controller(cluster, name: str, nodes) -> int:
    """CreateTopics sent to the active controller's broker listener (the leader a node's
    DescribeQuorum names)."""
    for n in nodes:
        try:
            leader = quorum_view(cluster, n)[1]
            if leader in nodes:
                return create_topic(cluster, leader, name)
        except OSError:
            continue
    return -1


def test_leader_elected_and_topics_visible_on_every_node(cluster):
    leader = wait_until(lambda: agreed_leader(cluster), 30, 0.05, "a leader every node names", cluster.logs)
    error, _, epoch, hw, voters = quorum_view(cluster, leader)
    assert (error, voters) == (E.NONE, [1, 2, 3]) and epoch >= 1 and hw > 0
    for n in cluster.node_ids:
        if n != leader:
            assert quorum_view(cluster, n)[:2] == (E.NOT_LEADER_OR_FOLLOWER, leader)
    # every broker lists the three brokers (once it applied their registrations: each node in its
    # own time); as Kafka 4's, its controller id is an alive broker
    def with_three_brokers(n: int):
        m = metadata(cluster, n)
        return m if sorted(b.node_id for b in m.brokers) == [1, 2, 3] else None

    for n in cluster.node_ids:
        m = wait_until(lambda n=n: with_three_brokers(n), 10, 0.05, f"the three brokers in node {n}'s metadata")
        assert m.controller_id in (1, 2, 3)
    assert create_via_controller(cluster, "orders", cluster.node_ids) == E.NONE
    for n in cluster.node_ids:
        topics = wait_until(lambda n=n: {t.name: t for t in metadata(cluster, n).topics if t.name == "orders"},
                            10, 0.05, f"topic orders on node {n}")
        [p] = topics["orders"].partitions
        assert sorted(p.replica_nodes) == [1, 2, 3]
    # a second create of the same topic is refused by the controller, whichever broker it reached first
    assert create_via_controller(cluster, "orders", cluster.node_ids) == E.TOPIC_ALREADY_EXISTS
    # CreateTopics through every node, the followers forwarding it to the active controller (Envelope)
    for n in cluster.node_ids:
        assert create_topic(cluster, n, f"via-{n}") == E.NONE
    for n in cluster.node_ids:
        wait_until(lambda n=n: {f"via-{m}" for m in cluster.node_ids} <= {t.name for t in metadata(cluster, n).topics},
                   10, 0.05, f"the forwarded creations on node {n}")
    assert create_topic(cluster, next(n for n in cluster.node_ids if n != leader), "via-1") == E.TOPIC_ALREADY_EXISTS


def test_kill_active_controller_while_creating_topics(fast_cluster):
    # fast sessions: the killed node's restart is not refused as a duplicate registration for Kafka's
    # 9 s, until the session of its previous run expires
    cluster = fast_cluster
    leader = wait_until(lambda: agreed_leader(cluster), 30, 0.05, "a leader", cluster.logs)
    _, _, old_epoch, _, _ = quorum_view(cluster, leader)
    survivors = [n for n in cluster.node_ids if n != leader]
    acknowledged: list[str] = []
    stop = threading.Event()
    killed = threading.Event()

    def creator() -> None:
        i = 0
        while not stop.is_set():
            name = f"t{i}"
            nodes = survivors if killed.is_set() else cluster.node_ids
            try:  # through any node: a follower forwards it to the active controller
                code = create_topic(cluster, nodes[i % len(nodes)], name)
            except OSError:
                continue
            if code in (E.NONE, E.TOPIC_ALREADY_EXISTS):
                # TOPIC_ALREADY_EXISTS: an earlier attempt was committed but its answer was lost
                acknowledged.append(name)
                i += 1

    t = threading.Thread(target=creator)
    t.start()
    try:
        wait_until(lambda: len(acknowledged) >= 5, 30, 0.02, "topics created before the kill")
        killed.set()
        cluster.kill(leader)
        before = len(acknowledged)
        new_leader = wait_until(lambda: agreed_leader(cluster, survivors), 30, 0.05, "a new leader", cluster.logs)
        wait_until(lambda: len(acknowledged) >= before + 5, 30, 0.02, "topics created after the failover",
                   cluster.logs)
    finally:
        stop.set()
        t.join()
    assert new_leader != leader
    error, named, epoch, _, voters = quorum_view(cluster, new_leader)
    assert (error, named, voters) == (E.NONE, new_leader, [1, 2, 3]) and epoch > old_epoch
    # every acknowledged creation reaches every survivor (each applies the committed records in its
    # own time: the last ones may not be there yet when the creator stops)
    for n in survivors:
        wait_until(lambda n=n: set(acknowledged) <= {t.name for t in metadata(cluster, n).topics}, 30, 0.05,
                   f"the acknowledged topics on node {n}", cluster.logs)
    # the killed node comes back from its disk as a follower and catches up
    cluster.start_node(leader)
    wait_until(lambda: set(acknowledged) <= {t.name for t in metadata(cluster, leader).topics}, 30, 0.05,
               "the restarted node catching up", cluster.logs)
    # and the quorum of three agrees on a leader again (the leadership may have moved once more
    # meanwhile: a follower's fetch timeout on a loaded machine starts an election)
    wait_until(lambda: agreed_leader(cluster), 30, 0.05, "a leader all three nodes name", cluster.logs)


def test_restart_of_all_nodes_from_disk(fast_cluster):
    # fast sessions: a node whose controlled shutdown timed out (the quorum gone) registers again
    # once its previous session expires, 3 s rather than Kafka's 9 s
    cluster = fast_cluster
    wait_until(lambda: agreed_leader(cluster), 30, 0.05, "a leader", cluster.logs)
    for name in ("a", "b", "c"):
        assert create_via_controller(cluster, name, cluster.node_ids) == E.NONE
    cluster.stop_all()
    cluster.start()
    wait_until(lambda: agreed_leader(cluster), 30, 0.05, "a leader after the restart", cluster.logs)
    # each node replays its log and applies what the new leader's high watermark commits, in its own time
    def restored(n: int) -> bool:
        m = metadata(cluster, n)
        return {"a", "b", "c"} <= {t.name for t in m.topics} and sorted(b.node_id for b in m.brokers) == [1, 2, 3]

    for n in cluster.node_ids:
        wait_until(lambda n=n: restored(n), 30, 0.05, f"the topics and the three brokers on node {n}", cluster.logs)
    assert create_via_controller(cluster, "d", cluster.node_ids) == E.NONE


def test_a_node_without_its_quorum_waits_and_stops_on_sigterm(tmp_path):
    import os
    import signal

    from cluster_fixture import FAST_RAFT

    from kbroker.cluster import ClusterLayout, start_node

    layout = ClusterLayout.create(tmp_path / "c", 3, dict(FAST_RAFT))
    proc = start_node(layout, 1)  # alone: no majority, no leader
    try:
        log = layout.log_path(1)
        wait_until(lambda: "raft node 1 started" in log.read_text(), 30, 0.05, "the raft node started")
        wait_until(lambda: "Prospective" in log.read_text(), 30, 0.05, "an election attempt")
        assert proc.poll() is None and "kbroker ready" not in log.read_text()
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "stopped while starting" in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
