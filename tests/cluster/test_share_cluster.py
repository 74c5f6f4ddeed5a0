"""Share groups (KIP-932) on three kbroker processes: the share partition's leader is not the share
coordinator of its state (the leader of its ``__share_group_state`` partition), so its state is
read, initialized and written there (Read/Initialize/WriteShareGroupState between brokers). Two
members of a share group each get records once; their acknowledgements survive a kill -9 and
restart of the partition leader: whoever leads the partition next delivers only the rest, each
record once; then a kill -9 of the share coordinator: the next leader of the state partition
loads what its predecessor wrote, acknowledgements keep being written there and the rest is
delivered once."""

from __future__ import annotations

from share_wire import ShareClient, heartbeat
from waiting import wait_until
from wire import produce

from kbroker_protocol.errors import ErrorCode
from tests.cluster.quorum_helpers import create_topic
from tests.cluster.share_helpers import TOPIC, _consume, _coordinator, _full_isr_leader, _kafka_uuid, trace

E = ErrorCode
RECORDS = 20


def test_share_group_state_on_another_broker_survives_partition_leader_restart(fast_cluster):
    cluster = fast_cluster
    nodes = cluster.node_ids
    wait_until(lambda: create_topic(cluster, nodes[0], TOPIC) in (E.NONE, E.TOPIC_ALREADY_EXISTS), 30, 0.1,
               "topic creation", cluster.logs)
    tid, leader = wait_until(lambda: _full_isr_leader(cluster, nodes[0]), 30, 0.05, "a leader with a full ISR",
                             cluster.logs)
    # A group whose share coordinator (for this partition) and group coordinator are not the leader.
    group = share_node = group_node = None
    for i in range(60):
        g = f"queue-group-{i}"
        share_node = wait_until(lambda g=g: _coordinator(cluster, leader, 2, f"{g}:{_kafka_uuid(tid)}:0"), 30, 0.1,
                                "a share coordinator", cluster.logs)
        group_node = wait_until(lambda g=g: _coordinator(cluster, leader, 0, g), 30, 0.1, "a group coordinator",
                                cluster.logs)
        if len({share_node, group_node, leader}) == 3:
            group = g
            break
    assert group is not None

    gw = cluster.wire(group_node)
    clients = [ShareClient(cluster.wire(leader), group) for _ in range(2)]
    for c in clients:
        # COORDINATOR_NOT_AVAILABLE while the group coordinator loads its partition: a client retries.
        hb = wait_until(lambda c=c: (r := heartbeat(gw, group, c.member, 0, [TOPIC])).error_code not in (
            E.COORDINATOR_NOT_AVAILABLE, E.COORDINATOR_LOAD_IN_PROGRESS) and r, 30, 0.1, "a share group join",
                        cluster.logs)
        assert hb.error_code == E.NONE, hb
    # The first fetches initialize the share partition at the end of the log (auto.offset.reset=latest).
    for c in clients:
        resp = c.fetch(tid, max_wait_ms=0)
        assert resp.error_code == E.NONE and all(p.error_code == E.NONE for t in resp.responses
                                                 for p in t.partitions), resp
    w = cluster.wire(leader)
    for _ in range(RECORDS):
        produce(w, TOPIC, 0, 1)
    w.close()

    delivered: dict[int, int] = {}
    counts: list[int] = []
    _consume(clients, tid, RECORDS // 2, delivered, counts)
    first = set(delivered)
    assert all(v == 1 for v in delivered.values()) and set(counts) == {1}, trace
    for c in clients:
        c.wire.close()

    cluster.kill(leader)
    cluster.start_node(leader)
    tid2, new_leader = wait_until(lambda: _full_isr_leader(cluster, share_node), 60, 0.05,
                                  "the partition led again with a full ISR", cluster.logs)
    assert tid2 == tid
    clients = [ShareClient(cluster.wire(new_leader), group, member=c.member) for c in clients]
    counts.clear()
    _consume(clients, tid, RECORDS, delivered, counts)
    assert sorted(delivered) == list(range(RECORDS))
    assert all(v == 1 for v in delivered.values()), delivered
    assert set(counts) == {1}, counts  # nothing acknowledged before the restart came again
    assert len(first) >= RECORDS // 2

    # The share coordinator goes: the state partition's next leader loads its log.
    for c in clients:
        c.wire.close()
    key = f"{group}:{_kafka_uuid(tid)}:0"
    share_node = wait_until(lambda: _coordinator(cluster, group_node, 2, key), 30, 0.1, "the share coordinator")
    cluster.kill(share_node)
    live = [n for n in nodes if n != share_node]
    wait_until(lambda: _coordinator(cluster, group_node, 2, key) in live, 60, 0.1, "a new share coordinator",
               cluster.logs)
    _tid, leader = wait_until(lambda: _full_isr_leader(cluster, group_node, live), 60, 0.05,
                              "the partition led by a live node", cluster.logs)
    w = cluster.wire(leader)
    for _ in range(RECORDS):
        produce(w, TOPIC, 0, 1)
    w.close()
    clients = [ShareClient(cluster.wire(leader), group, member=c.member) for c in clients]
    counts.clear()
    _consume(clients, tid, 2 * RECORDS, delivered, counts)  # every acknowledgement written (asserted there)
    assert sorted(delivered) == list(range(2 * RECORDS))
    assert all(v == 1 for v in delivered.values()) and set(counts) == {1}, (delivered, counts)
