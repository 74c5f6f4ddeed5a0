"""The web console against a three-node kbroker cluster (issue 21: "works against a single node and
a cluster"), through the HTTP API of a node that is not the active controller, leads none of the
partitions the test writes and reads, and does not coordinate the consumer group: an RF=3 topic
created there, records produced to and browsed from partitions led by the other nodes, a group's
lag computed from its coordinator's committed offsets and the leaders' end offsets, and the
overview naming every broker, the active controller and the quorum's voters."""

from __future__ import annotations

import json

from cluster_fixture import FAST_SESSIONS, Cluster
from waiting import wait_until

from kbroker_protocol.errors import ErrorCode
from tests.cluster.quorum_helpers import agreed_leader, metadata
from tests.console.helpers import call, consume_and_commit, get, post

TOPIC = "console-rf3"
# the console on every node's HTTP listener (port 0: chosen free); a small offsets topic
SETTINGS = {"kbroker.http.listeners": "http://127.0.0.1:0", "offsets.topic.num.partitions": "3"}


def coordinator_of(cluster: Cluster, node: int, group: str) -> int | None:
    """The group's coordinator as ``node`` names it (None while it cannot tell yet)."""
    w = cluster.wire(node)
    try:
        resp = w.call(10, 4, key_type=0, coordinator_keys=[group])
    finally:
        w.sock.close()
    c = resp.coordinators[0]
    return c.node_id if c.error_code == ErrorCode.NONE else None


def test_the_console_of_one_node_shows_and_drives_the_whole_cluster(tmp_path):
    cluster = Cluster(tmp_path / "cluster", 3, SETTINGS)
    try:
        cluster.start()
        nodes = cluster.node_ids
        active = wait_until(lambda: agreed_leader(cluster), 30, 0.1, "the active controller", cluster.logs)
        # the console's node: not the active controller (its topic creation and DescribeQuorum
        # are forwarded)
        node = next(n for n in nodes if n != active)
        base = wait_until(lambda: cluster.http_url(node), 30, 0.05, f"node {node}'s HTTP listener", cluster.logs)

        created = post(base, "/api/topics", {"name": TOPIC, "partitions": 3, "replication_factor": 3})
        assert created == {"name": TOPIC, "partitions": 3, "replication_factor": 3}

        def described():
            status, t, _ = call(base + f"/api/topics/{TOPIC}")
            if status != 200 or len(t["partitions"]) != 3:
                return None
            full = all(sorted(p["replicas"]) == nodes and sorted(p["isr"]) == nodes and p["leader"] in nodes
                       for p in t["partitions"])
            return t if full else None

        t = wait_until(described, 60, 0.1, "the topic with three in-sync replicas a partition", cluster.logs)
        leaders = {p["partition"]: p["leader"] for p in t["partitions"]}
        # the console's view is the cluster's: the same leaders as another node's Metadata (once that
        # node applied the creation too: each node in its own time)
        def leaders_of_active() -> dict[int, int] | None:
            md = next((x for x in metadata(cluster, active).topics if x.name == TOPIC), None)
            return None if md is None else {p.partition_index: p.leader_id for p in md.partitions}

        wait_until(lambda: leaders_of_active() == leaders, 30, 0.05, f"the leaders {leaders} on node {active}",
                   leaders_of_active)
        # the controller spreads the leaders (Kafka's placement: one per broker here)
        assert sorted(leaders.values()) == nodes
        remote = sorted(p for p, leader in leaders.items() if leader != node)
        assert len(remote) == 2

        # produce through the console to partitions the other nodes lead, then browse them
        sent: dict[int, list[str]] = {p: [] for p in remote}
        for p in remote:
            for i in range(3):
                value = json.dumps({"partition": p, "n": i})
                r = post(base, f"/api/topics/{TOPIC}/produce",
                         {"partition": p, "key": f"k{p}-{i}", "value": value,
                          "headers": [{"key": "from", "value": f"node-{node}"}]})
                assert r == {"topic": TOPIC, "partition": p, "offset": i}
                sent[p].append(value)
        for p in remote:
            rows = get(base, f"/api/topics/{TOPIC}/messages?partition={p}")["records"]
            assert [r["offset"] for r in rows] == [2, 1, 0]  # newest first
            assert [r["value"]["text"] for r in rows] == sent[p][::-1]
            assert all(r["value"]["kind"] == "json" for r in rows)
            assert [r["key"]["text"] for r in rows] == [f"k{p}-{i}" for i in (2, 1, 0)]
            assert all(r["headers"] == [{"key": "from", "value": {"kind": "text", "text": f"node-{node}", "size": 6,
                                                                  "truncated": False}}] for r in rows)
        every = get(base, f"/api/topics/{TOPIC}/messages")["records"]
        assert sorted((r["partition"], r["offset"]) for r in every) == [(p, i) for p in remote for i in range(3)]
        offsets = {p["partition"]: (p["start_offset"], p["end_offset"]) for p in
                   get(base, f"/api/topics/{TOPIC}")["partitions"]}
        assert offsets == {p: (0, 3 if p in remote else 0) for p in range(3)}
        listed = {x["name"]: x for x in get(base, "/api/topics")["topics"]}
        assert (listed[TOPIC]["partitions"], listed[TOPIC]["replication_factor"], listed[TOPIC]["messages"],
                listed[TOPIC]["under_replicated"]) == (3, 3, 6, 0)

        # a consumer group coordinated by another node: its lag through this node's console
        group = None
        for i in range(30):
            candidate = f"console-group-{i}"
            coordinator = wait_until(lambda c=candidate: coordinator_of(cluster, node, c), 60, 0.1,
                                     f"the coordinator of {candidate}", cluster.logs)
            if coordinator != node:
                group = candidate
                break
        assert group is not None, "every group coordinated by the console's node"
        consume_and_commit(cluster.bootstrap(), group, TOPIC, 6)
        behind = remote[0]
        for i in range(4):
            post(base, f"/api/topics/{TOPIC}/produce", {"partition": behind, "value": f"later-{i}"})

        groups = {g["group_id"]: g for g in get(base, "/api/groups")["groups"]}
        assert groups[group]["state"] == "Empty" and groups[group]["protocol_type"] == "consumer"
        g = get(base, f"/api/groups/{group}")
        assert g["state"] == "Empty" and g["members"] == []
        assert sorted((r["topic"], r["partition"], r["committed"], r["end_offset"], r["lag"]) for r in g["offsets"]) \
            == [(TOPIC, p, 3, 7 if p == behind else 3, 4 if p == behind else 0) for p in remote]
        assert g["total_lag"] == 4
        post(base, f"/api/groups/{group}/reset-offsets", {"to": "earliest", "topic": TOPIC})
        assert get(base, f"/api/groups/{group}")["total_lag"] == 10

        # the overview: every broker, the active controller, the quorum's three voters
        o = get(base, "/api/overview")
        assert [(b["id"], b["port"]) for b in o["brokers"]] == [(n, cluster.layout.ports[n][0]) for n in nodes]
        assert o["controller_id"] == active
        assert o["node_id"] == node
        q = o["quorum"]
        assert q["leader_id"] == active and q["high_watermark"] > 0
        assert sorted((r["id"], r["role"]) for r in q["replicas"]) == \
            [(n, "leader" if n == active else "voter") for n in nodes]
        assert (o["partitions"] - 3, o["offline_partitions"], o["under_replicated_partitions"]) == (3, 0, 0)
    finally:
        cluster.kill_all()


def test_the_console_shows_a_cluster_with_a_node_down(tmp_path):
    """A node stopped: the console of another shows the live brokers, the partition left without a
    leader (offline, its offsets unknown), and keeps serving the rest of the topic: its records,
    its tail, produce to its live partitions, a group's lag on them. What needs the offline
    partition (reading it alone, producing to it, resetting a group's offsets on it) is refused
    with LEADER_NOT_AVAILABLE, changing nothing."""
    cluster = Cluster(tmp_path / "cluster", 3, dict(SETTINGS, **FAST_SESSIONS))
    try:
        cluster.start()
        nodes = cluster.node_ids
        active = wait_until(lambda: agreed_leader(cluster), 30, 0.1, "the active controller", cluster.logs)
        node = next(n for n in nodes if n != active)
        victim = next(n for n in nodes if n not in (active, node))
        base = wait_until(lambda: cluster.http_url(node), 30, 0.05, f"node {node}'s HTTP listener", cluster.logs)
        topic = "solo-replicas"
        post(base, "/api/topics", {"name": topic, "partitions": 3, "replication_factor": 1})

        def leaders() -> dict[int, int] | None:
            status, t, _ = call(base + f"/api/topics/{topic}")
            if status != 200:
                return None
            found = {p["partition"]: p["leader"] for p in t["partitions"]}
            return found if sorted(found.values()) == nodes else None

        led = wait_until(leaders, 60, 0.1, "a leader a partition", cluster.logs)
        lost = next(p for p, leader in led.items() if leader == victim)
        live = sorted(p for p in led if p != lost)
        for p in led:
            post(base, f"/api/topics/{topic}/produce", {"partition": p, "value": f"v{p}"})
        group = "down-group"
        consume_and_commit(cluster.bootstrap(), group, topic, 3)

        cluster.kill(victim)

        def fenced():
            o = get(base, "/api/overview")
            return o if [b["id"] for b in o["brokers"]] == [n for n in nodes if n != victim] else None

        o = wait_until(fenced, 60, 0.1, f"node {victim} fenced", cluster.logs)
        assert o["offline_partitions"] == 1
        assert o["controller_id"] == active and o["quorum"]["leader_id"] == active

        t = get(base, f"/api/topics/{topic}")
        rows = {p["partition"]: (p["leader"], p["start_offset"], p["end_offset"]) for p in t["partitions"]}
        assert rows == {p: (-1, None, None) if p == lost else (led[p], 0, 1) for p in led}
        listed = {x["name"]: x for x in get(base, "/api/topics")["topics"]}[topic]
        assert (listed["messages"], listed["under_replicated"]) == (2, 1)

        got = get(base, f"/api/topics/{topic}/messages")
        assert sorted((r["partition"], r["value"]["text"]) for r in got["records"]) == [(p, f"v{p}") for p in live]
        assert got["unavailable"] == [lost]
        status, data, _ = call(base + f"/api/topics/{topic}/messages?partition={lost}")
        assert status == 400 and data["code"] == "LEADER_NOT_AVAILABLE", data
        positions = ",".join(f"{p}:1" for p in led)
        tailed = get(base, f"/api/topics/{topic}/tail?positions={positions}&wait_ms=0")
        assert tailed["records"] == [] and tailed["positions"] == {str(p): 1 for p in led}

        status, data, _ = call(base + f"/api/topics/{topic}/produce", "POST", {"partition": lost, "value": "x"})
        assert status == 400 and data["code"] == "LEADER_NOT_AVAILABLE", data
        for _ in range(4):  # no partition given: a live one
            assert post(base, f"/api/topics/{topic}/produce", {"value": "any"})["partition"] in live

        g = get(base, f"/api/groups/{group}")
        lag = {r["partition"]: (r["committed"], r["end_offset"], r["lag"]) for r in g["offsets"]}
        assert lag[lost] == (1, None, None)
        assert sum(lag[p][2] for p in live) == g["total_lag"] == 4
        # a reset needs every partition's offsets: refused, nothing committed
        status, data, _ = call(base + f"/api/groups/{group}/reset-offsets", "POST", {"to": "earliest", "topic": topic})
        assert status == 400 and data["code"] == "LEADER_NOT_AVAILABLE", data
        assert {r["partition"]: r["committed"] for r in get(base, f"/api/groups/{group}")["offsets"]} == \
            {p: 1 for p in led}

        cluster.start_node(victim)
        wait_until(lambda: leaders() == led, 60, 0.1, f"partition {lost} led by node {victim} again", cluster.logs)
        assert get(base, "/api/overview")["offline_partitions"] == 0
    finally:
        cluster.kill_all()
