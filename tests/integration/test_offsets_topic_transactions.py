"""The producer state of ``__consumer_offsets`` follows the transactional offset commits written there.

As Kafka's group coordinator appends through ``ReplicaManager.appendRecordsToLeader`` with origin
COORDINATOR (``UnifiedLog.analyzeAndValidateProducerState``), a TxnOffsetCommit's batch opens the
producer's transaction in the offsets partition and the marker closes it: the partition's last
stable offset stays at the transaction's first offset until the marker (a read_committed reader of
``__consumer_offsets`` sees committed offsets only then, aborted ones never), DescribeProducers
lists the producer, and the state survives a restart (a kill, and a clean stop's snapshot). A
transaction's offsets partition gets one marker, however many of its groups took part. The last
two tests run their scenarios on Apache Kafka 4.4 itself (scripts/reference_kafka.py) and on kbroker.
"""

from __future__ import annotations

import signal
import time

import pytest
import reference_kafka
from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import Producer as CKProducer
from confluent_kafka import TopicPartition as CKTopicPartition
from kafka import KafkaConsumer, TopicPartition
from waiting import wait_until

from kbroker.coordinator.group_records import decode_offset_value, encode_offset_key
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.add_offsets_to_txn import AddOffsetsToTxnRequest, AddOffsetsToTxnResponse
from kbroker_protocol.messages.describe_producers import DescribeProducersRequest, DescribeProducersResponse
from kbroker_protocol.messages.describe_transactions import (
    DescribeTransactionsRequest,
    DescribeTransactionsResponse,
)
from kbroker_protocol.messages.end_txn import EndTxnRequest, EndTxnResponse
from kbroker_protocol.messages.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse
from kbroker_protocol.messages.list_offsets import ListOffsetsRequest, ListOffsetsResponse
from kbroker_protocol.messages.txn_offset_commit import TxnOffsetCommitRequest, TxnOffsetCommitResponse
from tests.integration.cli_helpers import BrokerProcess, base_args
from tests.integration.transaction_restart_helpers import FAST_TIMEOUTS
from tests.integration.transactions_helpers import (
    RawClient,
    create_topic,
    data_batch,
    init_producer_id,
    list_offset,
    new_name,
    produce,
)

OFFSETS = "__consumer_offsets"


@pytest.fixture(scope="module")
def broker():
    with BrokerThread(config=FAST_TIMEOUTS) as b:
        yield b


# The offsets partitions the module's broker's tests have used: each test takes a group of its own
# partition, so another test's producer or transaction never shows in what it asserts (the broker
# has few offsets partitions).
_USED_PARTITIONS: set[int] = set()


def own_group(broker: BrokerThread, prefix: str) -> tuple[str, int]:
    """A new group id whose ``__consumer_offsets`` partition no other test of this module used, and
    that partition."""
    while True:
        group = new_name(prefix)
        part = broker.call(lambda g=group: broker.broker.group_coordinator.partition_for(g))
        if part not in _USED_PARTITIONS:
            _USED_PARTITIONS.add(part)
            return group, part


@pytest.fixture
def raw(broker):
    client = RawClient(broker.bootstrap_servers)
    yield client
    client.close()


def describe_producers(raw: RawClient, partition: int) -> list[tuple[int, int, int]]:
    """(producer id, epoch, first offset of its open transaction or -1) of the offsets partition."""
    response = raw.call(DescribeProducersRequest(topics=[DescribeProducersRequest.TopicRequest(
        name=OFFSETS, partition_indexes=[partition])]), DescribeProducersResponse, 0)
    result = response.topics[0].partitions[0]
    assert result.error_code == 0, result
    return sorted((p.producer_id, p.producer_epoch, p.current_txn_start_offset) for p in result.active_producers)


def producer_of(raw: RawClient, tid: str) -> tuple[int, int]:
    state = raw.call(DescribeTransactionsRequest(transactional_ids=[tid]), DescribeTransactionsResponse,
                     0).transaction_states[0]
    assert state.error_code == 0, state
    return state.producer_id, state.producer_epoch


def committed_offsets(bootstrap: str, partition: int, end: int, group: str, topic: str, isolation: str) -> list[int]:
    """The offsets of ``group`` for ``topic``-0 that a reader of the offsets partition sees."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False,
                             exclude_internal_topics=False)
    tp = TopicPartition(OFFSETS, partition)
    consumer.assign([tp])
    consumer.seek_to_beginning()
    key = encode_offset_key(group, topic, 0)
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while consumer.position(tp) < end:
        assert time.monotonic() < deadline, f"reader stuck at {consumer.position(tp)} (end {end})"
        for records in consumer.poll(timeout_ms=200).values():
            seen.extend(decode_offset_value(r.value).offset for r in records if r.key == key)
    consumer.close()
    return seen


def test_a_transactional_offset_commit_holds_the_offsets_partition_lso_until_its_marker(broker, raw):
    bootstrap = broker.bootstrap_servers
    topic, tid = new_name("src"), new_name("eos-tx")
    group, part = own_group(broker, "eos-group")
    create_topic(bootstrap, topic)
    consumer = CKConsumer({"bootstrap.servers": bootstrap, "group.id": group})
    producer = CKProducer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    try:
        producer.init_transactions(30)
        pid, epoch = producer_of(raw, tid)

        producer.begin_transaction()
        producer.send_offsets_to_transaction([CKTopicPartition(topic, 0, 5)], consumer.consumer_group_metadata(), 30)
        end = list_offset(raw, OFFSETS, part)
        first = end - 1  # the TxnOffsetCommit's batch (one record)
        assert list_offset(raw, OFFSETS, part, isolation=1) == first
        assert describe_producers(raw, part) == [(pid, epoch, first)]
        assert committed_offsets(bootstrap, part, first, group, topic, "read_committed") == []
        producer.commit_transaction(30)
        # the marker closed it: the LSO is past the marker, the offset readable at read_committed
        end = list_offset(raw, OFFSETS, part)
        assert end == first + 2
        assert list_offset(raw, OFFSETS, part, isolation=1) == end
        assert describe_producers(raw, part) == [(pid, epoch, -1)]
        assert committed_offsets(bootstrap, part, end, group, topic, "read_committed") == [5]

        producer.begin_transaction()
        producer.send_offsets_to_transaction([CKTopicPartition(topic, 0, 9)], consumer.consumer_group_metadata(), 30)
        first = list_offset(raw, OFFSETS, part) - 1
        assert list_offset(raw, OFFSETS, part, isolation=1) == first == end
        assert describe_producers(raw, part) == [(pid, epoch, first)]
        producer.abort_transaction(30)
        end = list_offset(raw, OFFSETS, part)
        assert list_offset(raw, OFFSETS, part, isolation=1) == end == first + 2
        assert describe_producers(raw, part) == [(pid, epoch, -1)]
        # the aborted offset is never visible at read_committed (the .txnindex lists the abort)
        assert committed_offsets(bootstrap, part, end, group, topic, "read_committed") == [5]
        assert committed_offsets(bootstrap, part, end, group, topic, "read_uncommitted") == [5, 9]
    finally:
        producer.flush(5)
        consumer.close()


def test_a_transactions_v2_marker_moves_the_producer_to_the_bumped_epoch_in_the_offsets_partition(broker, raw):
    """Transactions V2 (TxnOffsetCommit v5, EndTxn v5): the coordinator writes the markers with the
    bumped epoch and its own epoch, in the offsets partition as in the data partitions."""
    bootstrap = broker.bootstrap_servers
    topic, tid = new_name("v2src"), new_name("v2-tx")
    group, part = own_group(broker, "v2-group")
    create_topic(bootstrap, topic)
    init = init_producer_id(raw, tid, version=5)
    pid, epoch = init.producer_id, init.producer_epoch
    assert produce(raw, topic, 0, data_batch(pid, epoch, 0, [b"a"], transactional=True), transactional_id=tid,
                   version=12).error_code == 0
    T = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
    commit = TxnOffsetCommitRequest(
        transactional_id=tid, group_id=group, producer_id=pid, producer_epoch=epoch, generation_id_or_member_epoch=-1,
        member_id="", group_instance_id=None, topics=[T(name=topic, partitions=[
            T.TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=1)])])
    assert raw.call(commit, TxnOffsetCommitResponse, 5).topics[0].partitions[0].error_code == 0
    first = list_offset(raw, OFFSETS, part) - 1
    assert describe_producers(raw, part) == [(pid, epoch, first)]
    assert list_offset(raw, OFFSETS, part, isolation=1) == first

    ended = raw.call(EndTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=True),
                     EndTxnResponse, 5)
    assert (ended.error_code, ended.producer_epoch) == (0, epoch + 1)
    assert list_offset(raw, OFFSETS, part, isolation=1) == list_offset(raw, OFFSETS, part) == first + 2
    # the same entry as in the data partition the transaction wrote to (epoch and coordinator epoch
    # from the markers)
    entries = {}
    for name, index in ((topic, 0), (OFFSETS, part)):
        response = raw.call(DescribeProducersRequest(topics=[DescribeProducersRequest.TopicRequest(
            name=name, partition_indexes=[index])]), DescribeProducersResponse, 0)
        [p] = response.topics[0].partitions[0].active_producers
        entries[name] = (p.producer_id, p.producer_epoch, p.coordinator_epoch, p.current_txn_start_offset)
    assert entries[OFFSETS] == entries[topic]
    assert entries[OFFSETS][:2] == (pid, epoch + 1) and entries[OFFSETS][3] == -1


def test_write_txn_markers_to_the_offsets_partition_closes_the_transaction_there(broker, raw):
    """A WriteTxnMarkers for an offsets partition (the transaction coordinator on another broker):
    the group coordinator writes the marker with the request's epochs, which the producer state
    records (DescribeProducers' CoordinatorEpoch)."""
    from kbroker_protocol.messages.write_txn_markers import WriteTxnMarkersRequest, WriteTxnMarkersResponse

    bootstrap = broker.bootstrap_servers
    topic, tid = new_name("wtm"), new_name("wtm-tx")
    group, part = own_group(broker, "wtm-group")
    create_topic(bootstrap, topic)
    init = init_producer_id(raw, tid)
    pid, epoch = init.producer_id, init.producer_epoch
    _txn_offset_commit(raw, tid, pid, epoch, group, topic, 4)
    first = list_offset(raw, OFFSETS, part) - 1
    assert list_offset(raw, OFFSETS, part, isolation=1) == first

    M = WriteTxnMarkersRequest.WritableTxnMarker
    marker = M(producer_id=pid, producer_epoch=epoch, transaction_result=False, coordinator_epoch=7,
               topics=[M.WritableTxnMarkerTopic(name=OFFSETS, partition_indexes=[part])])
    response = raw.call(WriteTxnMarkersRequest(markers=[marker]), WriteTxnMarkersResponse, 1)
    assert [p.error_code for p in response.markers[0].topics[0].partitions] == [0]
    assert list_offset(raw, OFFSETS, part, isolation=1) == list_offset(raw, OFFSETS, part) == first + 2
    response = raw.call(DescribeProducersRequest(topics=[DescribeProducersRequest.TopicRequest(
        name=OFFSETS, partition_indexes=[part])]), DescribeProducersResponse, 0)
    [p] = response.topics[0].partitions[0].active_producers
    assert (p.producer_id, p.producer_epoch, p.coordinator_epoch, p.current_txn_start_offset) == (pid, epoch, 7, -1)
    end = first + 2
    assert committed_offsets(bootstrap, part, end, group, topic, "read_committed") == []
    assert committed_offsets(bootstrap, part, end, group, topic, "read_uncommitted") == [4]
    assert raw.call(EndTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=False),
                    EndTxnResponse, 3).error_code == 0


def test_a_stale_marker_for_the_offsets_partition_is_refused(broker, raw):
    """A marker for an offsets partition from a coordinator epoch older than the one the
    partition's producer state holds (a transaction coordinator that lost the transaction's
    partition, its WriteTxnMarkers arriving late) is refused with TRANSACTION_COORDINATOR_FENCED,
    as Kafka's ProducerAppendInfo.appendEndTxnMarker refuses it on the group coordinator's append:
    nothing is written and the producer's open transaction there (its pending offsets) stays open."""
    from kbroker_protocol.messages.write_txn_markers import WriteTxnMarkersRequest, WriteTxnMarkersResponse

    topic, tid = new_name("stale"), new_name("stale-tx")
    group, part = own_group(broker, "stale-group")
    create_topic(broker.bootstrap_servers, topic)
    init = init_producer_id(raw, tid)
    pid, epoch = init.producer_id, init.producer_epoch
    M = WriteTxnMarkersRequest.WritableTxnMarker

    def marker(coordinator_epoch: int) -> int:
        m = M(producer_id=pid, producer_epoch=epoch, transaction_result=True, coordinator_epoch=coordinator_epoch,
              topics=[M.WritableTxnMarkerTopic(name=OFFSETS, partition_indexes=[part])])
        response = raw.call(WriteTxnMarkersRequest(markers=[m]), WriteTxnMarkersResponse, 1)
        return response.markers[0].topics[0].partitions[0].error_code

    _txn_offset_commit(raw, tid, pid, epoch, group, topic, 3)
    assert marker(7) == ErrorCode.NONE  # the partition's producer state now holds coordinator epoch 7
    _txn_offset_commit(raw, tid, pid, epoch, group, topic, 8)  # opens a transaction there again
    end = list_offset(raw, OFFSETS, part)
    assert list_offset(raw, OFFSETS, part, isolation=1) == end - 1
    assert marker(6) == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    assert list_offset(raw, OFFSETS, part) == end  # nothing written
    assert list_offset(raw, OFFSETS, part, isolation=1) == end - 1  # the transaction still open
    assert stable_offset(raw, group, topic)[1] == ErrorCode.UNSTABLE_OFFSET_COMMIT
    assert marker(7) == ErrorCode.NONE  # the current coordinator epoch completes it
    assert stable_offset(raw, group, topic) == (8, ErrorCode.NONE)


def _txn_offset_commit(raw: RawClient, tid: str, pid: int, epoch: int, group: str, topic: str, offset: int) -> None:
    added = raw.call(AddOffsetsToTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch,
                                            group_id=group), AddOffsetsToTxnResponse, 3)
    assert added.error_code == 0
    T = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
    commit = TxnOffsetCommitRequest(
        transactional_id=tid, group_id=group, producer_id=pid, producer_epoch=epoch, generation_id_or_member_epoch=-1,
        member_id="", group_instance_id=None, topics=[T(name=topic, partitions=[
            T.TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=offset)])])
    assert raw.call(commit, TxnOffsetCommitResponse, 3).topics[0].partitions[0].error_code == 0


def same_partition_group(broker: BrokerThread, prefix: str, partition: int) -> str:
    """A new group id whose ``__consumer_offsets`` partition is ``partition``."""
    while True:
        group = new_name(prefix)
        if broker.call(lambda g=group: broker.broker.group_coordinator.partition_for(g)) == partition:
            return group


def stable_offset(raw: RawClient, group: str, topic: str) -> tuple[int, int]:
    """(committed offset, error) of ``group`` for ``topic``-0, OffsetFetch v7 with RequireStable."""
    from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest, OffsetFetchResponse

    T = OffsetFetchRequest.OffsetFetchRequestTopic
    response = raw.call(OffsetFetchRequest(group_id=group, topics=[T(name=topic, partition_indexes=[0])],
                                           require_stable=True), OffsetFetchResponse, 7)
    assert response.error_code == 0, response
    p = response.topics[0].partitions[0]
    return p.committed_offset, p.error_code


def control_batches(broker: BrokerThread, partition: int, start: int) -> list[tuple[int, str]]:
    """(producer id, COMMIT/ABORT) of the control batches of the offsets partition from ``start``."""
    from kbroker_protocol.records import ControlType, iter_records, parse_control_record

    def read() -> list[tuple[int, str]]:
        plog = broker.broker.partition(OFFSETS, partition).log
        return [(h.producer_id, ControlType(parse_control_record(next(iter(iter_records(data)))).type).name)
                for h, data in plog.iter_batches(start) if h.is_control]

    return broker.call(read)


def test_two_groups_of_one_offsets_partition_get_one_marker_there(broker, raw):
    """Kafka's transaction coordinator sends one marker per partition of the transaction
    (TransactionMarkerChannelManager): an offsets partition two of its groups hash to gets one
    (CoordinatorRuntime.completeTransaction), which commits or drops both groups' offsets
    (OffsetMetadataManager.replayEndTransactionMarker: every group of the producer there)."""
    topic, tid = new_name("two"), new_name("two-tx")
    group, part = own_group(broker, "two-a")
    other = same_partition_group(broker, "two-b", part)
    create_topic(broker.bootstrap_servers, topic)
    init = init_producer_id(raw, tid)
    pid, epoch = init.producer_id, init.producer_epoch
    for offset, commit in ((5, True), (9, False)):
        _txn_offset_commit(raw, tid, pid, epoch, group, topic, offset)
        start = list_offset(raw, OFFSETS, part) - 1  # (the TxnOffsetCommit's batch, one record)
        _txn_offset_commit(raw, tid, pid, epoch, other, topic, offset + 1)
        assert list_offset(raw, OFFSETS, part) == start + 2  # a batch for each TxnOffsetCommit
        assert stable_offset(raw, group, topic)[1] == stable_offset(raw, other, topic)[1] == \
            ErrorCode.UNSTABLE_OFFSET_COMMIT
        ended = raw.call(EndTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch,
                                       committed=commit), EndTxnResponse, 3)
        assert ended.error_code == 0
        assert list_offset(raw, OFFSETS, part) == list_offset(raw, OFFSETS, part, isolation=1) == start + 3
        assert control_batches(broker, part, start) == [(pid, "COMMIT" if commit else "ABORT")]
        # both groups completed by the one marker: committed, then the aborted ones dropped
        assert stable_offset(raw, group, topic) == (5, ErrorCode.NONE)
        assert stable_offset(raw, other, topic) == (6, ErrorCode.NONE)
    assert describe_producers(raw, part) == [(pid, epoch, -1)]


def test_the_offsets_partition_producer_state_survives_a_kill_and_a_clean_restart(tmp_path):
    """Killed (SIGKILL: the state is rebuilt from the log) with the transaction open, then stopped
    cleanly (the state from the snapshot taken at the close), then committed and restarted again."""
    data = tmp_path / "data"
    args = [*base_args(data), "--override", "offsets.topic.num.partitions=1",
            "--override", "transaction.abort.timed.out.transaction.cleanup.interval.ms=600000"]
    tid, group = "offsets-restart", "offsets-restart-group"

    def start() -> tuple[BrokerProcess, RawClient]:
        proc = BrokerProcess(args, tmp_path)
        _node, host, port = proc.wait_ready().groups()
        bootstrap.append(f"{host}:{port}")
        return proc, RawClient(bootstrap[-1])

    bootstrap: list[str] = []
    proc, raw = start()
    try:
        create_topic(bootstrap[-1], "in")
        init = init_producer_id(raw, tid)
        pid, epoch = init.producer_id, init.producer_epoch
        _txn_offset_commit(raw, tid, pid, epoch, group, "in", 7)
        end = list_offset(raw, OFFSETS, 0)
        first = end - 1
        assert list_offset(raw, OFFSETS, 0, isolation=1) == first
        assert describe_producers(raw, 0) == [(pid, epoch, first)]
        raw.close()
    finally:
        assert proc.stop(signal.SIGKILL) == -signal.SIGKILL

    for stop in (signal.SIGKILL, signal.SIGTERM):  # then from the snapshot of the clean stop
        proc, raw = start()
        try:
            assert describe_producers(raw, 0) == [(pid, epoch, first)]
            assert list_offset(raw, OFFSETS, 0) == end
            assert list_offset(raw, OFFSETS, 0, isolation=1) == first
            raw.close()
        finally:
            code = proc.stop(stop)
        assert code == (-signal.SIGKILL if stop == signal.SIGKILL else 0)

    proc, raw = start()
    try:
        ended = raw.call(EndTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=True),
                         EndTxnResponse, 3)
        assert ended.error_code == 0
        assert list_offset(raw, OFFSETS, 0) == end + 1  # the marker
        assert list_offset(raw, OFFSETS, 0, isolation=1) == end + 1
        assert describe_producers(raw, 0) == [(pid, epoch, -1)]
        raw.close()
    finally:
        assert proc.stop() == 0

    proc, raw = start()
    try:
        assert describe_producers(raw, 0) == [(pid, epoch, -1)]
        assert list_offset(raw, OFFSETS, 0, isolation=1) == list_offset(raw, OFFSETS, 0) == end + 1
        raw.close()
    finally:
        assert proc.stop() == 0


# -- side by side with Apache Kafka 4.4 (scripts/reference_kafka.py) ------------------------------------------


def _reference_scenario(bootstrap: str) -> list:
    """A transactional producer committing offsets in a committed then an aborted transaction;
    the offsets partition's LSO, DescribeProducers and read_committed view at each step, offsets
    relative to the first transaction's first offset, epochs to the producer's first one."""
    from kbroker.coordinator.partitioning import partition_for

    raw = RawClient(bootstrap)
    topic, group, tid = "ref-src", "ref-group", "ref-tx"
    create_topic(bootstrap, topic)
    part = partition_for(group, int(reference_kafka.TEST_SETTINGS["offsets.topic.num.partitions"]))
    consumer = CKConsumer({"bootstrap.servers": bootstrap, "group.id": group})
    producer = CKProducer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    out: list = []
    try:
        producer.init_transactions(60)
        pid, epoch = producer_of(raw, tid)
        base = -1

        def step(label: str) -> None:
            producers = raw.call(DescribeProducersRequest(topics=[DescribeProducersRequest.TopicRequest(
                name=OFFSETS, partition_indexes=[part])]), DescribeProducersResponse, 0).topics[0].partitions[0]
            end, lso = list_offset(raw, OFFSETS, part), list_offset(raw, OFFSETS, part, isolation=1)
            out.append((label, end - base, lso - base, producers.error_code,
                        [(p.producer_id == pid, p.producer_epoch - epoch, p.coordinator_epoch, p.last_sequence,
                          p.current_txn_start_offset - base if p.current_txn_start_offset >= 0 else -1)
                         for p in producers.active_producers],
                        committed_offsets(bootstrap, part, lso, group, topic, "read_committed")))

        for offset, commit in ((5, True), (9, False)):
            producer.begin_transaction()
            producer.produce(topic, b"v%d" % offset)
            producer.send_offsets_to_transaction([CKTopicPartition(topic, 0, offset)],
                                                 consumer.consumer_group_metadata(), 60)
            if base < 0:
                base = list_offset(raw, OFFSETS, part, isolation=1)
            step(f"open {offset}")
            producer.commit_transaction(60) if commit else producer.abort_transaction(60)
            # (Kafka answers EndTxn once Prepare* is written, the markers follow)
            done = "CompleteCommit" if commit else "CompleteAbort"
            wait_until(lambda done=done: raw.call(DescribeTransactionsRequest(transactional_ids=[tid]),
                                                  DescribeTransactionsResponse, 0)
                       .transaction_states[0].transaction_state == done, message=f"transaction {done}")
            step(f"{'committed' if commit else 'aborted'} {offset}")
    finally:
        producer.flush(5)
        consumer.close()
        raw.close()
    return out


def _wait_for_offsets_partition(raw: RawClient, group: str, part: int) -> None:
    """Until the group's coordinator is found and its offsets partition answers ListOffsets: the
    first FindCoordinator for a group creates __consumer_offsets (a fresh broker has none, and the
    consumers' own lookups run in the background)."""
    def found() -> bool:
        answer = raw.call(FindCoordinatorRequest(key_type=0, coordinator_keys=[group]), FindCoordinatorResponse, 4)
        return answer.coordinators[0].error_code == ErrorCode.NONE

    def answers() -> bool:
        request = ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[ListOffsetsRequest.ListOffsetsTopic(
            name=OFFSETS, partitions=[ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition(
                partition_index=part, timestamp=-1)])])
        return raw.call(request, ListOffsetsResponse, 5).topics[0].partitions[0].error_code == ErrorCode.NONE

    wait_until(found, message=f"a coordinator for {group}")
    wait_until(answers, message=f"{OFFSETS}-{part} answering ListOffsets")


def _two_groups_scenario(bootstrap: str) -> list:
    """A transactional producer committing offsets for two groups of one offsets partition, in a
    committed then an aborted transaction: after each, the partition's end offset and LSO
    (relative to where the first transaction began) and both groups' committed offsets."""
    from kbroker.coordinator.partitioning import partition_for

    count = int(reference_kafka.TEST_SETTINGS["offsets.topic.num.partitions"])
    raw = RawClient(bootstrap)
    topic, tid = "ref-two-src", "ref-two-tx"
    part = partition_for("ref-two-a", count)
    second = next(f"ref-two-b{i}" for i in range(100) if partition_for(f"ref-two-b{i}", count) == part)
    create_topic(bootstrap, topic)
    consumers = [CKConsumer({"bootstrap.servers": bootstrap, "group.id": g}) for g in ("ref-two-a", second)]
    producer = CKProducer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    out: list = []
    try:
        producer.init_transactions(60)
        _wait_for_offsets_partition(raw, "ref-two-a", part)
        base = list_offset(raw, OFFSETS, part)
        for offset, commit in ((5, True), (9, False)):
            producer.begin_transaction()
            producer.produce(topic, b"v%d" % offset)
            for i, consumer in enumerate(consumers):
                producer.send_offsets_to_transaction([CKTopicPartition(topic, 0, offset + i)],
                                                     consumer.consumer_group_metadata(), 60)
            producer.commit_transaction(60) if commit else producer.abort_transaction(60)
            done = "CompleteCommit" if commit else "CompleteAbort"
            wait_until(lambda done=done: raw.call(DescribeTransactionsRequest(transactional_ids=[tid]),
                                                  DescribeTransactionsResponse, 0)
                       .transaction_states[0].transaction_state == done, message=f"transaction {done}")
            out.append((done, list_offset(raw, OFFSETS, part) - base, list_offset(raw, OFFSETS, part, isolation=1) - base,
                        [c.committed([CKTopicPartition(topic, 0)], 30)[0].offset for c in consumers]))
    finally:
        producer.flush(5)
        for consumer in consumers:
            consumer.close()
        raw.close()
    return out


@pytest.fixture(scope="module")
def kafka_transcript(tmp_path_factory) -> dict[str, list]:
    handle = reference_kafka.start_reference_kafka(tmp_path_factory.mktemp("kafka"))
    try:
        return {"lso": _reference_scenario(handle.bootstrap), "two groups": _two_groups_scenario(handle.bootstrap)}
    finally:
        handle.stop()


def test_the_offsets_partition_producer_state_matches_kafka(kafka_transcript, tmp_path):
    with BrokerThread(dict(reference_kafka.TEST_SETTINGS), data_dir=str(tmp_path / "data")) as b:
        ours = _reference_scenario(b.bootstrap_servers)
    # Kafka: the open transaction holds the LSO at its first offset, the marker moves it on
    assert kafka_transcript["lso"][0][1:3] == (1, 0)
    assert ours == kafka_transcript["lso"]


def test_two_groups_of_one_offsets_partition_match_kafka(kafka_transcript, tmp_path):
    with BrokerThread(dict(reference_kafka.TEST_SETTINGS), data_dir=str(tmp_path / "data")) as b:
        ours = _two_groups_scenario(b.bootstrap_servers)
    # Kafka: two offset records and one marker a transaction; the aborted offsets never count
    assert kafka_transcript["two groups"] == [("CompleteCommit", 3, 3, [5, 6]), ("CompleteAbort", 6, 6, [5, 6])]
    assert ours == kafka_transcript["two groups"]
