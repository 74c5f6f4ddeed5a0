"""Where kbroker's CPU goes, thread by thread and process by process, under a fixed load (issue 23).

Starts ``python -m kbroker`` and drives it with a produce load (``--mb`` MB of ``--record-size``
byte records, acks=all, optionally compressed by the producer; Kafka's ProducerPerformance by
default, scripts/bench_loads.py, or confluent-kafka), then a consume load reading them all back
(confluent-kafka, scripts/bench_broker.py).
Around each load it samples ``/proc/<pid>/task/*/stat`` (utime+stime of every thread of the broker)
and the same for every descendant process (the validation pool's forkserver and workers), and
prints per thread/process: CPU seconds, share of the broker's total, and CPU per GB moved.

The main thread (tid == pid) runs the event loop; the worker threads are named by their OS name
(``comm``, set by kbroker/log/thread_names.py: ``fsync_0``, ``validate_0``, ``log-maintenance``)
and tid; child processes by what they are (forkserver, validation pool worker, resource tracker).

Usage::

    .venv/bin/python scripts/bench_cores.py [--mb 200] [--record-size 1024] [--compression zstd]
        [--override key=value ...] [--reps 3]

``--tree DIR`` runs the broker from another checkout (a variant to compare with).
``--override`` is passed to the broker (e.g. ``log.flush.interval.messages=1``); ``--reps`` restarts the
broker for each repetition and reports the median and the spread (min-max) of the totals.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_loads as bl  # noqa: E402
from bench_broker import consume, free_port, produce, start_broker  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    """CPU seconds so far of each thread (key ``("thread", tid)``) and process (``("proc", pid)``)."""

    cpu: dict[tuple[str, int], float]
    names: dict[tuple[str, int], str]


def _stat_cpu(path: Path) -> tuple[str, float] | None:
    try:
        text = path.read_text()
    except OSError:
        return None  # gone between listing and reading
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return comm, (int(fields[11]) + int(fields[12])) / TICK


def _descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, depth) of every process below ``pid``: 1 = its child, 2 = a grandchild..."""
    out: list[tuple[int, int]] = []
    todo = [(pid, 0)]
    while todo:
        p, depth = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out.extend((k, depth + 1) for k in kids)
            todo.extend((k, depth + 1) for k in kids)
    return out


def _process_label(pid: int, depth: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        argv = b""
    if b"resource_tracker" in argv:
        kind = "multiprocessing resource tracker"
    elif b"forkserver" in argv:  # the validation pool's workers are forked by the forkserver
        kind = "forkserver" if depth == 1 else "validation pool worker"
    else:
        kind = " ".join(a.decode(errors="replace") for a in argv.split(b"\0")[:3])[:40]
    return f"process {pid}: {kind}"


def sample(pid: int) -> Sample:
    cpu: dict[tuple[str, int], float] = {}
    names: dict[tuple[str, int], str] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        got = _stat_cpu(task / "stat")
        if got is not None:
            tid = int(task.name)
            cpu[("thread", tid)] = got[1]
            names[("thread", tid)] = "main (event loop)" if tid == pid else f"{got[0]}[{tid}]"
    for child, depth in _descendants(pid):
        got = _stat_cpu(Path(f"/proc/{child}/stat"))  # whole process: its threads summed
        if got is not None:
            cpu[("proc", child)] = got[1]
            names[("proc", child)] = _process_label(child, depth)
    return Sample(cpu, names)


def delta(before: Sample, after: Sample) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in after.cpu.items():
        used = value - before.cpu.get(key, 0.0)
        if used > 0:
            out[after.names[key]] = used
    return out


def table(title: str, used: dict[str, float], seconds: float, gb: float) -> float:
    total = sum(used.values())
    print(f"\n{title}: {seconds:.2f} s wall, {gb * 1000 / seconds:.1f} MB/s; broker CPU {total:.2f} s = "
          f"{total / seconds * 100:.0f}% of one core, {total / gb:.1f} CPU-s/GB")
    print(f"  {'thread / process':<58} {'CPU s':>7} {'share':>6} {'% core':>7}")
    for name, cpu in sorted(used.items(), key=lambda kv: -kv[1]):
        if cpu >= 0.01:
            print(f"  {name:<58} {cpu:7.2f} {cpu / total * 100:5.1f}% {cpu / seconds * 100:6.0f}%")
    return total


def run_once(args: argparse.Namespace) -> dict[str, tuple[float, float, float]]:
    """One broker, the produce then consume load: {phase: (wall s, total CPU s, main-loop CPU s)}."""
    from confluent_kafka.admin import AdminClient, NewTopic

    total = args.mb * 1_000_000 // args.record_size
    gb = total * args.record_size / 1e9
    data = Path(tempfile.mkdtemp(prefix="kbroker-cores-"))
    port = free_port()
    proc, _ready, _cpu = start_broker(data, port, None, overrides=args.override, tree=args.tree)
    bootstrap = f"127.0.0.1:{port}"
    out: dict[str, tuple[float, float, float]] = {}
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result
        admin.create_topics([NewTopic("bench", num_partitions=1, replication_factor=1)])["bench"].result(30)
        s0 = sample(proc.pid)
        if args.driver == "java":
            perf = bl.producer_perf(bootstrap, "bench", total, "all", args.compression, args.record_size)
            produce_s = perf["records"] / perf["records_per_s"]  # the tool's own clock (no JVM start-up)
            print(f"ProducerPerformance: {perf['records_per_s']:,.0f} records/s, latency avg "
                  f"{perf['lat_avg_ms']:.0f} ms, p50 {perf['lat_p50_ms']} ms, p99 {perf['lat_p99_ms']} ms")
        else:
            produce_s = produce(bootstrap, "bench", total, args.record_size, 1, args.compression)
        s1 = sample(proc.pid)
        consume_s, _steady = consume(bootstrap, "bench", total, 1)
        s2 = sample(proc.pid)
        for phase, a, b, secs in (("produce", s0, s1, produce_s), ("consume", s1, s2, consume_s)):
            used = delta(a, b)
            cpu = table(f"{phase} ({args.compression}, {total} x {args.record_size} B)", used, secs, gb)
            out[phase] = (secs, cpu, used.get("main (event loop)", 0.0))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        shutil.rmtree(data, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="MB of records to produce, then consume")
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--compression", default="none", help="producer compression.type")
    parser.add_argument("--override", action="append", default=[], help="broker config key=value")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="run the broker from this checkout (e.g. an exported variant to compare)")
    parser.add_argument("--driver", choices=("java", "python"), default="java",
                        help="producer: Kafka's ProducerPerformance (batch.size 64 KiB, linger 5 ms) or "
                             "confluent-kafka from this process (its per-record Python loop is the bottleneck)")
    args = parser.parse_args()
    print(f"nproc={os.cpu_count()} load average at start={os.getloadavg()[0]:.1f} overrides={args.override}")
    runs = [run_once(args) for _ in range(args.reps)]
    gb = args.mb * 1_000_000 // args.record_size * args.record_size / 1e9
    print("\nsummary (median [min-max] over reps):")
    for phase in ("produce", "consume"):
        def stat(values: list[float]) -> str:
            return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"
        mbps = [gb * 1000 / r[phase][0] for r in runs]
        cpu_gb = [r[phase][1] / gb for r in runs]
        core = [r[phase][1] / r[phase][0] * 100 for r in runs]
        loop = [r[phase][2] / r[phase][1] * 100 for r in runs]
        print(f"  {phase}: MB/s {stat(mbps)}  CPU-s/GB {stat(cpu_gb)}  % of one core {stat(core)}  "
              f"main-loop share % {stat(loop)}")


if __name__ == "__main__":
    main()
