"""Brokers for scripts/bench_vs_kafka.py: kbroker and Apache Kafka as measured subprocesses.

Both are started the same way: a fresh data dir, one node, PLAINTEXT on a free loopback port, the
same broker settings (scripts/reference_kafka.py's TEST_SETTINGS, flush left to the OS), and
startup is the time from spawning the broker process to its first successful Metadata response
(Kafka's `kafka-storage format` runs before the clock starts). RSS is read from /proc/<pid>/status.
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
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_kafka  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
KAFKA_HEAP = "1g"  # kafka-server-start.sh's default heap (-Xmx1G -Xms1G is its KAFKA_HEAP_OPTS)

# Every broker in the benchmark gets exactly these keys (plus listeners, log.dirs, node.id).
BENCH_SETTINGS: dict[str, str] = {
    **reference_kafka.TEST_SETTINGS,
    "auto.create.topics.enable": "false",
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """user+system CPU time of a process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / tick
    except (OSError, IndexError, ValueError):
        return 0.0


class RssSampler:
    """Samples VmRSS of a pid every `interval` seconds in a thread; `.max_kib`, `.samples`."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            v = rss_kib(self.pid)
            if v:
                self.samples.append(v)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.cpu0 = cpu_seconds(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu = cpu_seconds(self.pid) - self.cpu0

    @property
    def max_kib(self) -> int:
        return max(self.samples, default=0)


def wait_metadata(port: int, proc: subprocess.Popen, deadline: float, interval: float = 0.005) -> None:
    """Poll with Metadata v4 every few ms until it lists a broker (fine-grained, for startup time)."""
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {proc.returncode} before it was ready")
        try:
            if reference_kafka.metadata_brokers("127.0.0.1", port, timeout=2.0) >= 1:
                return
        except (OSError, struct.error) as e:
            last = e
        time.sleep(interval)
    raise TimeoutError(f"127.0.0.1:{port} not ready: {last}")


class Broker:
    name = "?"
    proc: subprocess.Popen
    port: int
    workdir: Path
    start_seconds: float

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        return rss_kib(self.proc.pid)

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def data_bytes(self, partition_dir: str | None = None) -> int:
        """Bytes on disk under the data dir, or under one partition's dir (e.g. "consume-0")."""
        total = 0
        root = self.workdir / "data"
        if partition_dir is not None:
            found = [p for p in root.rglob(partition_dir) if p.is_dir()]
            if not found:
                return 0
            root = found[0]
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(dirpath, f))
                except OSError:
                    pass
        return total

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class KBroker(Broker):
    """kbroker (`python -m kbroker`) from `src` (the repo, or an exported commit)."""

    name = "kbroker"

    def __init__(self, src: Path, base: Path, timeout: float = 60.0):
        self.workdir = Path(tempfile.mkdtemp(prefix="kbroker-", dir=base))
        self.port = reference_kafka.free_port()
        overrides = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": str(self.workdir / "data"),
            "node.id": "1",
            **BENCH_SETTINGS,
        }
        cmd = [PY, "-m", "kbroker", "--log-level", "WARNING"]
        for k, v in overrides.items():
            cmd += ["--override", f"{k}={v}"]
        self.log_file = self.workdir / "kbroker.log"
        env = dict(os.environ, PYTHONPATH=_tree_pythonpath(src))
        out = open(self.log_file, "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=src, env=env,
                                     start_new_session=True)
        out.close()
        try:
            wait_metadata(self.port, self.proc, t0 + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0


class Kafka(Broker):
    """Apache Kafka (KRaft, combined broker+controller) with the jars of scripts/reference_kafka.py."""

    name = "kafka"

    def __init__(self, base: Path, heap: str = KAFKA_HEAP, timeout: float = 180.0):
        libs = reference_kafka.ensure_kafka()
        self.workdir = Path(tempfile.mkdtemp(prefix="kafka-", dir=base))
        self.port = reference_kafka.free_port()
        cport = reference_kafka.free_port()
        while cport == self.port:
            cport = reference_kafka.free_port()
        props = {
            **reference_kafka.combined_node_props(self.port, cport, self.workdir / "data"),
            **BENCH_SETTINGS,
        }
        conf = self.workdir / "server.properties"
        conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        log4j = self.workdir / "log4j2.properties"
        log4j.write_text(reference_kafka.LOG4J2.format(log=self.workdir / "server.log"))
        fmt = reference_kafka.java_cmd(
            libs, "kafka.tools.StorageTool",
            ["format", f"--cluster-id={reference_kafka.random_cluster_id()}", "-c", str(conf),
             "--ignore-formatted"], "256m", log4j)
        res = subprocess.run(fmt, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"kafka storage format failed: {res.stdout}\n{res.stderr}")
        # Same JVM flags as kafka-server-start.sh: -Xmx1G -Xms1G, G1 with its pause target.
        cmd = ["java", f"-Xmx{heap}", f"-Xms{heap}", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
               "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
               "-cp", f"{libs}/*", "kafka.Kafka", str(conf)]
        out = open(self.workdir / "stdout.log", "wb")
        env = dict(os.environ, LOG_DIR=str(self.workdir))
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     env=env, start_new_session=True)
        out.close()
        try:
            wait_metadata(self.port, self.proc, t0 + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tree_pythonpath(tree):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tree_path import tree_pythonpath
    return tree_pythonpath(tree)
