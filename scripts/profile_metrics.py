"""The share of the broker's CPU that metrics take, from a sampling profile (issue 21).

``scripts/bench_metrics.py`` compares throughput and CPU per request of a broker with metrics off
and one with metrics on and scraped every second; on a shared, loaded machine those rows move by
+-20 % between rounds and cannot resolve a few per cent. This script measures the metrics' part
directly: it starts ``python -m kbroker`` with ``kbroker.http.listeners`` set, scrapes
``/metrics`` every second, sends pipelined Produce and Fetch requests (as bench_metrics' CPU
rows), and records the broker with py-spy (``pip install py-spy``; every thread, idle samples
left out). Samples are attributed to metrics when their stack is in:

- the scrape: ``MetricsServer.respond_with_headers`` (collection and formatting, on the event
  loop; the request histograms' text from ``kbroker.metrics.request_text``) or ``generate_latest``;
- the per-request timing: ``RequestStats.requests_sent`` (``request_done`` and
  ``ResponseWriter._requests_sent`` in the code before it), and
  the step timer ``timed`` itself (its own lines only: the handler it runs is not metrics).

A sampling profile's shares barely move with other work on the machine (the broker's samples
all slow down together). Usage:

    .venv/bin/python scripts/profile_metrics.py [--requests 20000] [--rounds 3] [--rate 250] [--mb 0]

``--mb N`` profiles bench_metrics' throughput workload instead (N MB of 1 KiB records produced,
acks=all, and consumed back with confluent-kafka).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench_metrics  # noqa: E402
from bench_broker import free_port  # noqa: E402

SCRAPE = ("MetricsServer.respond_with_headers", "generate_latest")
PER_REQUEST = ("RequestStats.requests_sent", "RequestStats.request_done", "ResponseWriter._requests_sent")
STEP_TIMER = "timed "


def classify(stack: list[str]) -> str:
    names = [frame.split(" (")[0] for frame in stack]
    if any(name in SCRAPE for name in names):
        return "scrape"
    if any(name in PER_REQUEST for name in names):
        return "per-request"
    if stack and stack[-1].startswith(STEP_TIMER) and "slots.py" in stack[-1]:
        return "step timer"
    return "other"


def profile_round(py_spy: str, requests: int, rate: int, index: int, mb: int = 0) -> collections.Counter[str]:
    data = Path(tempfile.mkdtemp(prefix="kbroker-profile-metrics-"))
    port, http_port = free_port(), free_port()
    broker = bench_metrics.start(data, port, http_port)
    scraper = bench_metrics.Scraper(f"http://127.0.0.1:{http_port}/metrics")
    scraper.start()
    out = data / "profile.txt"
    spy = subprocess.Popen([py_spy, "record", "--pid", str(broker.pid), "--rate", str(rate), "--format", "raw",
                            "--threads", "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # py-spy attached
        if mb:
            side = bench_metrics.Side("on", port, broker.pid)
            row = bench_metrics.run_side(side, f"profile-{index}", mb * 1_000_000 // 1024, 1024)
            print(f"round {index + 1}: produce {row['produce_mbs']:.1f} MB/s, consume {row['consume_mbs']:.1f} MB/s, "
                  f"{scraper.scrapes} scrapes", flush=True)
        else:
            produce_us, fetch_us = bench_metrics.broker_cpu_per_request(port, broker.pid, f"profile-{index}",
                                                                        requests)
            print(f"round {index + 1}: broker CPU per Produce {produce_us:.1f} us, per Fetch {fetch_us:.1f} us, "
                  f"{scraper.scrapes} scrapes", flush=True)
    finally:
        scraper.stop.set()
        spy.send_signal(signal.SIGINT)
        spy.wait(120)
        broker.send_signal(signal.SIGTERM)
        broker.wait(120)
    counts: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if frames and frames[0].startswith("thread"):
            frames = frames[1:]
        counts[classify(frames)] += int(n)
    shutil.rmtree(data, ignore_errors=True)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="Produce and Fetch requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--mb", type=int, default=0,
                        help="instead of small requests, produce and consume this many MB of 1 KiB records "
                             "with confluent-kafka (bench_metrics' throughput workload)")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    total: collections.Counter[str] = collections.Counter()
    for i in range(args.rounds):
        counts = profile_round(py_spy, args.requests, args.rate, i, args.mb)
        n = sum(counts.values())
        print(f"round {i + 1}: {n} samples; " + ", ".join(
            f"{kind} {counts[kind] / n * 100:.2f} %" for kind in ("scrape", "per-request", "step timer")), flush=True)
        total += counts
    n = sum(total.values())
    metrics = sum(total[k] for k in ("scrape", "per-request", "step timer"))
    print(f"all rounds: {n} samples; metrics {metrics / n * 100:.2f} % of the broker's samples (scrape "
          f"{total['scrape'] / n * 100:.2f} %, per-request {total['per-request'] / n * 100:.2f} %, step timer "
          f"{total['step timer'] / n * 100:.2f} %)")


if __name__ == "__main__":
    main()
