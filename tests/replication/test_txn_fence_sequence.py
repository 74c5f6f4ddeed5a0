"""InitProducerId on a transactional id whose transaction is Ongoing, in Kafka 4.4's sequence
(TransactionCoordinator.handleInitProducerId: prepareFenceProducerEpoch, then endTransaction(ABORT)
on the server's behalf at the finalized transaction.version, then CONCURRENT_TRANSACTIONS so the
client retries; its retry bumps the epoch a second time).

kbroker aborted and bumped in the same request when the abort's markers could be written at once
(every partition on the coordinator's broker), answering the second epoch instead of
CONCURRENT_TRANSACTIONS. The fence also follows transaction.version: V2 bumps the epoch with the
PrepareAbort (the fenced epoch becomes the last epoch; exhausted epochs take a new producer id at
completion), V1 bumps it in memory first (kept, and not bumped again, when the write fails) and
forgets the last epoch."""

from __future__ import annotations

from typing import Any

from kbroker.coordinator.txn_coordinator_core import TxnError
from kbroker.coordinator.txn_log import MAX_EPOCH, TxnState
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.end_txn import EndTxnRequest
from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest
from tests.replication.harness import Cluster, wait_for

E = ErrorCode
TID = "tx"
CONFIG = {"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"}


class Single:
    """One broker: the transaction log and "data" on it alone (markers written at once)."""

    def __init__(self, cluster: Cluster, conn: Any) -> None:
        self.cluster, self.conn = cluster, conn
        self.coordinator = cluster.broker(1).txn_coordinator

    async def init(self, producer_id: int = -1, epoch: int = -1) -> tuple[int, int, int]:
        resp = await self.conn.request(InitProducerIdRequest(
            transactional_id=TID, transaction_timeout_ms=60000, producer_id=producer_id, producer_epoch=epoch), 5, 10)
        return resp.error_code, resp.producer_id, resp.producer_epoch

    async def add(self, pid: int, epoch: int) -> int:
        Req = REQUESTS[24]
        resp = await self.conn.request(Req(v3_and_below_transactional_id=TID, v3_and_below_producer_id=pid,
                                           v3_and_below_producer_epoch=epoch, v3_and_below_topics=[
                                               Req.AddPartitionsToTxnTopic(name="data", partitions=[0])]), 3, 10)
        code: int = resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
        return code

    async def ongoing(self) -> tuple[int, int]:
        code, pid, epoch = await self.init()
        assert code == E.NONE
        assert await self.add(pid, epoch) == E.NONE
        assert self.coordinator.txns[TID].state == TxnState.ONGOING
        return pid, epoch

    def server_transaction_version(self, level: int) -> None:
        self.cluster.broker(1).image.features["transaction.version"] = level


async def _single() -> tuple[Cluster, Any]:
    cluster = Cluster(1, CONFIG)
    await cluster.__aenter__()
    cluster.create_topic("__transaction_state", [[1]], configs={"cleanup.policy": "compact"})
    cluster.create_topic("data", [[1]])
    return cluster, await cluster.connect(1)


async def test_init_producer_id_on_an_ongoing_transaction_answers_concurrent_transactions_then_bumps():
    cluster, conn = await _single()
    try:
        s = Single(cluster, conn)
        pid, epoch = await s.ongoing()
        # The abort is complete when the request is answered (its marker written here), yet the
        # answer is CONCURRENT_TRANSACTIONS: the fenced epoch is never returned.
        assert (await s.init())[0] == E.CONCURRENT_TRANSACTIONS
        txn = s.coordinator.txns[TID]
        assert (txn.state, txn.producer_id, txn.producer_epoch) == (TxnState.COMPLETE_ABORT, pid, epoch + 1)
        assert cluster.partition(1, "data").log.log_end_offset == 1  # the ABORT marker
        # The retry bumps a second time.
        assert await s.init() == (E.NONE, pid, epoch + 2)
        # A producer recovering (KIP-360) is answered the same way; under V2 its retry gets the
        # fenced epoch (the epoch it named is the last epoch).
        assert await s.add(pid, epoch + 2) == E.NONE
        assert (await s.init(pid, epoch + 2))[0] == E.CONCURRENT_TRANSACTIONS
        assert await s.init(pid, epoch + 2) == (E.NONE, pid, epoch + 3)
    finally:
        conn.close()
        await cluster.__aexit__()


async def test_the_fence_under_transaction_version_1_forgets_the_last_epoch():
    cluster, conn = await _single()
    try:
        s = Single(cluster, conn)
        s.server_transaction_version(1)
        pid, epoch = await s.ongoing()
        assert (await s.init(pid, epoch))[0] == E.CONCURRENT_TRANSACTIONS
        txn = s.coordinator.txns[TID]
        assert (txn.state, txn.producer_epoch, txn.last_producer_epoch) == (TxnState.COMPLETE_ABORT, epoch + 1, -1)
        assert txn.client_txn_version == 0
        # (Kafka V1: the epoch the producer named is neither the current nor the last one.)
        assert (await s.init(pid, epoch))[0] == E.PRODUCER_FENCED
        assert await s.init() == (E.NONE, pid, epoch + 2)
    finally:
        conn.close()
        await cluster.__aexit__()


async def test_a_failed_fence_under_transaction_version_1_keeps_its_epoch_and_is_not_bumped_again():
    cluster, conn = await _single()
    try:
        s = Single(cluster, conn)
        s.server_transaction_version(1)
        pid, epoch = await s.ongoing()
        write = s.coordinator._write
        failures = {"left": 1}

        async def failing(txn: Any, transactional_id: str | None = None) -> None:
            if failures["left"]:
                failures["left"] -= 1
                raise TxnError(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            await write(txn, transactional_id)

        s.coordinator._write = failing
        assert (await s.init())[0] == E.COORDINATOR_NOT_AVAILABLE
        txn = s.coordinator.txns[TID]
        # Still Ongoing, but at the fence's epoch: the old producer is fenced all the same.
        assert (txn.state, txn.producer_epoch) == (TxnState.ONGOING, epoch + 1)
        end = await conn.request(EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch,
                                               committed=True), 3, 10)
        assert end.error_code == E.PRODUCER_FENCED
        # The next fence does not bump it again.
        assert (await s.init())[0] == E.CONCURRENT_TRANSACTIONS
        txn = s.coordinator.txns[TID]
        assert (txn.state, txn.producer_epoch) == (TxnState.COMPLETE_ABORT, epoch + 1)
        assert await s.init() == (E.NONE, pid, epoch + 2)
    finally:
        conn.close()
        await cluster.__aexit__()


async def test_the_fence_of_an_exhausted_epoch_under_transaction_version_2_takes_a_new_producer_id():
    cluster, conn = await _single()
    try:
        s = Single(cluster, conn)
        pid, _epoch = await s.ongoing()
        last = MAX_EPOCH - 1
        s.coordinator.txns[TID] = s.coordinator.txns[TID].copy(producer_epoch=last)  # (many bumps later)
        assert (await s.init(pid, last))[0] == E.CONCURRENT_TRANSACTIONS
        await wait_for(lambda: s.coordinator.txns[TID].state == TxnState.COMPLETE_ABORT, message="fence complete")
        txn = s.coordinator.txns[TID]
        assert txn.producer_id != pid and txn.producer_epoch == 0
        assert txn.previous_producer_id == pid
        # The marker carried the fence's epoch, Short.MAX_VALUE.
        markers = [h for h, _data in cluster.partition(1, "data").log.iter_batches() if h.is_control]
        assert [(h.producer_id, h.producer_epoch) for h in markers] == [(pid, MAX_EPOCH)]
        code, new_pid, new_epoch = await s.init()
        assert (code, new_pid, new_epoch) == (E.NONE, txn.producer_id, 1)
    finally:
        conn.close()
        await cluster.__aexit__()
