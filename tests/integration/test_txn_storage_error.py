"""A transaction's writes on a failed log dir (a full disk) answer KAFKA_STORAGE_ERROR per partition, as
Kafka 4.4's ReplicaManager.appendToLocalLog does with a KafkaStorageException, never a failed request.

Found by a transactional fault run (docs/faults.md, tenth session, seed 395): the leader of a data
partition hit a full disk while the coordinator wrote a transaction's COMMIT marker there; kbroker's
WriteTxnMarkers handler raised, the request was answered UNKNOWN_SERVER_ERROR, which the coordinator
does not retry (Kafka's TransactionMarkerRequestCompletionHandler retries KAFKA_STORAGE_ERROR and
gives an unexpected error up), and the transaction stayed in PrepareCommit until the coordinator
moved five minutes later: every producer with that transactional.id failed meanwhile.
The coordinator's own append to ``__transaction_state`` on a failed dir is KAFKA_STORAGE_ERROR too,
which Kafka's TransactionStateManager answers the client NOT_COORDINATOR (it then finds the
coordinator again), where kbroker's AddPartitionsToTxn failed whole.

The disk fills in-process (an ENOSPC from the segment write); the halt that follows once every log
dir failed is recorded, not done, so that the broker answers on.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from kbroker.log import dir_failure
from kbroker.log.segment import LogSegment
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.add_partitions_to_txn import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
)
from kbroker_protocol.messages.write_txn_markers import WriteTxnMarkersRequest, WriteTxnMarkersResponse
from tests.integration.transactions_helpers import (
    RawClient,
    create_topic,
    data_batch,
    init_producer_id,
    new_name,
    produce,
)
from tests.integration.waiting import wait_until


def _fill_the_disk(monkeypatch: pytest.MonkeyPatch, data: Path) -> None:
    real = LogSegment.write

    def write(self, buffers, nbytes):  # type: ignore[no-untyped-def]
        if Path(self.log_path).parent.parent == data:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, buffers, nbytes)

    monkeypatch.setattr(LogSegment, "write", write)


def _marker(topic: str, producer_id: int) -> WriteTxnMarkersRequest:
    return WriteTxnMarkersRequest(markers=[WriteTxnMarkersRequest.WritableTxnMarker(
        producer_id=producer_id, producer_epoch=0, transaction_result=True, coordinator_epoch=0,
        topics=[WriteTxnMarkersRequest.WritableTxnMarker.WritableTxnMarkerTopic(name=topic, partition_indexes=[0])])])


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    halts: list[int] = []
    monkeypatch.setattr(dir_failure, "halt", lambda status=1: halts.append(status))
    data = tmp_path / "data"
    config = {"log.dirs": str(data), "metadata.log.dir": str(tmp_path / "meta")}
    with BrokerThread(config=config, data_dir=str(tmp_path / "unused")) as thread:
        yield thread, data, halts


def test_a_marker_on_a_failed_log_dir_is_the_partition_s_storage_error(broker, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    thread, data, halts = broker
    topic = new_name("marker-full")
    create_topic(thread.bootstrap_servers, topic)
    raw = RawClient(thread.bootstrap_servers)
    try:
        first = produce(raw, topic, 0, data_batch(-1, -1, -1, [b"before"]))
        assert first.error_code == ErrorCode.NONE
        _fill_the_disk(monkeypatch, data)
        for _ in range(2):  # the write that fails the dir, then one on the offline dir
            response = raw.call(_marker(topic, 4242), WriteTxnMarkersResponse, 1)
            (result,) = response.markers
            codes = [p.error_code for t in result.topics for p in t.partitions]
            assert [ErrorCode(c).name for c in codes] == ["KAFKA_STORAGE_ERROR"]
        # the halt follows the answers to the requests in flight (kbroker/wiring/dir_halt.py)
        wait_until(lambda: bool(halts), 30, 0.01, "the only log dir failed: the broker halts (recorded here)")
    finally:
        raw.close()


def test_the_coordinator_s_append_on_a_failed_log_dir_answers_not_coordinator(broker, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    thread, data, _halts = broker
    topic = new_name("txn-full")
    create_topic(thread.bootstrap_servers, topic)
    raw = RawClient(thread.bootstrap_servers)
    try:
        tid = new_name("tid")
        init = init_producer_id(raw, tid)
        assert init.error_code == ErrorCode.NONE
        _fill_the_disk(monkeypatch, data)
        failing = produce(raw, topic, 0, data_batch(-1, -1, -1, [b"full"]))  # the dir fails, goes offline
        assert failing.error_code == ErrorCode.KAFKA_STORAGE_ERROR
        request = AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=tid, v3_and_below_producer_id=init.producer_id,
            v3_and_below_producer_epoch=init.producer_epoch,
            v3_and_below_topics=[AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name=topic, partitions=[0])])
        response = raw.call(request, AddPartitionsToTxnResponse, 3)
        codes = [p.partition_error_code for t in response.results_by_topic_v3_and_below for p in t.results_by_partition]
        assert [ErrorCode(c).name for c in codes] == ["NOT_COORDINATOR"]
    finally:
        raw.close()
