"""The transaction coordinator's marker channel (kbroker.coordinator.txn_marker_channel) on a fake
coordinator and fake connections whose every WriteTxnMarkers the test answers (or fails) by hand:
the cases of Kafka 4.4's TransactionMarkerChannelManager and
TransactionMarkerRequestCompletionHandler that the cluster tests
(tests/replication/test_txn_marker_channel.py) do not reach: a failed request sent again on a new
connection, a deleted partition dropped, an unreachable leader waited for, a partition left out of
the answer sent again, a fenced answer or a resigned coordinator giving the markers up."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any

import pytest

from kbroker.coordinator.txn_marker_channel import UNKNOWN, MarkerChannel, PendingMarkers
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.write_txn_markers import WriteTxnMarkersResponse

E = ErrorCode
Result = WriteTxnMarkersResponse.WritableTxnMarkerResult
TopicResult = Result.WritableTxnMarkerTopicResult
PartResult = TopicResult.WritableTxnMarkerPartitionResult
LISTENER = "BROKER"


class Config(dict[str, Any]):
    inter_broker_listener = LISTENER


class Image:
    def __init__(self, leaders: dict[tuple[str, int], int], brokers: list[int]) -> None:
        self.leaders = leaders
        self.brokers = {n: SimpleNamespace(fenced=False, endpoints={LISTENER: ("localhost", 9000 + n, "PLAINTEXT")})
                        for n in brokers}

    def partition(self, topic: str, index: int) -> Any:
        leader = self.leaders.get((topic, index))
        return None if leader is None else SimpleNamespace(leader=leader)


class Sent:
    """A WriteTxnMarkers sent to ``node``, waiting for the test's answer."""

    def __init__(self, node: int, conn: int, body: Any) -> None:
        self.node = node
        self.conn = conn
        self.body = body
        self.answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def parts(self) -> list[tuple[int, str, int]]:
        return [(m.producer_id, t.name, i) for m in self.body.markers for t in m.topics for i in t.partition_indexes]

    def reply(self, codes: dict[tuple[int, str, int], ErrorCode] | None = None) -> None:
        """Answer every marker NONE, or the codes given (a partition not in them left out)."""
        markers: dict[int, dict[str, list[Any]]] = {}
        for pid, topic, index in self.parts():
            code = E.NONE if codes is None else codes.get((pid, topic, index))
            if code is not None:
                markers.setdefault(pid, {}).setdefault(topic, []).append(PartResult(partition_index=index,
                                                                                     error_code=code))
        self.answer.set_result(WriteTxnMarkersResponse(markers=[
            Result(producer_id=pid, topics=[TopicResult(name=t, partitions=ps) for t, ps in topics.items()])
            for pid, topics in markers.items()]))


class Network:
    """The channel's connections: each request is put in ``sent`` for the test to answer."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[Sent] = asyncio.Queue()
        self.connections: list[int] = []  # the node of each connection opened

    async def connect(self, node: int) -> Any:
        self.connections.append(node)
        conn_id = len(self.connections)
        network = self

        class Conn:
            async def request(self, body: Any, version: int, timeout: float) -> Any:
                sent = Sent(node, conn_id, body)
                await network.sent.put(sent)
                return await sent.answer

            def close(self) -> None:
                pass

        return Conn()

    async def next(self) -> Sent:
        return await asyncio.wait_for(self.sent.get(), 10)  # (a guard: the test fails, never waits on it)


class Host:
    """The coordinator as the channel uses it: broker 1, no partition led here."""

    def __init__(self, leaders: dict[tuple[str, int], int], brokers: list[int]) -> None:
        self.broker = SimpleNamespace(node_id=1, stopping=False, image=Image(leaders, brokers),
                                      config=Config({"request.timeout.ms": 30000}))
        self.resigned = False
        self.tasks: set[asyncio.Task[object]] = set()

    def marker_current(self, pending: PendingMarkers) -> bool:
        return not self.resigned and not pending.done.done()

    async def _write_local_markers(self, txn: Any, parts: list[tuple[str, int]], commit: bool,
                                   coordinator_epoch: int) -> list[tuple[str, int]] | None:
        raise AssertionError("no partition is led here")

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


@pytest.fixture
async def channel() -> Any:
    host = Host({("a", 0): 2, ("b", 0): 3}, [1, 2, 3])
    network = Network()
    channel = MarkerChannel(host)
    channel._connect = network.connect  # type: ignore[method-assign]
    yield SimpleNamespace(channel=channel, host=host, network=network)
    for task in list(host.tasks):
        task.cancel()
    await asyncio.gather(*host.tasks, return_exceptions=True)


def _pending(parts: list[tuple[str, int]], pid: int = 7) -> PendingMarkers:
    txn = SimpleNamespace(transactional_id=f"tx{pid}", producer_id=pid, producer_epoch=1)
    return PendingMarkers(txn, True, 0, set(parts))  # type: ignore[arg-type]


async def _outcome(pending: PendingMarkers) -> bool:
    """Whether the markers of ``pending`` were all written (False: given up)."""
    return await asyncio.wait_for(asyncio.shield(pending.done), 10)  # (a guard: the test fails, never waits on it)


async def test_a_failed_request_is_sent_again_on_a_new_connection(channel: Any) -> None:
    pending = _pending([("a", 0), ("b", 0)])
    channel.channel.add(pending, [("a", 0), ("b", 0)])
    first = {s.node: s for s in [await channel.network.next(), await channel.network.next()]}
    assert sorted(first) == [2, 3]
    first[2].answer.set_exception(ConnectionResetError("reset by peer"))
    first[3].reply()
    again = await channel.network.next()
    assert (again.node, again.parts()) == (2, [(7, "a", 0)])
    assert again.conn != first[2].conn  # a new connection
    assert not pending.done.done()  # a still waits for its marker
    again.reply()
    assert await _outcome(pending) is True


async def test_a_deleted_partition_is_dropped(channel: Any) -> None:
    pending = _pending([("gone", 0), ("a", 0)])
    channel.channel.add(pending, [("gone", 0), ("a", 0)])
    sent = await channel.network.next()
    assert sent.parts() == [(7, "a", 0)]
    sent.reply()
    assert await _outcome(pending) is True


async def test_an_unreachable_leader_waits_until_it_is_reachable(channel: Any) -> None:
    channel.host.broker.image.brokers[2].fenced = True
    pending = _pending([("a", 0)])
    channel.channel.add(pending, [("a", 0)])
    assert set(channel.channel.queued(UNKNOWN)) == {pending}
    channel.host.broker.image.brokers[2].fenced = False
    sent = await channel.network.next()
    assert (sent.node, sent.parts()) == (2, [(7, "a", 0)])
    sent.reply()
    assert await _outcome(pending) is True


async def test_a_partition_left_out_of_the_answer_is_sent_again(channel: Any) -> None:
    channel.host.broker.image.leaders[("a", 1)] = 2
    pending = _pending([("a", 0), ("a", 1)])
    channel.channel.add(pending, [("a", 0), ("a", 1)])
    sent = await channel.network.next()
    sent.reply({(7, "a", 0): E.NONE})
    again = await channel.network.next()
    assert again.parts() == [(7, "a", 1)]
    again.reply()
    assert await _outcome(pending) is True


async def test_not_leader_sends_the_marker_to_the_new_leader(channel: Any) -> None:
    pending = _pending([("a", 0)])
    channel.channel.add(pending, [("a", 0)])
    sent = await channel.network.next()
    channel.host.broker.image.leaders[("a", 0)] = 3
    sent.reply({(7, "a", 0): E.NOT_LEADER_OR_FOLLOWER})
    again = await channel.network.next()
    assert (again.node, again.parts()) == (3, [(7, "a", 0)])
    again.reply()
    assert await _outcome(pending) is True


@pytest.mark.parametrize("code", [E.INVALID_PRODUCER_EPOCH, E.TRANSACTION_COORDINATOR_FENCED, E.CORRUPT_MESSAGE,
                                  E.MESSAGE_TOO_LARGE])
async def test_a_fenced_or_fatal_answer_gives_the_markers_up_and_not_the_other_transaction_s(
        channel: Any, code: ErrorCode) -> None:
    fenced, other = _pending([("a", 0), ("b", 0)], pid=7), _pending([("a", 0)], pid=8)
    channel.channel.add(fenced, [("a", 0), ("b", 0)])
    to_2 = next(s for s in [await channel.network.next(), await channel.network.next()] if s.node == 2)
    channel.channel.add(other, [("a", 0)])  # queued behind the request in flight to broker 2
    to_2.reply({(7, "a", 0): code})
    assert await _outcome(fenced) is False
    sent = await channel.network.next()
    assert (sent.node, sent.parts()) == (2, [(8, "a", 0)])  # only the other transaction's
    sent.reply()
    assert await _outcome(other) is True


async def test_a_resigned_coordinator_gives_the_markers_up(channel: Any) -> None:
    pending = _pending([("a", 0)])
    channel.channel.add(pending, [("a", 0)])
    sent = await channel.network.next()
    channel.host.resigned = True
    sent.reply({(7, "a", 0): E.NOT_LEADER_OR_FOLLOWER})
    assert await _outcome(pending) is False
