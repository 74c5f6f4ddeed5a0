"""The transaction coordinator sends its markers to each leader independently, as Kafka 4.4's
TransactionMarkerChannelManager: one queue and one sender per destination broker, at most one
WriteTxnMarkers in flight to each, the markers of the transactions queued meanwhile sent together
in the next one; a leader holding its answer holds up only the markers it leads, and the
transaction completes once every leader has written its marker. A NOT_LEADER_OR_FOLLOWER answer
sends that partition's marker to its new leader.

Broker 1 coordinates every transaction (one ``__transaction_state`` partition, on broker 1); the
data partitions are led by the other brokers, so every marker goes by WriteTxnMarkers. The
requests are seen (and held) where every broker-to-broker request goes out: BrokerConnection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from kbroker.coordinator.txn_log import TxnState
from kbroker.replication.broker_connection import BrokerConnection
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.end_txn import EndTxnRequest
from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest
from kbroker_protocol.records import Record, build_batch
from tests.replication.harness import Cluster, wait_for

E = ErrorCode
CONFIG = {"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"}
WRITE_TXN_MARKERS = 27


class MarkerRequests:
    """The WriteTxnMarkers requests the brokers send, by destination node: ``sent`` as they go
    out, ``answered`` with their responses; a node in ``holds`` gets its requests only once the
    event is set; ``before[node]`` runs once before the next request reaches ``node``."""

    def __init__(self, cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cluster = cluster
        self.sent: list[tuple[int, Any]] = []
        self.answered: list[tuple[int, Any]] = []
        self.holds: dict[int, asyncio.Event] = {}
        self.before: dict[int, Callable[[], None]] = {}
        real = BrokerConnection.request

        async def request(conn: BrokerConnection, body: Any, version: int, timeout: float) -> Any:
            if body.API_KEY != WRITE_TXN_MARKERS:
                return await real(conn, body, version, timeout)
            node = self.node_of(conn.port)
            self.sent.append((node, body))
            hold = self.holds.get(node)
            if hold is not None:
                await hold.wait()
            hook = self.before.pop(node, None)
            if hook is not None:
                hook()
            response = await real(conn, body, version, timeout)
            self.answered.append((node, response))
            return response

        monkeypatch.setattr(BrokerConnection, "request", request)

    def node_of(self, port: int) -> int:
        for node in self.cluster.nodes:
            if any(p == port for _name, _host, p in self.cluster.broker(node).advertised_endpoints()):
                return node
        raise AssertionError(f"no broker on port {port}")

    def hold(self, node: int) -> asyncio.Event:
        self.holds[node] = asyncio.Event()
        return self.holds[node]

    def release(self) -> None:
        for event in self.holds.values():
            event.set()

    def to(self, node: int) -> list[Any]:
        return [request for n, request in self.sent if n == node]

    def answers_from(self, node: int) -> list[Any]:
        return [response for n, response in self.answered if n == node]


def _txn_batch(pid: int, epoch: int) -> bytes:
    return build_batch([Record(key=None, value=b"v", timestamp=1_700_000_000_000)], producer_id=pid,
                       producer_epoch=epoch, base_sequence=0, transactional=True)


async def _produce(cluster: Cluster, tid: str, pid: int, epoch: int, topic: str) -> None:
    """One transactional record in ``topic``-0, sent to its leader (Produce v12: the leader has
    the coordinator add the partition)."""
    leader = cluster.reference_image().partition(topic, 0).leader
    conn = await cluster.connect(leader)
    try:
        Req = REQUESTS[0]
        produce = await conn.request(Req(transactional_id=tid, acks=-1, timeout_ms=10000, topic_data=[
            Req.TopicProduceData(name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(
                index=0, records=_txn_batch(pid, epoch))])]), 12, 30)
        assert produce.responses[0].partition_responses[0].error_code == E.NONE
    finally:
        conn.close()


async def _begin(c1: BrokerConnection, cluster: Cluster, tid: str, topics: list[str]) -> tuple[int, int]:
    init = await c1.request(InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=60000), 5, 10)
    assert init.error_code == E.NONE
    for topic in topics:
        await _produce(cluster, tid, init.producer_id, init.producer_epoch, topic)
    return init.producer_id, init.producer_epoch


async def _commit(c1: BrokerConnection, tid: str, pid: int, epoch: int) -> None:
    end = await c1.request(EndTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch,
                                         committed=True), 5, 10)
    # (answered once the PrepareCommit record is written: the markers follow)
    assert (end.error_code, end.producer_epoch) == (E.NONE, epoch + 1)


def _setup(cluster: Cluster, topics: dict[str, list[int]]) -> None:
    cluster.create_topic("__transaction_state", [[1]], configs={"cleanup.policy": "compact"})
    cluster.create_topic("__consumer_offsets", [[1]], configs={"cleanup.policy": "compact"})
    for name, replicas in topics.items():
        cluster.create_topic(name, [replicas])


def _state(cluster: Cluster, tid: str) -> TxnState:
    state: TxnState = cluster.broker(1).txn_coordinator.txns[tid].state
    return state


async def test_a_leader_holding_its_answer_holds_up_only_its_own_markers(monkeypatch: pytest.MonkeyPatch) -> None:
    """"a" led by broker 2, which holds its answer; "b" led by broker 3 and "l" led by the
    coordinator's broker get their markers meanwhile, and the transaction completes only after
    broker 2 answers."""
    async with Cluster(3, CONFIG) as cluster:
        _setup(cluster, {"a": [2], "b": [3], "l": [1]})
        markers = MarkerRequests(cluster, monkeypatch)
        markers.hold(2)
        c1 = await cluster.connect(1)
        try:
            pid, epoch = await _begin(c1, cluster, "tx", ["a", "b", "l"])
            await _commit(c1, "tx", pid, epoch)
            b, local = cluster.partition(3, "b"), cluster.partition(1, "l")
            await wait_for(lambda: b.log.log_end_offset == 2 and local.log.log_end_offset == 2
                           and len(markers.answers_from(3)) == 1,
                           message="b's and l's markers, broker 3's answer, while broker 2 holds its answer")
            assert len(markers.to(2)) == 1 and not markers.answers_from(2)  # in flight, held
            assert cluster.partition(2, "a").log.log_end_offset == 1
            assert _state(cluster, "tx") == TxnState.PREPARE_COMMIT  # not complete: a waits for its marker
            assert cluster.broker(1).txn_coordinator.txns["tx"].partitions == {("a", 0), ("b", 0), ("l", 0)}
            markers.release()
            await wait_for(lambda: _state(cluster, "tx") == TxnState.COMPLETE_COMMIT, message="commit complete")
            assert cluster.partition(2, "a").log.log_end_offset == 2
            assert len(markers.to(2)) == 1 and len(markers.to(3)) == 1  # each marker sent once
        finally:
            markers.release()
            c1.close()


def _fence_markers(broker: Any, producer_id: int) -> None:
    """``broker`` answers INVALID_PRODUCER_EPOCH to the markers of ``producer_id`` (not written)."""
    producer_state = broker.replica_manager.producer_state
    real = producer_state.write_marker_replicated

    async def write(replica_manager: Any, partition: Any, pid: int, *args: Any, **kwargs: Any) -> ErrorCode:
        if pid == producer_id:
            return E.INVALID_PRODUCER_EPOCH
        code: ErrorCode = await real(replica_manager, partition, pid, *args, **kwargs)
        return code

    producer_state.write_marker_replicated = write


def _queued(cluster: Cluster, node: int) -> set[str]:
    """The transactional ids whose markers wait in the coordinator's queue for ``node``."""
    channel = getattr(cluster.broker(1).txn_coordinator, "marker_channel", None)
    return set() if channel is None else {p.txn.transactional_id for p in channel.queued(node)}


async def test_one_request_in_flight_per_leader_the_markers_queued_meanwhile_sent_together(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three transactions on "a" (led by broker 2): the first one's WriteTxnMarkers is held; the
    next two's markers wait meanwhile and go together in one request once it is answered. Its
    answer is taken per transaction: t2's marker fenced (INVALID_PRODUCER_EPOCH) leaves t2
    prepared, t3 completes."""
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster, {"a": [2]})
        markers = MarkerRequests(cluster, monkeypatch)
        markers.hold(2)
        c1 = await cluster.connect(1)
        try:
            producers = {tid: await _begin(c1, cluster, tid, ["a"]) for tid in ("t1", "t2", "t3")}
            await _commit(c1, "t1", *producers["t1"])
            await wait_for(lambda: len(markers.to(2)) == 1, message="t1's markers sent")
            await _commit(c1, "t2", *producers["t2"])
            await _commit(c1, "t3", *producers["t3"])
            _fence_markers(cluster.broker(2), producers["t2"][0])
            await wait_for(lambda: _queued(cluster, 2) == {"t2", "t3"} or len(markers.sent) >= 3,
                           message="t2's and t3's markers queued or sent")
            assert len(markers.to(2)) == 1  # one request in flight to broker 2
            markers.release()
            await wait_for(lambda: all(_state(cluster, tid) == TxnState.COMPLETE_COMMIT for tid in ("t1", "t3")),
                           message="t1's and t3's commits complete")
            await wait_for(lambda: not cluster.broker(1).txn_coordinator._marker_tasks, message="no markers left")
            assert _state(cluster, "t2") == TxnState.PREPARE_COMMIT  # no Complete* from this coordinator
            first, second = markers.to(2)
            assert [m.producer_id for m in first.markers] == [producers["t1"][0]]
            assert sorted(m.producer_id for m in second.markers) == sorted([producers["t2"][0], producers["t3"][0]])
            assert cluster.partition(2, "a").log.log_end_offset == 5  # three records, t1's and t3's markers
        finally:
            markers.release()
            c1.close()


async def test_not_leader_sends_the_marker_to_the_new_leader_while_another_leader_holds_its_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """"c" (replicas 2 and 3) loses its leader 2 to 3 as the marker reaches broker 2, which answers
    NOT_LEADER_OR_FOLLOWER; the marker goes to broker 3, while broker 4 (leader of "b") still
    holds its answer."""
    async with Cluster(4, CONFIG) as cluster:
        _setup(cluster, {"b": [4], "c": [2, 3]})
        markers = MarkerRequests(cluster, monkeypatch)
        markers.hold(4)
        markers.before[2] = lambda: cluster.change("c", 0, leader=3)
        c1 = await cluster.connect(1)
        try:
            pid, epoch = await _begin(c1, cluster, "tx", ["b", "c"])
            await _commit(c1, "tx", pid, epoch)
            await wait_for(lambda: cluster.partition(3, "c").log.log_end_offset == 2,
                           message="c's marker written by its new leader")
            [answer] = markers.answers_from(2)
            assert [(t.name, p.partition_index, p.error_code) for m in answer.markers for t in m.topics
                    for p in t.partitions] == [("c", 0, E.NOT_LEADER_OR_FOLLOWER)]
            [resent] = markers.to(3)
            assert [(t.name, t.partition_indexes) for m in resent.markers for t in m.topics] == [("c", [0])]
            assert len(markers.to(4)) == 1 and not markers.answers_from(4)  # b's still held
            assert _state(cluster, "tx") == TxnState.PREPARE_COMMIT
            markers.release()
            await wait_for(lambda: _state(cluster, "tx") == TxnState.COMPLETE_COMMIT, message="commit complete")
            assert cluster.partition(4, "b").log.log_end_offset == 2
        finally:
            markers.release()
            c1.close()
