"""Producer-id blocks (AllocateProducerIds) stay unique across a controller failover.

Three combined nodes; every broker hands out idempotent producer ids (InitProducerId with a null
transactional id) from blocks of ``PRODUCER_ID_BLOCK_SIZE`` (Kafka's 1000) that the active
controller reserves in the metadata log. Each broker hands out more than a block's worth before the
active controller is killed (-9), and every broker keeps asking meanwhile; the survivors hand out
more after the kill than their block in use and the prefetched one hold (so each asks the new
controller for a block), and the killed node, restarted from its disk, hands out ids again (what
was left of its block before the crash must not come back). Every id must be distinct, each block
serves one broker only, and the blocks the new controller reserves lie above every id handed out
before the kill.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from waiting import wait_until

from kbroker.controller.quorum import PRODUCER_ID_BLOCK_SIZE
from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest
from tests.cluster.quorum_helpers import E, agreed_leader

PIPELINE = 50  # requests in flight on one connection
ENOUGH = PRODUCER_ID_BLOCK_SIZE + PRODUCER_ID_BLOCK_SIZE // 5  # more than one block per broker
# more than the block in use at the kill and the next one (prefetched at 90%) can hold
AFTER = 2 * PRODUCER_ID_BLOCK_SIZE + PRODUCER_ID_BLOCK_SIZE // 5


def init_producer_ids(cluster, node_id: int, count: int) -> list[int]:
    """``count`` InitProducerId (v4, idempotent) answers from ``node_id``, pipelined; the ids of the
    successful ones (COORDINATOR_LOAD_IN_PROGRESS and the like while the controller moves are left out)."""
    w = cluster.wire(node_id)
    try:
        for _ in range(count):
            w.send(InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000), 4)
        answers = [w.receive() for _ in range(count)]
    finally:
        w.sock.close()
    for a in answers:
        assert a.error_code in (E.NONE, E.COORDINATOR_LOAD_IN_PROGRESS, E.NOT_CONTROLLER,
                                E.REQUEST_TIMED_OUT), a
        if a.error_code == E.NONE:
            assert a.producer_epoch == 0 and a.producer_id >= 0, a
    return [a.producer_id for a in answers if a.error_code == E.NONE]


def test_producer_id_blocks_unique_across_controller_failover(fast_cluster):
    # fast sessions: the killed node's restart registers once its previous session expires (3 s)
    cluster = fast_cluster
    leader = wait_until(lambda: agreed_leader(cluster), 30, 0.05, "a leader", cluster.logs)
    ids: dict[tuple[str, int], list[int]] = defaultdict(list)  # (phase, broker) -> ids in order
    lock = threading.Lock()
    stop = threading.Event()
    phase = ["before"]
    errors: list[BaseException] = []

    def producer(node_id: int) -> None:
        while not stop.is_set():
            current = phase[0]
            if current == "after" and node_id == leader:
                return  # killed
            try:
                got = init_producer_ids(cluster, node_id, PIPELINE)
            except OSError:
                if phase[0] != current:
                    continue  # the connection died with the killed node: sent before the kill
                raise
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:  # a batch the kill came in the middle of belongs to neither side
                ids[(current if phase[0] == current else "straddle", node_id)].extend(got)

    def count(current: str, node_id: int) -> int:
        with lock:
            return len(ids[(current, node_id)])

    threads = [threading.Thread(target=producer, args=(n,)) for n in cluster.node_ids]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: errors or all(count("before", n) >= ENOUGH for n in cluster.node_ids), 60, 0.05,
                   "ids from every broker before the kill", cluster.logs)
        with lock:
            phase[0] = "after"  # a batch answered from now on was sent after the kill began
        cluster.kill(leader)
        survivors = [n for n in cluster.node_ids if n != leader]
        wait_until(lambda: errors or all(count("after", n) >= AFTER for n in survivors), 60, 0.05,
                   "ids from the surviving brokers after the kill", cluster.logs)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    new_leader = wait_until(lambda: agreed_leader(cluster, survivors), 30, 0.05, "a new leader", cluster.logs)
    assert new_leader != leader
    # the killed node back from its disk: a fresh block from the new controller, not its old one
    cluster.start_node(leader)
    restarted: list[int] = []
    wait_until(lambda: restarted.extend(init_producer_ids(cluster, leader, PIPELINE)) or len(restarted) >= PIPELINE,
               60, 0, "ids from the restarted broker", cluster.logs)
    ids[("after", leader)] = restarted

    every = [pid for got in ids.values() for pid in got]
    assert len(every) == len(set(every)), "a producer id handed out twice"
    owner: dict[int, int] = {}  # block -> the broker using it
    for (_, node_id), got in ids.items():
        for pid in got:
            assert owner.setdefault(pid // PRODUCER_ID_BLOCK_SIZE, node_id) == node_id, \
                f"block of {pid} used by brokers {owner[pid // PRODUCER_ID_BLOCK_SIZE]} and {node_id}"
    highest_before = max(pid for (p, _), got in ids.items() if p == "before" for pid in got)
    for node_id in cluster.node_ids:
        before = ids[("before", node_id)] + ids[("straddle", node_id)]
        after = ids[("after", node_id)]
        assert len({pid // PRODUCER_ID_BLOCK_SIZE for pid in before}) >= 2, f"broker {node_id} used one block"
        # a broker's blocks come in the order the controllers reserved them
        assert min(after) > max(before), (node_id, max(before), min(after))
        # more ids after the kill than the block in use and the one prefetched hold: the last block
        # came from the new controller, above every id handed out before the kill
        assert max(after) > highest_before, (node_id, max(after), highest_before)
    # the restarted broker dropped what was left of its block from before the crash: its first
    # block is the new controller's
    assert min(restarted) > highest_before, (min(restarted), highest_before)
