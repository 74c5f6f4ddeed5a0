"""Share-group helpers for cluster tests: the queue topic's partition, leader and share coordinator
as a node tells them, and a consuming loop that ACCEPTs what each client is given."""

from __future__ import annotations

import base64

from cluster_fixture import Cluster
from share_wire import ACCEPT, ShareClient, offsets_of
from waiting import wait_until

from kbroker_protocol.errors import ErrorCode
from tests.cluster.quorum_helpers import metadata

E = ErrorCode
TOPIC = "queue"


def _partition(cluster: Cluster, node: int):
    try:
        md = metadata(cluster, node)
    except OSError:
        return None
    for t in md.topics:
        if t.name == TOPIC and t.error_code == E.NONE and t.partitions:
            return t.topic_id, t.partitions[0]
    return None


def _full_isr_leader(cluster: Cluster, node: int, live: list[int] | None = None):
    found = _partition(cluster, node)
    if found is None:
        return None
    tid, p = found
    live = live or cluster.node_ids
    if p.leader_id in live and set(live) <= set(p.isr_nodes):
        return tid, p.leader_id
    return None


def _coordinator(cluster: Cluster, node: int, key_type: int, key: str) -> int | None:
    try:
        w = cluster.wire(node)
    except OSError:
        return None
    try:
        resp = w.call(10, 6, key_type=key_type, coordinator_keys=[key])
    finally:
        w.close()
    c = resp.coordinators[0]
    return c.node_id if c.error_code == E.NONE else None


def _kafka_uuid(tid) -> str:
    return base64.urlsafe_b64encode(tid.bytes).decode().rstrip("=")


trace: list = []


def _consume(clients: list[ShareClient], tid, want: int, delivered: dict[int, int], counts: list[int]) -> None:
    """Fetch from each client in turn (3 records at most each time), ACCEPT what it got, until
    ``want`` records were delivered in all; ``delivered`` maps offset -> how often."""
    turn = 0
    trace.clear()

    def step() -> bool:
        nonlocal turn
        i = turn % len(clients)
        c = clients[i]
        turn += 1
        resp = c.fetch(tid, max_records=3, max_wait_ms=200)
        assert resp.error_code == E.NONE, resp
        got: list[int] = []
        for t in resp.responses:
            for p in t.partitions:
                assert p.error_code in (E.NONE, E.COORDINATOR_NOT_AVAILABLE), p
                assert offsets_of(p.records)[:1] == [a.first_offset for a in p.acquired_records][:1], p
                for a in p.acquired_records:
                    got += range(a.first_offset, a.last_offset + 1)
                    counts.append(a.delivery_count)
        trace.append((i, got, [(a.first_offset, a.last_offset, a.delivery_count) for t in resp.responses
                               for p in t.partitions for a in p.acquired_records]))
        for o in got:
            delivered[o] = delivered.get(o, 0) + 1
        if got:
            ack = c.ack(tid, [(min(got), max(got), [ACCEPT])])
            assert ack.error_code == E.NONE, ack
            codes = [p.error_code for t in ack.responses for p in t.partitions]
            assert codes == [E.NONE], ack
        return len(delivered) >= want

    wait_until(step, 60, 0, f"{want} records delivered")
