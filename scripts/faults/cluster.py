"""A three-node KRaft cluster (every node ``process.roles=broker,controller``) in network namespaces,
behind fault-injecting proxies, for either target:

* ``kafka``: Apache Kafka 4.4 (``kafka.Kafka`` per node, formatted with ``kafka.tools.StorageTool``),
  jars fetched by ``scripts/reference_kafka.py``;
* ``kbroker``: ``python -m kbroker <server.properties>`` per node, formatted with ``python -m kbroker
  format`` (mirroring ``kafka-storage format``) when the broker has that command.

Both targets get the same ``server.properties`` keys (``Target.properties``): each node listens on
its namespace address (``PLAINTEXT`` 9092, ``CONTROLLER`` 9093) and advertises the root-namespace
proxies that lead to it, so every connection — client to broker, broker to broker, controller to
controller — crosses a proxy whose faults are set per source node. ``controller.quorum.voters``
names the controller proxies.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import disk, pressure
from .netns import Network
from .proxy import Proxy, ProxyHub

log = logging.getLogger("faults.cluster")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import reference_kafka  # noqa: E402

BROKER_PORT = 9092
CONTROLLER_PORT = 9093
# A node not answering this long after its start is probed (what it waits on) every as many seconds.
SLOW_START_PROBE_S = 10.0

# acks=all, RF=3, min.insync.replicas=2, unclean election off (the cluster settings).
CLUSTER_SETTINGS: dict[str, str] = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "unclean.leader.election.enable": "false",
    "offsets.topic.replication.factor": "3",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "transaction.state.log.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
    "num.partitions": "3",
}


class Target:
    name = "?"

    def format_command(self, conf: Path, cluster_id: str) -> list[str]:
        raise NotImplementedError

    def start_command(self, conf: Path) -> list[str]:
        raise NotImplementedError

    def extra_properties(self, workdir: Path) -> dict[str, str]:
        return {}

    def format_all(self, confs: list[Path], cluster_id: str) -> list[subprocess.CompletedProcess]:
        """Format the nodes' log dirs, one storage tool process each, at the same time."""
        return reference_kafka.run_all([self.format_command(conf, cluster_id) for conf in confs],
                                       [conf.parent for conf in confs])

    def check(self) -> None:
        """Raise with a clear message if this target cannot run a cluster here."""

    def dump_threads(self, pid: int) -> str | None:
        """Have the node with ``pid`` write its threads' stacks to its stdout.log, if this target can
        without stopping it; where they went, or None."""
        return None


class KafkaTarget(Target):
    name = "kafka"

    def __init__(self, heap: str = "384m") -> None:
        self.heap = heap
        self.libs: Path | None = None

    def check(self) -> None:
        self.libs = reference_kafka.ensure_kafka()

    def format_command(self, conf: Path, cluster_id: str) -> list[str]:
        assert self.libs is not None
        return reference_kafka.java_cmd(self.libs, "kafka.tools.StorageTool",
                                        ["format", f"--cluster-id={cluster_id}", "-c", str(conf)], "256m",
                                        conf.parent / "log4j2.properties")

    def start_command(self, conf: Path) -> list[str]:
        assert self.libs is not None
        return reference_kafka.java_cmd(self.libs, "kafka.Kafka", [str(conf)], self.heap,
                                        conf.parent / "log4j2.properties")

    def dump_threads(self, pid: int) -> str | None:
        # SIGQUIT: the JVM prints every thread's stack (and its locks) to its stdout and runs on.
        # ``ip netns exec`` execs the command, so the node's pid is the JVM's.
        os.kill(pid, signal.SIGQUIT)
        return "stdout.log"

    def format_all(self, confs: list[Path], cluster_id: str) -> list[subprocess.CompletedProcess]:
        """In the test suite (``reference_kafka.WARM_FORMAT``) the formats run one after the other in the
        tools' warm JVM, as the suite's other reference brokers are formatted: three StorageTool JVMs
        cost about 2.6 s of CPU and, on the loaded two-core machine, 2-20 s of the run's setup."""
        if not reference_kafka.WARM_FORMAT:
            return super().format_all(confs, cluster_id)
        return [reference_kafka.run_tool("kafka.tools.StorageTool",
                                         ["format", f"--cluster-id={cluster_id}", "-c", str(conf)], heap="256m")
                for conf in confs]


class KbrokerTarget(Target):
    name = "kbroker"

    def check(self) -> None:
        # The kbroker installed for this interpreter (as the nodes, which run in their work dirs).
        res = subprocess.run([sys.executable, "-m", "kbroker", "format", "--help"], capture_output=True,
                             text=True, cwd="/")
        # A kbroker without the command reads "format" as its config file and prints its own help:
        # the storage tool's help names --cluster-id.
        if res.returncode != 0 or "--cluster-id" not in res.stdout:
            raise RuntimeError("this kbroker has no `kbroker format` command (cluster mode with "
                               "process.roles/controller.quorum.voters is not on this branch yet): "
                               + (res.stderr.strip()[-300:] if res.returncode else "its help names no --cluster-id"))

    def format_command(self, conf: Path, cluster_id: str) -> list[str]:
        return [sys.executable, "-m", "kbroker", "format", f"--cluster-id={cluster_id}", "-c", str(conf)]

    def start_command(self, conf: Path) -> list[str]:
        return [sys.executable, "-m", "kbroker", str(conf)]


TARGETS = {"kafka": KafkaTarget, "kbroker": KbrokerTarget}


@dataclass
class Node:
    name: str
    node_id: int
    workdir: Path
    conf: Path
    broker_proxy: Proxy
    controller_proxy: Proxy
    proc: subprocess.Popen | None = None
    paused: bool = False
    starts: int = 0
    disk: Path | None = None  # a small mounted filesystem holding log.dirs
    expected_down: bool = False  # killed or stopped by the harness (not a crash)
    exits: list[int | None] = field(default_factory=list)
    started_at: float = 0.0  # time.monotonic() of the last start
    # starts that took SLOW_START_PROBE_S or more to answer: the process probed meanwhile (pressure.probe)
    slow_starts: list[dict] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    def __init__(self, target: Target, workdir: Path, size: int = 3, seed: int = 0,
                 small_disk_node: str | None = None, small_disk_mb: int = 48) -> None:
        self.target = target
        self.workdir = workdir
        self.names = [f"n{i}" for i in range(1, size + 1)]
        self.seed = seed
        self.small_disk_node = small_disk_node
        self.small_disk_mb = small_disk_mb
        self.net: Network | None = None
        self.hub: ProxyHub | None = None
        self.nodes: dict[str, Node] = {}
        self.cluster_id = base64.urlsafe_b64encode(uuid.UUID(int=seed).bytes).decode().rstrip("=")

    @property
    def bootstrap(self) -> str:
        assert self.net is not None
        return ",".join(f"{self.net.host_ip}:{n.broker_proxy.port}" for n in self.nodes.values())

    def proxies(self) -> list[Proxy]:
        return [p for n in self.nodes.values() for p in (n.broker_proxy, n.controller_proxy)]

    def setup(self) -> None:
        """Namespaces, proxies, configs, formatted log dirs (nothing started)."""
        self.target.check()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.net = Network(self.names)
        self.hub = ProxyHub(self.seed)
        sources = {self.net.ip[n]: n for n in self.names}
        for i, name in enumerate(self.names, 1):
            ip = self.net.ip[name]
            bp = self.hub.add(f"{name}-broker", self.net.host_ip, (ip, BROKER_PORT), sources)
            cp = self.hub.add(f"{name}-controller", self.net.host_ip, (ip, CONTROLLER_PORT), sources)
            self.net.stands_for(name, bp.port)
            self.net.stands_for(name, cp.port)
            wd = self.workdir / name
            wd.mkdir(exist_ok=True)
            self.nodes[name] = Node(name, i, wd, wd / "server.properties", bp, cp)
        voters = ",".join(f"{n.node_id}@{self.net.host_ip}:{n.controller_proxy.port}" for n in self.nodes.values())
        for node in self.nodes.values():
            data = node.workdir / "data"
            data.mkdir(exist_ok=True)
            if node.name == self.small_disk_node:
                disk.mount_tmpfs(data, self.small_disk_mb, f"kbf-disk-{self.net.tag}")
                node.disk = data
            ip = self.net.ip[node.name]
            props = {
                "process.roles": "broker,controller",
                "node.id": str(node.node_id),
                "controller.quorum.voters": voters,
                "listeners": f"PLAINTEXT://{ip}:{BROKER_PORT},CONTROLLER://{ip}:{CONTROLLER_PORT}",
                # Only the broker listener: the controllers find one another by controller.quorum.voters
                # (the controller proxies); Kafka 4.4 accepts the controller listener here too, kbroker not.
                "advertised.listeners": f"PLAINTEXT://{self.net.host_ip}:{node.broker_proxy.port}",
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "log.dirs": str(data),
                **CLUSTER_SETTINGS,
                **self.target.extra_properties(node.workdir),
            }
            node.conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
            (node.workdir / "log4j2.properties").write_text(
                reference_kafka.LOG4J2.format(log=node.workdir / "server.log"))
        nodes = list(self.nodes.values())
        results = self.target.format_all([n.conf for n in nodes], self.cluster_id)
        for node, res in zip(nodes, results, strict=True):
            if res.returncode != 0:
                raise RuntimeError(f"format of {node.name} failed: {res.stdout}\n{res.stderr}")

    # -- processes ---------------------------------------------------------------------------------

    def start(self, name: str) -> None:
        assert self.net is not None
        node = self.nodes[name]
        out = open(node.workdir / "stdout.log", "ab")  # noqa: SIM115
        env = dict(os.environ, LOG_DIR=str(node.workdir))
        node.proc = subprocess.Popen([*self.net.prefix(name), *self.target.start_command(node.conf)],
                                     stdout=out, stderr=subprocess.STDOUT, cwd=node.workdir, env=env,
                                     start_new_session=True)
        out.close()
        node.started_at = time.monotonic()
        node.starts += 1
        node.paused = False
        node.expected_down = False

    def start_all(self) -> None:
        for name in self.names:
            self.start(name)

    def wait_ready(self, name: str, timeout: float = 120.0) -> None:
        """Until the node answers a Metadata request on its own address (from the root namespace).

        A node still not answering ``SLOW_START_PROBE_S`` after its start is probed every as many
        seconds meanwhile (its state, kernel wait and stack, CPU time, with the machine's pressure):
        kept in ``node.slow_starts`` and logged, so a slow start names what it waited on."""
        assert self.net is not None
        node = self.nodes[name]
        proc = node.proc
        probes: list[dict] = []
        done = threading.Event()
        before = pressure.take()

        def watch() -> None:
            while not done.wait(SLOW_START_PROBE_S):
                if proc is None or proc.poll() is not None:
                    return
                found = {"waited_s": round(time.monotonic() - before.monotonic, 1),
                         "since_start_s": round(time.monotonic() - node.started_at, 1), **pressure.probe(proc.pid)}
                probes.append(found)
                log.warning("%s not answering, waited %.1f s: %s", name, found["waited_s"], found)

        watcher = threading.Thread(target=watch, name=f"start-probe-{name}", daemon=True)
        watcher.start()
        try:
            reference_kafka.wait_ready(self.net.ip[name], BROKER_PORT, time.monotonic() + timeout, proc)
        finally:
            done.set()
            watcher.join(5)
            if probes:
                node.slow_starts.append({"start": node.starts, "waited_s": round(time.monotonic() - before.monotonic, 1),
                                         "probes": probes, "pressure": pressure.summary(before, pressure.take())})

    def snapshot_nodes(self) -> dict[str, Any]:
        """Each running node's process now (``pressure.probe``: state, kernel wait, CPU time, threads)
        and, where the target can (Kafka), a thread dump in its stdout.log (``thread_dump``)."""
        out: dict[str, Any] = {}
        for name, node in self.nodes.items():
            if not node.alive or node.paused:
                out[name] = {"alive": node.alive, "paused": node.paused}
                continue
            assert node.proc is not None
            found = pressure.probe(node.proc.pid)
            found.pop("stack", None)  # a JVM's main thread waits in futex: the thread dump says more
            try:
                where = self.target.dump_threads(node.proc.pid)
            except OSError as exc:
                where = f"failed: {exc}"
            if where is not None:
                found["thread_dump"] = f"{name}/{where}"
            out[name] = found
        return out

    def kill(self, name: str) -> None:
        node = self.nodes[name]
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait(30)
        node.exits.append(node.proc.returncode if node.proc else None)
        node.paused = False
        node.expected_down = True

    def pause(self, name: str) -> None:
        node = self.nodes[name]
        if node.alive:
            node.proc.send_signal(signal.SIGSTOP)
            node.paused = True

    def resume(self, name: str) -> None:
        node = self.nodes[name]
        if node.alive:
            node.proc.send_signal(signal.SIGCONT)
        node.paused = False

    def stop(self, name: str, timeout: float = 60.0) -> None:
        node = self.nodes[name]
        if node.proc is None or node.proc.poll() is not None:
            return
        node.expected_down = True
        node.proc.send_signal(signal.SIGCONT)
        node.proc.send_signal(signal.SIGTERM)
        try:
            node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(30)
        node.exits.append(node.proc.returncode)

    # -- disk --------------------------------------------------------------------------------------

    def fill_disk(self, name: str) -> int:
        """Fill the node's small filesystem; bytes written."""
        node = self.nodes[name]
        assert node.disk is not None, f"{name} has no small disk"
        return disk.fill(node.disk)

    def free_disk(self, name: str) -> None:
        node = self.nodes[name]
        if node.disk is not None:
            (node.disk / disk.FILLER).unlink(missing_ok=True)

    def close(self) -> None:
        """End every node with kill -9, then the proxies, the small disk and the namespaces.

        The run is over: its history is written, and what the nodes wrote is read from their files
        from here on (both brokers write their logs with system calls, which a kill -9 does not undo).
        A graceful stop, one node after the other, would leave the last node waiting for a controlled
        shutdown that the quorum, gone with the other two, cannot grant: Kafka waited out the 20 s
        timeout here (kbroker its own 5 s), in every run."""
        for name in self.names if self.nodes else ():
            try:
                self.kill(name)
            except Exception:  # noqa: BLE001 - keep tearing down
                log.exception("killing %s", name)
        if self.hub is not None:
            self.hub.close()
        for node in self.nodes.values():
            if node.disk is not None:
                disk.unmount(node.disk)
        if self.net is not None:
            self.net.close()
