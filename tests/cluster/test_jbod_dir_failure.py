"""One of a broker's two log dirs fails on a three-node cluster (JBOD in KRaft, KIP-858, as Kafka
4.4): the broker keeps running, reports the dir in its heartbeats' OfflineLogDirs, and the
controller moves leadership and ISR off its replicas in that dir; a producer with acks=all goes on
writing to the partitions that were led there and no acknowledged record is lost. DescribeLogDirs
lists the failed dir with KAFKA_STORAGE_ERROR. Restarted with the dir repaired, the broker's
replicas there catch up and rejoin the ISR.

The failing dir is a small tmpfs (root needed, as tests/faults) that the test fills: an append in
it fails with ENOSPC, a real storage error."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_fixture import Cluster
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.config import BrokerConfig, load_properties_file
from kbroker.storage import format_storage, read_meta_properties
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_replica_log_dirs import AlterReplicaLogDirsRequest
from kbroker_protocol.messages.describe_log_dirs import DescribeLogDirsRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from waiting import wait_until  # noqa: E402

TOPIC = "jbod"
PARTITIONS = 6
NODE = 1


@pytest.fixture
def jbod_cluster(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it mounts a small tmpfs as a log dir): run the suite as root")
    # A follower whose dir failed stops fetching; until replica.lag.time.max.ms has passed since it
    # was last caught up it still holds the high watermark (acks=all waits): shortened here.
    c = Cluster(tmp_path / "cluster", 3, {"replica.lag.time.max.ms": "4000"})
    disk = c.layout.root / f"node-{NODE}-b"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "kbroker-jbod-test", str(disk)], check=True)
    try:
        path = c.layout.properties_path(NODE)
        text = path.read_text().replace(f"log.dirs={c.layout.data_dir(NODE)}\n",
                                        f"log.dirs={c.layout.data_dir(NODE)},{disk}\n")
        assert str(disk) in text
        path.write_text(text)
        cluster_id = read_meta_properties(c.layout.data_dir(NODE))["cluster.id"]
        format_storage(BrokerConfig(load_properties_file(path), warn=False), cluster_id, ignore_formatted=True,
                       out=io.StringIO())
        c.start()
        yield c, disk
    finally:
        c.kill_all()
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _leaders(admin: AdminClient) -> dict[int, int]:
    md = admin.list_topics(TOPIC, timeout=10)
    return {p: part.leader for p, part in md.topics[TOPIC].partitions.items()}


def _isr(admin: AdminClient) -> dict[int, list[int]]:
    md = admin.list_topics(TOPIC, timeout=10)
    return {p: sorted(part.isrs) for p, part in md.topics[TOPIC].partitions.items()}


def _fill(disk: Path) -> None:
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError:
                pass
    finally:
        os.close(fd)


def _describe_log_dirs(c: Cluster):
    w = c.wire(NODE)
    try:
        return w.call(DescribeLogDirsRequest(topics=None), 4)
    finally:
        w.sock.close()


def test_a_failed_log_dir_moves_its_leaderships_and_loses_no_acked_record(jbod_cluster):
    c, disk = jbod_cluster
    admin = AdminClient({"bootstrap.servers": c.bootstrap()})
    futures = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})])
    futures[TOPIC].result(30)
    wait_until(lambda: all(leader >= 0 for leader in _leaders(admin).values()) and len(_leaders(admin)) == PARTITIONS,
               30, message="leaders elected")
    leaders = _leaders(admin)
    led = sorted(p for p, leader in leaders.items() if leader == NODE)
    assert led, leaders
    # one partition this node leads is in the small dir (moved there if placement put none there)
    in_b = sorted(p for p in range(PARTITIONS) if (disk / f"{TOPIC}-{p}").is_dir())
    moved = [p for p in led if p in in_b]
    if not moved:
        w = c.wire(NODE)
        try:
            A = AlterReplicaLogDirsRequest
            resp = w.call(A(dirs=[A.AlterReplicaLogDir(path=str(disk), topics=[
                A.AlterReplicaLogDir.AlterReplicaLogDirTopic(name=TOPIC, partitions=[led[0]])])]), 2)
        finally:
            w.sock.close()
        assert resp.results[0].partitions[0].error_code == ErrorCode.NONE
        wait_until(lambda: (disk / f"{TOPIC}-{led[0]}").is_dir(), 30, message="the partition moved to the small dir")
        moved = [led[0]]
    in_b = sorted(p for p in range(PARTITIONS) if (disk / f"{TOPIC}-{p}").is_dir())
    in_a = [p for p in range(PARTITIONS) if p not in in_b]
    # the broker has told the controller where its replicas are (AssignReplicasToDirs)
    log_text = c.layout.log_path(NODE)
    wait_until(lambda: "AssignReplicasToDirs: assigned" in log_text.read_text(errors="replace"), 30,
               message="replica dirs assigned")

    acked: dict[tuple[int, int], bytes] = {}
    failed: list[str] = []

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            failed.append(err.name())

    producer = Producer({"bootstrap.servers": c.bootstrap(), "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "message.timeout.ms": 60000})
    sent = 0

    def send(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            producer.produce(TOPIC, value=f"{sent:08d}".encode() + b"x" * 500, partition=sent % PARTITIONS,
                             on_delivery=on_delivery)
            sent += 1
        producer.poll(0)

    send(300)
    assert producer.flush(60) == 0 and not failed
    _fill(disk)

    def moved_off() -> bool:
        send(30)
        producer.poll(0.1)
        now = _leaders(admin)
        return all(now[p] not in (NODE, -1) for p in moved)

    wait_until(moved_off, 60, message="leadership moves off the failed dir", details=c.logs)
    node_log = log_text.read_text(errors="replace")
    assert f"in dir {disk}: [Errno 28] No space left on device" in node_log
    assert "Shutdown broker because all log dirs" not in node_log
    assert c.procs[NODE].poll() is None  # one dir is left: the broker keeps running
    send(300)
    assert producer.flush(60) == 0
    assert not failed, failed[:5]
    # the broker's replicas in the failed dir left the ISR (and do not come back: they do not
    # fetch); those in its live dir did not, nor its leaderships there (it is not fenced)
    isr, now = _isr(admin), _leaders(admin)
    for p in in_b:
        assert NODE not in isr[p], (p, isr)
    for p in in_a:
        assert NODE in isr[p], (p, isr)
        if leaders[p] == NODE:
            assert now[p] == NODE, (p, now)

    # DescribeLogDirs: the failed dir with KAFKA_STORAGE_ERROR, the other one serving
    results = {r.log_dir: r for r in _describe_log_dirs(c).results}
    assert results[str(disk)].error_code == ErrorCode.KAFKA_STORAGE_ERROR
    assert results[str(c.layout.data_dir(NODE))].error_code == ErrorCode.NONE

    # every acknowledged record is read back
    consumer = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "check", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        seen: dict[tuple[int, int], bytes] = {}
        eof: set[int] = set()

        def read_all() -> bool:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    seen[(msg.partition(), msg.offset())] = msg.value()
                elif msg.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
            return len(eof) == PARTITIONS and all(k in seen for k in acked)

        wait_until(read_all, 60, message="every acknowledged record read back")
        assert all(seen[k] == v for k, v in acked.items())
    finally:
        consumer.close()

    # restarted with the dir repaired, its replicas there come back into the ISR
    (disk / "filler").unlink()
    c.kill(NODE)
    c.start_node(NODE)
    wait_until(lambda: all(NODE in members for members in _isr(admin).values()), 60,
               message="the replicas of the repaired dir rejoin the ISR", details=c.logs)
    assert all(r.error_code == ErrorCode.NONE for r in _describe_log_dirs(c).results)
    send(60)
    assert producer.flush(60) == 0 and not failed
