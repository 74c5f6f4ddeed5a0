"""``kbroker cluster N [--dir DIR]``: N kbroker nodes forming a KRaft quorum on 127.0.0.1.

Every node runs in combined mode (``process.roles=broker,controller``), node ids 1..N, all of them
voters of a static quorum (``controller.quorum.voters``). Free ports are chosen when the cluster is
created (two per node: the client listener PLAINTEXT and the CONTROLLER listener) and printed; the
nodes' ``server.properties``, data and logs live under one folder (``DIR``, default
``./kbroker-cluster``): ``node-<id>.properties``, ``node-<id>/`` (formatted with one cluster id by
``kbroker format``) and ``node-<id>.log``. Run again on the same folder, the nodes restart from
their data on the same ports. Ctrl-C stops every node, one after the other (SIGTERM, then SIGKILL after 10 s).

``ClusterLayout`` and ``start_node`` are what the test fixture (``tests/cluster/conftest.py``) and
the failover benchmark (``scripts/bench_failover.py``) use to run nodes as child processes.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kbroker.config import BrokerConfig, load_properties_file
from kbroker.storage import format_storage, random_uuid

READY = "kbroker ready:"


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free right now (bound to port 0, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class ClusterLayout:
    """The files of an N-node cluster under ``root``."""

    root: Path
    ports: dict[int, tuple[int, int]] = field(default_factory=dict)  # node id -> (client port, controller port)
    extra: dict[str, str] = field(default_factory=dict)  # more server.properties keys for every node

    @classmethod
    def create(cls, root: Path, n: int, extra: dict[str, str] | None = None) -> ClusterLayout:
        """Choose ports, write every node's server.properties and format its directory."""
        root.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * n)
        layout = cls(root, {i + 1: (ports[2 * i], ports[2 * i + 1]) for i in range(n)}, dict(extra or {}))
        cluster_id = random_uuid()
        for node_id in layout.ports:
            layout.properties_path(node_id).write_text(
                "".join(f"{k}={v}\n" for k, v in layout.properties(node_id).items()))
            config = BrokerConfig(load_properties_file(layout.properties_path(node_id)), warn=False)
            format_storage(config, cluster_id, out=io.StringIO())
        return layout

    @classmethod
    def load(cls, root: Path) -> ClusterLayout:
        """The layout of a cluster created before under ``root``."""
        layout = cls(root)
        for path in sorted(root.glob("node-*.properties")):
            props = load_properties_file(path)
            node_id = int(props["node.id"])
            client = int(props["listeners"].split(",")[0].rsplit(":", 1)[1])
            controller = int(props["listeners"].split(",")[1].rsplit(":", 1)[1])
            layout.ports[node_id] = (client, controller)
        return layout

    def properties(self, node_id: int) -> dict[str, str]:
        client, controller = self.ports[node_id]
        voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_, c) in sorted(self.ports.items()))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir(node_id)),
        }
        props.update(self.extra)
        return props

    def properties_path(self, node_id: int) -> Path:
        return self.root / f"node-{node_id}.properties"

    def data_dir(self, node_id: int) -> Path:
        return self.root / f"node-{node_id}"

    def log_path(self, node_id: int) -> Path:
        return self.root / f"node-{node_id}.log"

    def bootstrap(self, node_id: int | None = None) -> str:
        ids = [node_id] if node_id is not None else sorted(self.ports)
        return ",".join(f"127.0.0.1:{self.ports[i][0]}" for i in ids)

    def controller(self, node_id: int) -> str:
        return f"127.0.0.1:{self.ports[node_id][1]}"


def start_node(layout: ClusterLayout, node_id: int, *, log_level: str = "INFO") -> subprocess.Popen:
    """Start one node as a child process (output appended to its log file)."""
    out = open(layout.log_path(node_id), "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "kbroker", str(layout.properties_path(node_id)), "--log-level", log_level],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    finally:
        out.close()


def wait_ready(layout: ClusterLayout, node_id: int, proc: subprocess.Popen, since: int, timeout: float) -> None:
    """Wait for the node's readiness line in its log (after byte ``since``)."""
    deadline = time.monotonic() + timeout
    path = layout.log_path(node_id)
    while True:
        with open(path, "rb") as f:
            f.seek(since)
            if READY.encode() in f.read():
                return
        if proc.poll() is not None:
            raise RuntimeError(f"node {node_id} exited with {proc.returncode}; see {path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"node {node_id} not ready after {timeout:.0f} s; see {path}")
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kbroker cluster",
                                     description="Run N kbroker nodes (broker+controller) on 127.0.0.1.")
    parser.add_argument("nodes", type=int, nargs="?", default=3, help="number of nodes (default 3)")
    parser.add_argument("--dir", default="./kbroker-cluster", help="folder of the nodes' data, configs and logs")
    args = parser.parse_args(argv)
    root = Path(args.dir).resolve()
    if any(root.glob("node-*.properties")):
        layout = ClusterLayout.load(root)
        if len(layout.ports) != args.nodes:
            print(f"kbroker cluster: {root} holds a cluster of {len(layout.ports)} nodes, not {args.nodes}",
                  file=sys.stderr)
            return 2
    else:
        if args.nodes < 1:
            print("kbroker cluster: at least one node", file=sys.stderr)
            return 2
        layout = ClusterLayout.create(root, args.nodes)
    procs: dict[int, subprocess.Popen] = {}
    stopping = False

    def stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        offsets = {}
        for node_id in layout.ports:
            path = layout.log_path(node_id)
            offsets[node_id] = path.stat().st_size if path.exists() else 0
            procs[node_id] = start_node(layout, node_id)
        for node_id, proc in procs.items():
            wait_ready(layout, node_id, proc, offsets[node_id], timeout=60)
        for node_id in layout.ports:
            print(f"node {node_id}: PLAINTEXT://{layout.bootstrap(node_id)} CONTROLLER://{layout.controller(node_id)}"
                  f"  (log {layout.log_path(node_id)})", flush=True)
        print(f"bootstrap.servers={layout.bootstrap()}", flush=True)
        print(f"controllers={','.join(layout.controller(i) for i in layout.ports)}", flush=True)
        print(f"data under {root}; Ctrl-C stops every node", flush=True)
        while not stopping:
            for node_id, proc in procs.items():
                if proc.poll() is not None:
                    print(f"node {node_id} exited with {proc.returncode} (log {layout.log_path(node_id)})",
                          file=sys.stderr, flush=True)
                    stopping = True
            time.sleep(0.2)
    except (RuntimeError, TimeoutError) as exc:
        print(f"kbroker cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        # one after the other: each node's controlled shutdown finds the quorum still there
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return 0
