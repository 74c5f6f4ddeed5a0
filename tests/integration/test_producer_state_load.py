"""The producer state of a partition written only by plain (non-idempotent) producers: a read of
its last stable offset does not scan the log (Kafka keeps the state from log load on, and a
snapshot bounds the rebuild after a restart)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wire import Wire, create_topic, produce

from kbroker.log.reads import LogReads
from kbroker.log.segment import LogSegment
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

LO = REQUESTS[2]


def read_committed_end(wire: Wire, topic: str) -> int:
    """ListOffsets latest with isolation READ_COMMITTED: the partition's last stable offset."""
    resp = wire.call(2, 7, replica_id=-1, isolation_level=1, topics=[LO.ListOffsetsTopic(name=topic, partitions=[
        LO.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1, timestamp=-1)])])
    part = resp.topics[0].partitions[0]
    assert part.error_code == ErrorCode.NONE
    return part.offset


@pytest.fixture
def batches_read(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many batches ``iter_batches`` yielded, per log directory name."""
    counts: dict[str, int] = {}
    original = LogReads.iter_batches

    def counting(self: LogReads, start_offset: int | None = None) -> Iterator[tuple[object, bytes]]:
        for item in original(self, start_offset):
            counts[self.directory.name] = counts.get(self.directory.name, 0) + 1
            yield item

    monkeypatch.setattr(LogReads, "iter_batches", counting)
    return counts


def test_plain_producer_partition_answers_lso_without_scanning(tmp_path, batches_read):
    with BrokerThread(data_dir=str(tmp_path / "data")) as b:
        w = Wire(b.bootstrap_servers)
        create_topic(w, "plain", 1)
        for _ in range(20):
            produce(w, "plain", 0, 3)
        assert read_committed_end(w, "plain") == 60
        assert batches_read.get("plain-0", 0) == 0
        assert b.broker.partitions[("plain", 0)].producer_state is not None
        w.close()


def test_restart_reads_the_snapshot_not_the_log(tmp_path, batches_read, monkeypatch):
    data = str(tmp_path / "data")
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        create_topic(w, "plain", 1)
        for _ in range(20):
            produce(w, "plain", 0, 3)
        w.close()
    assert list((tmp_path / "data").rglob("plain-0/*.producer-snapshot")), "no snapshot at clean shutdown"
    batches_read.clear()
    verified: list[str] = []
    original_verify = LogSegment.verify

    def counting_verify(self: LogSegment, end: int) -> object:
        verified.append(self.directory.name)
        return original_verify(self, end)

    monkeypatch.setattr(LogSegment, "verify", counting_verify)
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        assert read_committed_end(w, "plain") == 60
        # the snapshot is checked against the header of the one batch before it: the rest of the
        # log is neither read nor CRC-checked
        assert batches_read.get("plain-0", 0) == 0
        assert "plain-0" not in verified
        produce(w, "plain", 0, 3)
        assert read_committed_end(w, "plain") == 63
        w.close()
