"""Transactions across a broker restart: open and prepared transactions rebuilt from the logs and completed,
transactional id and producer id expiration surviving the restart."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaProducer, TopicPartition
from waiting import wait_until

from kbroker.coordinator.txn_log import TxnState
from tests.integration.transaction_api_helpers import _add_partitions, describe_state
from tests.integration.transaction_restart_helpers import _restartable, consume_all
from tests.integration.transactions_helpers import (
    RawClient,
    create_topic,
    data_batch,
    free_port,
    init_producer_id,
    list_offset,
    produce,
)

# -- restarts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("snapshot", [True, False], ids=["from-snapshot", "full-scan"])
def test_restart_keeps_an_ongoing_transaction_open_until_it_times_out(tmp_path, snapshot):
    port = free_port()
    tid = "restart-ongoing"
    broker = _restartable(tmp_path, port).start()
    try:
        bootstrap = broker.bootstrap_servers
        create_topic(bootstrap, "t")
        producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid, transaction_timeout_ms=600000)
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("t", b"committed")
        producer.commit_transaction()
        producer.begin_transaction()
        producer.send("t", b"in-flight").get(timeout=10)
        producer.close(timeout=0)
    finally:
        broker.stop()
    if not snapshot:
        for path in tmp_path.glob("*/*.producer-snapshot"):
            path.unlink()

    broker = _restartable(tmp_path, port).start()
    try:
        raw = RawClient(broker.bootstrap_servers)
        # The open transaction and its first offset were rebuilt from the logs.
        assert describe_state(broker, tid) == TxnState.ONGOING
        assert list_offset(raw, "t", isolation=1) == 2
        assert list_offset(raw, "t") == 3
        # Its timeout (ten minutes) passes: the periodic check aborts it.
        aborted = broker.call(lambda: broker.broker.txn_coordinator.abort_timed_out(
            int(time.time() * 1000) + 600001))
        assert aborted == [tid]
        assert describe_state(broker, tid) == TxnState.COMPLETE_ABORT
        assert list_offset(raw, "t", isolation=1) == list_offset(raw, "t") == 4
        assert [m.value for m in consume_all(broker.bootstrap_servers, "t", "read_committed", 4)] == [b"committed"]
        raw.close()
    finally:
        broker.stop()


def test_restart_completes_a_prepared_commit(tmp_path):
    port = free_port()
    tid = "restart-prepared"
    broker = _restartable(tmp_path, port).start()
    try:
        bootstrap = broker.bootstrap_servers
        create_topic(bootstrap, "t", partitions=2)
        producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid)
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("t", b"p0", partition=0)
        producer.send("t", b"p1", partition=1)
        producer.flush()
        coordinator = broker.broker.txn_coordinator

        def prepare():  # the broker "stops" after logging PrepareCommit, before any marker
            txn = coordinator.txns[tid]
            return coordinator._write(txn.copy(state=TxnState.PREPARE_COMMIT))

        broker.call(prepare)
        producer.close(timeout=0)
    finally:
        broker.stop()

    broker = _restartable(tmp_path, port).start()
    try:
        raw = RawClient(broker.bootstrap_servers)
        # (completed after loading, as Kafka's coordinator does: markers, then CompleteCommit)
        wait_until(lambda: describe_state(broker, tid) == TxnState.COMPLETE_COMMIT, message="completed at start-up")
        assert [list_offset(raw, "t", p, isolation=1) for p in range(2)] == [2, 2]
        got = consume_all(broker.bootstrap_servers, "t", "read_committed", 2, partitions=2)
        assert sorted(m.value for m in got) == [b"p0", b"p1"]
        raw.close()
    finally:
        broker.stop()


def test_restart_completes_a_prepared_commit_with_group_offsets(tmp_path):
    from kafka import KafkaConsumer as _Consumer

    from kbroker_protocol.messages.add_offsets_to_txn import AddOffsetsToTxnRequest, AddOffsetsToTxnResponse
    from kbroker_protocol.messages.txn_offset_commit import TxnOffsetCommitRequest, TxnOffsetCommitResponse

    port = free_port()
    tid, group = "restart-offsets", "restart-offsets-group"
    broker = _restartable(tmp_path, port).start()
    try:
        raw = RawClient(broker.bootstrap_servers)
        create_topic(broker.bootstrap_servers, "in")
        create_topic(broker.bootstrap_servers, "out")
        init = init_producer_id(raw, tid)
        pid, epoch = init.producer_id, init.producer_epoch
        assert _add_partitions(raw, tid, pid, epoch, "out", [0]) == {0: 0}
        assert produce(raw, "out", 0, data_batch(pid, epoch, 0, [b"result"], transactional=True),
                       transactional_id=tid).error_code == 0
        added = raw.call(AddOffsetsToTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch,
                                                group_id=group), AddOffsetsToTxnResponse, 3)
        assert added.error_code == 0
        commit = TxnOffsetCommitRequest(
            transactional_id=tid, group_id=group, producer_id=pid, producer_epoch=epoch, generation_id_or_member_epoch=-1,
            member_id="", group_instance_id=None, topics=[TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic(
                name="in", partitions=[TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
                                       .TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=7)])])
        assert raw.call(commit, TxnOffsetCommitResponse, 3).topics[0].partitions[0].error_code == 0
        coordinator = broker.broker.txn_coordinator
        broker.call(lambda: coordinator._write(coordinator.txns[tid].copy(state=TxnState.PREPARE_COMMIT)))
        raw.close()
    finally:
        broker.stop()

    broker = _restartable(tmp_path, port).start()
    try:
        # (completed after loading, as Kafka's coordinator does: markers, then CompleteCommit)
        wait_until(lambda: describe_state(broker, tid) == TxnState.COMPLETE_COMMIT, message="completed at start-up")
        raw = RawClient(broker.bootstrap_servers)
        assert list_offset(raw, "out", isolation=1) == 2
        raw.close()
        consumer = _Consumer(bootstrap_servers=broker.bootstrap_servers, group_id=group, enable_auto_commit=False)
        assert consumer.committed(TopicPartition("in", 0)) == 7
        consumer.close()
    finally:
        broker.stop()


def test_transactional_id_and_producer_id_expiration(tmp_path):
    port = free_port()
    broker = _restartable(tmp_path, port).start()
    try:
        raw = RawClient(broker.bootstrap_servers)
        create_topic(broker.bootstrap_servers, "t")
        coordinator = broker.broker.txn_coordinator
        idle, busy = "expire-idle", "expire-busy"
        idle_init = init_producer_id(raw, idle)
        busy_init = init_producer_id(raw, busy)
        _add_partitions(raw, busy, busy_init.producer_id, busy_init.producer_epoch, "t", [0])
        assert produce(raw, "t", 0, data_batch(busy_init.producer_id, busy_init.producer_epoch, 0, [b"x"],
                                               transactional=True), transactional_id=busy).error_code == 0
        idem = init_producer_id(raw).producer_id
        assert produce(raw, "t", 0, data_batch(idem, 0, 0, [b"y"])).error_code == 0
        week_later = int(time.time() * 1000) + 7 * 24 * 3600 * 1000 + 1000
        # transactional.id.expiration.ms (7 days): only ids without an ongoing transaction go.
        assert broker.call(coordinator.expire_transactional_ids, week_later) == [idle]
        # producer.id.expiration.ms (1 day): the idle idempotent producer is forgotten, the open
        # transaction's producer stays.
        # (the replica manager's check, as Kafka's logs run it)
        housekeeping = broker.broker.replica_manager.producer_housekeeping
        assert broker.call(housekeeping.remove_expired_producers, week_later) == 1
        partition = broker.broker.partition("t", 0)
        assert broker.call(lambda: set(partition.producer_state.producers)) == {busy_init.producer_id}
        raw.close()
    finally:
        broker.stop()
    broker = _restartable(tmp_path, port).start()
    try:
        # The tombstone survives the restart: the id starts afresh with a new producer id.
        assert describe_state(broker, idle) is None
        assert describe_state(broker, busy) == TxnState.ONGOING
        raw = RawClient(broker.bootstrap_servers)
        again = init_producer_id(raw, idle)
        assert (again.error_code, again.producer_epoch) == (0, 0)
        assert again.producer_id != idle_init.producer_id
        raw.close()
    finally:
        broker.stop()
