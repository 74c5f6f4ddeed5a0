"""A kbroker cluster as child processes (imported by conftest.py and the tests) (``kbroker.cluster``): every node in combined mode
(broker + controller), a static voter set, ports chosen free, data under the test's tmp dir.

``cluster`` (function scope) starts three nodes and stops them after the test (SIGTERM, then
SIGKILL); ``Cluster.kill(node)`` is kill -9, ``Cluster.start_node(node)`` restarts a node from
its data, on its ports.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from wire import Wire

from kbroker.cluster import ClusterLayout, start_node, wait_ready
from kbroker_protocol.messages.describe_quorum import DescribeQuorumRequest

# Kafka's raft timeouts halved: elections and failovers within a test's patience.
FAST_RAFT = {
    "controller.quorum.election.timeout.ms": "500",
    "controller.quorum.fetch.timeout.ms": "1000",
    "controller.quorum.election.backoff.max.ms": "500",
    "controller.quorum.request.timeout.ms": "1000",
}

# A fenced broker's leaderships move after its session expires: shorter than Kafka's 9 s here.
FAST_SESSIONS = {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500"}

# An empty consumer group's first rebalance without Kafka's 3 s wait for more members, as Kafka's own
# config/server.properties sets it "for development and testing" (the in-process brokers'
# kbroker.testing.TEST_DEFAULTS and the reference Kafka's TEST_SETTINGS do the same).
FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0"}


class Cluster:
    def __init__(self, root: Path, n: int, extra: dict[str, str] | None = None, *, brokers: int = 0,
                 separate: bool = False) -> None:
        self.layout = ClusterLayout.create(root, n, {**FAST_RAFT, **FAST_GROUPS, **(extra or {})}, brokers=brokers,
                                           separate=separate)
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def node_ids(self) -> list[int]:
        return sorted(self.layout.ports)

    def start_node(self, node_id: int, wait: bool = True) -> None:
        path = self.layout.log_path(node_id)
        since = path.stat().st_size if path.exists() else 0
        proc = self.procs[node_id] = start_node(self.layout, node_id)
        if wait:
            wait_ready(self.layout, node_id, proc, since, timeout=60)

    def start(self) -> Cluster:
        sizes = {}
        for node_id in self.node_ids:
            path = self.layout.log_path(node_id)
            sizes[node_id] = path.stat().st_size if path.exists() else 0
            self.procs[node_id] = start_node(self.layout, node_id)
        for node_id in self.node_ids:
            wait_ready(self.layout, node_id, self.procs[node_id], sizes[node_id], timeout=60)
        return self

    def kill(self, node_id: int) -> None:
        """kill -9 of the node's process."""
        proc = self.procs.pop(node_id)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        """SIGTERM to every node at once (a graceful shutdown each; the last ones wait for their
        controlled shutdown in vain, up to 5 s, as the quorum is gone), SIGKILL after 15 s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def kill_all(self) -> None:
        for node_id in list(self.procs):
            self.kill(node_id)

    def bootstrap(self, node_id: int | None = None) -> str:
        return self.layout.bootstrap(node_id)

    def wire(self, node_id: int) -> Wire:
        return Wire(self.layout.bootstrap(node_id), timeout=10)

    def controller_wire(self, node_id: int) -> Wire:
        return Wire(self.layout.controller(node_id), timeout=10)

    def describe_quorum(self, node_id: int):
        """The __cluster_metadata partition of DescribeQuorum (v2) asked at ``node_id``'s controller listener."""
        D = DescribeQuorumRequest
        w = self.controller_wire(node_id)
        try:
            resp = w.call(D(topics=[D.TopicData(topic_name="__cluster_metadata",
                                                partitions=[D.TopicData.PartitionData(partition_index=0)])]), 2)
        finally:
            w.sock.close()
        return resp

    def http_url(self, node_id: int) -> str | None:
        """The node's HTTP listener (``kbroker.http.listeners``, port 0 in tests) as its current run
        printed it in its log (``kbroker metrics: <url>/metrics``, after the readiness line); None
        until printed."""
        text = self.layout.log_path(node_id).read_text(errors="replace")
        ready = text.rfind("kbroker ready:")
        if ready < 0:
            return None
        found = re.search(r"^kbroker metrics: (\S+)/metrics$", text[ready:], re.MULTILINE)
        return found.group(1) if found else None

    def logs(self) -> str:
        return "\n".join(f"--- node {i}\n" + self.layout.log_path(i).read_text(errors="replace")[-3000:]
                         for i in self.node_ids)
