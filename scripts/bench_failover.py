"""Controller failover time of a three-node quorum (kill -9 of the active controller to the first
successful CreateTopics) and metadata commit latency (CreateTopics round trips), for kbroker and,
with ``--kafka``, three Apache Kafka 4.4 nodes in the same run.

    .venv/bin/python scripts/bench_failover.py [--rounds 5] [--creates 50] [--kafka]

Three combined-mode nodes (``kbroker.cluster``; ``reference_kafka.start_reference_kafka_cluster``)
with Kafka's default raft timeouts (``controller.quorum.election.timeout.ms`` 1000,
``fetch.timeout.ms`` 2000). Each round: wait until every node's controller listener names one
leader (DescribeQuorum), create ``--creates`` topics one after another through the leader's broker
listener (CreateTopics latency: forwarding to the controller, commit on a majority, answer), kill -9
the leader, then send CreateTopics to the surviving brokers in turn (they forward it to the active
controller) until one succeeds; the time from the kill to that answer is the failover time. The
killed node is restarted before the next round.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kbroker.cluster import ClusterLayout, start_node, wait_ready  # noqa: E402
from kbroker_protocol.api import decode_response, encode_request  # noqa: E402
from kbroker_protocol.messages import RequestHeader  # noqa: E402
from kbroker_protocol.messages.create_topics import CreateTopicsRequest  # noqa: E402
from kbroker_protocol.messages.describe_quorum import DescribeQuorumRequest  # noqa: E402


def call(address: str, request, version: int, timeout: float = 5.0):
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        header = RequestHeader(request_api_key=request.API_KEY, request_api_version=version, correlation_id=1,
                               client_id="bench-failover")
        payload = encode_request(header, request)
        s.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", _read(s, 4))[0]
        return decode_response(_read(s, size), request.API_KEY, version)[1]


def _read(s: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return bytes(out)


def describe_quorum(controller: str) -> tuple[int, int]:
    """(partition error, leader id) of DescribeQuorum at a controller listener."""
    D = DescribeQuorumRequest
    resp = call(controller, D(topics=[D.TopicData(
        topic_name="__cluster_metadata", partitions=[D.TopicData.PartitionData(partition_index=0)])]), 1, 1.0)
    p = resp.topics[0].partitions[0]
    return p.error_code, p.leader_id


def create(bootstrap: str, name: str, timeout: float = 30.0) -> int:
    C = CreateTopicsRequest
    resp = call(bootstrap, C(topics=[C.CreatableTopic(
        name=name, num_partitions=1, replication_factor=3, assignments=[], configs=[])], timeout_ms=30000), 7, timeout)
    return resp.topics[0].error_code


class KbrokerNodes:
    """Three kbroker nodes as child processes (kbroker.cluster)."""

    name = "kbroker"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kbroker-failover-"))
        self.layout = ClusterLayout.create(self.root, 3)
        self.ports = self.layout.ports
        self.procs: dict[int, Any] = {}
        for n in self.ports:
            self.start_node(n)
        for n in self.ports:
            self.wait_ready(n)

    def start_node(self, n: int) -> None:
        path = self.layout.log_path(n)
        self._since = getattr(self, "_since", {})
        self._since[n] = path.stat().st_size if path.exists() else 0
        self.procs[n] = start_node(self.layout, n)

    def wait_ready(self, n: int) -> None:
        wait_ready(self.layout, n, self.procs[n], self._since[n], 60)

    def kill(self, n: int) -> None:
        proc = self.procs.pop(n)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class KafkaNodes:
    """Three Apache Kafka 4.4 nodes (scripts/reference_kafka.py)."""

    name = "Apache Kafka 4.4"

    def __init__(self) -> None:
        import reference_kafka

        self.cluster = reference_kafka.start_reference_kafka_cluster(3, quick_jvm=False)
        self.ports = self.cluster.ports
        self.procs = self.cluster.procs

    def start_node(self, n: int) -> None:
        self.cluster.start_node(n)

    def wait_ready(self, n: int) -> None:
        self.cluster.wait_ready(n)

    def kill(self, n: int) -> None:
        self.cluster.kill(n)

    def stop(self) -> None:
        self.cluster.stop()


def agreed_leader(nodes: Any, alive: list[int]) -> int | None:
    """The leader: the node whose controller answers DescribeQuorum itself (only the leader does,
    in Kafka and kbroker), naming itself."""
    for n in alive:
        try:
            error, leader = describe_quorum(f"127.0.0.1:{nodes.ports[n][1]}")
        except OSError:
            continue
        if error == 0 and leader == n:
            return n
    return None


def run(nodes: Any, rounds: int, creates: int) -> tuple[list[float], list[float]]:
    failovers: list[float] = []
    latencies: list[float] = []
    topic = 0
    for r in range(rounds):
        alive = sorted(nodes.procs)
        deadline = time.monotonic() + 60
        leader = None
        while leader is None:
            leader = agreed_leader(nodes, alive)
            if time.monotonic() > deadline:
                raise TimeoutError("no leader")
            time.sleep(0.05)
        leader_bootstrap = f"127.0.0.1:{nodes.ports[leader][0]}"
        for _ in range(creates):
            t0 = time.perf_counter()
            code = create(leader_bootstrap, f"t{topic}")
            latencies.append(time.perf_counter() - t0)
            if code != 0:
                raise RuntimeError(f"CreateTopics failed with {code}")
            topic += 1
        t_kill = time.perf_counter()
        nodes.kill(leader)
        survivors = [n for n in alive if n != leader]
        i = 0
        while True:  # through the survivors in turn (they forward to the active controller)
            target = f"127.0.0.1:{nodes.ports[survivors[i % len(survivors)]][0]}"
            i += 1
            try:
                if create(target, f"t{topic}") == 0:
                    break
            except OSError:
                time.sleep(0.01)
        failovers.append(time.perf_counter() - t_kill)
        topic += 1
        print(f"{nodes.name} round {r + 1}: leader {leader} killed, first CreateTopics after "
              f"{failovers[-1] * 1000:.0f} ms", flush=True)
        nodes.start_node(leader)
        nodes.wait_ready(leader)
    return failovers, latencies


def report(name: str, failovers: list[float], latencies: list[float]) -> None:
    ms = sorted(f * 1000 for f in failovers)
    lat = sorted(x * 1000 for x in latencies)
    print(f"{name}: failover (kill -9 of the active controller -> first successful CreateTopics), {len(ms)} rounds: "
          f"median {statistics.median(ms):.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms")
    print(f"{name}: CreateTopics through the active controller's broker (replication factor 3), {len(lat)} "
          f"requests: median {statistics.median(lat):.1f} ms, p90 {lat[int(len(lat) * 0.9)]:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--creates", type=int, default=50, help="topics created per round before the kill")
    parser.add_argument("--kafka", action="store_true", help="also three Apache Kafka 4.4 nodes, after kbroker")
    args = parser.parse_args()
    results = []
    kinds = [KbrokerNodes] + ([KafkaNodes] if args.kafka else [])
    for kind in kinds:
        nodes = kind()
        try:
            results.append((nodes.name, *run(nodes, args.rounds, args.creates)))
        finally:
            nodes.stop()
    for name, failovers, latencies in results:
        report(name, failovers, latencies)
    if len(results) == 2:
        kb, ka = results
        print(f"ratios kbroker/Kafka: failover median {statistics.median(kb[1]) / statistics.median(ka[1]):.2f}, "
              f"CreateTopics median {statistics.median(kb[2]) / statistics.median(ka[2]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
