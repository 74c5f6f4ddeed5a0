"""Kafka 4.4's ``kafka-topics.sh --describe --under-replicated-partitions`` /
``--unavailable-partitions`` and ``kafka-leader-election.sh`` on three nodes (issue 22), against
kbroker and, side by side, three Apache Kafka 4.4 nodes (``scripts/reference_kafka.py``), the
same scenario and the same expectations for both.

Topics: ``urp`` with partitions on [1,2,3] and [2,1,3]; ``pair`` on [1,2]; ``solo`` on node 3
only. Node 3 stops: the tools list exactly the partitions it was a replica of (``urp``-0
and -1 under-replicated, ``solo``-0 without a leader); back, nothing is listed. Node 1 stops:
its leaderships move to node 2, and a preferred election of a partition whose preferred leader is
down fails (exit 1, PREFERRED_LEADER_NOT_AVAILABLE). Node 1 back in the ISRs (automatic leader
rebalance off), a preferred election of every partition moves ``urp``-0 and ``pair``-0 back to node 1
and says so; of a partition already led by its preferred leader, that it was already elected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import reference_kafka
from cluster_fixture import FAST_SESSIONS
from waiting import wait_until
from wire import Wire

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_topics import CreateTopicsRequest
from tests.cluster.both_clusters import KafkaNodes, KbrokerNodes, started

# the preferred leaders stay put unless the tool asks: no automatic rebalance
SETTINGS = dict(FAST_SESSIONS, **{"auto.leader.rebalance.enable": "false"})
ASSIGNMENTS = {"urp": [[1, 2, 3], [2, 1, 3]], "pair": [[1, 2]], "solo": [[3]]}
Partition = tuple[str, int]


@pytest.fixture(params=["kbroker", "kafka"])
def nodes(request, tmp_path) -> Iterator[KbrokerNodes | KafkaNodes]:
    yield from started(request.param, tmp_path, SETTINGS)


def topics_tool(bootstrap: str, *args: str):
    return reference_kafka.run_tool("org.apache.kafka.tools.TopicCommand", ["--bootstrap-server", bootstrap, *args])


def election_tool(bootstrap: str, *args: str):
    return reference_kafka.run_tool("org.apache.kafka.tools.LeaderElectionCommand",
                                    ["--bootstrap-server", bootstrap, *args])


def described(stdout: str) -> dict[Partition, dict[str, str]]:
    """The partition lines of ``kafka-topics --describe`` ("\\tTopic: t\\tPartition: 0\\tLeader: 1..."),
    by (topic, partition): field -> value."""
    out: dict[Partition, dict[str, str]] = {}
    for line in stdout.splitlines():
        if not line.startswith("\t"):
            continue
        fields = dict(f.split(": ", 1) if ": " in f else (f.rstrip(":"), "") for f in line.strip("\t").split("\t"))
        out[(fields["Topic"], int(fields["Partition"]))] = fields
    return out


def describe(bootstrap: str, *args: str) -> dict[Partition, dict[str, str]]:
    res = topics_tool(bootstrap, "--describe", *args)
    assert res.returncode == 0, res.stdout + res.stderr
    return described(res.stdout)


def leader_isr(bootstrap: str) -> dict[Partition, tuple[int, set[int]]]:
    """(leader, ISR) of the test's partitions, from Metadata asked of the node at ``bootstrap``
    (a wire request: waiting on the tool would start a JVM a poll)."""
    w = Wire(bootstrap, timeout=10)
    try:
        resp = w.call(3, 12, topics=None, allow_auto_topic_creation=False)
    finally:
        w.close()
    return {(t.name, p.partition_index): (p.leader_id, set(p.isr_nodes))
            for t in resp.topics if t.name in ASSIGNMENTS for p in t.partitions}


def create_topics(bootstrap: str) -> None:
    C = CreateTopicsRequest
    w = Wire(bootstrap, timeout=30)
    try:
        resp = w.call(C(topics=[C.CreatableTopic(
            name=name, num_partitions=-1, replication_factor=-1, configs=[],
            assignments=[C.CreatableTopic.CreatableReplicaAssignment(partition_index=i, broker_ids=r)
                         for i, r in enumerate(replicas)]) for name, replicas in ASSIGNMENTS.items()],
            timeout_ms=20000), 7)
    finally:
        w.close()
    assert [(t.name, t.error_code) for t in resp.topics] == [(n, ErrorCode.NONE) for n in ASSIGNMENTS]


def elected(stdout: str, prefix: str) -> set[str]:
    """The partitions a LeaderElectionCommand output line starting with ``prefix`` names."""
    for line in stdout.splitlines():
        if line.startswith(prefix):
            return set(line[len(prefix):].strip().split(", "))
    return set()


def test_under_replicated_unavailable_and_preferred_election(nodes):
    bootstrap = nodes.bootstrap([1, 2, 3])
    create_topics(bootstrap)
    healthy = {("urp", 0): (1, {1, 2, 3}), ("urp", 1): (2, {1, 2, 3}), ("pair", 0): (1, {1, 2}),
               ("solo", 0): (3, {3})}

    def settled(bootstrap: str, want: dict[Partition, tuple[int, set[int]]]) -> None:
        """Wait until every node of ``bootstrap`` sees the leader and the ISR in ``want`` for every
        partition (the tools may ask any of them)."""
        each = bootstrap.split(",")
        wait_until(lambda: all(leader_isr(b) == want for b in each), 120, 0.1, f"leaders and ISRs {want}",
                   lambda: ([leader_isr(b) for b in each], nodes.logs()))

    settled(bootstrap, healthy)

    # node 3 stops: urp-0 and urp-1 lose a follower, solo-0 its only replica
    nodes.kill(3)
    survivors = nodes.bootstrap([1, 2])
    settled(survivors, {("urp", 0): (1, {1, 2}), ("urp", 1): (2, {1, 2}), ("pair", 0): (1, {1, 2}),
                        ("solo", 0): (-1, set())})
    under = describe(survivors, "--under-replicated-partitions")
    unavailable = describe(survivors, "--unavailable-partitions")
    urp = {k: (v["Leader"], v["Replicas"], v["Isr"]) for k, v in under.items() if k[0] != "solo"}
    assert urp == {("urp", 0): ("1", "1,2,3", "1,2"), ("urp", 1): ("2", "2,1,3", "2,1")}, under
    assert set(unavailable) == {("solo", 0)}, unavailable
    assert unavailable[("solo", 0)]["Leader"] == "none" and unavailable[("solo", 0)]["Replicas"] == "3"
    # solo-0 too is under-replicated (leaderless, KIP-966: node 3 leaves the ISR for the ELR)
    assert set(under) == {("urp", 0), ("urp", 1), ("solo", 0)}, under

    nodes.restart(3)
    settled(bootstrap, healthy)
    # all in sync again: nothing listed
    assert describe(bootstrap, "--under-replicated-partitions") == {}
    assert describe(bootstrap, "--unavailable-partitions") == {}

    # node 1 stops: urp-0 and pair-0 move to node 2, which a preferred election cannot undo yet
    nodes.kill(1)
    others = nodes.bootstrap([2, 3])
    moved = {("urp", 0): (2, {2, 3}), ("urp", 1): (2, {2, 3}), ("pair", 0): (2, {2}), ("solo", 0): (3, {3})}
    settled(others, moved)
    res = election_tool(others, "--election-type", "PREFERRED", "--topic", "urp", "--partition", "0")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Error completing leader election (PREFERRED) for partition: urp-0: " \
           "org.apache.kafka.common.errors.PreferredLeaderNotAvailableException" in res.stdout, res.stdout
    assert "1 replica(s) could not be elected" in res.stdout + res.stderr, res.stdout + res.stderr

    nodes.restart(1)
    settled(bootstrap, {("urp", 0): (2, {1, 2, 3}), ("urp", 1): (2, {1, 2, 3}), ("pair", 0): (2, {1, 2}),
                        ("solo", 0): (3, {3})})
    res = election_tool(bootstrap, "--election-type", "PREFERRED", "--all-topic-partitions")
    assert res.returncode == 0, res.stdout + res.stderr
    assert elected(res.stdout, "Successfully completed leader election (PREFERRED) for partitions ") == \
        {"urp-0", "pair-0"}, res.stdout
    assert "Error" not in res.stdout + res.stderr
    settled(bootstrap, {("urp", 0): (1, {1, 2, 3}), ("urp", 1): (2, {1, 2, 3}), ("pair", 0): (1, {1, 2}),
                        ("solo", 0): (3, {3})})
    assert {k: v["Leader"] for k, v in describe(bootstrap, "--topic", "urp|pair|solo").items()} == \
        {("urp", 0): "1", ("urp", 1): "2", ("pair", 0): "1", ("solo", 0): "3"}
    res = election_tool(bootstrap, "--election-type", "PREFERRED", "--topic", "urp", "--partition", "1")
    assert res.returncode == 0 and res.stdout.strip() == "Valid replica already elected for partitions urp-1", \
        res.stdout + res.stderr
    res = election_tool(bootstrap, "--election-type", "PREFERRED", "--all-topic-partitions")
    assert res.returncode == 0 and res.stdout.strip() == "", res.stdout + res.stderr
