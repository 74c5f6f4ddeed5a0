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

import pytest
from acked_writes import AckedProducer, ReadBack
from cluster_fixture import FAST_SESSIONS, Cluster
from confluent_kafka.admin import AdminClient, NewTopic
from faults.disk import FILLER, fill, small_disk
from waiting import wait_until

from kbroker.config import BrokerConfig, load_properties_file
from kbroker.storage import format_storage, read_meta_properties
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_replica_log_dirs import AlterReplicaLogDirsRequest
from kbroker_protocol.messages.describe_log_dirs import DescribeLogDirsRequest

TOPIC = "jbod"
PARTITIONS = 6
NODE = 1


@pytest.fixture
def jbod_cluster(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it mounts a small tmpfs as a log dir): run the suite as root")
    # A follower whose dir failed stops fetching; until replica.lag.time.max.ms has passed since it
    # was last caught up it still holds the high watermark (acks=all waits): shortened here. Fast
    # sessions: the node killed and restarted at the end registers again once the session of its
    # previous run expires (3 s rather than Kafka's 9 s).
    c = Cluster(tmp_path / "cluster", 3, {"replica.lag.time.max.ms": "4000", **FAST_SESSIONS})
    with small_disk(c.layout.root / f"node-{NODE}-b", 32, "kbroker-jbod-test") as disk:
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


def _leaders(admin: AdminClient) -> dict[int, int]:
    md = admin.list_topics(TOPIC, timeout=10)
    return {p: part.leader for p, part in md.topics[TOPIC].partitions.items()}


def _isr(admin: AdminClient) -> dict[int, list[int]]:
    md = admin.list_topics(TOPIC, timeout=10)
    return {p: sorted(part.isrs) for p, part in md.topics[TOPIC].partitions.items()}


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

    writes = AckedProducer(c.bootstrap(), TOPIC, PARTITIONS, value_size=500, message_timeout_ms=60000)
    acked, failed = writes.acked, writes.failed
    writes.send(300)
    assert writes.flush(60) == 0 and not failed
    fill(disk)

    def moved_off() -> bool:
        writes.send(30)
        writes.poll(0.1)
        now = _leaders(admin)
        return all(now[p] not in (NODE, -1) for p in moved)

    wait_until(moved_off, 60, message="leadership moves off the failed dir", details=c.logs)
    node_log = log_text.read_text(errors="replace")
    assert f"in dir {disk}: [Errno 28] No space left on device" in node_log
    assert "Shutdown broker because all log dirs" not in node_log
    assert c.procs[NODE].poll() is None  # one dir is left: the broker keeps running
    writes.send(300)
    assert writes.flush(60) == 0
    assert not failed, failed[:5]
    # the broker's replicas in the failed dir left the ISR (and do not come back: they do not
    # fetch); those in its live dir did not, nor its leaderships there (it is not fenced)
    isr, now = _isr(admin), _leaders(admin)
    for p in in_b:
        assert NODE not in isr[p], (p, isr)
    # (a follower in the live dir may drop out of an ISR for a moment by lagging under this load,
    # as in Kafka, and fetches its way back: what must hold is that it is in them, and fetching)
    wait_until(lambda: all(NODE in _isr(admin)[p] for p in in_a), 30, message="the live dir's replicas in the ISR",
               details=c.logs)
    for p in in_a:
        if leaders[p] == NODE:
            assert now[p] == NODE, (p, now)

    # DescribeLogDirs: the failed dir with KAFKA_STORAGE_ERROR, the other one serving
    results = {r.log_dir: r for r in _describe_log_dirs(c).results}
    assert results[str(disk)].error_code == ErrorCode.KAFKA_STORAGE_ERROR
    assert results[str(c.layout.data_dir(NODE))].error_code == ErrorCode.NONE

    # every acknowledged record is read back
    reader = ReadBack(c.bootstrap(), TOPIC, PARTITIONS)
    try:
        reader.assign()
        wait_until(lambda: reader.read() and all(k in reader.records for k in acked), 60,
                   message="every acknowledged record read back")
        assert all(reader.records[k] == v for k, v in acked.items())
    finally:
        reader.close()

    # restarted with the dir repaired, its replicas there come back into the ISR
    (disk / FILLER).unlink()
    c.kill(NODE)
    c.start_node(NODE)
    wait_until(lambda: all(NODE in members for members in _isr(admin).values()), 60,
               message="the replicas of the repaired dir rejoin the ISR", details=c.logs)
    assert all(r.error_code == ErrorCode.NONE for r in _describe_log_dirs(c).results)
    writes.send(60)
    assert writes.flush(60) == 0 and not failed
