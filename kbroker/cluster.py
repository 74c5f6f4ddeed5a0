"""``kbroker cluster N [--dir DIR]``: N kbroker nodes forming a KRaft quorum on 127.0.0.1.

Every node runs in combined mode (``process.roles=broker,controller``), node ids 1..N, all of them
voters of a static quorum (``controller.quorum.voters``); ``--brokers M`` adds broker-only nodes
N+1..N+M (observers of the metadata log) and ``--separate`` makes the voters controller-only. Free ports are chosen when the cluster is
created (two per node: the client listener PLAINTEXT and the CONTROLLER listener) and printed; the
nodes' ``server.properties``, data and logs live under one folder (``DIR``, default
``./kbroker-cluster``): ``node-<id>.properties``, ``node-<id>/`` (formatted with one cluster id by
``kbroker format``) and ``node-<id>.log``. Run again on the same folder, the nodes restart from
their data on the same ports. Ctrl-C stops every node, one after the other (SIGTERM, then SIGKILL after 10 s),
and the command exits 0; a node that ends by itself (a crash, a signal) is reported with its exit
code or signal, the others are stopped and the command exits 1, as a supervisor would.

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
    # node id -> (client port, controller port); 0: the node has no such listener
    ports: dict[int, tuple[int, int]] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # more server.properties keys for every node

    @classmethod
    def create(cls, root: Path, n: int, extra: dict[str, str] | None = None, *, brokers: int = 0,
               separate: bool = False) -> ClusterLayout:
        """Choose ports, write every node's server.properties and format its directory: ``n``
        voters 1..n (combined mode, or controller-only with ``separate``), then ``brokers``
        broker-only nodes (observers of the metadata quorum)."""
        root.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * n + brokers)
        layout = cls(root, {i + 1: (0 if separate else ports[2 * i], ports[2 * i + 1]) for i in range(n)},
                     dict(extra or {}))
        for j in range(brokers):
            layout.ports[n + 1 + j] = (ports[2 * n + j], 0)
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
            found = {item.split("://")[0]: int(item.rsplit(":", 1)[1]) for item in props["listeners"].split(",")}
            layout.ports[node_id] = (found.get("PLAINTEXT", 0), found.get("CONTROLLER", 0))
        return layout

    def roles(self, node_id: int) -> str:
        client, controller = self.ports[node_id]
        return ",".join(r for r, port in (("broker", client), ("controller", controller)) if port)

    def properties(self, node_id: int) -> dict[str, str]:
        client, controller = self.ports[node_id]
        voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_, c) in sorted(self.ports.items()) if c)
        listeners = [f"PLAINTEXT://127.0.0.1:{client}"] if client else []
        listeners += [f"CONTROLLER://127.0.0.1:{controller}"] if controller else []
        props = {
            "process.roles": self.roles(node_id),
            "node.id": str(node_id),
            "controller.quorum.voters": voters,
            "listeners": ",".join(listeners),
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.data_dir(node_id)),
        }
        if client:
            props["inter.broker.listener.name"] = "PLAINTEXT"
        props.update(self.extra)
        return props

    @property
    def brokers(self) -> list[int]:
        return [i for i, (client, _) in sorted(self.ports.items()) if client]

    @property
    def controllers(self) -> list[int]:
        return [i for i, (_, controller) in sorted(self.ports.items()) if controller]

    def properties_path(self, node_id: int) -> Path:
        return self.root / f"node-{node_id}.properties"

    def data_dir(self, node_id: int) -> Path:
        return self.root / f"node-{node_id}"

    def log_path(self, node_id: int) -> Path:
        return self.root / f"node-{node_id}.log"

    def bootstrap(self, node_id: int | None = None) -> str:
        ids = [node_id] if node_id is not None else self.brokers
        return ",".join(f"127.0.0.1:{self.ports[i][0]}" for i in ids)

    def controller(self, node_id: int) -> str:
        return f"127.0.0.1:{self.ports[node_id][1]}"


def start_node(layout: ClusterLayout, node_id: int, *, log_level: str = "INFO") -> subprocess.Popen[bytes]:
    """Start one node as a child process (output appended to its log file)."""
    out = open(layout.log_path(node_id), "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "kbroker", str(layout.properties_path(node_id)), "--log-level", log_level],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    finally:
        out.close()


def wait_ready(layout: ClusterLayout, node_id: int, proc: subprocess.Popen[bytes], since: int, timeout: float) -> None:
    """Wait for the node's readiness line in its log (after byte ``since``)."""
    deadline = time.monotonic() + timeout
    path = layout.log_path(node_id)
    while True:
        with open(path, "rb") as f:
            f.seek(since)
            if READY.encode() in f.read():
                return
        if proc.poll() is not None:
            raise RuntimeError(f"node {node_id} {exit_status(proc.returncode)}; see {path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"node {node_id} not ready after {timeout:.0f} s; see {path}")
        time.sleep(0.05)


def exit_status(code: int) -> str:
    """How a child process ended, from ``Popen.returncode`` (negative: the signal that killed it)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} ({-code})"
    return f"exited with code {code}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kbroker cluster",
                                     description="Run N kbroker nodes (broker+controller) on 127.0.0.1.")
    parser.add_argument("nodes", type=int, nargs="?", default=3,
                        help="number of controller nodes, voters of the quorum (default 3)")
    parser.add_argument("--brokers", type=int, default=0, help="broker-only nodes besides (observers)")
    parser.add_argument("--separate", action="store_true",
                        help="controller-only voters (with --brokers), instead of combined mode")
    parser.add_argument("--dir", default="./kbroker-cluster", help="folder of the nodes' data, configs and logs")
    args = parser.parse_args(argv)
    root = Path(args.dir).resolve()
    if any(root.glob("node-*.properties")):
        layout = ClusterLayout.load(root)
        if len(layout.controllers) != args.nodes:
            print(f"kbroker cluster: {root} holds a quorum of {len(layout.controllers)} controllers, not "
                  f"{args.nodes}", file=sys.stderr)
            return 2
    else:
        if args.nodes < 1:
            print("kbroker cluster: at least one node", file=sys.stderr)
            return 2
        if args.separate and args.brokers < 1:
            print("kbroker cluster: --separate needs --brokers", file=sys.stderr)
            return 2
        layout = ClusterLayout.create(root, args.nodes, brokers=args.brokers, separate=args.separate)
    procs: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False
    failed = False

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
            client, controller = layout.ports[node_id]
            shown = ([f"PLAINTEXT://{layout.bootstrap(node_id)}"] if client else []) + (
                [f"CONTROLLER://{layout.controller(node_id)}"] if controller else [])
            print(f"node {node_id} ({layout.roles(node_id)}): {' '.join(shown)}  (log {layout.log_path(node_id)})",
                  flush=True)
        print(f"bootstrap.servers={layout.bootstrap()}", flush=True)
        print(f"controllers={','.join(layout.controller(i) for i in layout.controllers)}", flush=True)
        print(f"data under {root}; Ctrl-C stops every node", flush=True)
        while not stopping:
            died = [(node_id, proc.returncode) for node_id, proc in procs.items() if proc.poll() is not None]
            if died:
                # as a supervisor: a node that ended while nobody asked it to is a failure
                for node_id, code in died:
                    print(f"kbroker cluster: node {node_id} {exit_status(code)} unexpectedly "
                          f"(log {layout.log_path(node_id)}); stopping the other nodes", file=sys.stderr, flush=True)
                failed = True
                break
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
    return 1 if failed else 0
