"""Coordinator writes are answered only once replicated, as Kafka's coordinators append with
acks=-1: a ``__transaction_state`` record takes effect (and its request is answered) once below
the high watermark, a follower that stops fetching holds it until it leaves the ISR, a timeout or
too small an ISR answers COORDINATOR_NOT_AVAILABLE with the state unchanged; a transaction is
completed only once its markers are replicated; Transactions V2's implicit adds reach a
transaction coordinator on another broker (AddPartitionsToTxn v5)."""

from __future__ import annotations

import asyncio

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.records import Record, build_batch
from tests.replication.harness import Cluster, wait_for
from tests.replication.leadership import block_follower, blocked

E = ErrorCode
LAG = 10_000
TXN_LOG = "__transaction_state"


def _cluster(**per_node) -> Cluster:
    return Cluster(2, {"transaction.state.log.num.partitions": "1", "replica.lag.time.max.ms": str(LAG)},
                   per_node={1: {"kbroker.clock": "manual"}, **per_node})


async def _init_pid(conn, tid: str, timeout_ms: int = 60000) -> tuple[int, int, int]:
    resp = await conn.request(REQUESTS[22](transactional_id=tid, transaction_timeout_ms=timeout_ms,
                                           producer_id=-1, producer_epoch=-1), 4, 30)
    return resp.error_code, resp.producer_id, resp.producer_epoch


async def _add_partition(conn, tid: str, pid: int, epoch: int, topic: str) -> int:
    Req = REQUESTS[24]
    resp = await conn.request(Req(v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid,
                                  v3_and_below_producer_epoch=epoch, v3_and_below_topics=[
                                      Req.AddPartitionsToTxnTopic(name=topic, partitions=[0])]), 3, 30)
    return resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code


async def _produce_txn(conn, tid: str, pid: int, epoch: int, topic: str, values: list[bytes], version: int) -> int:
    Req = REQUESTS[0]
    records = build_batch([Record(key=None, value=v, timestamp=1_700_000_000_000 + i) for i, v in enumerate(values)],
                          producer_id=pid, producer_epoch=epoch, transactional=True, base_sequence=0)
    resp = await conn.request(Req(transactional_id=tid, acks=1, timeout_ms=10000, topic_data=[Req.TopicProduceData(
        name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(index=0, records=records)])]),
        version, 30)
    return resp.responses[0].partition_responses[0].error_code


async def _end_txn(conn, tid: str, pid: int, epoch: int, commit: bool, version: int = 3) -> tuple[int, int, int]:
    resp = await conn.request(REQUESTS[26](transactional_id=tid, producer_id=pid, producer_epoch=epoch,
                                           committed=commit), version, 30)
    return resp.error_code, getattr(resp, "producer_id", -1), getattr(resp, "producer_epoch", -1)


def _control_batches(cluster: Cluster, node: int, topic: str) -> int:
    return sum(1 for header, _ in cluster.partition(node, topic).log.iter_batches() if header.is_control)


async def _shrink_isr(cluster: Cluster, topic: str) -> None:
    """Leader 1's manual clock passes replica.lag.time.max.ms: the blocked follower 2 leaves the ISR."""
    cluster.nodes[1].advance(LAG // 2)
    cluster.nodes[1].advance(LAG)
    await wait_for(lambda: cluster.partition(1, topic).isr == [1], message=f"the ISR of {topic} shrunk to [1]")


async def test_transaction_log_write_waits_until_a_stopped_follower_leaves_the_isr():
    async with _cluster() as cluster:
        cluster.create_topic(TXN_LOG, [[1, 2]], configs={"cleanup.policy": "compact"})
        rule = block_follower(cluster, 1, 2)
        await blocked(cluster, 1, rule)
        c1, c2 = await cluster.connect(1), await cluster.connect(1)
        coordinator = cluster.broker(1).txn_coordinator
        try:
            init = asyncio.ensure_future(_init_pid(c1, "tx"))
            await wait_for(lambda: "tx" in coordinator._pending, message="the record appended")
            leader_log = cluster.partition(1, TXN_LOG).log
            assert leader_log.log_end_offset == 1 and leader_log.high_watermark == 0
            fired = cluster.nodes[1].fault(rule)["fired"]
            await wait_for(lambda: cluster.nodes[1].fault(rule)["fired"] >= fired + 2,
                           message="more refused follower fetches")
            # Not answered, not in effect: the follower is still in the ISR.
            assert not init.done() and "tx" not in coordinator.txns
            # Another request for the id meanwhile (Kafka's pending transition).
            assert (await _init_pid(c2, "tx"))[0] == E.CONCURRENT_TRANSACTIONS
            await _shrink_isr(cluster, TXN_LOG)
            error, pid, epoch = await init
            assert (error, epoch) == (E.NONE, 0) and pid >= 0
            assert coordinator.txns["tx"].producer_id == pid
            assert leader_log.high_watermark == 1
        finally:
            c1.close()
            c2.close()


async def test_transaction_log_write_not_replicated_in_time_answers_coordinator_not_available():
    async with _cluster() as cluster:
        cluster.create_topic(TXN_LOG, [[1, 2]], configs={"cleanup.policy": "compact"})
        await blocked(cluster, 1, block_follower(cluster, 1, 2))
        conn = await cluster.connect(1)
        coordinator = cluster.broker(1).txn_coordinator
        try:
            # The append waits up to the transaction's timeout, on node 1's (manual) clock.
            init = asyncio.ensure_future(_init_pid(conn, "tx", timeout_ms=300))
            await wait_for(lambda: "tx" in coordinator._pending, message="the record appended")
            cluster.nodes[1].advance(300)
            assert (await init)[0] == E.COORDINATOR_NOT_AVAILABLE
            assert "tx" not in coordinator.txns and not coordinator._pending
            assert cluster.partition(1, TXN_LOG).log.log_end_offset == 1  # appended, not committed
        finally:
            conn.close()


async def test_transaction_log_under_min_insync_replicas_answers_coordinator_not_available():
    async with _cluster() as cluster:
        cluster.create_topic(TXN_LOG, [[1, 2]], isr=[[1]],
                             configs={"cleanup.policy": "compact", "min.insync.replicas": "2"})
        block_follower(cluster, 1, 2)  # it may not rejoin during the test
        conn = await cluster.connect(1)
        try:
            assert (await _init_pid(conn, "tx"))[0] == E.COORDINATOR_NOT_AVAILABLE
            assert cluster.partition(1, TXN_LOG).log.log_end_offset == 0  # refused before the append
            assert "tx" not in cluster.broker(1).txn_coordinator.txns
        finally:
            conn.close()


async def test_transaction_completes_only_once_its_markers_are_replicated():
    async with _cluster() as cluster:
        cluster.create_topic(TXN_LOG, [[1]], configs={"cleanup.policy": "compact"})
        cluster.create_topic("d", [[1, 2]])
        conn = await cluster.connect(1)
        coordinator = cluster.broker(1).txn_coordinator
        try:
            error, pid, epoch = await _init_pid(conn, "tx")
            assert error == E.NONE
            assert await _add_partition(conn, "tx", pid, epoch, "d") == E.NONE
            assert await _produce_txn(conn, "tx", pid, epoch, "d", [b"a", b"b"], 11) == E.NONE
            data = cluster.partition(1, "d")
            await wait_for(lambda: data.log.high_watermark == 2, message="the batch replicated")
            rule = block_follower(cluster, 1, 2)
            await blocked(cluster, 1, rule)
            # EndTxn answers once PrepareCommit is replicated (as Kafka); the marker waits for the ISR.
            assert (await _end_txn(conn, "tx", pid, epoch, True))[0] == E.NONE
            await wait_for(lambda: _control_batches(cluster, 1, "d") == 1, message="the marker appended")
            fired = cluster.nodes[1].fault(rule)["fired"]
            await wait_for(lambda: cluster.nodes[1].fault(rule)["fired"] >= fired + 2,
                           message="more refused follower fetches")
            assert coordinator.txns["tx"].state.name == "PREPARE_COMMIT"
            assert data.log.high_watermark == 2  # the marker is not committed
            assert await _add_partition(conn, "tx", pid, epoch, "d") == E.CONCURRENT_TRANSACTIONS
            await _shrink_isr(cluster, "d")
            await wait_for(lambda: coordinator.txns["tx"].state.name == "COMPLETE_COMMIT",
                           message="the transaction completed")
            assert data.log.high_watermark == 3
        finally:
            conn.close()


async def test_v2_produce_adds_the_partition_with_a_coordinator_on_another_broker():
    async with _cluster() as cluster:
        cluster.create_topic(TXN_LOG, [[1, 2]], configs={"cleanup.policy": "compact"})
        cluster.create_topic("d", [[2, 1]])  # led by broker 2, the coordinator is broker 1
        c1, c2 = await cluster.connect(1), await cluster.connect(2)
        coordinator = cluster.broker(1).txn_coordinator
        try:
            error, pid, epoch = await _init_pid(c1, "tx")
            assert error == E.NONE
            # Produce v12 (Transactions V2): broker 2 has the coordinator add the partition
            # (AddPartitionsToTxn v5) before appending.
            assert await _produce_txn(c2, "tx", pid, epoch, "d", [b"a", b"b"], 12) == E.NONE
            txn = coordinator.txns["tx"]
            assert txn.state.name == "ONGOING" and txn.partitions == {("d", 0)} and txn.client_txn_version == 2
            # An unknown producer is refused, nothing appended.
            assert await _produce_txn(c2, "tx", pid + 1000, 0, "d", [b"x"], 12) != E.NONE
            assert cluster.partition(2, "d").log.log_end_offset == 2
            # EndTxn v5: the epoch is bumped, the marker is written by broker 2 (WriteTxnMarkers).
            assert await _end_txn(c1, "tx", pid, epoch, True, version=5) == (E.NONE, pid, epoch + 1)
            await wait_for(lambda: coordinator.txns["tx"].state.name == "COMPLETE_COMMIT",
                           message="the transaction completed")
            assert _control_batches(cluster, 2, "d") == 1
            assert cluster.partition(2, "d").log.high_watermark == 3  # the marker replicated to broker 1
        finally:
            c1.close()
            c2.close()


async def test_sync_group_answers_once_the_assignment_is_replicated():
    async with Cluster(2, {"offsets.topic.num.partitions": "1", "replica.lag.time.max.ms": str(LAG),
                           "group.initial.rebalance.delay.ms": "0"},
                       per_node={1: {"kbroker.clock": "manual"}}) as cluster:
        cluster.create_topic("__consumer_offsets", [[1, 2]], configs={"cleanup.policy": "compact"})
        J, S = REQUESTS[11], REQUESTS[14]
        c1 = await cluster.connect(1)
        try:
            async def join(member_id: str):
                return await c1.request(J(group_id="g", session_timeout_ms=30000, rebalance_timeout_ms=60000,
                                          member_id=member_id, group_instance_id=None, protocol_type="consumer",
                                          protocols=[J.JoinGroupRequestProtocol(name="range", metadata=b"m")]), 5, 30)

            joined = await join("")
            if joined.error_code == E.MEMBER_ID_REQUIRED:
                joined = await join(joined.member_id)
            assert joined.error_code == E.NONE
            offsets = cluster.partition(1, "__consumer_offsets")
            await wait_for(lambda: offsets.log.high_watermark == offsets.log.log_end_offset, message="caught up")
            rule = block_follower(cluster, 1, 2)
            await blocked(cluster, 1, rule)
            end = offsets.log.log_end_offset
            sync = asyncio.ensure_future(c1.request(S(
                group_id="g", generation_id=joined.generation_id, member_id=joined.member_id, group_instance_id=None,
                assignments=[S.SyncGroupRequestAssignment(member_id=joined.member_id, assignment=b"a")]), 3, 30))
            await wait_for(lambda: offsets.log.log_end_offset > end, message="the assignment appended")
            fired = cluster.nodes[1].fault(rule)["fired"]
            await wait_for(lambda: cluster.nodes[1].fault(rule)["fired"] >= fired + 2,
                           message="more refused follower fetches")
            assert not sync.done()  # the assignment is not committed yet
            await _shrink_isr(cluster, "__consumer_offsets")
            resp = await sync
            assert (resp.error_code, bytes(resp.assignment)) == (E.NONE, b"a")
            assert offsets.log.high_watermark == offsets.log.log_end_offset
        finally:
            c1.close()
