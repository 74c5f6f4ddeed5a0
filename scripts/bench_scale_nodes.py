"""Restartable broker processes for scripts/bench_scale.py: kbroker and Apache Kafka 4.4 on a data
dir that outlives the process (clean stop, kill -9, start again on the same logs).

Both get the same settings (scripts/bench_brokers.py's BENCH_SETTINGS plus the caller's extras), one
node, PLAINTEXT on a free loopback port (and SSL on another when made with a PEM key store). "Ready" is a Metadata answer listing the broker and, when a
topic is named, every one of its partitions with a leader.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_brokers as bb  # noqa: E402
import reference_kafka  # noqa: E402

ROOT = bb.ROOT
sys.path.insert(0, str(ROOT))  # tests.integration.wire imports tests.integration.waiting

from kbroker_protocol.api import encode_request  # noqa: E402
from kbroker_protocol.messages import REQUESTS, RequestHeader  # noqa: E402
from tests.integration.wire import Wire  # noqa: E402

METADATA_VERSION = 12
CREATE_VERSION = 7
CREATE_PARTITIONS_VERSION = 3


def metadata_request(topic: str | None) -> object:
    req = REQUESTS[3]
    topics = None if topic is None else [req.MetadataRequestTopic(name=topic, topic_id=uuid.UUID(int=0))]
    return req(topics=topics, allow_auto_topic_creation=False, include_topic_authorized_operations=False)


def topic_ready(bootstrap: str, topic: str, partitions: int, timeout: float = 10.0) -> bool:
    """True when Metadata shows `topic` with `partitions` partitions, each with a leader."""
    w = Wire(bootstrap, timeout=timeout)
    try:
        w.send(metadata_request(topic), METADATA_VERSION)
        md = w.receive()
    finally:
        w.close()
    ts = [t for t in md.topics if t.name == topic]
    if not ts or ts[0].error_code != 0 or len(ts[0].partitions) != partitions:
        return False
    return all(p.error_code == 0 and p.leader_id >= 0 for p in ts[0].partitions)


class RawMetadata:
    """One connection sending a pre-encoded Metadata request and reading the whole answer frame
    without decoding it (so the client's decoding cost is not in the latency)."""

    def __init__(self, bootstrap: str, topic: str | None) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        header = RequestHeader(request_api_key=3, request_api_version=METADATA_VERSION, correlation_id=1,
                               client_id="bench-scale")
        payload = encode_request(header, metadata_request(topic))
        self.frame = struct.pack(">i", len(payload)) + payload

    def call(self) -> tuple[float, int]:
        """Seconds from send to the last byte of the answer, and the answer's size."""
        t0 = time.perf_counter()
        self.sock.sendall(self.frame)
        (size,) = struct.unpack(">i", self._read(4))
        left = size
        while left:
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise ConnectionError("closed by broker")
            left -= len(chunk)
        return time.perf_counter() - t0, size

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by broker")
            out += chunk
        return out

    def close(self) -> None:
        self.sock.close()


# Kafka's controller refuses a request of more than 10,000 metadata records (QuorumController's
# MAX_RECORDS_PER_USER_OP: one per partition plus the topic's), so bigger topics are created in steps.
CREATE_STEP = 5000


def create_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 900.0) -> None:
    """CreateTopics with up to CREATE_STEP partitions, then CreatePartitions adding CREATE_STEP at a
    time until the topic has `partitions` (one topic either way, as for both brokers). `timeout` bounds
    the whole creation (socket.timeout when it runs out)."""
    req = REQUESTS[19]
    deadline = time.monotonic() + timeout
    w = Wire(bootstrap, timeout=timeout)
    try:
        t = req.CreatableTopic(name=topic, num_partitions=min(partitions, CREATE_STEP), replication_factor=1,
                               assignments=[], configs=[])
        resp = w.call(19, CREATE_VERSION, topics=[t], timeout_ms=int(timeout * 1000), validate_only=False)
        err = resp.topics[0].error_code
        if err != 0:
            raise RuntimeError(f"CreateTopics {topic} ({partitions}): error {err} {resp.topics[0].error_message}")
        count = min(partitions, CREATE_STEP)
        while count < partitions:
            count = min(partitions, count + CREATE_STEP)
            more = REQUESTS[37].CreatePartitionsTopic(name=topic, count=count, assignments=None)
            w.sock.settimeout(max(1.0, deadline - time.monotonic()))
            resp = w.call(37, CREATE_PARTITIONS_VERSION, topics=[more], timeout_ms=int(timeout * 1000),
                          validate_only=False)
            err = resp.results[0].error_code
            if err != 0:
                raise RuntimeError(f"CreatePartitions {topic} (to {count}): error {err} {resp.results[0].error_message}")
    finally:
        w.close()


class Node:
    """A broker process over a data dir kept between starts. `start()` returns seconds to ready."""

    name = "?"

    def __init__(self, base: Path, settings: dict[str, str], tls_store: Path | None = None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=base))
        self.port = reference_kafka.free_port()
        self.settings = settings
        # with a PEM key store (key + certificate chain): an SSL listener next to PLAINTEXT
        self.tls_store = tls_store
        self.ssl_port = 0
        while tls_store is not None and self.ssl_port in (0, self.port):
            self.ssl_port = reference_kafka.free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ssl_bootstrap(self) -> str:
        """The SSL listener (a node made with a key store)."""
        assert self.ssl_port
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        raise NotImplementedError

    def start(self, topic: str | None = None, partitions: int = 0, timeout: float = 900.0) -> float:
        cmd, env, cwd = self.command()
        out = open(self.workdir / f"stdout-{self.starts}.log", "wb")
        self.starts += 1
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                     start_new_session=True)
        out.close()
        deadline = t0 + timeout
        try:
            bb.wait_metadata(self.port, self.proc, deadline, interval=0.01)
            if topic is not None:
                while not topic_ready(self.bootstrap, topic, partitions):
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{self.name}: {topic} not ready")
                    time.sleep(0.02)
        except BaseException:
            self.kill9()
            raise
        return time.monotonic() - t0

    def wait_topic(self, topic: str, partitions: int, timeout: float = 900.0) -> None:
        deadline = time.monotonic() + timeout
        while not topic_ready(self.bootstrap, topic, partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {topic} not ready")
            time.sleep(0.02)

    def stop(self, timeout: float = 300.0) -> float:
        """SIGTERM and wait; returns the seconds the shutdown took."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
        return time.monotonic() - t0

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def rss_kib(self) -> int:
        return bb.rss_kib(self.pid)

    def cpu_s(self) -> float:
        return bb.cpu_seconds(self.pid)

    def remove(self) -> None:
        self.kill9()
        shutil.rmtree(self.workdir, ignore_errors=True)


class KBrokerNode(Node):
    name = "kbroker"

    def __init__(self, base: Path, settings: dict[str, str], src: Path, tls_store: Path | None = None) -> None:
        super().__init__(base, settings, tls_store)
        self.src = src

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        listeners = f"PLAINTEXT://127.0.0.1:{self.port}"
        tls: dict[str, str] = {}
        if self.tls_store is not None:
            listeners += f",SSL://127.0.0.1:{self.ssl_port}"
            tls = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(self.tls_store)}
        overrides = {
            "listeners": listeners,
            "advertised.listeners": listeners,
            "log.dirs": str(self.workdir / "data"),
            "node.id": "1",
            **tls,
            **self.settings,
        }
        cmd = [bb.PY, "-m", "kbroker", "--log-level", "WARNING"]
        for k, v in overrides.items():
            cmd += ["--override", f"{k}={v}"]
        return cmd, dict(os.environ, PYTHONPATH=bb._tree_pythonpath(self.src)), self.src


class KafkaNode(Node):
    name = "kafka"

    def __init__(self, base: Path, settings: dict[str, str], heap: str = bb.KAFKA_HEAP,
                 tls_store: Path | None = None) -> None:
        super().__init__(base, settings, tls_store)
        self.heap = heap
        self.libs = reference_kafka.ensure_kafka()
        cport = reference_kafka.free_port()
        while cport in (self.port, self.ssl_port):
            cport = reference_kafka.free_port()
        tls: dict[str, str] = {}
        if tls_store is not None:
            tls = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(tls_store)}
        props = {
            **reference_kafka.combined_node_props(
                self.port, cport, self.workdir / "data",
                extra_listeners={"SSL": self.ssl_port} if tls_store is not None else None,
                extra_protocols={"SSL": "SSL"} if tls_store is not None else None),
            **tls,
            **settings,
        }
        self.conf = self.workdir / "server.properties"
        self.conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        self.log4j = self.workdir / "log4j2.properties"
        self.log4j.write_text(reference_kafka.LOG4J2.format(log=self.workdir / "server.log"))
        fmt = reference_kafka.java_cmd(
            self.libs, "kafka.tools.StorageTool",
            ["format", f"--cluster-id={reference_kafka.random_cluster_id()}", "-c", str(self.conf),
             "--ignore-formatted"], "256m", self.log4j)
        res = subprocess.run(fmt, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"kafka storage format failed: {res.stdout}\n{res.stderr}")

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        # kafka-server-start.sh's JVM flags: -Xmx1G -Xms1G, G1 with its pause target.
        cmd = ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-server", "-XX:+UseG1GC",
               "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
               "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={self.log4j}", "-cp", f"{self.libs}/*", "kafka.Kafka",
               str(self.conf)]
        return cmd, dict(os.environ, LOG_DIR=str(self.workdir)), self.workdir


class NullNode(Node):
    """scripts/null_broker.c, compiled once: ApiVersions, Metadata and Produce answered at once,
    nothing stored; every topic exists with `partitions` partitions (no CreateTopics)."""

    name = "null"

    def __init__(self, base: Path, partitions: int) -> None:
        super().__init__(base, {})
        self.partitions = partitions
        self.binary = base / "null_broker"
        if not self.binary.exists():
            subprocess.run(["cc", "-O2", "-pthread", "-o", str(self.binary), str(ROOT / "scripts" / "null_broker.c")],
                           check=True)

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        return [str(self.binary), str(self.port), str(self.partitions)], dict(os.environ), self.workdir


def make(kind: str, base: Path, settings: dict[str, str], src: Path, partitions: int = 16,
         tls_store: Path | None = None) -> Node:
    """A node of `kind`; with `tls_store` (PEM: key and certificate chain) an SSL listener too."""
    if kind == "null":
        return NullNode(base, partitions)
    if kind == "kbroker":
        return KBrokerNode(base, settings, src, tls_store)
    return KafkaNode(base, settings, tls_store=tls_store)
