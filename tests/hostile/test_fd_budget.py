"""Hostile input: file descriptors (issue 13, hole 4).

A broker under a 128 descriptor limit (a subprocess started with RLIMIT_NOFILE 128) creates 1,000
partitions, keeps hundreds of segments readable, and still accepts connections and commits
metadata. In-process brokers show that a topic whose logs cannot be created leaves nothing
behind, and that creating partitions does not stop other clients from being served.
"""

from __future__ import annotations

import errno
import resource
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from waiting import wait_until
from wire import Wire

from kbroker.broker import StartupError
from kbroker.log.fd_budget import BUDGET, default_capacity
from kbroker.log.partition_log import PartitionLog
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.record_batch import iter_batch_headers
from kbroker_protocol.records import Record, build_batch, iter_records

ROOT = Path(__file__).resolve().parents[2]
NOFILE = 128

CT = REQUESTS[19]
F = REQUESTS[1]
P = REQUESTS[0]


def create(wire: Wire, name: str, partitions: int, configs: dict[str, str] | None = None):
    topic = CT.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1, assignments=[],
                              configs=[CT.CreatableTopic.CreatableTopicConfig(name=k, value=v)
                                       for k, v in (configs or {}).items()])
    return wire.call(19, 7, topics=[topic], timeout_ms=120_000, validate_only=False).topics[0]


def metadata(wire: Wire, name: str):
    return wire.call(3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=name, topic_id=uuid.UUID(int=0))],
                     allow_auto_topic_creation=False, include_topic_authorized_operations=False).topics[0]


def produce(wire: Wire, name: str, partition: int, values: list[bytes], timestamp: int) -> int:
    batch = build_batch([Record(key=None, value=v, timestamp=timestamp) for v in values])
    data = P.TopicProduceData(name=name, partition_data=[P.TopicProduceData.PartitionProduceData(
        index=partition, records=batch)])
    part = wire.call(0, 9, transactional_id=None, acks=-1, timeout_ms=10_000, topic_data=[data]) \
        .responses[0].partition_responses[0]
    assert part.error_code == ErrorCode.NONE, part
    return part.base_offset


def fetch_values(wire: Wire, name: str, partition: int, offset: int) -> list[bytes]:
    topic = F.FetchTopic(topic=name, partitions=[F.FetchTopic.FetchPartition(
        partition=partition, fetch_offset=offset, partition_max_bytes=1 << 20)])
    resp = wire.call(1, 12, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
                     session_id=0, session_epoch=-1, topics=[topic], forgotten_topics_data=[], rack_id="")
    part = resp.responses[0].partitions[0]
    assert part.error_code == ErrorCode.NONE, part
    data = bytes(part.records or b"")
    return [bytes(r.value) for pos, _ in iter_batch_headers(data) for r in iter_records(data, pos)]


def api_versions(wire: Wire) -> int:
    return wire.call(18, 3, client_software_name="hostile", client_software_version="1").error_code


# -- a broker process limited to 256 descriptors -----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fd-limited")
    proc, bootstrap, log_path = _start_limited(data_dir, data_dir.parent / "broker.log")
    yield proc, bootstrap, data_dir, log_path
    proc.kill()  # (a clean shutdown closes 1,000 logs: seconds of fsyncs this test does not need)
    proc.wait()


def _start_limited(data_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str, Path]:
    port = _free_port()
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kbroker", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
             "--override", f"log.dirs={data_dir}", "--override", "node.id=1", "--log-level", "INFO"],
            cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_limit_descriptors,
        )
    bootstrap = f"127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"broker exited: {log_path.read_text()[-2000:]}")
        try:
            wire = Wire(bootstrap, timeout=10)
        except OSError:
            return False
        try:
            return api_versions(wire) == 0
        finally:
            wire.close()

    wait_until(ready, timeout=120, message="the broker to start")
    return proc, bootstrap, log_path


def _soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open file limit")


def test_1000_partitions_under_a_128_descriptor_limit(limited):
    proc, bootstrap, data_dir, _ = limited
    assert _soft_limit(proc.pid) == NOFILE
    wire = Wire(bootstrap, timeout=120)
    result = create(wire, "wide", 1000)
    assert result.error_code == ErrorCode.NONE, result.error_message
    assert len(metadata(wire, "wide").partitions) == 1000
    # (made after the commit, on the log manager's worker, as Kafka's broker makes its logs)
    wait_until(lambda: len([p for p in data_dir.iterdir() if p.name.startswith("wide-")]) == 1000,
               timeout=60, message="the 1,000 partition directories")
    # Every partition works: the first, one in the middle, the last, some twice.
    for partition in (0, 500, 999, 0):
        produce(wire, "wide", partition, [f"p{partition}".encode()], 1_700_000_000_000)
    assert fetch_values(wire, "wide", 0, 0) == [b"p0", b"p0"]
    assert fetch_values(wire, "wide", 999, 0) == [b"p999"]
    wire.close()


def test_hundreds_of_segments_stay_readable_from_offset_0(limited):
    proc, bootstrap, data_dir, _ = limited
    wire = Wire(bootstrap, timeout=60)
    # segment.ms=1 and timestamps 2 ms apart: every batch starts a new segment.
    assert create(wire, "rolled", 1, {"segment.ms": "1", "retention.ms": "-1"}).error_code == ErrorCode.NONE
    count = NOFILE + 50
    for i in range(count):
        produce(wire, "rolled", 0, [b"r%d" % i], 1_700_000_000_000 + 2 * i)
    segments = list((data_dir / "rolled-0").glob("*.log"))
    assert len(segments) >= count - 1 > NOFILE
    values: list[bytes] = []
    while len(values) < count:
        got = fetch_values(wire, "rolled", 0, len(values))
        assert got, f"no data at offset {len(values)}"
        values += got
    assert values == [b"r%d" % i for i in range(count)]
    wire.close()


def test_connections_and_metadata_commits_still_work(limited):
    proc, bootstrap, _, log_path = limited
    wires = [Wire(bootstrap, timeout=30) for _ in range(40)]
    assert [api_versions(w) for w in wires] == [0] * 40
    assert create(wires[0], "after", 3).error_code == ErrorCode.NONE
    assert len(metadata(wires[-1], "after").partitions) == 3
    for w in wires:
        w.close()
    assert proc.poll() is None
    log = log_path.read_text()
    assert "Too many open files" not in log, log[-3000:]


def test_a_restart_loads_every_partition_under_the_limit(limited):
    """Killed (so every log is recovered) and restarted under the same limit: all 1,000+
    partitions load, and the data written before is served."""
    proc, _, data_dir, _ = limited
    proc.kill()
    proc.wait()
    again, bootstrap, log_path = _start_limited(data_dir, data_dir.parent / "broker-restarted.log")
    try:
        wire = Wire(bootstrap, timeout=60)
        assert len(metadata(wire, "wide").partitions) == 1000
        assert fetch_values(wire, "wide", 999, 0) == [b"p999"]
        assert fetch_values(wire, "rolled", 0, 0)[:1] == [b"r0"]
        assert create(wire, "after-restart", 2).error_code == ErrorCode.NONE
        wire.close()
        assert "Too many open files" not in log_path.read_text()
    finally:
        again.kill()
        again.wait()


# -- in-process brokers: a failed creation, and other clients served meanwhile ----------------


def test_a_topic_whose_logs_cannot_be_created_leaves_nothing_behind(monkeypatch):
    real_open = PartitionLog.open
    calls = []

    def failing_open(path, *args, **kwargs):
        if Path(path).name.startswith("doomed-"):
            calls.append(path)
            if len(calls) == 60:
                raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, *args, **kwargs)

    with BrokerThread() as b:
        monkeypatch.setattr(PartitionLog, "open", staticmethod(failing_open))
        wire = Wire(b.bootstrap_servers)
        result = create(wire, "doomed", 100)
        assert result.error_code == ErrorCode.KAFKA_STORAGE_ERROR
        assert "Too many open files" in result.error_message
        assert len(calls) == 60
        # Nothing committed, nothing on disk, nothing open.
        assert metadata(wire, "doomed").error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert [p for p in Path(b.data_dir).iterdir() if p.name.startswith("doomed")] == []
        assert not [k for k in b.broker.log_manager.partitions() if k[0] == "doomed"]
        # The name is free again, and the broker keeps working.
        monkeypatch.undo()
        assert create(wire, "doomed", 100).error_code == ErrorCode.NONE
        assert len(metadata(wire, "doomed").partitions) == 100
        wire.close()


@pytest.mark.parametrize("api", ["CreateTopics", "CreatePartitions"])
def test_other_clients_are_served_while_partitions_are_created(monkeypatch, api):
    """The creation is held half-way (the partition log creation waits on an event): requests on
    other connections are answered meanwhile. Created on the event loop, they would not be."""
    real_open = PartitionLog.open
    started, release = threading.Event(), threading.Event()

    def held_open(path, *args, **kwargs):
        if Path(path).name.startswith("big-") and Path(path).name != "big-0":
            started.set()
            release.wait(60)
        return real_open(path, *args, **kwargs)

    with BrokerThread() as b:
        admin, other = Wire(b.bootstrap_servers, timeout=60), Wire(b.bootstrap_servers, timeout=10)
        try:
            assert create(other, "small", 1).error_code == ErrorCode.NONE
            if api == "CreatePartitions":
                assert create(admin, "big", 1).error_code == ErrorCode.NONE
            monkeypatch.setattr(PartitionLog, "open", staticmethod(held_open))
            if api == "CreateTopics":
                topic = CT.CreatableTopic(name="big", num_partitions=200, replication_factor=1, assignments=[],
                                          configs=[])
                admin.send(CT(topics=[topic], timeout_ms=60_000, validate_only=False), 7)
            else:
                CP = REQUESTS[37]
                admin.send(CP(topics=[CP.CreatePartitionsTopic(name="big", count=200, assignments=None)],
                              timeout_ms=60_000, validate_only=False), 3)
            wait_until(started.is_set, timeout=30, message="the creation to start")
            # Served while the creation is held: answered before the creation's response.
            assert api_versions(other) == 0
            assert len(metadata(other, "small").partitions) == 1
            produce(other, "small", 0, [b"meanwhile"], 1_700_000_000_000)
            assert metadata(other, "big").error_code in (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NONE)
        finally:
            release.set()
        response = admin.receive()
        if api == "CreateTopics":
            assert response.topics[0].error_code == ErrorCode.NONE
        else:
            assert response.results[0].error_code == ErrorCode.NONE
        assert len(metadata(other, "big").partitions) == 200
        assert fetch_values(other, "small", 0, 0) == [b"meanwhile"]
        admin.close()
        other.close()


def test_descriptor_budget_is_sized_from_the_raised_limit():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    saved = BUDGET.capacity
    try:
        with BrokerThread({"kbroker.log.max.open.files": "50"}):
            assert BUDGET.capacity == 50
            # The soft limit was raised to the hard one (as the JVM does for Kafka).
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            assert soft == hard or hard == resource.RLIM_INFINITY
        with BrokerThread():
            assert BUDGET.capacity == default_capacity()
    finally:
        BUDGET.resize(saved)


def test_a_budget_of_zero_is_refused():
    with pytest.raises(StartupError, match="kbroker.log.max.open.files"):
        BrokerThread({"kbroker.log.max.open.files": "0"}).start()
