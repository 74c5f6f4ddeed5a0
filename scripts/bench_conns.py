#!/usr/bin/env python3
"""N librdkafka producer connections on one partition against kbroker alone (issue 23).

    .venv/bin/python scripts/bench_conns.py [--conns 100] [--records 200000] [--reps 2]
        [--tree PATH] [--profile FILE.folded]

Starts kbroker from `--tree` (default: this checkout's working tree), creates a one-partition
topic, and runs `bench_loads.py produce-conns` (1 KiB records round robin, acks=1, linger 5 ms,
batch.size 64 KB) `--reps` times. Prints one JSON line a repetition: MB/s, broker CPU seconds,
broker CPU per GB, Produce requests (the broker's own counter, from its /metrics) and broker
CPU microseconds per Produce request, and the load average. The broker's CPU is the figure to trust on a loaded machine.
With `--profile`, py-spy samples the broker (--nonblocking) through every repetition; with
`--no-metrics` the broker runs without its HTTP listener (metrics off, as bench_vs_kafka.py runs
it), and the request count is not known.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_brokers as bb  # noqa: E402
import bench_loads as bl  # noqa: E402
import reference_kafka  # noqa: E402

ROOT = bb.ROOT
PRODUCE = re.compile(r'^kafka_network_requestmetrics_requests_total\{[^}]*request="Produce"[^}]*\} ([0-9.e+]+)', re.M)


def produce_requests(http_port: int) -> int:
    """Produce requests the broker has counted (its Prometheus RequestsPerSec{request=Produce});
    -1 without the HTTP listener."""
    if not http_port:
        return -1
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=30) as r:
        text = r.read().decode()
    return int(sum(float(v) for v in PRODUCE.findall(text)))


def sys_seconds(pid: int) -> float:
    """System (kernel) CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--tree", type=Path, default=ROOT)
    ap.add_argument("--profile", type=Path)
    ap.add_argument("--no-metrics", action="store_true",
                    help="no HTTP listener (metrics off, as bench_vs_kafka runs it): no request count")
    a = ap.parse_args(argv)
    base = Path(os.environ.get("TMPDIR", "/tmp"))
    http_port = 0 if a.no_metrics else reference_kafka.free_port()
    if http_port:
        bb.BENCH_SETTINGS.update({"kbroker.http.listeners": f"127.0.0.1:{http_port}",
                                  "kbroker.console.enable": "false"})
    with bb.KBroker(a.tree, base) as b:
        bl.create_topic(b.bootstrap, "conns", 1)
        spy = None
        if a.profile is not None:
            spy = subprocess.Popen([str(ROOT / ".venv/bin/py-spy"), "record", "-p", str(b.pid), "-f", "raw",
                                    "-r", "200", "--nonblocking", "-o", str(a.profile)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for rep in range(a.reps):
                req0 = produce_requests(http_port)
                cpu0, sys0 = bb.cpu_seconds(b.pid), sys_seconds(b.pid)
                r = bl.worker(["produce-conns", "--bootstrap", b.bootstrap, "--topic", "conns",
                               "--records", str(a.records), "--conns", str(a.conns), "--acks", "1"])
                cpu, kernel = bb.cpu_seconds(b.pid) - cpu0, sys_seconds(b.pid) - sys0
                gb = a.records * 1024 / 1e9
                row = {"rep": rep, "conns": a.conns, "mb_per_s": round(r["mb_per_s"], 1),
                       "broker_cpu_s": round(cpu, 2), "broker_sys_s": round(kernel, 2),
                       "cpu_s_per_gb": round(cpu / gb, 2), "errors": r["errors"], "loadavg": os.getloadavg()[0]}
                if http_port:
                    reqs = produce_requests(http_port) - req0
                    row.update(produce_requests=reqs, records_per_request=round(a.records / max(reqs, 1), 2),
                               cpu_us_per_request=round(cpu / max(reqs, 1) * 1e6, 1))
                print(json.dumps(row), flush=True)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
