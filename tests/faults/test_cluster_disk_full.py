"""A full disk on one of three kbroker nodes (as root; its log dir is a small tmpfs): as Kafka 4.4,
the node fails its log dir and halts (exit status 1, ``Shutdown broker because all log dirs in
<dir> have failed``), leadership moves to the two other replicas, writes go on with acks=all and
min.insync.replicas=2, and every acknowledged record is read back."""

from __future__ import annotations

import pytest
from acked_writes import AckedProducer, ReadBack
from faults.cluster import Cluster, KbrokerTarget
from faults.workload import create_topic
from rootcheck import needs_root  # noqa: F401 - autouse fixture
from waiting import wait_until

TOPIC = "full"
PARTITIONS = 3


def last_lines(cluster: Cluster, name: str, words: tuple[str, ...], count: int = 4) -> list[str]:
    """The last ``count`` lines of a node's stdout.log holding one of ``words``: what a failed wait
    shows of the node (its Raft role, its halt)."""
    lines = (cluster.nodes[name].workdir / "stdout.log").read_text(errors="replace").splitlines()
    return [line[:240] for line in lines if any(w in line for w in words)][-count:]


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(KbrokerTarget(), tmp_path / "nodes", seed=18, small_disk_node="n3", small_disk_mb=16)
    try:
        c.setup()
        c.start_all()
        for name in c.names:
            c.wait_ready(name)
        yield c
    finally:
        c.close()


def test_a_node_with_a_full_disk_halts_and_leadership_moves(cluster):
    create_topic(cluster.bootstrap, TOPIC, PARTITIONS, replication_factor=3,
                 config={"min.insync.replicas": "2", "unclean.leader.election.enable": "false"})
    writes = AckedProducer(cluster.bootstrap, TOPIC, PARTITIONS, value_size=1000, message_timeout_ms=30000)
    acked, failed = writes.acked, writes.failed
    writes.send(300)
    assert writes.flush(60) == 0
    n3 = cluster.nodes["n3"]
    cluster.fill_disk("n3")

    def n3_stopped() -> bool:
        writes.send(100)
        writes.poll(0.2)
        return n3.proc.poll() is not None

    wait_until(n3_stopped, 120, message="n3 halts on its full disk",
               details=lambda: last_lines(cluster, "n3", ("ERROR", "CRITICAL", "halt")))
    assert n3.proc.returncode == 1
    text = (n3.workdir / "stdout.log").read_text(errors="replace")
    assert f"Shutdown broker because all log dirs in {n3.disk} have failed" in text
    assert f"in dir {n3.disk}: [Errno 28] No space left on device" in text

    reader = ReadBack(cluster.bootstrap, TOPIC, PARTITIONS)
    try:
        leaders: dict[int, int] = {}

        def leaders_moved() -> bool:
            md = reader.consumer.list_topics(TOPIC, timeout=10).topics[TOPIC]
            leaders.update({p: md.partitions[p].leader for p in range(PARTITIONS)})
            return all(leaders[p] in (1, 2) for p in range(PARTITIONS))

        # (a failure names the leaders last seen and the controllers' last Raft transitions: the
        # quorum of n1 and n2 must elect an active controller once n3 is gone)
        wait_until(leaders_moved, 90, message="every partition led by n1 or n2",
                   details=lambda: {"leaders": leaders, **{n: last_lines(cluster, n, ("raft node", "controller"))
                                                           for n in ("n1", "n2")}})
        # (the first producer's sends in flight to n3 may stay unacknowledged until they time out,
        # as on Kafka: librdkafka's idempotent producer; docs/faults.md) A new producer's are all
        # acknowledged by n1 and n2.
        writes.flush(60)
        failed.clear()
        before = len(acked)
        writes.renew(message_timeout_ms=60000)
        writes.send(300)
        assert writes.flush(90) == 0 and not failed, f"writes with n3 down not acknowledged: {failed[:3]}"
        assert len(acked) == before + 300
        reader.assign()
        wait_until(reader.read, 60, message="every partition read to its end")
    finally:
        reader.close()
    missing = [k for k, v in acked.items() if reader.records.get(k) != v]
    assert not missing, f"{len(missing)} acknowledged records missing, e.g. {missing[:3]}"
