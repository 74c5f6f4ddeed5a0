"""Transactions whose coordinator is another broker than the partition's leader (found by the
compatibility matrix's cluster column: Java 4.x and franz-go, Transactions V2 clients, failed
``transactions_read_committed`` on a three-node kbroker).

From Produce v12 and TxnOffsetCommit v5 (KIP-890 part 2) the leader has the coordinator add the
partition to the transaction (AddPartitionsToTxn from broker to broker, not verify-only), as Kafka's
AddPartitionsToTxnManager does; before those versions it only verifies. The coordinator checks the
partition against the metadata, not against its own replicas.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kbroker.replication.producer_manager import partition_state
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.end_txn import EndTxnRequest
from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest
from kbroker_protocol.messages.txn_offset_commit import TxnOffsetCommitRequest
from kbroker_protocol.records import Record, build_batch
from tests.replication.harness import Cluster, wait_for

E = ErrorCode
TID = "tx"


def _txn_batch(pid: int, epoch: int, values: list[bytes]) -> bytes:
    return build_batch([Record(key=None, value=v, timestamp=1_700_000_000_000) for v in values],
                       producer_id=pid, producer_epoch=epoch, base_sequence=0, transactional=True)


async def _produce(conn, topic: str, records: bytes, version: int) -> int:
    Req = REQUESTS[0]
    resp = await conn.request(Req(transactional_id=TID, acks=-1, timeout_ms=10000, topic_data=[Req.TopicProduceData(
        name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(index=0, records=records)])]),
        version, 30)
    return resp.responses[0].partition_responses[0].error_code


async def _init_pid(conn) -> tuple[int, int]:
    resp = await conn.request(InitProducerIdRequest(transactional_id=TID, transaction_timeout_ms=60000), 5, 10)
    assert resp.error_code == E.NONE
    return resp.producer_id, resp.producer_epoch


def _setup(cluster: Cluster) -> None:
    # Broker 1 coordinates every transaction; "data" lives on broker 2 alone (broker 1 holds no
    # replica of it), the group's offsets partition too.
    cluster.create_topic("__transaction_state", [[1, 2]], configs={"cleanup.policy": "compact"})
    cluster.create_topic("__consumer_offsets", [[2]], configs={"cleanup.policy": "compact"})
    cluster.create_topic("data", [[2]])


CONFIG = {"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"}


async def test_produce_v12_has_a_remote_coordinator_add_the_partition():
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        try:
            pid, epoch = await _init_pid(c1)
            assert await _produce(c2, "data", _txn_batch(pid, epoch, [b"a", b"b"]), 12) == E.NONE
            txn = cluster.broker(1).txn_coordinator.txns[TID]
            assert txn.partitions == {("data", 0)}
            assert txn.client_txn_version == 2
            # The commit's marker reaches the leader on broker 2 and closes the transaction there.
            end = await c1.request(EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch,
                                                 committed=True), 5, 10)
            assert (end.error_code, end.producer_epoch) == (E.NONE, epoch + 1)
            data = cluster.partition(2, "data")
            await wait_for(lambda: data.log.log_end_offset == 3, message="the commit marker on broker 2")
            assert not partition_state(data).has_open_txn(pid)
        finally:
            c1.close()
            c2.close()


async def test_produce_v11_still_verifies_only():
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        try:
            pid, epoch = await _init_pid(c1)
            # Not added by AddPartitionsToTxn: the coordinator answers TRANSACTION_ABORTABLE, which
            # Produce v11 passes on and older versions see as INVALID_TXN_STATE (Kafka's mapping).
            assert await _produce(c2, "data", _txn_batch(pid, epoch, [b"a"]), 11) == E.TRANSACTION_ABORTABLE
            assert await _produce(c2, "data", _txn_batch(pid, epoch, [b"a"]), 10) == E.INVALID_TXN_STATE
            assert cluster.broker(1).txn_coordinator.txns[TID].partitions == set()
            assert cluster.partition(2, "data").log.log_end_offset == 0
            # A fenced epoch is INVALID_PRODUCER_EPOCH to the producer.
            assert await _produce(c2, "data", _txn_batch(pid, epoch + 5, [b"a"]),
                                  12) == E.INVALID_PRODUCER_EPOCH
            assert cluster.partition(2, "data").log.log_end_offset == 0
        finally:
            c1.close()
            c2.close()


def _hold_markers(coordinator: Any) -> asyncio.Event:
    """Holds the coordinator's marker sends (and the completions after them) until the returned
    event is set."""
    release = asyncio.Event()
    send_markers = coordinator._send_markers_then_complete

    async def held(*args: Any) -> None:
        await release.wait()
        await send_markers(*args)

    coordinator._send_markers_then_complete = held
    return release


async def test_txn_offset_commit_v5_has_a_remote_coordinator_add_the_offsets_partition():
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        try:
            pid, epoch = await _init_pid(c1)
            T = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
            request = TxnOffsetCommitRequest(
                transactional_id=TID, group_id="g", producer_id=pid, producer_epoch=epoch,
                generation_id_or_member_epoch=-1, member_id="", group_instance_id=None, topics=[
                    T(name="data", partitions=[T.TxnOffsetCommitRequestPartition(partition_index=0,
                                                                                  committed_offset=7)])])
            resp = await c2.request(request, 5, 10)
            assert resp.topics[0].partitions[0].error_code == E.NONE
            assert cluster.broker(1).txn_coordinator.txns[TID].partitions == {("__consumer_offsets", 0)}
        finally:
            c1.close()
            c2.close()


async def test_next_transaction_waits_for_the_previous_ones_marker():
    """Transactions V2: EndTxn bumps the epoch and answers before a remote leader has the marker.
    A batch of the next transaction (the new epoch) reaching that leader first is verified with
    the coordinator, which answers CONCURRENT_TRANSACTIONS while the markers are on their way, so
    it does not join the aborted transaction's records (found by franz-go's
    transactions_read_committed on a kbroker cluster: read_committed saw an aborted record)."""
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        coordinator = cluster.broker(1).txn_coordinator
        release = _hold_markers(coordinator)
        try:
            pid, epoch = await _init_pid(c1)
            assert await _produce(c2, "data", _txn_batch(pid, epoch, [b"aborted"]), 12) == E.NONE
            end = await c1.request(EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch,
                                                 committed=False), 5, 10)
            assert (end.error_code, end.producer_epoch) == (E.NONE, epoch + 1)
            data = cluster.partition(2, "data")
            assert data.log.log_end_offset == 1  # the abort marker is held back
            assert await _produce(c2, "data", _txn_batch(pid, epoch + 1, [b"next"]), 12) == E.CONCURRENT_TRANSACTIONS
            assert data.log.log_end_offset == 1
            release.set()
            await wait_for(lambda: data.log.log_end_offset == 2, message="the abort marker on broker 2")
            await wait_for(lambda: coordinator.txns[TID].state.name == "COMPLETE_ABORT", message="abort complete")
            assert await _produce(c2, "data", _txn_batch(pid, epoch + 1, [b"next"]), 12) == E.NONE
            assert data.log.log_end_offset == 3  # after the marker: a transaction of its own
            assert partition_state(data).has_open_txn(pid, epoch + 1)
        finally:
            release.set()
            c1.close()
            c2.close()


async def test_end_txn_while_the_markers_are_on_their_way():
    """Kafka answers CONCURRENT_TRANSACTIONS to any EndTxn while a transaction's markers are being
    written (its pending Complete* transition), and the producer retries. Java 4.x (Transactions
    V2) aborting its next transaction right after a commit got INVALID_TXN_STATE from kbroker on a
    cluster (a fatal error); a retried commit got PRODUCER_FENCED."""
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        coordinator = cluster.broker(1).txn_coordinator
        release = _hold_markers(coordinator)

        async def end(epoch: int, commit: bool):
            resp = await c1.request(EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch,
                                                  committed=commit), 5, 10)
            return resp.error_code, resp.producer_epoch

        try:
            pid, epoch = await _init_pid(c1)
            assert await _produce(c2, "data", _txn_batch(pid, epoch, [b"a"]), 12) == E.NONE
            assert await end(epoch, True) == (E.NONE, epoch + 1)
            assert (await end(epoch + 1, False))[0] == E.CONCURRENT_TRANSACTIONS  # the next one's abort
            assert (await end(epoch, True))[0] == E.CONCURRENT_TRANSACTIONS  # a retry of the commit
            release.set()
            await wait_for(lambda: coordinator.txns[TID].state.name == "COMPLETE_COMMIT", message="commit complete")
            assert await end(epoch, True) == (E.NONE, epoch + 1)  # the retry, answered as Kafka does
            assert await end(epoch + 1, False) == (E.NONE, epoch + 2)
        finally:
            release.set()
            c1.close()
            c2.close()
