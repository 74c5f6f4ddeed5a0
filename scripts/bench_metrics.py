"""The cost of metrics on the hot path: produce and consume throughput with the metrics endpoint
on and scraped every second, against metrics off, in the same run.

Starts two brokers (``python -m kbroker``, fresh data directories): one with
``kbroker.http.listeners`` unset (metrics off: the dispatcher pays one attribute check per
request), one with it set and a thread scraping ``/metrics`` every second. Rounds alternate which
broker goes first; each round produces ``--mb`` MB of ``--record-size`` byte records (acks=all)
to a new topic on each broker, then consumes them back, with confluent-kafka (as
``scripts/bench_broker.py`` does). Reports every round and the median of each side.

The machine may be shared: other work skews single rounds; compare medians over several rounds.

Usage: ``.venv/bin/python scripts/bench_metrics.py [--rounds 5] [--mb 50] [--record-size 1024]``
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


def run_side(bootstrap: str, topic: str, total: int, size: int) -> tuple[float, float, float]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    produce_s = produce(bootstrap, topic, total, size, 1)
    consume_s, steady_s = consume(bootstrap, topic, total, 1)
    return produce_s, consume_s, steady_s


def per_request_cost() -> tuple[float, float, float]:
    """ns per request of what the dispatcher adds with metrics on (six clock reads: bytes in,
    handler start, its synchronous run, response ready, flush, sent; then
    RequestStats.request_done), of the check alone with metrics off, and what the step timer
    (``_timed``) adds around an asynchronous handler that finishes in one step."""
    import timeit

    sys.path.insert(0, str(ROOT))
    from kbroker.metrics.requests import RequestStats
    from kbroker.server.connection import _Slot, _timed

    stats = RequestStats()
    holder = type("Conn", (), {"_metrics": stats})()
    n = 200_000
    code = ("m = c._metrics\nif m is not None:\n    t0 = pc(); t1 = pc(); b = pc() - t1; r = pc(); f = pc()\n"
            "    m.request_done(0, t0, t1, b, r, f, pc())")
    on = timeit.timeit(code, globals={"c": holder, "pc": time.perf_counter}, number=n)
    holder._metrics = None
    off = timeit.timeit(code, globals={"c": holder, "pc": time.perf_counter}, number=n)

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=50, help="MB produced and consumed per side per round")
    parser.add_argument("--record-size", type=int, default=1024)
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
    for i, what in enumerate(("produce", "consume", "consume, first to last record")):
        med = {name: statistics.median(mb / row[i] for row in rows) for name, rows in results.items()}
        diff = (med["on"] - med["off"]) / med["off"] * 100
        print(f"{what}: median off {med['off']:.1f} MB/s, on+scraped {med['on']:.1f} MB/s ({diff:+.1f} %)")


if __name__ == "__main__":
    main()
