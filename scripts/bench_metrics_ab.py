"""The cost of metrics on the hot path, measured so that a few per cent show on a shared machine
(issue 21: produce and consume throughput with ``/metrics`` scraped every second against metrics
off, same run; goal under 3 % apart).

``scripts/bench_metrics.py`` compares two brokers' throughput over blocks of tens of seconds; on
this project's 2-core machine shared by ~8 agents (load 10-20) its A/A control put two identical
brokers up to 6.4 % apart, so it cannot resolve 3 %. Throughput there follows the other agents'
load. What the load disturbs less is the broker process's own CPU time for a fixed amount of work
(every thread, user + system, from ``/proc/<pid>/task/*/schedstat``, in ns): a CPU-bound broker's
throughput is the inverse of its CPU per byte or per request, so the CPU ratio is the throughput
cost once the broker is the bottleneck. It still moves by 10-40 % from one second to the next here
(other processes' cache and the hypervisor's steal time inflate it), so the arms take turns in
bursts of tens of milliseconds, which puts them under the same conditions. (Hardware instruction
counts would be steadier still, but this virtual machine's kernel has no PMU: ``perf stat -e
instructions`` answers "not supported".)

Method:

- each *session* starts fresh brokers of every *arm* side by side (``python -m kbroker``, data in
  /dev/shm): ``A`` metrics off; ``A2`` metrics off, the A/A control (an identical broker: its
  difference from ``A`` is the method's own resolution, in the same run); ``B`` metrics on (the
  HTTP listener set, the console and its samplers running), its ``/metrics`` scraped every second
  for the whole session; each ``--tree DIR`` adds an arm ``C1``, ``C2``, ...: metrics on and scraped,
  run from another source tree (a ``git archive`` of another commit, or a variant under test);
- each arm keeps its clients for the session: a raw socket and a confluent-kafka producer
  (acks=all, linger 5 ms) and consumer (assigned, paused while the producer runs), none with
  ``--records 0``;
- a *round* gives every arm the same bursts, one arm after the other in an order rotating from
  round to round (each arm as often first, second and last): ``--small`` pipelined small Produce
  requests (10 records of 100 B, acks=1) then as many small Fetch requests (the per-request worst
  case); ``--raw`` pipelined Produce requests of one 64-record batch of 1 KiB records (the client
  sends prepared bytes: the broker is the bottleneck) then Fetch requests reading them back 16
  batches (~1 MiB) at a time; ``--records`` 1 KiB records produced with confluent-kafka (until
  flush() returns) and then consumed (the consumer resumed until it has them). The broker's CPU is
  read around each phase;
- the scrapes happen between bursts, once a second, and the broker's CPU is read around each: the
  scrape's cost is measured on its own (CPU per scrape), not mixed at random into the bursts. A
  CPU-bound broker (its event loop on one core) scraped every second loses that CPU share of its
  core; the per-work ratio plus that share is its throughput cost (``verdict``). The effects a
  scrape leaves behind (garbage collected later) still land in the bursts;
- per measure and round, each arm's CPU and its paired ratio to ``A``'s. Reported: the ratio of
  the totals over every round with a 95 % bootstrap interval (rounds resampled within their
  sessions), the median of the rounds' paired ratios with its interval, each session's ratio of
  the totals (every session's brokers are fresh processes: what differs from one process to the
  next is not in the interval, and shows as these spreading wider than it), each arm's idle CPU
  per second, and the throughputs (they follow the machine's load: read them with their spread).

- ``--scrape-in-bursts`` scrapes each metrics-on arm instead during its own bursts, from a thread,
  once per second of that arm's burst time: its bursts' CPU and throughput then include the scrapes
  (the throughput the issue names, scraped every second), and ``verdict`` reports every row, the
  throughputs too, as they are. On a machine where the broker gets a fraction of a core (here
  13-17 % of one during the bursts, at load 20-30) a scrape per second of wall time weighs that
  many times more against the work than on a broker with a core of its own;
- ``--hash-seed N`` gives every broker of session ``s`` the PYTHONHASHSEED ``N + s``: the arms of a
  session differ in one thing less.

Usage: ``.venv/bin/python scripts/bench_metrics_ab.py [--sessions 3] [--rounds 150] [--small 200]
[--raw 32] [--records 2000] [--pin CPUS] [--scrape-in-bursts] [--hash-seed N] [--tree DIR]...
[--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

# The code, by concern: bench_metrics_ab_frames.py (the raw Produce and Fetch frames),
# bench_metrics_ab_arm.py (an arm: its broker, clients and scrapes), bench_metrics_ab_work.py (a round's
# bursts), bench_metrics_ab_stats.py (the bootstrap, summary and verdict).
from bench_broker import cpu_model  # noqa: E402
from bench_metrics import cpu_seconds  # noqa: E402
from bench_metrics_ab_arm import Arm  # noqa: E402
from bench_metrics_ab_frames import RAW_PER_FETCH, RAW_RECORDS, RECORD, fetch_frame  # noqa: E402
from bench_metrics_ab_stats import summarise, verdict  # noqa: E402
from bench_metrics_ab_work import Work  # noqa: E402

# What scripts/instr_metrics.py uses of this module (its warm-up).
__all__ = ["RAW_PER_FETCH", "RAW_RECORDS", "RECORD", "Work", "fetch_frame"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=3, help="fresh sets of brokers")
    parser.add_argument("--rounds", type=int, default=150, help="rounds per session")
    parser.add_argument("--warm-rounds", type=int, default=5, help="rounds per session not counted")
    parser.add_argument("--small", type=int, default=200,
                        help="small Produce and as many small Fetch requests per arm per round (0: leave out)")
    parser.add_argument("--raw", type=int, default=32,
                        help="pipelined Produce requests of 64 KiB per arm per round, fetched back (0: leave out)")
    parser.add_argument("--records", type=int, default=2000,
                        help="1 KiB records produced and consumed with confluent-kafka per arm per round (0: leave out)")
    parser.add_argument("--pin", default=None, metavar="CPUS",
                        help="run the brokers under taskset -c CPUS and this process on the other CPUs")
    parser.add_argument("--tree", type=Path, action="append", default=[],
                        help="another arm (C1, C2, ...): metrics on and scraped, run from this source tree "
                             "(e.g. a git archive of another commit); repeatable")
    parser.add_argument("--scrape-in-bursts", action="store_true",
                        help="scrape the metrics-on arms during their own bursts (from a thread, once per second "
                             "of the arm's burst time), so that their bursts' CPU and throughput include the scrape, "
                             "instead of between bursts, measured apart")
    parser.add_argument("--hash-seed", type=int, default=None,
                        help="PYTHONHASHSEED for every broker, the same for every arm of a session: N + session "
                             "(-1: a random one per session); default: each process its own random seed")
    parser.add_argument("--no-aa", action="store_true", help="leave out the A/A control arm A2")
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="seconds every broker's idle CPU is read over at each session's start (B's: the scrapes)")
    parser.add_argument("--bootstrap", type=int, default=5000, help="bootstrap resamples")
    parser.add_argument("--json", type=Path, help="write every row and the summary here")
    parser.add_argument("--data-dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    args = parser.parse_args()
    arms = [Arm("A", False, ROOT)]
    if not args.no_aa:
        arms.append(Arm("A2", False, ROOT))
    arms.append(Arm("B", True, ROOT))
    for i, tree in enumerate(args.tree):
        arms.append(Arm(f"C{i + 1}", True, tree.resolve()))
    names = [arm.name for arm in arms]
    for arm in arms:
        arm.in_bursts = args.scrape_in_bursts
    if args.pin is not None:
        cpus = set(range(os.cpu_count() or 1))
        pinned = {int(c) for c in args.pin.split(",")}
        if cpus - pinned:
            os.sched_setaffinity(0, cpus - pinned)
    work = Work(args.small, args.raw, args.records)
    root = Path(tempfile.mkdtemp(prefix="kbroker-bench-metrics-ab-", dir=args.data_dir))
    rows: dict[str, list[list[dict[str, float]]]] = {name: [] for name in names}
    idle: dict[str, list[float]] = {name: [] for name in names}
    scrapes: dict[str, list[tuple[float, int]]] = {arm.name: [] for arm in arms if arm.metrics}
    session_seconds = 0.0
    started = time.time()
    loads = [os.getloadavg()[0]]
    round_loads: list[float] = []  # after each counted round
    print(f"machine: nproc={os.cpu_count()} cpu={cpu_model()!r}; arms {' '.join(names)}; {args.sessions} sessions "
          f"x {args.rounds} rounds (+{args.warm_rounds} warm-up); per arm and round {args.small} small Produce + "
          f"Fetch, {args.raw} x 64 KiB pipelined, {args.records} x 1 KiB with confluent-kafka; pin {args.pin}; "
          f"load {loads[0]:.1f}", flush=True)
    try:
        for s in range(args.sessions):
            data = root / f"session-{s}"
            for name in names:
                rows[name].append([])
            try:
                order = names[:]
                random.Random(s).shuffle(order)  # which arm starts first
                for arm in (a for name in order for a in arms if a.name == name):
                    arm.start(data, args.pin, None if args.hash_seed is None else
                              str(args.hash_seed + s if args.hash_seed >= 0 else random.randrange(2**32)),
                              clients=args.records > 0)
                session_start = time.monotonic()
                before = {arm.name: cpu_seconds(arm.pid) for arm in arms}
                deadline = time.monotonic() + args.idle_seconds
                while time.monotonic() < deadline:  # every broker idle over the same seconds (B scraped)
                    time.sleep(0.05)
                    for arm in arms:
                        arm.maybe_scrape(idle=True)
                for arm in arms:
                    idle[arm.name].append((cpu_seconds(arm.pid) - before[arm.name]) / args.idle_seconds * 1000)
                print(f"session {s + 1} idle broker CPU: " + ", ".join(f"{n} {idle[n][-1]:.2f}" for n in names)
                      + " ms/s", flush=True)
                for r in range(args.warm_rounds + args.rounds):
                    k = r % len(arms)
                    rotation = arms[k:] + arms[:k]
                    if (r // len(arms)) % 2:
                        rotation.reverse()
                    got = {}
                    for arm in rotation:
                        got[arm.name] = work.measures(work.burst(arm))
                        for other in arms:  # every second, between bursts
                            other.maybe_scrape()
                    for arm in arms:
                        arm.maybe_scrape()
                    if r < args.warm_rounds:
                        continue
                    round_loads.append(os.getloadavg()[0])
                    for name, row in got.items():
                        rows[name][-1].append(row)
                    if (r - args.warm_rounds) % 25 == 24:
                        print(f"session {s + 1} round {r + 1 - args.warm_rounds:3}: {time.time() - started:.0f} s, "
                              f"load {os.getloadavg()[0]:.1f}", flush=True)
                loads.append(os.getloadavg()[0])
                session_seconds += time.monotonic() - session_start
            finally:
                for arm in arms:
                    if arm.metrics:
                        scrapes[arm.name].extend(arm.scrapes)
                        arm.scrapes = []
                    arm.stop()
                shutil.rmtree(data, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{time.time() - started:.0f} s; load average (1 min) at the start and at each session's end: "
          f"{' '.join(f'{x:.1f}' for x in loads)}")
    if len(round_loads) >= 2:
        lq = statistics.quantiles(round_loads, n=4, method="inclusive")
        print(f"load average (1 min) after each round: median {lq[1]:.1f} [{lq[0]:.1f}-{lq[2]:.1f}] "
              f"({min(round_loads):.1f}-{max(round_loads):.1f})")
    if args.scrape_in_bursts:
        for arm in arms:
            if arm.metrics:
                print(f"scrapes of {arm.name} inside its bursts (by a process of their own): {arm.burst_scrapes}, "
                      f"{arm.burst_scrape_bytes / max(1, arm.burst_scrapes) / 1024:.1f} KiB each; those below: "
                      f"while idle, at each session's start")
    for name, done in scrapes.items():
        cpu = sorted(c * 1000 for c, _ in done)
        q1, q2, q3 = statistics.quantiles(cpu, n=4)
        print(f"scrapes of {name}: {len(done)} in {session_seconds:.0f} s of sessions ({len(done) / session_seconds:.2f}/s), "
              f"{statistics.mean(size for _, size in done) / 1024:.1f} KiB each; broker CPU per scrape: median {q2:.2f} ms "
              f"[{q1:.2f}-{q3:.2f}], mean {statistics.mean(cpu):.2f} ms: {statistics.mean(cpu) / 10:.2f} % of one core "
              f"at one scrape a second")
    print("idle broker CPU (ms/s), per session: " + "; ".join(
        f"{n} " + " ".join(f"{x:.2f}" for x in idle[n]) for n in names))
    summary = summarise(rows, names, args.bootstrap)
    verdict(summary, scrapes, names, args.scrape_in_bursts)
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         "summary": summary, "idle_ms_per_s": idle, "loads": loads, "round_loads": round_loads,
                                         "scrapes": scrapes, "session_seconds": session_seconds}, indent=1))


if __name__ == "__main__":
    main()
