"""Several log dirs (JBOD): partitions spread across ``log.dirs``, DescribeLogDirs per directory,
AlterReplicaLogDirs moving a partition while a producer writes to it (nothing acknowledged is lost,
the partition stays in its new directory across a restart), and its bad input."""

from __future__ import annotations

import errno
import os
import threading
import uuid

import pytest
from waiting import wait_until
from wire import Wire, create_topic, produce

from kbroker.broker import StartupError
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_replica_log_dirs import AlterReplicaLogDirsRequest
from kbroker_protocol.messages.describe_log_dirs import DescribeLogDirsRequest
from kbroker_protocol.messages.fetch import FetchRequest
from kbroker_protocol.record_batch import iter_batch_headers

D = AlterReplicaLogDirsRequest.AlterReplicaLogDir
DT = D.AlterReplicaLogDirTopic


def placement(wire, topic):
    """partition -> log dir, from DescribeLogDirs."""
    out = {}
    for result in wire.call(DescribeLogDirsRequest(topics=None), 4).results:
        for t in result.topics:
            if t.name == topic:
                for p in t.partitions:
                    assert p.partition_index not in out, "a partition in two log dirs"
                    out[p.partition_index] = result.log_dir
    return out


def move(wire, topic, partition, path, version=2):
    resp = wire.call(AlterReplicaLogDirsRequest(dirs=[D(path=path, topics=[DT(name=topic, partitions=[partition])])]),
                     version)
    [result] = resp.results
    assert result.topic_name == topic
    return result.partitions[0].error_code


def record_count(wire, topic, partition):
    """Every record of the partition, read from offset 0 to the high watermark."""
    T = FetchRequest.FetchTopic
    offset, count = 0, 0
    while True:
        resp = wire.call(FetchRequest(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=50 << 20, isolation_level=0,
                                      topics=[T(topic=topic, partitions=[T.FetchPartition(
                                          partition=partition, fetch_offset=offset, partition_max_bytes=50 << 20)])]),
                         12)
        p = resp.responses[0].partitions[0]
        assert p.error_code == ErrorCode.NONE
        for _, header in iter_batch_headers(bytes(p.records or b"")):
            count += header.last_offset_delta + 1
            offset = header.base_offset + header.last_offset_delta + 1
        if offset >= p.high_watermark:
            return count, p.high_watermark


def test_partitions_spread_and_move_while_written(tmp_path):
    dirs = [str(tmp_path / f"disk{i}") for i in range(3)]
    topic = f"jbod-{uuid.uuid4().hex[:8]}"
    with BrokerThread(data_dir=dirs[0], config={"log.dirs": ",".join(dirs)}) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, topic, 6)
            where = placement(w, topic)
            assert all(r.error_code == ErrorCode.NONE for r in w.call(DescribeLogDirsRequest(topics=None), 4).results)
            assert sorted(where) == list(range(6))
            assert set(where.values()) == set(dirs)  # spread over every log dir
            results = w.call(DescribeLogDirsRequest(topics=None), 4).results
            assert [r.log_dir for r in results] == dirs
            assert all(r.total_bytes > 0 and r.usable_bytes > 0 for r in results)
            source = where[0]
            dest = next(d for d in dirs if d != source)
            # A producer writes to partition 0 before, during and after the move.
            acked = [0]
            stop = threading.Event()
            errors: list[BaseException] = []

            def write():
                pw = Wire(b.bootstrap_servers)
                try:
                    while not stop.is_set():
                        produce(pw, topic, 0, 50, pad=b"x" * 200)
                        acked[0] += 50
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    errors.append(exc)
                finally:
                    pw.close()
            writer = threading.Thread(target=write)
            writer.start()
            try:
                wait_until(lambda: acked[0] >= 500, message="records written before the move")
                assert move(w, topic, 0, dest) == ErrorCode.NONE
                before_move_done = acked[0]
                wait_until(lambda: acked[0] >= before_move_done + 500, message="records written after the move")
            finally:
                stop.set()
                writer.join()
            assert errors == []
            assert placement(w, topic)[0] == dest
            assert not os.path.exists(os.path.join(source, f"{topic}-0"))
            # the moved log still tells the replication layer of its rolls (producer snapshots)
            assert b.call(lambda: b.broker.partition(topic, 0).log.roll_listener) is not None
            assert record_count(w, topic, 0) == (acked[0], acked[0])
            # Moving it where it is changes nothing.
            assert move(w, topic, 0, dest) == ErrorCode.NONE
            assert placement(w, topic)[0] == dest
        finally:
            w.close()
    with BrokerThread(data_dir=dirs[0], config={"log.dirs": ",".join(dirs)}) as b:
        w = Wire(b.bootstrap_servers)
        try:
            assert placement(w, topic)[0] == dest
            assert record_count(w, topic, 0) == (acked[0], acked[0])
            produce(w, topic, 0, 10)
            assert record_count(w, topic, 0) == (acked[0] + 10, acked[0] + 10)
        finally:
            w.close()


def test_alter_replica_log_dirs_bad_input(tmp_path):
    dirs = [str(tmp_path / f"disk{i}") for i in range(2)]
    topic = f"jbod-{uuid.uuid4().hex[:8]}"
    with BrokerThread(data_dir=dirs[0], config={"log.dirs": ",".join(dirs)}) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, topic, 2)
            produce(w, topic, 0, 5)
            where = placement(w, topic)
            # A directory that is not a log dir, or not given as its absolute path.
            assert move(w, topic, 0, str(tmp_path / "elsewhere")) == ErrorCode.LOG_DIR_NOT_FOUND
            assert move(w, topic, 0, os.path.relpath(dirs[1])) == ErrorCode.LOG_DIR_NOT_FOUND
            # A partition this broker does not have.
            assert move(w, topic, 7, dirs[1], version=1) == ErrorCode.REPLICA_NOT_AVAILABLE
            assert move(w, "no-such-topic", 0, dirs[1]) == ErrorCode.REPLICA_NOT_AVAILABLE
            assert placement(w, topic) == where
            assert record_count(w, topic, 0) == (5, 5)
            assert not os.path.exists(tmp_path / "elsewhere")
        finally:
            w.close()


def test_a_failed_move_leaves_the_partition_served_where_it_was(tmp_path, monkeypatch):
    """A copy that fails (the destination full) answers KAFKA_STORAGE_ERROR and changes nothing
    else: the partition goes on taking and serving records from its log dir, its producer
    snapshots at roll included, and a later move succeeds."""
    from kbroker.log import dir_move

    dirs = [str(tmp_path / f"disk{i}") for i in range(2)]
    topic = f"jbod-{uuid.uuid4().hex[:8]}"
    real_copy = dir_move.copy_to_future
    failures: list[str] = []

    def full(source, dest):
        failures.append(str(dest))
        raise OSError(errno.ENOSPC, "No space left on device")

    with BrokerThread(data_dir=dirs[0], config={"log.dirs": ",".join(dirs)}) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, topic, 1)
            produce(w, topic, 0, 20, pad=b"x" * 200)
            source = placement(w, topic)[0]
            dest = next(d for d in dirs if d != source)
            listener = b.call(lambda: b.broker.partition(topic, 0).log.roll_listener)
            assert listener is not None
            monkeypatch.setattr(dir_move, "copy_to_future", full)
            assert move(w, topic, 0, dest) == ErrorCode.KAFKA_STORAGE_ERROR
            assert failures == [dest]
            monkeypatch.setattr(dir_move, "copy_to_future", real_copy)
            assert placement(w, topic)[0] == source
            assert record_count(w, topic, 0) == (20, 20)  # (the high watermark kept)
            produce(w, topic, 0, 10)
            assert record_count(w, topic, 0) == (30, 30)
            assert b.call(lambda: b.broker.partition(topic, 0).log.roll_listener) is listener
            assert b.call(lambda: b.broker.partition(topic, 0).log is b.broker.log_manager.get(topic, 0))
            assert move(w, topic, 0, dest) == ErrorCode.NONE
            assert placement(w, topic)[0] == dest
            produce(w, topic, 0, 5)
            assert record_count(w, topic, 0) == (35, 35)
            assert not os.path.exists(os.path.join(source, f"{topic}-0"))
        finally:
            w.close()


def produce_error(wire, topic, partition):
    from kbroker_protocol.messages import REQUESTS
    from kbroker_protocol.records import Record, build_batch

    Req = REQUESTS[0]
    data = Req.TopicProduceData(name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(
        index=partition, records=build_batch([Record(key=None, value=b"v", timestamp=1)]))])
    resp = wire.call(0, 9, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[data])
    return resp.responses[0].partition_responses[0].error_code


def test_failed_log_dir_takes_only_its_partitions_offline(tmp_path):
    dirs = [str(tmp_path / f"disk{i}") for i in range(2)]
    config = {"log.dirs": ",".join(dirs)}
    topic = f"jbod-{uuid.uuid4().hex[:8]}"
    with BrokerThread(data_dir=dirs[0], config=config) as b:
        w = Wire(b.bootstrap_servers)
        try:
            create_topic(w, topic, 4)
            for p in range(4):
                produce(w, topic, p, 3 + p)
            where = placement(w, topic)
        finally:
            w.close()
    failed = dirs[1]
    on_failed = sorted(p for p, d in where.items() if d == failed)
    healthy = sorted(p for p, d in where.items() if d != failed)
    assert on_failed and healthy
    # The second disk fails: its directory is gone and a file stands in its place.
    os.rename(failed, failed + ".saved")
    with open(failed, "w") as f:
        f.write("not a directory")
    with BrokerThread(data_dir=dirs[0], config=config) as b:
        w = Wire(b.bootstrap_servers)
        try:
            results = {r.log_dir: r for r in w.call(DescribeLogDirsRequest(topics=None), 4).results}
            assert results[failed].error_code == ErrorCode.KAFKA_STORAGE_ERROR and results[failed].topics == []
            assert results[dirs[0]].error_code == ErrorCode.NONE
            # The healthy dir's partitions serve as before; the failed dir's are offline, not
            # recreated empty elsewhere.
            for p in healthy:
                assert record_count(w, topic, p) == (3 + p, 3 + p)
                assert produce_error(w, topic, p) == ErrorCode.NONE
            for p in on_failed:
                assert produce_error(w, topic, p) == ErrorCode.KAFKA_STORAGE_ERROR
                assert not os.path.exists(os.path.join(dirs[0], f"{topic}-{p}"))
            assert placement(w, topic) == {p: dirs[0] for p in healthy}
            # Moves are refused while a log dir is offline; new topics go to the healthy dir.
            assert move(w, topic, healthy[0], failed) == ErrorCode.KAFKA_STORAGE_ERROR
            other = f"jbod-{uuid.uuid4().hex[:8]}"
            create_topic(w, other, 2)
            assert placement(w, other) == {0: dirs[0], 1: dirs[0]}
        finally:
            w.close()
    # The disk is back: every partition is online with all its records.
    os.remove(failed)
    os.rename(failed + ".saved", failed)
    with BrokerThread(data_dir=dirs[0], config=config) as b:
        w = Wire(b.bootstrap_servers)
        try:
            assert placement(w, topic) == where
            for p in on_failed:
                assert record_count(w, topic, p) == (3 + p, 3 + p)
            for p in healthy:
                assert record_count(w, topic, p) == (4 + p, 4 + p)
        finally:
            w.close()


def test_metadata_log_dir_failed_refuses_to_start(tmp_path):
    """The first log dir holds the metadata log: Kafka stops when it fails, and so does kbroker."""
    first = tmp_path / "disk0"
    first.write_text("not a directory")
    with pytest.raises(StartupError, match="cannot create log directory"):
        with BrokerThread(data_dir=str(first), config={"log.dirs": f"{first},{tmp_path / 'disk1'}"}):
            pass
