"""Controller failover time of a three-node kbroker quorum (kill -9 of the active controller to the
first successful CreateTopics), and metadata commit latency (CreateTopics round trips on the active
controller).

    .venv/bin/python scripts/bench_failover.py [--rounds 5] [--creates 50]

Three combined-mode nodes run as child processes (``kbroker.cluster``) with Kafka's default raft
timeouts (``controller.quorum.election.timeout.ms`` 1000, ``fetch.timeout.ms`` 2000). Each round:
wait until every node names one leader, create ``--creates`` topics one after another through the
leader (commit latency), ``kill -9`` the leader, then send CreateTopics to the surviving nodes in
turn (each asks its own DescribeQuorum for the leader first) until one succeeds; the time from the
kill to that answer is the failover time. The killed node is restarted before the next round.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kbroker.cluster import ClusterLayout, start_node, wait_ready  # noqa: E402
from protocol.api import decode_response, encode_request  # noqa: E402
from protocol.messages import RequestHeader  # noqa: E402
from protocol.messages.create_topics import CreateTopicsRequest  # noqa: E402
from protocol.messages.describe_quorum import DescribeQuorumRequest  # noqa: E402


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


def leader_seen_by(layout: ClusterLayout, node_id: int) -> int:
    D = DescribeQuorumRequest
    resp = call(layout.controller(node_id), D(topics=[D.TopicData(
        topic_name="__cluster_metadata", partitions=[D.TopicData.PartitionData(partition_index=0)])]), 2, 1.0)
    return resp.topics[0].partitions[0].leader_id


def create(layout: ClusterLayout, node_id: int, name: str) -> int:
    C = CreateTopicsRequest
    resp = call(layout.bootstrap(node_id), C(topics=[C.CreatableTopic(
        name=name, num_partitions=1, replication_factor=3, assignments=[], configs=[])], timeout_ms=10000), 7, 10.0)
    return resp.topics[0].error_code


def agreed_leader(layout: ClusterLayout, nodes: list[int]) -> int | None:
    try:
        seen = {leader_seen_by(layout, n) for n in nodes}
    except OSError:
        return None
    return seen.pop() if len(seen) == 1 and -1 not in seen else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--creates", type=int, default=50, help="topics created per round before the kill")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kbroker-failover-"))
    layout = ClusterLayout.create(root, 3)
    procs = {n: start_node(layout, n) for n in layout.ports}
    failovers: list[float] = []
    latencies: list[float] = []
    topic = 0
    try:
        for n, p in procs.items():
            wait_ready(layout, n, p, 0, 60)
        for r in range(args.rounds):
            nodes = sorted(procs)
            deadline = time.monotonic() + 60
            leader = None
            while leader is None:
                leader = agreed_leader(layout, nodes)
                if time.monotonic() > deadline:
                    raise TimeoutError("no leader")
                time.sleep(0.05)
            for _ in range(args.creates):
                t0 = time.perf_counter()
                code = create(layout, leader, f"t{topic}")
                latencies.append(time.perf_counter() - t0)
                if code != 0:
                    raise RuntimeError(f"CreateTopics failed with {code}")
                topic += 1
            proc = procs.pop(leader)
            t_kill = time.perf_counter()
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            survivors = sorted(procs)
            done = False
            while not done:
                for n in survivors:
                    try:
                        target = leader_seen_by(layout, n)
                        if target in survivors and create(layout, target, f"t{topic}") == 0:
                            done = True
                            break
                    except OSError:
                        pass
                else:
                    time.sleep(0.01)
            failovers.append(time.perf_counter() - t_kill)
            topic += 1
            print(f"round {r + 1}: leader {leader} killed, first CreateTopics after {failovers[-1] * 1000:.0f} ms",
                  flush=True)
            size = layout.log_path(leader).stat().st_size
            procs[leader] = start_node(layout, leader)
            wait_ready(layout, leader, procs[leader], size, 60)
    finally:
        for p in procs.values():
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs.values():
            p.wait()
    ms = sorted(f * 1000 for f in failovers)
    lat = sorted(x * 1000 for x in latencies)
    print(f"failover (kill -9 of the active controller -> first successful CreateTopics), {len(ms)} rounds: "
          f"median {statistics.median(ms):.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms")
    print(f"CreateTopics on the active controller (replication factor 3), {len(lat)} requests: "
          f"median {statistics.median(lat):.1f} ms, p90 {lat[int(len(lat) * 0.9)]:.1f} ms")
    print(f"data under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
