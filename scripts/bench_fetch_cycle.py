#!/usr/bin/env python3
"""The mixed load's request pattern in lockstep: broker CPU (or instructions) per Produce + woken Fetch.

    .venv/bin/python scripts/bench_fetch_cycle.py [--tree DIR]... [--cycles 5000] [--rounds 3]
                                                  [--callgrind [--keep DIR]] [--profile OUT.folded]
                                                  [--cprofile OUT.prof]

On a quiet machine `bench_scale.py mixed --rates 4000` has kbroker serve thousands of tiny requests
a second: 4 librdkafka producers (linger.ms 1: about one 1 KiB record per Produce) and 4 consumers
whose Fetches (v16, read_committed, fetch.wait.max.ms 100, fetch.min.bytes 1, 4 partitions each)
wait in the broker until an append to one of their partitions wakes them. On a loaded machine the
clients batch more, so the same load makes far fewer requests and the broker's CPU per GB moves
with the load. This script makes the quiet machine's pattern whatever the load: one connection
sends Produce v10 requests (acks=1, one batch of one keyed 1 KiB record) to the 16 partitions of a
topic in turn; four connections each keep one Fetch v16 waiting on their 4 partitions (the same
fields as librdkafka's: no fetch session, isolation level 1, MaxWaitMs 30 s so that none expires).
A cycle is one Produce, its answer, then the Fetch it woke answered and the consumer's next Fetch
sent (which waits: nothing new in its partitions until four cycles later). Every Fetch answer is
decoded and checked to carry the record just appended.

Per tree (interleaved, `--rounds` rounds of `--cycles` cycles on one broker per tree), it prints
the broker's CPU (its threads' run time from /proc/<pid>/task/*/schedstat) per cycle in us; with
`--callgrind` the broker runs under valgrind's callgrind and the figure is instructions per cycle
(load-independent; Python runs ~50 times slower, so use fewer cycles: 300 cycles x 3 rounds of two
trees take ~6 minutes; the brokers' retention check is every 300 s, so that time-driven work stays
out of the counts). `--profile` runs py-spy on the (first tree's) broker during the rounds: on a
loaded 2-CPU machine its samples land wherever the broker is preempted (a send that wakes the
client, above all), so read them as wall time, not CPU. `--cprofile` runs the first tree's broker
under cProfile timed by its loop thread's CPU time (each call then costs microseconds of its own:
compare functions of similar call counts only).

Figures of issue 23's mixed-load work: bench/NOTES.md, "Mixed load: CPU per request".
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_broker import free_port  # noqa: E402
from bench_mixed_split import schedstat  # noqa: E402
from callgrind_control import BenchBroker, Conn, frame, last_dump_total  # noqa: E402

from kbroker_protocol.api import decode_response  # noqa: E402
from kbroker_protocol.messages import REQUESTS  # noqa: E402
from kbroker_protocol.records import Record, build_batch  # noqa: E402

PARTITIONS = 16
CONSUMERS = 4
PRODUCE_VERSION = 10
FETCH_VERSION = 16
TOPIC = "cycle"
MAX_WAIT_MS = 30000  # none expires (librdkafka's 100 ms rarely does either at 1,000 records/s per consumer)
# The broker under cProfile timed by its loop thread's CPU time (not the wall clock: a send that
# wakes the client is preempted by it on this 2-CPU machine, and wall time charges that to the send).
CPROFILE = """
import cProfile, runpy, sys, time
out = sys.argv[1]
sys.argv = ["kbroker", *sys.argv[2:]]
prof = cProfile.Profile(time.thread_time)
prof.enable()
try:
    runpy.run_module("kbroker", run_name="__main__")
finally:
    prof.disable()
    prof.dump_stats(out)
"""


class Broker(BenchBroker):
    """kbroker from ``tree`` (under callgrind with instrumentation off, if asked) with the topic."""

    def __init__(self, name: str, tree: Path, work: Path, callgrind: bool, cprofile: Path | None = None) -> None:
        self.tree, self.callgrind = tree, callgrind
        port = free_port()
        self.data = work / f"data-{name}"
        cmd = [sys.executable, *(["-c", CPROFILE, str(cprofile)] if cprofile else ["-m", "kbroker"]), "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
               "--override", f"log.dirs={self.data}", "--log-level", "WARNING",
               "--override", "offsets.topic.replication.factor=1", "--override", "offsets.topic.num.partitions=1",
               "--override", f"log.segment.bytes={1 << 20}", "--override", f"log.retention.bytes={4 << 20}",
               "--override", "log.retention.check.interval.ms=300000"]
        if callgrind:
            cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={work}/{name}.%p", *cmd]
        super().__init__(name, tree, work, port, cmd, TOPIC, PARTITIONS)

    def instructions(self, label: str) -> int:
        self.control("-d", label)
        return last_dump_total(self.out, self.name, self.proc.pid)


class Load:
    """The producer and the four consumers' connections, and where each partition's log ends."""

    def __init__(self, broker: Broker) -> None:
        self.topic_id = broker.topic_id
        self.producer = Conn(broker.port)
        self.consumers = [Conn(broker.port) for _ in range(CONSUMERS)]
        self.ends = [0] * PARTITIONS
        self.cid = 0
        P = REQUESTS[0]
        value = b"x" * 1024
        self.produce = [frame(P(transactional_id=None, acks=1, timeout_ms=30000, topic_data=[P.TopicProduceData(
            name=TOPIC, partition_data=[P.TopicProduceData.PartitionProduceData(
                index=p, records=build_batch([Record(key=b"key-%04d" % p, value=value, timestamp=1_700_000_000_000)]))])]),
            0, PRODUCE_VERSION) for p in range(PARTITIONS)]
        self.cycle_no = 0
        self.empty: list[float] = []  # Fetches answered without the record: ms after they were sent
        self.sent_at = [0.0] * CONSUMERS
        for c in range(CONSUMERS):
            self.send_fetch(c)

    def send_fetch(self, c: int) -> None:
        self.sent_at[c] = time.monotonic()
        self.consumers[c].send(self.fetch(c))

    def fetch(self, c: int) -> bytes:
        F = REQUESTS[1]
        parts = [F.FetchTopic.FetchPartition(partition=p, current_leader_epoch=0, fetch_offset=self.ends[p],
                                             last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=1 << 20)
                 for p in range(c * 4, c * 4 + 4)]
        self.cid += 1
        return frame(F(replica_id=-1, max_wait_ms=MAX_WAIT_MS, min_bytes=1, max_bytes=52428800, isolation_level=1,
                       session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic_id=self.topic_id, partitions=parts)],
                       forgotten_topics_data=[], rack_id=""), 1, FETCH_VERSION, self.cid)

    def cycle(self) -> None:
        i = self.cycle_no
        self.cycle_no += 1
        c = i % CONSUMERS
        p = c * 4 + (i // CONSUMERS) % 4
        self.producer.send(self.produce[p])
        _h, produced = decode_response(self.producer.recv(), 0, PRODUCE_VERSION)
        answer = produced.responses[0].partition_responses[0]
        if answer.error_code or answer.base_offset != self.ends[p]:
            raise SystemExit(f"produce to {p}: error {answer.error_code}, offset {answer.base_offset}")
        while True:
            _h, fetched = decode_response(self.consumers[c].recv(), 1, FETCH_VERSION)
            got = [(q.partition_index, q.error_code, len(q.records or b"")) for t in fetched.responses
                   for q in t.partitions]
            if fetched.error_code or any(e for _q, e, _n in got):
                raise SystemExit(f"fetch of consumer {c} after an append to {p}: {fetched.error_code} {got}")
            if any(q == p and n > 0 for q, _e, n in got):
                break
            # answered without it (its MaxWaitMs passed before the append: a stalled broker): again
            self.empty.append((time.monotonic() - self.sent_at[c]) * 1000)
            self.send_fetch(c)
        self.ends[p] += 1
        self.send_fetch(c)

    def close(self) -> None:
        self.producer.close()
        for c in self.consumers:
            c.close()


def cpu_ns(pid: int) -> int:
    return schedstat(pid)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", type=Path, action="append", default=[], help="a source tree (default: this one)")
    ap.add_argument("--cycles", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=400)
    ap.add_argument("--callgrind", action="store_true", help="instructions per cycle (valgrind)")
    ap.add_argument("--profile", type=Path, help="py-spy raw output of the first tree's broker")
    ap.add_argument("--keep", type=Path, help="with --callgrind: keep callgrind's dumps in this folder")
    ap.add_argument("--cprofile", type=Path, help="run the first tree's broker under cProfile, its stats here")
    a = ap.parse_args()
    trees = [t.resolve() for t in (a.tree or [ROOT])]
    work = Path(tempfile.mkdtemp(prefix="fetch-cycle-"))
    if a.keep is not None:
        a.keep.mkdir(parents=True, exist_ok=True)
    brokers: list[Broker] = []
    loads: list[Load] = []
    results: dict[str, list[float]] = {}
    spy = None
    try:
        for i, tree in enumerate(trees):
            name = f"T{i + 1}"
            brokers.append(Broker(name, tree, work, a.callgrind, a.cprofile if i == 0 else None))
            loads.append(Load(brokers[-1]))
            for _ in range(a.warmup):
                loads[-1].cycle()
            print(f"# {name} = {tree}", file=sys.stderr)
        if a.profile is not None:
            spy = subprocess.Popen([str(ROOT / ".venv" / "bin" / "py-spy"), "record", "-p", str(brokers[0].proc.pid),
                                    "-r", "200", "-f", "raw", "--nonblocking", "-o", str(a.profile)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for r in range(a.rounds):
            order = list(range(len(brokers))) if r % 2 == 0 else list(range(len(brokers)))[::-1]
            for k in order:
                broker, load = brokers[k], loads[k]
                if a.callgrind:
                    broker.control("-z")
                    broker.control("-i", "on")
                else:
                    before = cpu_ns(broker.proc.pid)
                for _ in range(a.cycles):
                    load.cycle()
                if a.callgrind:
                    broker.control("-i", "off")
                    value = broker.instructions(f"r{r}") / a.cycles
                else:
                    value = (cpu_ns(broker.proc.pid) - before) / 1e3 / a.cycles
                results.setdefault(broker.name, []).append(value)
                if load.empty:
                    print(f"{broker.name}: {len(load.empty)} Fetches answered empty, after "
                          f"{', '.join(f'{ms:.0f}' for ms in load.empty[:10])} ms", file=sys.stderr)
                    load.empty.clear()
                print(f"{broker.name} round {r}: {value:,.1f} {'instructions' if a.callgrind else 'us CPU'} per cycle"
                      f" (load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait()
        for load in loads:
            load.close()
        for broker in brokers:
            broker.stop()
        if a.keep is not None:
            for dump in work.glob("T*.*"):
                shutil.copy(dump, a.keep)
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(results["T1"]) if "T1" in results else None
    for name, values in results.items():
        med = statistics.median(values)
        ratio = f"  {100 * (med / base - 1):+.1f} % against T1" if base and name != "T1" else ""
        print(f"{name}: median {med:,.1f} ({' / '.join(f'{v:,.1f}' for v in values)}){ratio}")


if __name__ == "__main__":
    main()
