"""``kbroker cluster 3 --dir DIR`` itself (kbroker/cluster.py ``main``, named in the README): the
command starts three nodes on free ports and prints ``bootstrap.servers=``; a topic of replication
factor 3 takes a record through that bootstrap; Ctrl-C (SIGINT) stops every node it started and the
command exits 0; run again on the same folder, the nodes restart from their data with the topic and
the record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import confluent_kafka
from cluster_fixture import FAST_SESSIONS
from confluent_kafka.admin import AdminClient, NewTopic
from waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def node_pids(root: Path, node_id: int | None = None) -> set[int]:
    """The processes running one of the nodes under ``root`` (their command line names its
    node-<id>.properties), or node ``node_id``."""
    marker = str(root / ("node-" if node_id is None else f"node-{node_id}.properties")).encode()
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline and b"kbroker" in cmdline:
            pids.add(int(entry.name))
    return pids


class ClusterCommand:
    """``python -m kbroker cluster 3 --dir root`` (or ``args`` instead of ``3``) as a child process,
    its stdout read by a thread."""

    def __init__(self, root: Path, *args: str) -> None:
        self.root = root
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kbroker", "cluster", *(args or ("3",)), "--dir", str(root)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def details(self) -> str:
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(self.root.glob("node-*.log")))
        return f"exit {self.proc.poll()}, stdout {self.lines}\n{logs}"

    def bootstrap(self) -> str:
        def found() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"kbroker cluster exited early: {self.details()}")
            return next((line.split("=", 1)[1] for line in self.lines if line.startswith("bootstrap.servers=")), None)
        return wait_until(found, 90, 0.05, "the bootstrap.servers= line", self.details)

    def interrupt(self) -> int:
        """SIGINT (Ctrl-C) to the command; its exit code."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(10)
        return code

    def kill_everything(self) -> None:
        """Cleanup after a failure: the command and any node left behind."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in node_pids(self.root):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def replicas(admin: AdminClient, topic: str) -> list[list[int]] | None:
    """Each partition's replica ids as DescribeTopics gives them; None while the broker asked does
    not know the topic yet (its metadata image follows the controller's)."""
    try:
        described = admin.describe_topics(confluent_kafka.TopicCollection([topic]))[topic].result(30)
    except confluent_kafka.KafkaException as exc:
        if exc.args[0].code() == confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None
        raise
    return [sorted(r.id for r in p.replicas) for p in described.partitions]


def consume_all(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes | None, bytes | None]]:
    """Partition 0 of ``topic`` from its start, assigned: a subscription's first rebalance would wait
    the command's group.initial.rebalance.delay.ms (Kafka's 3 s default) each time."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4()}",
                                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got: list[tuple[bytes | None, bytes | None]] = []
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])

        def poll() -> bool:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append((msg.key(), msg.value()))
            return len(got) >= expected
        wait_until(poll, 40, 0, f"{expected} records of {topic}")
    finally:
        consumer.close()
    return got


def test_cluster_command_runs_stops_and_restarts_from_disk(tmp_path):
    root = tmp_path / "kc"
    cmd = ClusterCommand(root)
    try:
        bootstrap = cmd.bootstrap()
        assert len(bootstrap.split(",")) == 3 and "9092" not in {b.rsplit(":", 1)[1] for b in bootstrap.split(",")}
        # the ports printed are the ones the nodes were configured with
        for i in (1, 2, 3):
            assert any(line.startswith(f"node {i} (broker,controller): PLAINTEXT://127.0.0.1:") for line in cmd.lines)
        pids = node_pids(root)
        assert len(pids) == 3, (pids, cmd.details())

        admin = AdminClient({"bootstrap.servers": bootstrap})
        [future] = admin.create_topics([NewTopic("kept", num_partitions=1, replication_factor=3)],
                                       operation_timeout=20).values()
        future.result(30)
        assert wait_until(lambda: replicas(admin, "kept"), 30, 0.1, "topic kept described") == [[1, 2, 3]]
        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        delivered: list[confluent_kafka.Message] = []
        producer.produce("kept", key=b"k", value=b"survives a restart",
                         on_delivery=lambda err, msg: delivered.append(err or msg))
        assert producer.flush(30) == 0
        assert [type(d) for d in delivered] == [confluent_kafka.Message], delivered
        assert consume_all(bootstrap, "kept", 1) == [(b"k", b"survives a restart")]

        assert cmd.interrupt() == 0, cmd.details()
        # every node the command started is gone (reaped by it: no zombie either)
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists(), f"node process {pid} still there"
        assert node_pids(root) == set()
    finally:
        cmd.kill_everything()

    # The node stopped last keeps its registration (no controller is left to grant its controlled
    # shutdown), so its next incarnation registers once that session expires: 3 s sessions for the
    # restart, written into the folder's configs the command reads (Kafka's 9 s default otherwise).
    for path in sorted(root.glob("node-*.properties")):
        path.write_text(path.read_text() + "".join(f"{k}={v}\n" for k, v in FAST_SESSIONS.items()))
    again = ClusterCommand(root)
    try:
        assert again.bootstrap() == bootstrap  # the same ports, from the folder's configs
        assert len(node_pids(root)) == 3
        admin = AdminClient({"bootstrap.servers": bootstrap})
        assert wait_until(lambda: replicas(admin, "kept"), 30, 0.1, "topic kept described") == [[1, 2, 3]]
        assert consume_all(bootstrap, "kept", 1) == [(b"k", b"survives a restart")]
        assert again.interrupt() == 0, again.details()
        assert node_pids(root) == set()
    finally:
        again.kill_everything()


def test_cluster_command_reports_a_node_that_died_stops_the_others_and_exits_non_zero(tmp_path):
    root = tmp_path / "kc"
    cmd = ClusterCommand(root, "1", "--brokers", "1")  # node 1 the controller, node 2 a broker
    try:
        cmd.bootstrap()
        [broker] = node_pids(root, 2)
        assert len(node_pids(root)) == 2, cmd.details()
        os.kill(broker, signal.SIGKILL)
        code = cmd.proc.wait(60)
        assert cmd.proc.stderr is not None
        err = cmd.proc.stderr.read()
        assert code == 1, (err, cmd.details())
        assert f"node 2 was killed by SIGKILL (9) unexpectedly (log {root.resolve() / 'node-2.log'})" in err, err
        assert "node 1 " not in err, err  # the controller was stopped by the command, not reported
        assert node_pids(root) == set()  # the other node stopped too
    finally:
        cmd.kill_everything()
