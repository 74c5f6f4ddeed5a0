"""Several log dirs (JBOD): partitions spread across ``log.dirs``, DescribeLogDirs per directory,
AlterReplicaLogDirs moving a partition while a producer writes to it (nothing acknowledged is lost,
the partition stays in its new directory across a restart), and its bad input."""

from __future__ import annotations

import os
import threading
import uuid

from waiting import wait_until
from wire import Wire, create_topic, produce

from kbroker.testing import BrokerThread
from protocol.errors import ErrorCode
from protocol.messages.alter_replica_log_dirs import AlterReplicaLogDirsRequest
from protocol.messages.describe_log_dirs import DescribeLogDirsRequest
from protocol.messages.fetch import FetchRequest
from protocol.record_batch import iter_batch_headers

D = AlterReplicaLogDirsRequest.AlterReplicaLogDir
DT = D.AlterReplicaLogDirTopic


def placement(wire, topic):
    """partition -> log dir, from DescribeLogDirs."""
    out = {}
    for result in wire.call(DescribeLogDirsRequest(topics=None), 4).results:
        assert result.error_code == ErrorCode.NONE
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
