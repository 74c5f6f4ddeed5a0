"""How the transaction coordinator takes a leader's answer to a marker, as Kafka 4.4's
TransactionMarkerRequestCompletionHandler: retriable errors (UNKNOWN_TOPIC_OR_PARTITION,
NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS...) send the marker again; UNSUPPORTED_VERSION and
UNSUPPORTED_FOR_MESSAGE_FORMAT drop the partition from those waiting for markers;
INVALID_PRODUCER_EPOCH and TRANSACTION_COORDINATOR_FENCED stop this coordinator's markers for the
transaction, which does not complete here (it was counted as written before, and completed).

Broker 1 coordinates; "data" lives on broker 2 alone (its markers go by WriteTxnMarkers), "local"
on broker 1 alone (written by the coordinator itself)."""

from __future__ import annotations

from typing import Any

import pytest

from kbroker.coordinator.txn_log import TxnState
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.end_txn import EndTxnRequest
from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest
from kbroker_protocol.records import Record, build_batch
from tests.replication.harness import Cluster, wait_for

E = ErrorCode
TID = "tx"
CONFIG = {"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"}


def _txn_batch(pid: int, epoch: int) -> bytes:
    return build_batch([Record(key=None, value=b"v", timestamp=1_700_000_000_000)], producer_id=pid,
                       producer_epoch=epoch, base_sequence=0, transactional=True)


class Answers:
    """Replaces a broker's marker writes: answers the queued codes first, then writes for real."""

    def __init__(self, broker: Any, codes: list[ErrorCode]) -> None:
        self.codes = list(codes)
        self.calls = 0
        producer_state = broker.replica_manager.producer_state
        self.real = producer_state.write_marker_replicated
        producer_state.write_marker_replicated = self

    async def __call__(self, *args: Any, **kwargs: Any) -> ErrorCode:
        self.calls += 1
        if self.codes:
            return self.codes.pop(0)
        code: ErrorCode = await self.real(*args, **kwargs)
        return code


async def _commit(cluster: Cluster, topic: str, leader: int) -> tuple[Any, int]:
    """A Transactions V2 transaction with one record in ``topic`` (led by ``leader``), committed;
    returns the coordinator and the producer id."""
    c1, leader_conn = await cluster.connect(1), await cluster.connect(leader)
    try:
        init = await c1.request(InitProducerIdRequest(transactional_id=TID, transaction_timeout_ms=60000), 5, 10)
        pid, epoch = init.producer_id, init.producer_epoch
        Req = REQUESTS[0]
        produce = await leader_conn.request(Req(transactional_id=TID, acks=-1, timeout_ms=10000, topic_data=[
            Req.TopicProduceData(name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(
                index=0, records=_txn_batch(pid, epoch))])]), 12, 30)
        assert produce.responses[0].partition_responses[0].error_code == E.NONE
        end = await c1.request(EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch,
                                             committed=True), 5, 10)
        # (Answered once the PrepareCommit record is written, whatever the markers meet.)
        assert (end.error_code, end.producer_epoch) == (E.NONE, epoch + 1)
        return cluster.broker(1).txn_coordinator, pid
    finally:
        c1.close()
        leader_conn.close()


def _setup(cluster: Cluster) -> None:
    cluster.create_topic("__transaction_state", [[1]], configs={"cleanup.policy": "compact"})
    cluster.create_topic("__consumer_offsets", [[1]], configs={"cleanup.policy": "compact"})
    cluster.create_topic("data", [[2]])
    cluster.create_topic("local", [[1]])


@pytest.mark.parametrize("code", [E.INVALID_PRODUCER_EPOCH, E.TRANSACTION_COORDINATOR_FENCED,
                                  E.CORRUPT_MESSAGE])
@pytest.mark.parametrize(("topic", "leader"), [("data", 2), ("local", 1)])
async def test_a_fenced_marker_stops_the_markers_and_the_transaction_stays_prepared(
        code: ErrorCode, topic: str, leader: int) -> None:
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        answers = Answers(cluster.broker(leader), [code])
        coordinator, _pid = await _commit(cluster, topic, leader)
        await wait_for(lambda: answers.calls >= 1, message="the marker sent")
        await wait_for(lambda: not coordinator._marker_tasks, message="the marker task ended")
        assert answers.calls == 1  # not sent again
        txn = coordinator.txns[TID]
        assert txn.state == TxnState.PREPARE_COMMIT  # not completed by this coordinator
        assert txn.partitions == {(topic, 0)}
        assert cluster.partition(leader, topic).log.log_end_offset == 1  # no marker


@pytest.mark.parametrize("code", [E.UNKNOWN_TOPIC_OR_PARTITION, E.NOT_LEADER_OR_FOLLOWER, E.NOT_ENOUGH_REPLICAS,
                                  E.NOT_ENOUGH_REPLICAS_AFTER_APPEND, E.REQUEST_TIMED_OUT, E.KAFKA_STORAGE_ERROR])
async def test_a_retriable_marker_error_sends_the_marker_again(code: ErrorCode) -> None:
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        answers = Answers(cluster.broker(2), [code, code])
        coordinator, _pid = await _commit(cluster, "data", 2)
        await wait_for(lambda: coordinator.txns[TID].state == TxnState.COMPLETE_COMMIT, message="commit complete")
        assert answers.calls == 3
        assert cluster.partition(2, "data").log.log_end_offset == 2  # the record and its marker


@pytest.mark.parametrize("code", [E.UNSUPPORTED_VERSION, E.UNSUPPORTED_FOR_MESSAGE_FORMAT])
async def test_an_unsupported_marker_drops_the_partition(code: ErrorCode) -> None:
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        answers = Answers(cluster.broker(2), [code])
        coordinator, _pid = await _commit(cluster, "data", 2)
        await wait_for(lambda: coordinator.txns[TID].state == TxnState.COMPLETE_COMMIT, message="commit complete")
        assert answers.calls == 1
        assert cluster.partition(2, "data").log.log_end_offset == 1
