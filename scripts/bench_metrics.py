"""The cost of metrics on the hot path: produce and consume throughput with the metrics endpoint
on and scraped every second, against metrics off, in the same run (issue 21).

Each round starts a fresh pair of brokers (``python -m kbroker``, data directories in /dev/shm so
the shared disk's write-back does not time the produce rows): one with ``kbroker.http.listeners``
unset (metrics off: the dispatcher pays one attribute check per request), one with it set and a
thread scraping ``/metrics`` every second. The rounds alternate (ABBA): even rounds start, warm up
and measure the off broker first, odd rounds the on broker first, so a drift in the machine's load
falls on both sides; a fresh pair per round keeps a difference between two broker processes (where
their memory landed, which core they ran on) from passing for a difference of metrics. Per round
and side, after a warm-up (``--warm-mb``, not counted):

- both brokers' idle CPU rate over the same ``--idle-seconds`` (the on broker's includes its scrapes);
- ``--mb`` MB of ``--record-size`` byte records produced (acks=all) to a new topic and consumed back
  with confluent-kafka (as ``scripts/bench_broker.py`` does): throughput, and the broker's CPU
  seconds (every thread, user + system, from /proc/<pid>/task/*/schedstat) per GB of records;
- the broker's CPU per request for ``--cpu-requests`` pipelined small Produce requests and as many
  Fetch requests (the worst case for per-request costs).

Reported: each side's median [quartiles] (min-max), and the median [quartiles] of the rounds'
paired differences (on against off of the same round). CPU time barely moves with other work on a
shared machine; throughput does. ``--aa`` runs the same with metrics off on both brokers (an A/A
control: how far apart the method puts two identical brokers).

Usage: ``.venv/bin/python scripts/bench_metrics.py [--rounds 10] [--mb 100] [--cpu-requests 10000]
[--aa]``
"""

from __future__ import annotations

import argparse
import os
import shutil
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

from bench_broker import consume, cpu_model, free_port, metadata_ok, produce  # noqa: E402
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


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far, in seconds, from each thread's
    ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds; ``/proc/<pid>/stat`` counts 10 ms ticks,
    too coarse for a phase of a few hundred ms). A thread that ends between two reads takes its
    time with it; the broker's worker threads live as long as it does."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1e9


class Side:
    """One broker's rows: per round, throughput (s) and the broker's CPU seconds per GB."""

    def __init__(self, name: str, port: int, pid: int) -> None:
        self.name, self.port, self.pid = name, port, pid
        self.rows: list[dict[str, float]] = []


def run_side(side: Side, topic: str, total: int, size: int) -> dict[str, float]:
    """Produce ``total`` records to a new topic, consume them back, delete the topic (so the
    scrape stays the same size from round to round). The broker's CPU (user + system, every
    thread) is read around each phase: seconds of CPU per GB of record payload."""
    bootstrap = f"127.0.0.1:{side.port}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    gb = total * size / 1e9
    cpu0, io0 = cpu_seconds(side.pid), syscalls(side.pid)
    produce_s = produce(bootstrap, topic, total, size, 1)
    cpu1, io1 = cpu_seconds(side.pid), syscalls(side.pid)
    consume_s, steady_s = consume(bootstrap, topic, total, 1)
    cpu2, io2 = cpu_seconds(side.pid), syscalls(side.pid)
    admin.delete_topics([topic])[topic].result(30)
    mb = gb * 1000
    return {"produce_mbs": mb / produce_s, "consume_mbs": mb / consume_s,
            "steady_mbs": mb / steady_s, "produce_cpu_gb": (cpu1 - cpu0) / gb,
            "consume_cpu_gb": (cpu2 - cpu1) / gb, "produce_reads_mb": (io1[0] - io0[0]) / mb,
            "produce_writes_mb": (io1[1] - io0[1]) / mb, "consume_reads_mb": (io2[0] - io1[0]) / mb,
            "consume_writes_mb": (io2[1] - io1[1]) / mb}


def syscalls(pid: int) -> tuple[int, int]:
    """The broker's read and write system calls so far (``syscr``, ``syscw`` of /proc/<pid>/io):
    how many reads and writes the same records took (requests and responses, log appends)."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["syscr"]), int(fields["syscw"])


def idle_cpu_rate(pid: int, seconds: float) -> float:
    """The broker's CPU seconds per second with no client traffic (background timers; for the
    metrics-on broker also the scrape every second)."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


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


MEASURES = (
    # (row key, label, unit, format)
    ("produce_cpu_gb", "broker CPU per GB produced", "s/GB", ".2f"),
    ("consume_cpu_gb", "broker CPU per GB consumed", "s/GB", ".2f"),
    ("produce_mbs", "produce throughput", "MB/s", ".1f"),
    ("consume_mbs", "consume throughput", "MB/s", ".1f"),
    ("steady_mbs", "consume, first to last record", "MB/s", ".1f"),
    ("produce_reads_mb", "broker read syscalls per MB produced", "", ".1f"),
    ("produce_writes_mb", "broker write syscalls per MB produced", "", ".1f"),
    ("consume_reads_mb", "broker read syscalls per MB consumed", "", ".1f"),
    ("consume_writes_mb", "broker write syscalls per MB consumed", "", ".1f"),
    ("produce_us", "broker CPU per small Produce request", "us", ".1f"),
    ("fetch_us", "broker CPU per small Fetch request", "us", ".1f"),
)


def summary(off: list[float], on: list[float], unit: str, fmt: str) -> str:
    """Median [quartiles] (min-max) of each side, and the median [quartiles] of the rounds'
    paired differences (on against off of the same round, which cancels the machine's drift)."""
    def side(values: list[float]) -> str:
        q1, q2, q3 = quartiles(values)
        return (f"{q2:{fmt}} {unit} [{q1:{fmt}}-{q3:{fmt}}] ({min(values):{fmt}}-{max(values):{fmt}})")

    paired = [(b - a) / a * 100 for a, b in zip(off, on, strict=True)]
    p1, p2, p3 = quartiles(paired)
    medians = (statistics.median(on) - statistics.median(off)) / statistics.median(off) * 100
    return (f"off {side(off)}; on+scraped {side(on)}; on vs off: medians {medians:+.1f} %, "
            f"paired per round {p2:+.1f} % [{p1:+.1f} to {p3:+.1f} %]")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)


def run_round(r: int, args: argparse.Namespace, root: Path, total: int) -> tuple[dict[str, dict[str, float]],
                                                                                 dict[str, float], Scraper | None]:
    """One round: a fresh pair of brokers (started, warmed up and measured in the order the round
    gives: off first on even rounds, on first on odd ones), each side's rows, each broker's idle
    CPU rate, and the round's scraper."""
    names = ["off", "on"] if r % 2 == 0 else ["on", "off"]
    data = root / f"round-{r}"
    procs: dict[str, subprocess.Popen] = {}
    sides: dict[str, Side] = {}
    scraper: Scraper | None = None
    try:
        for name in names:
            port = free_port()
            http_port = free_port() if name == "on" and not args.aa else None
            procs[name] = start(data / name, port, http_port)
            sides[name] = Side(name, port, procs[name].pid)
            if http_port:
                scraper = Scraper(f"http://127.0.0.1:{http_port}/metrics")
                scraper.start()
        warm_total = args.warm_mb * 1_000_000 // args.record_size
        for name in names:  # warm-up, not counted: first-time code paths, lazy imports
            if warm_total:
                run_side(sides[name], "warm-up", warm_total, args.record_size)
            if args.cpu_requests:
                broker_cpu_per_request(sides[name].port, sides[name].pid, "cpu-warm-up", 1000)
        before = {name: cpu_seconds(side.pid) for name, side in sides.items()}
        time.sleep(args.idle_seconds)  # both brokers idle (the on one scraped) over the same seconds
        idle = {name: (cpu_seconds(side.pid) - before[name]) / args.idle_seconds for name, side in sides.items()}
        rows = {}
        for name in names:
            side = sides[name]
            row = run_side(side, "bench", total, args.record_size)
            if args.cpu_requests:
                row["produce_us"], row["fetch_us"] = broker_cpu_per_request(side.port, side.pid, "cpu",
                                                                            args.cpu_requests)
            rows[name] = row
            print(f"round {r + 1:2} metrics {name:3}: produce {row['produce_mbs']:6.1f} MB/s "
                  f"{row['produce_cpu_gb']:6.3f} CPU s/GB; consume {row['consume_mbs']:6.1f} MB/s "
                  f"(first to last {row['steady_mbs']:6.1f}) {row['consume_cpu_gb']:6.3f} CPU s/GB"
                  + (f"; per small Produce {row['produce_us']:5.1f} us, Fetch {row['fetch_us']:5.1f} us"
                     if args.cpu_requests else "") + f"; idle {idle[name] * 1000:.1f} ms/s", flush=True)
        return rows, idle, scraper
    finally:
        if scraper is not None:
            scraper.stop.set()
        for proc in procs.values():
            stop(proc)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--mb", type=int, default=100, help="MB produced and consumed per side per round")
    parser.add_argument("--warm-mb", type=int, default=10, help="MB of warm-up per broker, not counted")
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--cpu-requests", type=int, default=10000,
                        help="Produce and Fetch requests per side per round for the broker CPU per request "
                             "(0: leave these rows out)")
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="seconds both brokers' idle CPU rate is measured for in each round")
    parser.add_argument("--data-dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                        help="where the brokers' data directories go (default /dev/shm: memory, so the "
                             "shared disk's write-back does not time the produce rows)")
    parser.add_argument("--aa", action="store_true",
                        help="A/A control: the 'on' broker is started without metrics and not scraped, "
                             "to show the method's own difference between two identical brokers")
    args = parser.parse_args()
    total = args.mb * 1_000_000 // args.record_size
    mb = total * args.record_size / 1e6
    root = Path(tempfile.mkdtemp(prefix="kbroker-bench-metrics-", dir=args.data_dir))
    rows: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    idle: dict[str, list[float]] = {"off": [], "on": []}
    scrapes = scrape_bytes = 0
    scrape_seconds = 0.0
    started = time.time()
    try:
        for r in range(args.rounds):
            round_rows, round_idle, scraper = run_round(r, args, root, total)
            for name in rows:
                rows[name].append(round_rows[name])
                idle[name].append(round_idle[name])
            if scraper is not None:
                scrapes += scraper.scrapes
                scrape_bytes += scraper.bytes
                scrape_seconds += scraper.seconds
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"machine: nproc={os.cpu_count()} cpu={cpu_model()!r}; load average at end "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {time.time() - started:.0f} s")
    print(f"{args.rounds} rounds, a fresh broker pair each (off first on odd rounds, on first on even ones) x "
          f"{total} records x {args.record_size} B = {mb:.0f} MB per side per round; data in {args.data_dir}"
          + ("; A/A CONTROL: the 'on' broker has metrics off and is not scraped" if args.aa else ""))
    if scrapes:
        print(f"scrapes: {scrapes}, {scrape_bytes / scrapes / 1024:.1f} KiB and "
              f"{scrape_seconds / scrapes * 1000:.1f} ms each (client side)")
    print("idle broker CPU: " + summary(idle["off"], idle["on"], "s/s", ".4f"))
    on_ns, off_ns, wrap_ns = per_request_cost()
    print(f"dispatcher per request: {on_ns:.0f} ns with metrics on (clock reads + six histogram buckets), "
          f"{off_ns:.0f} ns with metrics off (the check alone); the step timer adds {wrap_ns:.0f} ns "
          f"around an asynchronous handler")
    for key, label, unit, fmt in MEASURES:
        if key in rows["off"][0]:
            print(f"{label}: " + summary([row[key] for row in rows["off"]], [row[key] for row in rows["on"]],
                                         unit, fmt))


if __name__ == "__main__":
    main()
