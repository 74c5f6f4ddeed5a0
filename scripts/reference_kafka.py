#!/usr/bin/env python3
"""Run Apache Kafka 4.x beside kbroker, as the reference broker for the compatibility matrix.

Fetches org.apache.kafka:kafka_2.13 and kafka-tools (and their runtime dependencies) from Maven
Central with Maven into `.cache/kafka-<version>/libs`, formats a single-node KRaft log dir
(combined broker + controller), starts `kafka.Kafka` on free loopback ports and waits until a
Metadata request succeeds.

Command line:  scripts/reference_kafka.py [--dir DIR] [--override key=value]...
               prints `BOOTSTRAP 127.0.0.1:<port>` once ready, then runs until interrupted.
As a module:   handle = start_reference_kafka(tmpdir, {"auto.create.topics.enable": "false"})
               handle.bootstrap  -> "127.0.0.1:<port>";  handle.stop()
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
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

# The version, cache and jar fetching live in reference_kafka_base.py, the JVM command lines and the warm tool
# JVMs in reference_kafka_jvm.py (issue 14); their names stay importable from this module (__all__).
from reference_kafka_base import CACHE, KAFKA_VERSION, LIBS, POM, ROOT, ensure_kafka, free_port, log
from reference_kafka_jvm import (
    FRESH_JVM_TOOLS,
    FULL_JIT,
    QUICK_JVM,
    TOOL_ENV,
    TOOL_SERVER_SOURCE,
    ToolJvm,
    cds_archive,
    java_cmd,
    min_heap,
    run_tool,
    tool_command,
    tool_server_classes,
)

__all__ = [
    "CACHE", "DEFAULT_HEAP", "FRESH_JVM_TOOLS", "FULL_JIT", "KAFKA_VERSION", "LIBS", "LOG4J2", "POM", "QUICK_JVM",
    "ROOT", "TEST_SETTINGS", "TOOL_ENV", "TOOL_SERVER_SOURCE", "WARM_FORMAT", "ReferenceKafka",
    "ReferenceKafkaCluster", "ToolJvm", "cds_archive", "combined_node_props", "ensure_kafka", "free_port",
    "java_cmd", "log", "main", "metadata_brokers", "min_heap", "print_differences", "random_cluster_id", "run_all",
    "run_tool", "start_reference_kafka", "start_reference_kafka_cluster", "storage_format", "tool_command",
    "tool_server_classes", "wait_ready",
]

DEFAULT_HEAP = os.environ.get("REFERENCE_KAFKA_HEAP", "512m")

# Settings suited to tests on one node. Every broker the matrix compares gets the same ones
# (see BROKER_TEST_SETTINGS users in compat/brokers.py).
TEST_SETTINGS: dict[str, str] = {
    "num.partitions": "1",
    "default.replication.factor": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "5",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "5",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "true",
    "delete.topic.enable": "true",
}

LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.org.name = org.apache.kafka
logger.org.level = INFO
"""


def random_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


# --- readiness probe: a raw Metadata v4 request (non-flexible; Kafka 4 dropped v0-v3) ------------

def _kstr(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def metadata_brokers(host: str, port: int, timeout: float = 2.0) -> int:
    """Send Metadata v4 (all topics) and return how many brokers the answer lists."""
    corr = 7
    body = struct.pack(">hhi", 3, 4, corr) + _kstr("kbroker-probe") + struct.pack(">i?", -1, False)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exact(s, 4))[0]
        resp = _recv_exact(s, size)
    got_corr, _throttle, nbrokers = struct.unpack(">iii", resp[:12])
    if got_corr != corr:
        raise OSError("correlation id mismatch")
    return nbrokers


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def wait_ready(host: str, port: int, deadline: float, proc: subprocess.Popen | None = None) -> None:
    """Poll until a Metadata request lists at least one broker, or raise at the deadline."""
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {proc.returncode} before it was ready")
        try:
            if metadata_brokers(host, port) >= 1:
                return
        except (OSError, struct.error) as e:
            last = e
        time.sleep(0.1)  # polling interval of a readiness loop bounded by the deadline
    raise TimeoutError(f"{host}:{port} not ready: {last}")


class ReferenceKafka:
    def __init__(self, proc: subprocess.Popen, port: int, workdir: Path, start_seconds: float,
                 owns_dir: bool):
        self.proc = proc
        self.port = port
        self.host = "127.0.0.1"
        self.bootstrap = f"127.0.0.1:{port}"
        self.workdir = workdir
        self.log_file = workdir / "server.log"
        self.start_seconds = start_seconds
        self._owns_dir = owns_dir
        self.listener_ports: dict[str, int] = {}  # extra listeners' ports, by listener name

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._owns_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ReferenceKafka:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# The test suite sets this (tests/conftest.py): the storage format before a reference broker starts
# then runs in run_tool's warm JVM (0.1-0.3 s) instead of a JVM of its own (1.1-1.5 s of CPU). Off
# by default, so that the benchmarks' start times (start_seconds: format to ready) keep their meaning.
WARM_FORMAT = False


def storage_format(libs: Path, args: list[str], log4j: Path) -> subprocess.CompletedProcess:
    """kafka-storage.sh with ``args``: in the warm JVM when WARM_FORMAT, else in a JVM logging to ``log4j``."""
    if WARM_FORMAT:
        return run_tool("kafka.tools.StorageTool", args, heap="256m")
    return subprocess.run(java_cmd(libs, "kafka.tools.StorageTool", args, "256m", log4j), capture_output=True,
                          text=True)


def combined_node_props(port: int, cport: int, data_dir: Path,
                        extra_listeners: dict[str, int] | None = None,
                        extra_protocols: dict[str, str] | None = None) -> dict[str, str]:
    """server.properties of one combined broker+controller node (node id 1, a one-voter quorum) on
    loopback: PLAINTEXT on ``port``, CONTROLLER on ``cport``, and ``extra_listeners`` (name -> port,
    with their security protocols in ``extra_protocols``)."""
    extra = "".join(f",{name}://127.0.0.1:{p}" for name, p in (extra_listeners or {}).items())
    extra_map = "".join(f",{name}:{proto}" for name, proto in (extra_protocols or {}).items())
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}{extra}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}{extra}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT{extra_map}",
        "log.dirs": str(data_dir),
    }


def start_reference_kafka(tmpdir: str | os.PathLike | None = None,
                          overrides: dict[str, str] | None = None,
                          heap: str = DEFAULT_HEAP, timeout: float = 120.0,
                          extra_listeners: dict[str, str] | None = None, quick_jvm: bool = True) -> ReferenceKafka:
    """Start a single-node KRaft Apache Kafka on free loopback ports; return once it answers.

    ``extra_listeners`` (listener name -> security protocol) adds listeners on free ports next to
    PLAINTEXT, their ports in the handle's ``listener_ports``."""
    libs = ensure_kafka()
    owns = tmpdir is None
    workdir = Path(tempfile.mkdtemp(prefix="refkafka-")) if owns else Path(tmpdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port, cport = free_port(), free_port()
    while cport == port:
        cport = free_port()
    extra_ports: dict[str, int] = {}
    for name in extra_listeners or {}:
        extra_ports[name] = free_port()
        while extra_ports[name] in (port, cport, *list(extra_ports.values())[:-1]):
            extra_ports[name] = free_port()
    props = {
        **combined_node_props(port, cport, workdir / "data", extra_ports, extra_listeners),
        **TEST_SETTINGS,
        **(overrides or {}),
    }
    conf = workdir / "server.properties"
    conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    log4j = workdir / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=workdir / "server.log"))
    t0 = time.monotonic()
    res = storage_format(libs, ["format", f"--cluster-id={random_cluster_id()}", "-c", str(conf), "--ignore-formatted"],
                         log4j)
    if res.returncode != 0:
        raise RuntimeError(f"kafka storage format failed: {res.stdout}\n{res.stderr}")
    out = open(workdir / "stdout.log", "wb")
    env = dict(os.environ, LOG_DIR=str(workdir))
    proc = subprocess.Popen(java_cmd(libs, "kafka.Kafka", [str(conf)], heap, log4j, quick_jvm),
                            stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env,
                            start_new_session=True)
    out.close()
    try:
        wait_ready("127.0.0.1", port, time.monotonic() + timeout, proc)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    handle = ReferenceKafka(proc, port, workdir, time.monotonic() - t0, owns)
    handle.listener_ports = extra_ports
    return handle


class ReferenceKafkaCluster:
    """``n`` Apache Kafka nodes in combined mode (broker + controller, node ids 1..n, a static
    voter set) on free loopback ports, each in ``workdir/node-<id>`` (see
    :func:`start_reference_kafka_cluster`)."""

    def __init__(self, workdir: Path, ports: dict[int, tuple[int, int]], heap: str, owns_dir: bool,
                 quick_jvm: bool = True) -> None:
        self.workdir = workdir
        self.ports = ports  # node id -> (client port, controller port)
        self.heap = heap
        self.quick_jvm = quick_jvm
        self.procs: dict[int, subprocess.Popen] = {}
        self._owns_dir = owns_dir

    def conf(self, node_id: int) -> Path:
        return self.workdir / f"node-{node_id}" / "server.properties"

    def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        node_dir = self.workdir / f"node-{node_id}"
        out = open(node_dir / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
        env = dict(os.environ, LOG_DIR=str(node_dir))
        self.procs[node_id] = subprocess.Popen(
            java_cmd(ensure_kafka(), "kafka.Kafka", [str(self.conf(node_id))], self.heap, node_dir / "log4j2.properties",
                     self.quick_jvm),
            stdout=out, stderr=subprocess.STDOUT, cwd=node_dir, env=env, start_new_session=True)
        out.close()

    def wait_ready(self, node_id: int, timeout: float = 120.0) -> None:
        wait_ready("127.0.0.1", self.ports[node_id][0], time.monotonic() + timeout, self.procs[node_id])

    def kill(self, node_id: int) -> None:
        """kill -9 of one node."""
        proc = self.procs.pop(node_id)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
        if self._owns_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def run_all(cmds: list[list[str]], cwds: list[Path] | None = None) -> list[subprocess.CompletedProcess]:
    """Run the commands at the same time (each JVM's start-up is partly single-threaded and waits on
    jar reads: the storage formats of a cluster's nodes overlap); their results, in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(cmds))) as pool:
        return list(pool.map(lambda i: subprocess.run(cmds[i], capture_output=True, text=True,
                                                      cwd=cwds[i] if cwds else None), range(len(cmds))))


def start_reference_kafka_cluster(n: int = 3, tmpdir: str | os.PathLike | None = None,
                                  overrides: dict[str, str] | None = None, heap: str = DEFAULT_HEAP,
                                  timeout: float = 180.0, quick_jvm: bool = True,
                                  node_overrides: dict[int, dict[str, str]] | None = None) -> ReferenceKafkaCluster:
    """Start ``n`` combined-mode Apache Kafka nodes forming one KRaft quorum (each formatted with
    one cluster id); return once every node answers Metadata. ``node_overrides``: more
    server.properties keys for single nodes (``broker.rack``...), by node id."""
    libs = ensure_kafka()
    owns = tmpdir is None
    workdir = Path(tempfile.mkdtemp(prefix="refkafka-cluster-")) if owns else Path(tmpdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ports: dict[int, tuple[int, int]] = {}
    used: set[int] = set()
    for node_id in range(1, n + 1):
        pair = []
        while len(pair) < 2:
            p = free_port()
            if p not in used:
                used.add(p)
                pair.append(p)
        ports[node_id] = (pair[0], pair[1])
    cluster = ReferenceKafkaCluster(workdir, ports, heap, owns, quick_jvm)
    voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_, c) in sorted(ports.items()))
    cluster_id = random_cluster_id()
    settings = {k: v for k, v in TEST_SETTINGS.items() if "replication.factor" not in k and "min.isr" not in k}
    formats: list[list[str]] = []
    for node_id, (port, cport) in ports.items():
        node_dir = workdir / f"node-{node_id}"
        node_dir.mkdir(exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(node_dir / "data"),
            **settings,
            **(overrides or {}),
            **(node_overrides or {}).get(node_id, {}),
        }
        cluster.conf(node_id).write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (node_dir / "log4j2.properties").write_text(LOG4J2.format(log=node_dir / "server.log"))
        formats.append(["format", f"--cluster-id={cluster_id}", "-c", str(cluster.conf(node_id)), "--ignore-formatted"])
    if WARM_FORMAT:
        results = [run_tool("kafka.tools.StorageTool", args, heap="256m") for args in formats]
    else:
        results = run_all([java_cmd(libs, "kafka.tools.StorageTool", args, "256m",
                                    workdir / f"node-{node_id}" / "log4j2.properties")
                           for node_id, args in zip(ports, formats, strict=True)])
    for res in results:
        if res.returncode != 0:
            raise RuntimeError(f"kafka storage format failed: {res.stdout}\n{res.stderr}")
    try:
        for node_id in ports:
            cluster.start_node(node_id)
        for node_id in ports:
            cluster.wait_ready(node_id, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster



def print_differences(ours: list[tuple[str, object]], theirs: list[tuple[str, object]], width: int,
                      noun: str) -> int:
    """Print each named outcome of kbroker next to Kafka's (the same names in the same order),
    marking those that differ, then a summary line; how many differ."""
    differ = 0
    for (name, a), (_, b) in zip(ours, theirs, strict=True):
        same = a == b
        differ += not same
        print(f"{'  ' if same else '!='} {name:{width}} kbroker {a}")
        if not same:
            print(f"   {'':{width}} kafka   {b}")
    print(f"{len(ours)} {noun}, {differ} differ")
    return differ

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", help="working dir (log dirs, server.log); default: a temporary dir")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--heap", default=DEFAULT_HEAP)
    ap.add_argument("--fetch-only", action="store_true", help="only fetch Kafka into the cache")
    args = ap.parse_args(argv)
    if args.fetch_only:
        print(ensure_kafka())
        return 0
    overrides = dict(o.split("=", 1) for o in args.override)
    h = start_reference_kafka(args.dir, overrides, heap=args.heap)
    log(f"started in {h.start_seconds:.1f}s; log: {h.log_file}")
    print(f"BOOTSTRAP {h.bootstrap}", flush=True)
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stop and h.proc.poll() is None:
            try:
                h.proc.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
    finally:
        h.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
