"""InitProducerId on a cluster as Kafka 4.4 answers it (TransactionCoordinator.handleInitProducerId,
TransactionMetadata.prepareIncrementProducerEpoch/prepareFenceProducerEpoch), found while
looking into the transactional fault run's INVALID_TXN_STATE fatals and aborted reads
(docs/faults.md):

- a producer recovering from an error (KIP-360: its producer id and epoch in the request) whose
  transaction is Ongoing has it aborted with the epoch bumped (the markers carry the new epoch)
  and is answered CONCURRENT_TRANSACTIONS; its retry gets that fenced epoch (the epoch it named is
  the coordinator's last epoch), not PRODUCER_FENCED (which librdkafka treats as fatal);
- a new instance (no producer id in the request) bumps the epoch and forgets the last one, so an
  older instance asking for a bump afterwards is PRODUCER_FENCED: it must not get the new
  instance's epoch (kbroker took any request one epoch below the current one for a retry and
  handed the fenced instance the epoch of the new one);
- a marker a leader answers UNKNOWN_TOPIC_OR_PARTITION for is retried (Kafka's
  TransactionMarkerRequestCompletionHandler), not counted as written;
- a verify-only AddPartitionsToTxn reaching a broker that is not the coordinator is answered
  NOT_COORDINATOR (Kafka's handleVerifyPartitionsInTransaction), not from an empty memory.
"""

from __future__ import annotations

import asyncio

from kbroker.replication.producer_manager import partition_state
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.end_txn import EndTxnRequest
from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest
from kbroker_protocol.records import ControlType, Record, build_batch, iter_records, parse_control_record
from tests.replication.harness import Cluster, wait_for

E = ErrorCode
TID = "tx"
CONFIG = {"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"}


def _setup(cluster: Cluster) -> None:
    # Broker 1 coordinates the transactions; "data" lives on broker 2 alone.
    cluster.create_topic("__transaction_state", [[1, 2]], configs={"cleanup.policy": "compact"})
    cluster.create_topic("data", [[2]])


async def _init(conn, producer_id: int = -1, epoch: int = -1) -> tuple[int, int, int]:
    resp = await conn.request(InitProducerIdRequest(transactional_id=TID, transaction_timeout_ms=60000,
                                                    producer_id=producer_id, producer_epoch=epoch), 5, 10)
    return resp.error_code, resp.producer_id, resp.producer_epoch


async def _add_data(conn, pid: int, epoch: int) -> int:
    Req = REQUESTS[24]
    resp = await conn.request(Req(v3_and_below_transactional_id=TID, v3_and_below_producer_id=pid,
                                  v3_and_below_producer_epoch=epoch, v3_and_below_topics=[
                                      Req.AddPartitionsToTxnTopic(name="data", partitions=[0])]), 3, 10)
    return resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code


async def _produce(conn, pid: int, epoch: int, sequence: int, value: bytes) -> int:
    Req = REQUESTS[0]
    records = build_batch([Record(key=None, value=value, timestamp=1_700_000_000_000)], producer_id=pid,
                          producer_epoch=epoch, base_sequence=sequence, transactional=True)
    resp = await conn.request(Req(transactional_id=TID, acks=-1, timeout_ms=10000, topic_data=[Req.TopicProduceData(
        name="data", partition_data=[Req.TopicProduceData.PartitionProduceData(index=0, records=records)])]), 9, 10)
    return resp.responses[0].partition_responses[0].error_code


def _markers(cluster: Cluster, node: int) -> list[tuple[str, int]]:
    """(COMMIT/ABORT, producer epoch) of the control batches of "data" on ``node``."""
    out = []
    for header, data in cluster.partition(node, "data").log.iter_batches():
        if header.is_control:
            ctrl = parse_control_record(next(iter(iter_records(data))))
            out.append(("COMMIT" if ctrl.type == ControlType.COMMIT else "ABORT", header.producer_epoch))
    return out


async def _ongoing(cluster: Cluster, c1, c2) -> tuple[int, int]:
    code, pid, epoch = await _init(c1)
    assert code == E.NONE
    assert await _add_data(c1, pid, epoch) == E.NONE
    assert await _produce(c2, pid, epoch, 0, b"doomed") == E.NONE
    assert partition_state(cluster.partition(2, "data")).has_open_txn(pid, epoch)
    return pid, epoch


async def test_a_producer_bumping_its_epoch_has_its_ongoing_transaction_aborted_and_keeps_going():
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        coordinator = cluster.broker(1).txn_coordinator
        try:
            pid, epoch = await _ongoing(cluster, c1, c2)
            # KIP-360 (librdkafka after a timed-out message): InitProducerId with its id and epoch.
            assert (await _init(c1, pid, epoch))[0] == E.CONCURRENT_TRANSACTIONS
            await wait_for(lambda: coordinator.txns[TID].state.name == "COMPLETE_ABORT", message="fence complete")
            assert _markers(cluster, 2) == [("ABORT", epoch + 1)]
            assert not partition_state(cluster.partition(2, "data")).has_open_txn(pid)
            # The retry: the fenced epoch is the producer's now (Kafka: expected == lastProducerEpoch).
            assert await _init(c1, pid, epoch) == (E.NONE, pid, epoch + 1)
            assert await _init(c1, pid, epoch) == (E.NONE, pid, epoch + 1)  # retried again: not bumped
            # ... and it goes on with it.
            assert await _add_data(c1, pid, epoch + 1) == E.NONE
            assert await _produce(c2, pid, epoch + 1, 0, b"next") == E.NONE
            end = await c1.request(EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch + 1,
                                                 committed=True), 3, 10)
            assert end.error_code == E.NONE
            await wait_for(lambda: len(_markers(cluster, 2)) == 2, message="the commit marker")
            assert _markers(cluster, 2) == [("ABORT", epoch + 1), ("COMMIT", epoch + 1)]
        finally:
            c1.close()
            c2.close()


async def test_an_instance_fenced_by_a_new_one_cannot_take_its_epoch():
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        coordinator = cluster.broker(1).txn_coordinator
        try:
            pid, epoch = await _ongoing(cluster, c1, c2)
            # A new instance: its transaction is fenced (aborted at epoch + 1), then its epoch bumped.
            assert (await _init(c1))[0] == E.CONCURRENT_TRANSACTIONS
            await wait_for(lambda: coordinator.txns[TID].state.name == "COMPLETE_ABORT", message="fence complete")
            assert await _init(c1) == (E.NONE, pid, epoch + 2)
            # The old instance (still at epoch) asks for a bump, or retries one with the fenced epoch.
            assert (await _init(c1, pid, epoch))[0] == E.PRODUCER_FENCED
            assert (await _init(c1, pid, epoch + 1))[0] == E.PRODUCER_FENCED
            assert coordinator.txns[TID].producer_epoch == epoch + 2
            assert await _add_data(c1, pid, epoch + 1) == E.PRODUCER_FENCED
            # The new instance's own retry of its InitProducerId... is a new instance again.
            assert await _init(c1) == (E.NONE, pid, epoch + 3)
        finally:
            c1.close()
            c2.close()


async def test_a_marker_a_leader_does_not_know_the_partition_for_is_retried():
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        coordinator = cluster.broker(1).txn_coordinator
        broker2 = cluster.broker(2)
        hidden = {"on": True, "asked": 0}
        real_partition = broker2.partition

        def partition(topic: str, index: int):
            if hidden["on"] and topic == "data":
                hidden["asked"] += 1
                return None  # (a leader still opening its logs: WriteTxnMarkers answers UNKNOWN_TOPIC_OR_PARTITION)
            return real_partition(topic, index)

        try:
            pid, epoch = await _ongoing(cluster, c1, c2)
            broker2.partition = partition
            end = await c1.request(EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch,
                                                 committed=False), 3, 10)
            assert end.error_code == E.NONE
            # The coordinator sends the marker again, and the transaction stays PrepareAbort (its
            # next one would join the records still open on broker 2) until the leader has it.
            await wait_for(lambda: hidden["asked"] >= 3, message="the marker sent again")
            assert coordinator.txns[TID].state.name == "PREPARE_ABORT"
            assert await _add_data(c1, pid, epoch) == E.CONCURRENT_TRANSACTIONS
            hidden["on"] = False
            await wait_for(lambda: coordinator.txns[TID].state.name == "COMPLETE_ABORT", message="abort complete")
            assert _markers(cluster, 2) == [("ABORT", epoch)]
            assert not partition_state(cluster.partition(2, "data")).has_open_txn(pid)
        finally:
            broker2.partition = real_partition
            c1.close()
            c2.close()


async def test_verification_asked_of_a_broker_that_does_not_coordinate_the_id():
    """Kafka answers a verify-only AddPartitionsToTxn from its transaction state manager:
    NOT_COORDINATOR from a broker that does not lead the id's partition (the leader retries: the
    producer gets a retriable error), not INVALID_PRODUCER_ID_MAPPING from an empty memory."""
    from kbroker_protocol.messages.add_partitions_to_txn import AddPartitionsToTxnRequest as Req
    from kbroker_protocol.messages.add_partitions_to_txn import AddPartitionsToTxnTopic

    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        try:
            pid, epoch = await _ongoing(cluster, c1, c2)

            async def verify(conn) -> int:
                resp = await conn.request(Req(transactions=[Req.AddPartitionsToTxnTransaction(
                    transactional_id=TID, producer_id=pid, producer_epoch=epoch, verify_only=True,
                    topics=[AddPartitionsToTxnTopic(name="data", partitions=[0])])]), 5, 10)
                return resp.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code

            assert await verify(c1) == E.NONE  # the coordinator
            assert await verify(c2) == E.NOT_COORDINATOR
        finally:
            c1.close()
            c2.close()


async def test_a_batch_verified_before_the_abort_marker_is_not_appended_after_it():
    """Found by a fault run (seed 1, docs/faults.md): a Transactions V1 producer's batch was
    verified with the coordinator while its transaction was Ongoing, the producer gave up on it
    (message timeout) and aborted, the ABORT marker reached the partition, and only then the
    batch was appended: a transaction the coordinator did not know, opened at the producer's
    epoch, which its next transaction joined (and would have committed). Kafka's
    VerificationGuard, made before the verification and removed by the marker, fails that append."""
    async with Cluster(2, CONFIG) as cluster:
        _setup(cluster)
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        replica_manager = cluster.broker(2).replica_manager
        verify = replica_manager.verify_with_coordinator
        verified, release = asyncio.Event(), asyncio.Event()

        async def slow_answer(*args, **kwargs):
            code = await verify(*args, **kwargs)  # the coordinator's answer, given while Ongoing
            verified.set()
            await release.wait()  # ... arriving late
            return code

        replica_manager.verify_with_coordinator = slow_answer
        try:
            code, pid, epoch = await _init(c1)
            assert await _add_data(c1, pid, epoch) == E.NONE
            late = asyncio.ensure_future(_produce(c2, pid, epoch, 0, b"late"))
            await wait_for(verified.is_set, message="the batch verified")
            end = await c1.request(EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch,
                                                 committed=False), 3, 10)
            assert end.error_code == E.NONE
            data = cluster.partition(2, "data")
            await wait_for(lambda: _markers(cluster, 2) == [("ABORT", epoch)], message="the abort marker")
            release.set()
            assert await late == E.INVALID_TXN_STATE
            assert data.log.log_end_offset == 1  # the marker alone
            assert not partition_state(data).has_open_txn(pid)
            # The producer's next transaction (same epoch) has only its own records, once the
            # coordinator has the abort complete (the marker's answer, then CompleteAbort replicated;
            # until then AddPartitionsToTxn answers CONCURRENT_TRANSACTIONS, which clients retry).
            replica_manager.verify_with_coordinator = verify
            coordinator = cluster.broker(1).txn_coordinator
            await wait_for(lambda: coordinator.txns[TID].state.name == "COMPLETE_ABORT", message="abort complete")
            assert await _add_data(c1, pid, epoch) == E.NONE
            assert await _produce(c2, pid, epoch, 0, b"next") == E.NONE
            end = await c1.request(EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch,
                                                 committed=True), 3, 10)
            assert end.error_code == E.NONE
            await wait_for(lambda: len(_markers(cluster, 2)) == 2, message="the commit marker")
            values = [r.value for header, batch in data.log.iter_batches() if not header.is_control
                      for r in iter_records(batch)]
            assert values == [b"next"]
        finally:
            release.set()
            replica_manager.verify_with_coordinator = verify
            c1.close()
            c2.close()
