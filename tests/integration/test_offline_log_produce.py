"""A produce to a partition whose log dir failed is answered KAFKA_STORAGE_ERROR before its
sequence is checked, as Kafka's getPartitionOrException (an offline partition) and UnifiedLog.append
(checkIfMemoryMappedBufferClosed before the producer-state check) do: a batch that follows the one
that failed is not OUT_OF_ORDER_SEQUENCE_NUMBER (librdkafka bumps its epoch on that, and re-sends
what it had in flight: duplicates), and a retry of a written batch is not answered as a duplicate
from a log that can no longer be read."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from kbroker.log.segment import LogSegment
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from tests.integration.transactions_helpers import (
    RawClient,
    create_topic,
    data_batch,
    init_producer_id,
    new_name,
    produce,
)
from tests.integration.waiting import wait_until


def test_an_idempotent_batch_after_a_failed_append_is_a_storage_error_not_out_of_order(tmp_path, monkeypatch):
    dirs = [tmp_path / "a", tmp_path / "b"]
    config = {"log.dirs": ",".join(map(str, dirs)), "metadata.log.dir": str(tmp_path / "meta")}
    with BrokerThread(config=config, data_dir=str(tmp_path / "unused")) as broker:
        topic = new_name("offline")
        create_topic(broker.bootstrap_servers, topic, partitions=2)
        # the broker opens the partitions as it applies the committed topic, in its own time
        def placed_dirs() -> dict[int, Path] | None:
            found = {p: [d for d in dirs if (d / f"{topic}-{p}").is_dir()] for p in (0, 1)}
            return {p: ds[0] for p, ds in found.items()} if all(found.values()) else None

        placed = wait_until(placed_dirs, 30, 0.01, "the topic's partitions opened")
        failing, partition = placed[0], 0
        real = LogSegment.write

        def write(self, buffers, nbytes):  # type: ignore[no-untyped-def]
            if Path(self.log_path).parent.parent == failing:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(self, buffers, nbytes)

        raw = RawClient(broker.bootstrap_servers)
        try:
            pid = init_producer_id(raw).producer_id
            first = produce(raw, topic, partition, data_batch(pid, 0, 0, [b"a"]))
            assert (first.error_code, first.base_offset) == (ErrorCode.NONE, 0)
            monkeypatch.setattr(LogSegment, "write", write)
            failed = produce(raw, topic, partition, data_batch(pid, 0, 1, [b"b"]))
            assert failed.error_code == ErrorCode.KAFKA_STORAGE_ERROR  # the dir fails now
            after = produce(raw, topic, partition, data_batch(pid, 0, 2, [b"c"]))
            assert after.error_code == ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode(after.error_code).name
            retried = produce(raw, topic, partition, data_batch(pid, 0, 0, [b"a"]))
            assert retried.error_code == ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode(retried.error_code).name
        finally:
            raw.close()


@pytest.fixture(autouse=True)
def _coordinator():
    from tests.integration.transactions_helpers import ensure_find_coordinator

    ensure_find_coordinator()
