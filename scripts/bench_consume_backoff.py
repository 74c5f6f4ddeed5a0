#!/usr/bin/env python3
"""The consume row's reads, each with its librdkafka fetch log: Fetches, records per answer, and
the fetch back-offs of a full local queue (issue 23).

    .venv/bin/python scripts/bench_consume_backoff.py [--brokers kbroker,kafka] [--rounds 4]
        [--records 1000000] [--variant NAME=KEY=VALUE[,KEY=VALUE]]... [--out FILE]

Every broker (kbroker from this worktree, Apache Kafka 4.4 with scripts/reference_kafka.py's jars;
both with bench_brokers.BENCH_SETTINGS) is started once and gets a 1-partition topic `consume` of
--records records of 1,024 bytes written by Kafka's ProducerPerformance (batch.size 65536, linger.ms
5, acks 1: bench_vs_kafka.py's fill). Then --rounds rounds; in each, for every variant, every broker
(order alternating between rounds) is read once by the benchmark's own reader,
`bench_loads.py consume` (assign() from offset 0; fetch.max.bytes 50 MiB, max.partition.fetch.bytes
1 MiB, queued.max.messages.kbytes 256 MiB, fetch.wait.max.ms 100; queued.min.messages and
fetch.queue.backoff.ms at librdkafka's defaults, 100,000 and 1,000 ms), with `debug=fetch` added
and its log kept. Variant `bench` adds nothing else; `--variant NAME=KEY=VALUE,...` adds a variant
with those librdkafka settings (default: `backoff10` = fetch.queue.backoff.ms=10).

Per read, from the client's log: Fetch requests sent, records per answer (the "Enqueue N
message(s)" lines), the back-offs librdkafka took because the local queue held
queued.min.messages or queued.max.messages.kbytes ("Fetch backoff for 1000ms: Local: Queue full")
and how long each kept the partition from being fetched (the back-off line to the next "is
fetchable" line, and the records still queued then); and the worker's MB/s, and the broker's CPU seconds during the read.

Why: librdkafka stops fetching a partition whose local queue holds queued.min.messages records and
does not look at it again for fetch.queue.backoff.ms, even after the application has emptied the
queue. With one partition and the Python consume loop slower than the fetcher, a read's queue
reaches 100,000 records in some reads and not in others, and a read that reaches it stands still
for most of a second: the consume row's two groups (bench/NOTES.md).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_brokers as bb  # noqa: E402
import bench_loads as bl  # noqa: E402

ROOT = bb.ROOT
log = bb.log
TOPIC = "consume"

_TS = r"^%7\|(\d+\.\d+)\|"
_FETCH_RE = re.compile(_TS + r"FETCH\|.*Fetch topic \S+ \[0\] at offset (\d+)")
_ENQ_RE = re.compile(_TS + r"CONSUME\|.*Enqueue (\d+) message\(s\)")
_BACKOFF_RE = re.compile(_TS + r"BACKOFF\|.*Fetch backoff for (\d+)ms: Local: Queue full")
_FETCHABLE_RE = re.compile(_TS + r"FETCH\|.*\((\d+)/\d+ msgs, .*\) is fetchable")


def parse_fetch_log(text: str) -> dict:
    """Counts of one read's librdkafka `debug=fetch` log (one partition)."""
    fetches = 0
    answers: list[int] = []
    backoffs: list[float] = []
    paused: list[float] = []
    queued_at_resume: list[int] = []
    waiting: float | None = None
    for line in text.splitlines():
        if m := _FETCH_RE.match(line):
            fetches += 1
        elif m := _ENQ_RE.match(line):
            answers.append(int(m[2]))
        elif m := _BACKOFF_RE.match(line):
            backoffs.append(float(m[1]))
            if waiting is None:
                waiting = float(m[1])
        elif (m := _FETCHABLE_RE.match(line)) and waiting is not None:
            paused.append(float(m[1]) - waiting)
            queued_at_resume.append(int(m[2]))
            waiting = None
    return {"fetches": fetches, "answers": len(answers), "records_per_answer": median(answers) if answers else 0,
            "queue_full_backoffs": len(backoffs), "backoff_paused_s": round(sum(paused), 3),
            "queued_at_resume": queued_at_resume}


def read(b: bb.Broker, records: int, settings: dict[str, str], log_path: Path) -> dict:
    """One `bench_loads.py consume` read of the topic with `debug=fetch` (its log to log_path)."""
    cmd = [bl.PY, str(ROOT / "scripts" / "bench_loads.py"), "consume", "--bootstrap", b.bootstrap, "--topic", TOPIC,
           "--records", str(records), "--timeout", "900", "--config", "debug=fetch"]
    for k, v in settings.items():
        cmd += ["--config", f"{k}={v}"]
    load = Path("/proc/loadavg").read_text().split()[0]
    cpu0 = bb.cpu_seconds(b.pid)
    with open(log_path, "w") as err:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=1000)
    cpu = bb.cpu_seconds(b.pid) - cpu0
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"consume worker failed ({res.returncode}); its log: {log_path}")
    r = json.loads(lines[-1])
    if not r["complete"]:
        raise RuntimeError(f"consumed only {r['records']} of {records} records")
    out = {"mb_per_s": round(r["mb_per_s"], 1), "seconds": round(r["seconds"], 3),
           "broker_cpu_s": round(cpu, 2), "loadavg_before": load}
    out.update(parse_fetch_log(log_path.read_text(errors="replace")))
    return out


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    name, _, kvs = spec.partition("=")
    settings = dict(kv.split("=", 1) for kv in kvs.split(",") if kv)
    return name, settings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", default="kbroker,kafka")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE]")
    ap.add_argument("--out", type=Path, help="JSON of every read")
    ap.add_argument("--keep-logs", type=Path, help="a directory to keep the client logs in")
    ap.add_argument("--data-dir", default=None, help="where the brokers' data dirs go (default: the temp dir)")
    a = ap.parse_args()
    variants = dict([("bench", {})] + [parse_variant(v) for v in (a.variant or ["backoff10=fetch.queue.backoff.ms=10"])])
    names = [n for n in a.brokers.split(",") if n]
    base = Path(tempfile.mkdtemp(prefix="consume-backoff-", dir=a.data_dir))
    logs = a.keep_logs or base / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    bl.ensure_tools()
    results: dict = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "records": a.records,
                     "variants": variants, "reads": []}
    brokers: dict[str, bb.Broker] = {}
    try:
        for n in names:
            brokers[n] = bb.KBroker(ROOT, base) if n == "kbroker" else bb.Kafka(base)
        for n, b in brokers.items():
            bl.create_topic(b.bootstrap, TOPIC, 1)
            fill = bl.producer_perf(b.bootstrap, TOPIC, a.records, "1", "none")
            log(f"{n}: {a.records} records written at {fill['mb_per_s']:.0f} MB/s")
        for rnd in range(a.rounds):
            order = list(brokers.items()) if rnd % 2 == 0 else list(reversed(brokers.items()))
            for vname, settings in variants.items():
                for n, b in order:
                    path = logs / f"{n}-{vname}-{rnd}.log"
                    r = read(b, a.records, settings, path)
                    r.update(broker=n, variant=vname, round=rnd)
                    results["reads"].append(r)
                    log(f"round {rnd} {vname} {n}: {r['mb_per_s']} MB/s, {r['fetches']} fetches, "
                        f"{r['records_per_answer']:.0f} records/answer, {r['queue_full_backoffs']} queue-full "
                        f"back-off(s) pausing {r['backoff_paused_s']} s, broker CPU {r['broker_cpu_s']} s "
                        f"(load {r['loadavg_before']})")
                    time.sleep(0.5)  # (the reader's close and the broker's connection teardown settle)
    finally:
        for b in brokers.values():
            b.stop()
        if a.keep_logs is None:
            shutil.rmtree(base, ignore_errors=True)
    def col(rs: list[dict], key: str, fmt: str = "{}") -> str:
        return " / ".join(fmt.format(r[key]) for r in rs)

    print("| broker | variant | reads | MB/s per read | median | queue-full back-offs per read | "
          "of them ending with the queue empty | paused by back-offs, s | Fetches per read | records per answer |")
    print("|---|---|---:|---|---:|---|---|---|---|---|")
    for n in names:
        for vname in variants:
            rs = [r for r in results["reads"] if r["broker"] == n and r["variant"] == vname]
            if not rs:
                continue
            print(f"| {n} | {vname} | {len(rs)} | {col(rs, 'mb_per_s', '{:.0f}')} | "
                  f"{median(r['mb_per_s'] for r in rs):.0f} | {col(rs, 'queue_full_backoffs')} | "
                  f"{' / '.join(str(r['queued_at_resume'].count(0)) for r in rs)} | "
                  f"{col(rs, 'backoff_paused_s')} | {col(rs, 'fetches')} | {col(rs, 'records_per_answer', '{:.0f}')} |")
    if a.out:
        a.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
