"""The transaction APIs at the protocol level: AddPartitionsToTxn verification, coordinator errors, the admin
APIs, aborted transactions in Fetch, WriteTxnMarkers, Transactions V2 (KIP-890), exhausted epochs and
seeded random interleavings checked against a model."""

from __future__ import annotations

import pytest
from kafka import TopicPartition

from kbroker.coordinator.txn_log import TxnState
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.records import iter_records
from tests.integration.transaction_api_helpers import (  # noqa: F401 (fixtures)
    _add_partitions,
    bootstrap_fixture,
    describe_state,
    raw_fixture,
    txn_broker_fixture,
)
from tests.integration.transaction_restart_helpers import consume_all
from tests.integration.transactions_helpers import (
    create_topic,
    data_batch,
    init_producer_id,
    list_offset,
    new_name,
    produce,
)

# -- protocol level ---------------------------------------------------------------------------------


def test_transactional_batch_to_a_partition_not_in_the_transaction(bootstrap, raw):
    topic = new_name("verify")
    create_topic(bootstrap, topic, partitions=2)
    tid = new_name("verify-tx")
    init = init_producer_id(raw, tid)
    assert init.error_code == 0
    pid, epoch = init.producer_id, init.producer_epoch
    resp = produce(raw, topic, 0, data_batch(pid, epoch, 0, [b"x"], transactional=True), transactional_id=tid)
    assert resp.error_code == ErrorCode.INVALID_TXN_STATE
    _add_partitions(raw, tid, pid, epoch, topic, [1])
    resp = produce(raw, topic, 1, data_batch(pid, epoch, 0, [b"x"], transactional=True), transactional_id=tid)
    assert resp.error_code == ErrorCode.NONE
    resp = produce(raw, topic, 0, data_batch(pid, epoch, 0, [b"x"], transactional=True), transactional_id=tid)
    assert resp.error_code == ErrorCode.INVALID_TXN_STATE
    # Broker-to-broker verification (v4+, VerifyOnly) reports the same.
    from kbroker_protocol.messages.add_partitions_to_txn import (
        AddPartitionsToTxnRequest,
        AddPartitionsToTxnResponse,
        AddPartitionsToTxnTopic,
    )

    request = AddPartitionsToTxnRequest(transactions=[AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction(
        transactional_id=tid, producer_id=pid, producer_epoch=epoch, verify_only=True,
        topics=[AddPartitionsToTxnTopic(name=topic, partitions=[0, 1])])])
    response = raw.call(request, AddPartitionsToTxnResponse, 5)
    codes = {p.partition_index: p.partition_error_code
             for t in response.results_by_transaction[0].topic_results for p in t.results_by_partition}
    assert codes == {0: ErrorCode.TRANSACTION_ABORTABLE, 1: ErrorCode.NONE}  # (Kafka 4)
    for verify_epoch, verify_pid, code in ((epoch + 1, pid, ErrorCode.PRODUCER_FENCED),
                                           (epoch, pid + 1, ErrorCode.INVALID_PRODUCER_ID_MAPPING)):
        request = AddPartitionsToTxnRequest(transactions=[AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction(
            transactional_id=tid, producer_id=verify_pid, producer_epoch=verify_epoch, verify_only=True,
            topics=[AddPartitionsToTxnTopic(name=topic, partitions=[0, 1])])])
        response = raw.call(request, AddPartitionsToTxnResponse, 5)
        assert {p.partition_error_code for t in response.results_by_transaction[0].topic_results
                for p in t.results_by_partition} == {code}
    # v4+ batches transactions; without VerifyOnly it adds (an unknown id answers for itself only).
    request = AddPartitionsToTxnRequest(transactions=[
        AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction(
            transactional_id=tid, producer_id=pid, producer_epoch=epoch, verify_only=False,
            topics=[AddPartitionsToTxnTopic(name=topic, partitions=[0])]),
        AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction(
            transactional_id="never-initialised", producer_id=pid, producer_epoch=epoch, verify_only=False,
            topics=[AddPartitionsToTxnTopic(name=topic, partitions=[0])]),
    ])
    response = raw.call(request, AddPartitionsToTxnResponse, 4)
    results = {r.transactional_id: [p.partition_error_code for t in r.topic_results for p in t.results_by_partition]
               for r in response.results_by_transaction}
    assert results == {tid: [ErrorCode.NONE], "never-initialised": [ErrorCode.INVALID_PRODUCER_ID_MAPPING]}
    resp = produce(raw, topic, 0, data_batch(pid, epoch, 0, [b"x"], transactional=True), transactional_id=tid)
    assert resp.error_code == ErrorCode.NONE
    _end_txn(raw, tid, pid, epoch, commit=False)


def _end_txn(raw, tid, pid, epoch, commit, version=3) -> int:
    from kbroker_protocol.messages.end_txn import EndTxnRequest, EndTxnResponse

    return raw.call(EndTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=commit),
                    EndTxnResponse, version).error_code


def test_coordinator_errors(bootstrap, raw):
    topic = new_name("errors")
    create_topic(bootstrap, topic)
    tid = new_name("errors-tx")
    assert init_producer_id(raw, tid, timeout_ms=10**9).error_code == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    init = init_producer_id(raw, tid)
    pid, epoch = init.producer_id, init.producer_epoch
    assert _end_txn(raw, tid, pid, epoch, commit=True) == ErrorCode.INVALID_TXN_STATE  # nothing to end
    assert _add_partitions(raw, tid, pid + 1, epoch, topic, [0]) == {0: ErrorCode.INVALID_PRODUCER_ID_MAPPING}
    assert _add_partitions(raw, tid, pid, epoch, "no-such-topic", [0]) == {0: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert _add_partitions(raw, tid, pid, epoch, topic, [0]) == {0: ErrorCode.NONE}
    assert _end_txn(raw, tid, pid, epoch, commit=True) == ErrorCode.NONE
    assert _end_txn(raw, tid, pid, epoch, commit=True) == ErrorCode.NONE  # a retry
    assert _end_txn(raw, tid, pid, epoch, commit=False) == ErrorCode.INVALID_TXN_STATE
    again = init_producer_id(raw, tid)
    assert (again.producer_id, again.producer_epoch) == (pid, epoch + 1)
    # The old epoch is fenced: PRODUCER_FENCED from v2 on, INVALID_PRODUCER_EPOCH before.
    assert _add_partitions(raw, tid, pid, epoch, topic, [0], version=3) == {0: ErrorCode.PRODUCER_FENCED}
    assert _add_partitions(raw, tid, pid, epoch, topic, [0], version=1) == {0: ErrorCode.INVALID_PRODUCER_EPOCH}
    assert _end_txn(raw, tid, pid, epoch, commit=True, version=1) == ErrorCode.INVALID_PRODUCER_EPOCH
    # KIP-360: a v3+ InitProducerId naming the current id and epoch gets a bump; a retry of that
    # bump (naming the previous epoch) gets the same answer again; another id is fenced.
    bumped = init_producer_id(raw, tid, producer_id=pid, producer_epoch=epoch + 1)
    assert (bumped.error_code, bumped.producer_id, bumped.producer_epoch) == (0, pid, epoch + 2)
    retried = init_producer_id(raw, tid, producer_id=pid, producer_epoch=epoch + 1)
    assert (retried.error_code, retried.producer_id, retried.producer_epoch) == (0, pid, epoch + 2)
    stale = init_producer_id(raw, tid, producer_id=pid + 1000, producer_epoch=0)
    assert stale.error_code == ErrorCode.PRODUCER_FENCED
    assert init_producer_id(raw, tid, producer_id=pid + 1000, producer_epoch=0, version=3).error_code == \
        ErrorCode.INVALID_PRODUCER_EPOCH


def test_list_and_describe_transactions_and_producers(bootstrap, raw):
    from kbroker_protocol.messages.describe_producers import (
        DescribeProducersRequest,
        DescribeProducersResponse,
    )
    from kbroker_protocol.messages.describe_transactions import (
        DescribeTransactionsRequest,
        DescribeTransactionsResponse,
    )
    from kbroker_protocol.messages.list_transactions import ListTransactionsRequest, ListTransactionsResponse

    topic = new_name("admin")
    create_topic(bootstrap, topic)
    tid = new_name("admin-tx")
    init = init_producer_id(raw, tid, timeout_ms=45000)
    pid, epoch = init.producer_id, init.producer_epoch
    _add_partitions(raw, tid, pid, epoch, topic, [0])
    assert produce(raw, topic, 0, data_batch(pid, epoch, 0, [b"a", b"b"], transactional=True),
                   transactional_id=tid).error_code == 0

    listed = raw.call(ListTransactionsRequest(state_filters=["Ongoing", "Bogus"]), ListTransactionsResponse, 1)
    assert listed.unknown_state_filters == ["Bogus"]
    assert (tid, pid, "Ongoing") in [(s.transactional_id, s.producer_id, s.transaction_state)
                                     for s in listed.transaction_states]
    pattern = raw.call(ListTransactionsRequest(transactional_id_pattern=tid.replace("-", ".")),
                       ListTransactionsResponse, 2)
    assert [s.transactional_id for s in pattern.transaction_states] == [tid]
    bad = raw.call(ListTransactionsRequest(transactional_id_pattern="(unclosed"), ListTransactionsResponse, 2)
    assert (bad.error_code, bad.transaction_states) == (ErrorCode.INVALID_REGULAR_EXPRESSION, [])

    described = raw.call(DescribeTransactionsRequest(transactional_ids=[tid, "unknown-id", ""]),
                         DescribeTransactionsResponse, 0)
    state, unknown, empty = described.transaction_states
    assert empty.error_code == ErrorCode.INVALID_REQUEST
    assert (state.error_code, state.transaction_state, state.transaction_timeout_ms) == (0, "Ongoing", 45000)
    assert (state.producer_id, state.producer_epoch) == (pid, epoch)
    assert [(t.topic, t.partitions) for t in state.topics] == [(topic, [0])]
    assert unknown.error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND

    producers = raw.call(DescribeProducersRequest(topics=[DescribeProducersRequest.TopicRequest(
        name=topic, partition_indexes=[0])]), DescribeProducersResponse, 0)
    [p] = producers.topics[0].partitions[0].active_producers
    assert (p.producer_id, p.producer_epoch, p.last_sequence, p.current_txn_start_offset) == (pid, epoch, 1, 0)

    assert _end_txn(raw, tid, pid, epoch, commit=True) == 0
    described = raw.call(DescribeTransactionsRequest(transactional_ids=[tid]), DescribeTransactionsResponse, 0)
    assert described.transaction_states[0].transaction_state == "CompleteCommit"
    producers = raw.call(DescribeProducersRequest(topics=[DescribeProducersRequest.TopicRequest(
        name=topic, partition_indexes=[0])]), DescribeProducersResponse, 0)
    assert producers.topics[0].partitions[0].active_producers[0].current_txn_start_offset == -1


def test_fetch_returns_aborted_transactions_at_read_committed(txn_broker, bootstrap, raw):
    from kbroker_protocol.messages.fetch import FetchRequest, FetchResponse

    topic = new_name("fetch")
    create_topic(bootstrap, topic)
    tid = new_name("fetch-tx")
    init = init_producer_id(raw, tid)
    pid, epoch = init.producer_id, init.producer_epoch
    seq = 0
    for commit in (False, True, False):
        _add_partitions(raw, tid, pid, epoch, topic, [0])
        assert produce(raw, topic, 0, data_batch(pid, epoch, seq, [b"1", b"2"], transactional=True),
                       transactional_id=tid).error_code == 0
        seq += 2
        assert _end_txn(raw, tid, pid, epoch, commit) == 0
    # 0-1 aborted (marker 2), 3-4 committed (marker 5), 6-7 aborted (marker 8)

    def fetch(isolation: int, offset: int):
        request = FetchRequest(max_wait_ms=0, min_bytes=0, isolation_level=isolation, session_epoch=-1, topics=[
            FetchRequest.FetchTopic(topic=topic, partitions=[FetchRequest.FetchTopic.FetchPartition(
                partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)])])
        return raw.call(request, FetchResponse, 11).responses[0].partitions[0]

    part = fetch(1, 0)
    assert (part.high_watermark, part.last_stable_offset) == (9, 9)
    assert [(a.producer_id, a.first_offset) for a in part.aborted_transactions] == [(pid, 0), (pid, 6)]
    assert [(a.producer_id, a.first_offset) for a in fetch(1, 3).aborted_transactions] == [(pid, 6)]
    assert fetch(0, 0).aborted_transactions is None
    # The control batches are in the data (consumers drop them); each holds one marker record.
    data = bytes(part.records)
    from kbroker_protocol.record_batch import iter_batch_headers

    controls = [h for _pos, h in iter_batch_headers(data) if h.is_control]
    assert [h.base_offset for h in controls] == [2, 5, 8]
    assert all(len(list(iter_records(data, pos))) == 1 for pos, h in iter_batch_headers(data) if h.is_control)

    # The aborted-transaction index is the segment's .txnindex file (nothing of it in memory);
    # once the log start passes an aborted transaction, a fetch from there no longer lists it.
    from kbroker_protocol.messages.delete_records import DeleteRecordsRequest, DeleteRecordsResponse

    T = DeleteRecordsRequest.DeleteRecordsTopic
    deleted = raw.call(DeleteRecordsRequest(timeout_ms=5000, topics=[T(name=topic, partitions=[
        T.DeleteRecordsPartition(partition_index=0, offset=3)])]), DeleteRecordsResponse, 2)
    assert deleted.topics[0].partitions[0].low_watermark == 3
    partition = txn_broker.broker.partition(topic, 0)
    txn_broker.call(txn_broker.broker.replica_manager.producer_housekeeping.remove_expired_producers)
    assert not hasattr(partition.producer_state, "aborted")
    assert (partition.log.directory / f"{0:020d}.txnindex").stat().st_size == 2 * 34
    assert txn_broker.call(lambda: partition.aborted_transactions(3, partition.log_end_offset)) == [(pid, 6)]


# -- Transactions V2 (KIP-890 part 2) ---------------------------------------------------------------


def test_transactions_v2_at_the_protocol_level(txn_broker, bootstrap, raw):
    from kafka import KafkaConsumer as _Consumer

    from kbroker_protocol.messages.txn_offset_commit import TxnOffsetCommitRequest, TxnOffsetCommitResponse

    topic, group = new_name("v2"), new_name("v2-group")
    create_topic(bootstrap, topic, partitions=2)
    tid = new_name("v2-tx")
    init = init_producer_id(raw, tid, version=5)
    pid, epoch = init.producer_id, init.producer_epoch
    # Produce v12 adds the partition itself; v11 still needs AddPartitionsToTxn.
    assert produce(raw, topic, 1, data_batch(pid, epoch, 0, [b"v1"], transactional=True), transactional_id=tid,
                   version=11).error_code == ErrorCode.INVALID_TXN_STATE
    assert produce(raw, topic, 0, data_batch(pid, epoch, 0, [b"a", b"b"], transactional=True),
                   transactional_id=tid, version=12).error_code == 0
    assert describe_state(txn_broker, tid) == TxnState.ONGOING
    # TxnOffsetCommit v5 adds the group's offsets partition itself (no AddOffsetsToTxn).
    commit = TxnOffsetCommitRequest(transactional_id=tid, group_id=group, producer_id=pid, producer_epoch=epoch,
                                    generation_id_or_member_epoch=-1, member_id="", group_instance_id=None, topics=[
                                        TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic(name=topic, partitions=[
                                            TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
                                            .TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=2)])])
    response = raw.call(commit, TxnOffsetCommitResponse, 5)
    assert response.topics[0].partitions[0].error_code == 0
    assert list_offset(raw, topic, isolation=1) == 0

    end = _end_txn_v5(raw, tid, pid, epoch, commit=True)
    assert (end.error_code, end.producer_id, end.producer_epoch) == (0, pid, epoch + 1)
    assert list_offset(raw, topic, isolation=1) == list_offset(raw, topic) == 3
    # The committed offset became visible with the transaction.
    consumer = _Consumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    assert consumer.committed(TopicPartition(topic, 0)) == 2
    consumer.close()
    # A retried EndTxn (the old epoch) gets the same answer; a batch with the old epoch is fenced.
    again = _end_txn_v5(raw, tid, pid, epoch, commit=True)
    assert (again.error_code, again.producer_epoch) == (0, epoch + 1)
    assert produce(raw, topic, 0, data_batch(pid, epoch, 2, [b"late"], transactional=True), transactional_id=tid,
                   version=12).error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    # The next transaction runs at the new epoch from sequence 0, and its abort bumps again.
    epoch += 1
    assert produce(raw, topic, 0, data_batch(pid, epoch, 0, [b"x"], transactional=True), transactional_id=tid,
                   version=12).error_code == 0
    end = _end_txn_v5(raw, tid, pid, epoch, commit=False)
    assert (end.error_code, end.producer_epoch) == (0, epoch + 1)
    # Aborting with nothing in flight still bumps the epoch (V2 clients may do that).
    end = _end_txn_v5(raw, tid, pid, epoch + 1, commit=False)
    assert (end.error_code, end.producer_epoch) == (0, epoch + 2)
    values = [m.value for m in consume_all(bootstrap, topic, "read_committed", list_offset(raw, topic))]
    assert values == [b"a", b"b"]


def _end_txn_v5(raw, tid, pid, epoch, commit):
    from kbroker_protocol.messages.end_txn import EndTxnRequest, EndTxnResponse

    return raw.call(EndTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=commit),
                    EndTxnResponse, 5)


def test_write_txn_markers(bootstrap, raw):
    from kbroker_protocol.messages.write_txn_markers import WriteTxnMarkersRequest, WriteTxnMarkersResponse

    topic = new_name("markers")
    create_topic(bootstrap, topic)
    tid = new_name("markers-tx")
    init_producer_id(raw, tid)
    init = init_producer_id(raw, tid)  # epoch 1, so that an older epoch exists
    pid, epoch = init.producer_id, init.producer_epoch
    assert epoch == 1
    _add_partitions(raw, tid, pid, epoch, topic, [0])
    assert produce(raw, topic, 0, data_batch(pid, epoch, 0, [b"m"], transactional=True),
                   transactional_id=tid).error_code == 0
    assert list_offset(raw, topic, isolation=1) == 0

    def markers(marker_epoch: int, partitions: list[int], commit: bool = True) -> dict[int, int]:
        marker = WriteTxnMarkersRequest.WritableTxnMarker(
            producer_id=pid, producer_epoch=marker_epoch, transaction_result=commit, coordinator_epoch=5,
            topics=[WriteTxnMarkersRequest.WritableTxnMarker.WritableTxnMarkerTopic(name=topic,
                                                                                    partition_indexes=partitions)])
        response = raw.call(WriteTxnMarkersRequest(markers=[marker]), WriteTxnMarkersResponse, 1)
        return {p.partition_index: p.error_code for p in response.markers[0].topics[0].partitions}

    assert markers(epoch, [0, 9]) == {0: ErrorCode.NONE, 9: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert list_offset(raw, topic, isolation=1) == list_offset(raw, topic) == 2
    assert markers(epoch - 1, [0]) == {0: ErrorCode.INVALID_PRODUCER_EPOCH}
    assert [m.value for m in consume_all(bootstrap, topic, "read_committed", 2)] == [b"m"]
    assert _end_txn(raw, tid, pid, epoch, commit=True) == 0


def test_exhausted_epochs_move_to_a_new_producer_id(txn_broker, bootstrap, raw):
    topic = new_name("exhaust")
    create_topic(bootstrap, topic)
    coordinator = txn_broker.broker.txn_coordinator

    def set_epoch(tid: str, epoch: int) -> None:
        txn_broker.call(lambda: coordinator._write(coordinator.txns[tid].copy(producer_epoch=epoch)))

    # Transactions V1: InitProducerId at epoch 32766 (Short.MAX_VALUE - 1) takes a new id at epoch 0.
    v1 = new_name("exhaust-v1")
    pid = init_producer_id(raw, v1).producer_id
    set_epoch(v1, 32765)
    assert init_producer_id(raw, v1).producer_epoch == 32766
    again = init_producer_id(raw, v1)
    assert again.producer_id != pid and again.producer_epoch == 0
    # Transactions V2 (Kafka's prepareAbortOrCommit): an EndTxn at 32765 bumps to 32766; the EndTxn
    # at 32766 (exhausted) answers with the next id at epoch 0, its markers carry the old id at
    # 32767 (Short.MAX_VALUE), and a retry of it is recognised by the old id and epoch.
    v2 = new_name("exhaust-v2")
    pid = init_producer_id(raw, v2).producer_id
    set_epoch(v2, 32765)
    end = _end_txn_v5(raw, v2, pid, 32765, commit=False)
    assert (end.error_code, end.producer_id, end.producer_epoch) == (0, pid, 32766)
    assert produce(raw, topic, 0, data_batch(pid, 32766, 0, [b"last"], transactional=True), transactional_id=v2,
                   version=12).error_code == 0
    end = _end_txn_v5(raw, v2, pid, 32766, commit=True)
    assert end.error_code == 0 and end.producer_id != pid and end.producer_epoch == 0
    retry = _end_txn_v5(raw, v2, pid, 32766, commit=True)
    assert (retry.error_code, retry.producer_id, retry.producer_epoch) == (0, end.producer_id, 0)
    assert list_offset(raw, topic, isolation=1) == list_offset(raw, topic) == 2
    assert produce(raw, topic, 0, data_batch(end.producer_id, 0, 0, [b"next"], transactional=True),
                   transactional_id=v2, version=12).error_code == 0
    assert _end_txn_v5(raw, v2, end.producer_id, 0, commit=True).error_code == 0
    values = [m.value for m in consume_all(bootstrap, topic, "read_committed", list_offset(raw, topic))]
    assert values == [b"last", b"next"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_interleavings_match_a_model(bootstrap, raw, seed):
    """Seeded random mixes of transactional batches, commits, aborts and plain records in one
    partition: after every step the last stable offset is the model's, and read_committed returns
    exactly the committed and plain records, in offset order."""
    import random

    rng = random.Random(seed)
    topic = new_name(f"model{seed}")
    create_topic(bootstrap, topic)
    producers = []
    for i in range(3):
        tid = new_name(f"model{seed}-{i}")
        init = init_producer_id(raw, tid)
        producers.append({"tid": tid, "pid": init.producer_id, "epoch": init.producer_epoch, "seq": 0,
                          "open": None, "pending": []})
    plain_pid = init_producer_id(raw).producer_id
    plain_seq = 0
    next_offset = 0
    visible: list[bytes] = []
    for step in range(60):
        p = rng.choice(producers)
        action = rng.random()
        if action < 0.5:
            values = [b"%d-%s-%d" % (seed, p["tid"][-4:].encode(), step * 10 + k) for k in range(rng.randint(1, 3))]
            if p["open"] is None:
                assert _add_partitions(raw, p["tid"], p["pid"], p["epoch"], topic, [0]) == {0: 0}
                p["open"] = next_offset
            resp = produce(raw, topic, 0, data_batch(p["pid"], p["epoch"], p["seq"], values, transactional=True),
                           transactional_id=p["tid"])
            assert (resp.error_code, resp.base_offset) == (0, next_offset)
            p["seq"] += len(values)
            p["pending"].extend(values)
            next_offset += len(values)
        elif action < 0.8 and p["open"] is not None:
            commit = rng.random() < 0.5
            assert _end_txn(raw, p["tid"], p["pid"], p["epoch"], commit) == 0
            if commit:
                visible.extend(p["pending"])
            p["open"], p["pending"] = None, []
            next_offset += 1  # the marker
        else:
            value = b"plain-%d" % step
            resp = produce(raw, topic, 0, data_batch(plain_pid, 0, plain_seq, [value]))
            assert (resp.error_code, resp.base_offset) == (0, next_offset)
            plain_seq += 1
            next_offset += 1
            visible.append(value)
        opens = [q["open"] for q in producers if q["open"] is not None]
        assert list_offset(raw, topic, isolation=1) == (min(opens) if opens else next_offset), step
    for p in producers:
        if p["open"] is not None:
            assert _end_txn(raw, p["tid"], p["pid"], p["epoch"], True) == 0
            visible.extend(p["pending"])
            next_offset += 1
    assert list_offset(raw, topic) == list_offset(raw, topic, isolation=1) == next_offset
    got = consume_all(bootstrap, topic, "read_committed", next_offset)
    # Commit order is not offset order: compare as offset-ordered sets of values.
    assert sorted(m.value for m in got) == sorted(visible)
    assert [m.offset for m in got] == sorted(m.offset for m in got)
