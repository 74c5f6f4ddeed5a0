"""Random histories of produces, stopped followers, broker restarts and leader elections on three
brokers: no record acknowledged with acks=all is ever lost or changed, and the replicas converge
to the same bytes (Kafka's guarantees for an ISR election)."""

from __future__ import annotations

import random

import pytest

from kbroker_protocol.errors import ErrorCode
from tests.replication.harness import Cluster, batch, produce, wait_for

E = ErrorCode
NODES = (1, 2, 3)


def _leader(cluster: Cluster) -> int:
    return cluster.reference_image().partition("t", 0).leader


def _isr(cluster: Cluster) -> list[int]:
    return list(cluster.reference_image().partition("t", 0).isr)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_acknowledged_records_survive_random_failures_and_elections(seed):
    rng = random.Random(seed)
    config = {"replica.lag.time.max.ms": "400", "min.insync.replicas": "2"}
    async with Cluster(3, config=config) as cluster:
        cluster.create_topic("t", [[1, 2, 3]])
        acked: dict[int, bytes] = {}  # offset -> value, acknowledged with acks=all
        blocked: dict[int, tuple[int, int]] = {}  # follower -> (leader it is blocked on, rule)
        stopped: set[int] = set()
        for step in range(40):
            leader = _leader(cluster)
            op = rng.choice(["produce", "produce", "produce", "block", "unblock", "elect", "restart"])
            if op == "produce" and leader not in stopped:
                conn = await cluster.connect(leader)
                try:
                    value = b"s%d-%d" % (seed, step)
                    resp = await produce(conn, "t", batch([value]), acks=-1, timeout_ms=1000)
                finally:
                    conn.close()
                part = resp.responses[0].partition_responses[0]
                if part.error_code == E.NONE:
                    assert part.base_offset not in acked
                    acked[part.base_offset] = value
                else:
                    assert part.error_code in (E.REQUEST_TIMED_OUT, E.NOT_ENOUGH_REPLICAS,
                                               E.NOT_ENOUGH_REPLICAS_AFTER_APPEND, E.NOT_LEADER_OR_FOLLOWER)
            elif op == "block":
                followers = [n for n in NODES if n != leader and n not in blocked and n not in stopped]
                if followers and leader not in stopped:
                    f = rng.choice(followers)
                    rule = cluster.nodes[leader].add_fault(api="Fetch", client_id=f"broker-{f}-fetcher-0",
                                                           error="NOT_LEADER_OR_FOLLOWER")
                    blocked[f] = (leader, rule)
            elif op == "unblock" and blocked:
                f = rng.choice(sorted(blocked))
                on, rule = blocked.pop(f)
                if on in cluster.nodes:
                    cluster.nodes[on].remove_fault(rule)
            elif op == "elect":
                # The controller elects from the ISR (running brokers only) and drops stopped ones.
                isr = [n for n in _isr(cluster) if n not in stopped]
                candidates = [n for n in isr if n != leader]
                if candidates:
                    cluster.change("t", 0, leader=rng.choice(candidates), isr=isr)
            elif op == "restart":
                node = rng.choice(NODES)
                if node in stopped:
                    await cluster.start(node)
                    stopped.discard(node)
                elif len(stopped) == 0 and node != leader:
                    for f, (on, _rule) in list(blocked.items()):
                        if on == node:
                            del blocked[f]  # its fault rules go with it
                    await cluster.stop(node)
                    stopped.add(node)
                    cluster.change("t", 0, isr=[n for n in _isr(cluster) if n != node] or None)
        # Heal: every broker up, no fault, and wait until the replicas agree.
        for node in sorted(stopped):
            await cluster.start(node)
        for embedded in cluster.nodes.values():
            embedded.clear_faults()
        leader = _leader(cluster)
        await wait_for(lambda: all(cluster.partition(n, "t").log.log_end_offset
                                   == cluster.partition(leader, "t").log.log_end_offset for n in NODES)
                       and len({cluster.log_bytes(n, "t") for n in NODES}) == 1,
                       message="the replicas converged",
                       details=lambda: [cluster.partition(n, "t").log.log_end_offset for n in NODES])
        for node in NODES:
            stored = {}
            for header, data in cluster.partition(node, "t").log.iter_batches():
                stored[header.base_offset] = data
            for offset, value in acked.items():
                assert offset in stored and value in stored[offset], (node, offset)
