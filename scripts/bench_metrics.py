"""The cost of metrics on the hot path: produce and consume throughput with the metrics endpoint
on and scraped every second, against metrics off, in the same run.

Starts two brokers (``python -m kbroker``, fresh data directories): one with
``kbroker.http.listeners`` unset (metrics off: the dispatcher pays one attribute check per
request), one with it set and a thread scraping ``/metrics`` every second. Rounds alternate which
broker goes first; each round produces ``--mb`` MB of ``--record-size`` byte records (acks=all)
to a new topic on each broker, then consumes them back, with confluent-kafka (as
``scripts/bench_broker.py`` does). Reports every round and the median of each side.

The machine may be shared: other work skews single rounds; compare medians over several rounds.

Each round also measures the broker's CPU time per request (from /proc, user + system) for
``--cpu-requests`` pipelined small Produce requests and as many Fetch requests on each broker:
CPU time barely moves with other work on a shared machine, so it resolves differences of a few
per cent that the throughput rows cannot.

Usage: ``.venv/bin/python scripts/bench_metrics.py [--rounds 5] [--mb 50] [--record-size 1024]
[--cpu-requests 20000]``
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_broker import consume, cpu_model, cpu_seconds, free_port, metadata_ok, produce  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def start(data_dir: Path, port: int, http_port: int | None) -> subprocess.Popen:
    http = f"http://127.0.0.1:{http_port}" if http_port else ""
    cmd = [sys.executable, "-m", "kbroker", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
           "--override", f"log.dirs={data_dir}", "--override", f"kbroker.http.listeners={http}",
           "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    deadline = time.monotonic() + 120
    while not metadata_ok(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("broker did not start")
        time.sleep(0.01)
    return proc


class Scraper(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.scrapes = 0
        self.bytes = 0
        self.seconds = 0.0

    def run(self) -> None:
        while not self.stop.wait(1.0):
            t0 = time.perf_counter()
            with urllib.request.urlopen(self.url, timeout=10) as resp:
                self.bytes += len(resp.read())
            self.seconds += time.perf_counter() - t0
            self.scrapes += 1


def run_side(bootstrap: str, topic: str, total: int, size: int) -> tuple[float, float, float]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    produce_s = produce(bootstrap, topic, total, size, 1)
    consume_s, steady_s = consume(bootstrap, topic, total, 1)
    return produce_s, consume_s, steady_s


def per_request_cost() -> tuple[float, float, float]:
    """ns per request of what the dispatcher adds with metrics on (six clock reads: bytes in,
    handler start, its synchronous run, response ready, flush, sent; then
    RequestStats.requests_sent for a write answering one request), of the check alone with metrics off, and what the step timer
    (``_timed``) adds around an asynchronous handler that finishes in one step."""
    import timeit

    sys.path.insert(0, str(ROOT))
    from kbroker.metrics.requests import RequestStats
    from kbroker.server.connection import _Slot, _timed
    from kbroker.server.slots import SyntheticHeader

    stats = RequestStats()
    holder = type("Conn", (), {"_metrics": stats})()
    n = 200_000
    slot = _Slot(SyntheticHeader(0, 9, 0))
    code = ("m = c._metrics\nif m is not None:\n    s.received = pc(); s.started = pc(); s.busy = pc() - s.started\n"
            "    s.ready = pc(); f = pc()\n    m.requests_sent([s], f, pc())")
    on = timeit.timeit(code, globals={"c": holder, "pc": time.perf_counter, "s": slot}, number=n)
    holder._metrics = None
    off = timeit.timeit(code, globals={"c": holder, "pc": time.perf_counter, "s": slot}, number=n)

    async def handler() -> int:
        return 1

    def plain() -> None:
        try:
            handler().send(None)
        except StopIteration:
            pass

    slot = _Slot(None)

    def timed() -> None:
        try:
            _timed(handler(), slot).send(None)
        except StopIteration:
            pass

    wrap = (timeit.timeit(timed, number=n) - timeit.timeit(plain, number=n)) / n * 1e9
    return on / n * 1e9, off / n * 1e9, wrap


def broker_cpu_per_request(port: int, pid: int, topic: str, requests: int, window: int = 64) -> tuple[float, float]:
    """The broker's CPU time (user + system, from /proc) per request, in microseconds, for
    ``requests`` pipelined Produce requests (one batch of 10 records of 100 B each, acks=1) and
    then as many Fetch requests (from offset 0, up to 64 KiB). CPU time, unlike throughput,
    barely moves with the other work on a shared machine."""
    import socket
    import struct

    sys.path.insert(0, str(ROOT))
    from kbroker_protocol.api import decode_response, encode_request
    from kbroker_protocol.messages import REQUESTS, RequestHeader
    from kbroker_protocol.records import Record, build_batch

    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    reader = sock.makefile("rb")

    def frame(request: object, key: int, version: int, cid: int) -> bytes:
        header = RequestHeader(request_api_key=key, request_api_version=version, correlation_id=cid,
                               client_id="bench-metrics")
        payload = encode_request(header, request)
        return struct.pack(">i", len(payload)) + payload

    def run(make: object, key: int, version: int) -> float:
        before = cpu_seconds(pid)
        sent = received = 0
        while received < requests:
            burst = []
            while sent < requests and sent - received < window:
                burst.append(frame(make(), key, version, sent))  # type: ignore[operator]
                sent += 1
            if burst:
                sock.sendall(b"".join(burst))
            (size,) = struct.unpack(">i", reader.read(4))
            decode_response(reader.read(size), key, version)
            received += 1
        return (cpu_seconds(pid) - before) / requests * 1e6

    P = REQUESTS[0]
    F = REQUESTS[1]
    create = REQUESTS[19]
    sock.sendall(frame(create(topics=[create.CreatableTopic(name=topic, num_partitions=1, replication_factor=1,
                                                            assignments=[], configs=[])],
                              timeout_ms=30000, validate_only=False), 19, 7, 0))
    (size,) = struct.unpack(">i", reader.read(4))
    reader.read(size)
    batch = build_batch([Record(value=b"v" * 100, timestamp=1_700_000_000_000 + i) for i in range(10)])

    def produce_request() -> object:
        return P(transactional_id=None, acks=1, timeout_ms=30000, topic_data=[P.TopicProduceData(
            name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])

    fetch_part = F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0,
                                             last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=65536)

    def fetch_request() -> object:
        return F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=65536, isolation_level=0, session_id=0,
                 session_epoch=-1, topics=[F.FetchTopic(topic=topic, partitions=[fetch_part])],
                 forgotten_topics_data=[], rack_id="")

    try:
        return run(produce_request, 0, 9), run(fetch_request, 1, 12)
    finally:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=50, help="MB produced and consumed per side per round")
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--cpu-requests", type=int, default=20000,
                        help="Produce and Fetch requests per side per round for the broker CPU per request")
    args = parser.parse_args()
    total = args.mb * 1_000_000 // args.record_size
    mb = total * args.record_size / 1e6
    data = Path(tempfile.mkdtemp(prefix="kbroker-bench-metrics-"))
    off_port, on_port, http_port = free_port(), free_port(), free_port()
    off = start(data / "off", off_port, None)
    on = start(data / "on", on_port, http_port)
    scraper = Scraper(f"http://127.0.0.1:{http_port}/metrics")
    scraper.start()
    results: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}
    cpu: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    pids = {"off": off.pid, "on": on.pid}
    try:
        for r in range(args.rounds):
            order = [("off", off_port), ("on", on_port)]
            if r % 2:
                order.reverse()
            for name, port in order:
                p, c, steady = run_side(f"127.0.0.1:{port}", f"bench-{r}", total, args.record_size)
                results[name].append((p, c, steady))
                print(f"round {r + 1} metrics {name:3}: produce {mb / p:7.1f} MB/s  consume {mb / c:7.1f} MB/s "
                      f"(first to last record {mb / steady:7.1f} MB/s)", flush=True)
            for name, port in order:
                if args.cpu_requests:
                    pu, fu = broker_cpu_per_request(port, pids[name], f"cpu-{r}", args.cpu_requests)
                    cpu[name].append((pu, fu))
                    print(f"round {r + 1} metrics {name:3}: broker CPU per Produce {pu:6.1f} us, per Fetch {fu:6.1f} us",
                          flush=True)
    finally:
        scraper.stop.set()
        for proc in (off, on):
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
        import shutil

        shutil.rmtree(data, ignore_errors=True)
    print(f"machine: nproc={os.cpu_count()} cpu={cpu_model()!r} load average at end={os.getloadavg()[0]:.1f} "
          "(a shared machine: other work skews single rounds)")
    print(f"{args.rounds} rounds x {total} records x {args.record_size} B = {mb:.0f} MB per side per round")
    print(f"scrapes: {scraper.scrapes}, {scraper.bytes / max(scraper.scrapes, 1) / 1024:.1f} KiB and "
          f"{scraper.seconds / max(scraper.scrapes, 1) * 1000:.1f} ms each")
    on_ns, off_ns, wrap_ns = per_request_cost()
    print(f"dispatcher per request: {on_ns:.0f} ns with metrics on (clock reads + six histogram buckets), "
          f"{off_ns:.0f} ns with metrics off (the check alone); the step timer adds {wrap_ns:.0f} ns "
          f"around an asynchronous handler")
    for i, what in enumerate(("Produce", "Fetch")):
        if cpu["off"]:
            med = {name: statistics.median(row[i] for row in rows) for name, rows in cpu.items()}
            diff = (med["on"] - med["off"]) / med["off"] * 100
            print(f"broker CPU per {what} request: median off {med['off']:.1f} us, on+scraped {med['on']:.1f} us "
                  f"({diff:+.1f} %)")
    for i, what in enumerate(("produce", "consume", "consume, first to last record")):
        med = {name: statistics.median(mb / row[i] for row in rows) for name, rows in results.items()}
        diff = (med["on"] - med["off"]) / med["off"] * 100
        print(f"{what}: median off {med['off']:.1f} MB/s, on+scraped {med['on']:.1f} MB/s ({diff:+.1f} %)")


if __name__ == "__main__":
    main()
