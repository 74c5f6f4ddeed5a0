"""Kafka Connect (connect-runtime 4.4.0, distributed worker) on kbroker and on Apache Kafka 4.4.

A worker creates its config/offset/status topics (compacted, with the partition counts it asks for);
FileStreamSource and FileStreamSink connectors, created through the REST API, copy a file through a
topic into another file; a worker restart loses nothing and replays at most what was in flight; a
worker with exactly-once source support (KIP-618) passes its preflight checks and its source task
writes transactionally.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource
from connect_worker import ConnectWorker
from waiting import wait_until

SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"


def topic_facts(bootstrap: str, topics: list[str]) -> dict[str, tuple[int, str]]:
    """Partition count and cleanup.policy of each topic."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=30)
    out: dict[str, tuple[int, str]] = {}
    for t in topics:
        assert t in md.topics, f"{t} not created; topics: {sorted(md.topics)}"
        res = ConfigResource(ConfigResource.Type.TOPIC, t)
        configs = admin.describe_configs([res])[res].result(30)
        out[t] = (len(md.topics[t].partitions), configs["cleanup.policy"].value)
    return out


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def append(path: Path, new: list[str]) -> None:
    with path.open("a") as f:
        f.write("".join(line + "\n" for line in new))


def assert_at_least_once(sink: list[str], source: list[str]) -> int:
    """``sink`` is ``source`` in order, except that one stretch after the restart may repeat records
    already delivered (source[:a] + source[b:], b <= a). Returns how many were repeated."""
    a = 0
    while a < len(sink) and a < len(source) and sink[a] == source[a]:
        a += 1
    if a == len(sink):
        assert sink == source, f"sink stops at {a} of {len(source)}"
        return 0
    rest = sink[a:]
    b = source.index(rest[0]) if rest[0] in source else -1
    assert 0 <= b <= a, f"sink diverges at {a}: {rest[:3]} (source there: {source[a:a + 3]})"
    assert rest == source[b:], f"sink after the replay point {b} is not the source's tail"
    return a - b


def read_all(bootstrap: str, topic: str, isolation: str, expected: int) -> list[str]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex[:6]}",
                  "isolation.level": isolation, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got: list[str] = []

        def more() -> bool:
            for m in c.consume(100, 0.5):
                assert m.error() is None, m.error()
                got.append(m.value().decode())
            return len(got) >= expected

        wait_until(more, timeout=60, message=f"{expected} records in {topic}", details=lambda: len(got))
        return got
    finally:
        c.close()


def test_file_source_to_sink_survives_restart(broker, tmp_path: Path) -> None:
    group = f"connect-{uuid.uuid4().hex[:6]}"
    worker = ConnectWorker(tmp_path / "worker", broker.bootstrap, group)
    src, dst, topic = tmp_path / "source.txt", tmp_path / "sink.txt", f"{group}-data"
    source = [f"line-{i:04d} {uuid.uuid4().hex}" for i in range(200)]
    append(src, source[:100])
    worker.start()
    try:
        # The worker's internal topics: compacted, the config topic with one partition.
        assert topic_facts(broker.bootstrap, [f"{group}-configs", f"{group}-offsets", f"{group}-status"]) == {
            f"{group}-configs": (1, "compact"),
            f"{group}-offsets": (3, "compact"),
            f"{group}-status": (2, "compact"),
        }
        worker.create_connector("file-source", {"connector.class": SOURCE, "tasks.max": "1", "file": str(src),
                                                "topic": topic})
        worker.create_connector("file-sink", {"connector.class": SINK, "tasks.max": "1", "file": str(dst),
                                              "topics": topic})
        worker.wait_running("file-source")
        worker.wait_running("file-sink")
        status, listed = worker.request("GET", "/connectors")
        assert status == 200 and sorted(listed) == ["file-sink", "file-source"]
        wait_until(lambda: lines(dst) == source[:100], timeout=120, interval=0.2,
                   message="the first 100 lines in the sink file", details=lambda: len(lines(dst)))
        worker.stop()
        append(src, source[100:])
        worker.start()
        worker.wait_running("file-source")
        worker.wait_running("file-sink")
        wait_until(lambda: len(lines(dst)) >= len(source) and lines(dst)[-1] == source[-1], timeout=120,
                   interval=0.2, message="all 200 lines in the sink file", details=lambda: len(lines(dst)))
        # A clean stop commits the source's and the sink's offsets: nothing lost, nothing repeated.
        assert assert_at_least_once(lines(dst), source) == 0
        assert worker.errors() == []
    finally:
        worker.stop()


def test_exactly_once_source(broker, tmp_path: Path) -> None:
    """KIP-618: with exactly.once.source.support=enabled the worker's preflight checks pass, a source
    connector requiring exactly-once runs, and its records are committed transactions (visible under
    read_committed); after a kill -9 of the worker the restarted task resumes from its committed
    offsets: the topic holds each line exactly once under read_committed."""
    group = f"eos-{uuid.uuid4().hex[:6]}"
    # The restarted worker's group waits for the killed one's session to expire: 6 s (the brokers'
    # group.min.session.timeout.ms), not the worker's 10 s default.
    worker = ConnectWorker(tmp_path / "worker", broker.bootstrap, group,
                           {"exactly.once.source.support": "enabled", "session.timeout.ms": "6000",
                            "heartbeat.interval.ms": "1000"})
    src, topic = tmp_path / "source.txt", f"{group}-data"
    source = [f"eos-{i:04d}" for i in range(300)]
    append(src, source[:150])
    worker.start()
    try:
        worker.create_connector("eos-source", {"connector.class": SOURCE, "tasks.max": "1", "file": str(src),
                                               "topic": topic, "exactly.once.support": "required",
                                               "transaction.boundary": "poll"})
        worker.wait_running("eos-source")
        assert read_all(broker.bootstrap, topic, "read_committed", 150) == source[:150]
        worker.kill()
        append(src, source[150:])
        worker.start()
        worker.wait_running("eos-source")
        assert read_all(broker.bootstrap, topic, "read_committed", 300) == source
        assert worker.errors() == []
    finally:
        worker.stop()
