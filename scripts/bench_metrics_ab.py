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
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_broker import cpu_model, free_port, start_broker  # noqa: E402
from bench_metrics import cpu_seconds  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from kbroker_protocol.api import decode_response, encode_request  # noqa: E402
from kbroker_protocol.messages import REQUESTS, RequestHeader  # noqa: E402
from kbroker_protocol.records import Record, build_batch  # noqa: E402

PRODUCE_VERSION = 9
FETCH_VERSION = 12
RAW_RECORDS = 64  # records of 1 KiB per pipelined Produce batch
RAW_PER_FETCH = 16  # batches per pipelined Fetch
RECORD = 1024

# (row key, label, unit, format, higher is better)
MEASURES: tuple[tuple[str, str, str, str, bool], ...] = (
    ("small_produce_us", "broker CPU per small Produce request", "us", ".1f", False),
    ("small_fetch_us", "broker CPU per small Fetch request", "us", ".1f", False),
    ("raw_produce_cpu_gb", "broker CPU per GB produced (pipelined 64 KiB batches)", "s/GB", ".3f", False),
    ("raw_fetch_cpu_gb", "broker CPU per GB fetched (pipelined, 1 MiB)", "s/GB", ".3f", False),
    ("produce_cpu_gb", "broker CPU per GB produced (confluent-kafka, acks=all)", "s/GB", ".3f", False),
    ("consume_cpu_gb", "broker CPU per GB consumed (confluent-kafka)", "s/GB", ".3f", False),
    ("small_produce_rps", "small Produce requests per second", "/s", ".0f", True),
    ("small_fetch_rps", "small Fetch requests per second", "/s", ".0f", True),
    ("raw_produce_mbs", "produce throughput (pipelined)", "MB/s", ".1f", True),
    ("raw_fetch_mbs", "fetch throughput (pipelined)", "MB/s", ".1f", True),
    ("produce_mbs", "produce throughput (confluent-kafka)", "MB/s", ".1f", True),
    ("consume_mbs", "consume throughput (confluent-kafka)", "MB/s", ".1f", True),
)


def frame(request: object, key: int, version: int, cid: int = 0) -> bytes:
    header = RequestHeader(request_api_key=key, request_api_version=version, correlation_id=cid,
                           client_id="bench-metrics-ab")
    payload = encode_request(header, request)
    return struct.pack(">i", len(payload)) + payload


def produce_frame(topic: str, records: list[Record]) -> bytes:
    P = REQUESTS[0]
    return frame(P(transactional_id=None, acks=1, timeout_ms=30000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=build_batch(records))])]),
        0, PRODUCE_VERSION)


def fetch_frame(topic: str, offset: int, max_bytes: int) -> bytes:
    F = REQUESTS[1]
    part = F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=offset, last_fetched_epoch=-1,
                                       log_start_offset=-1, partition_max_bytes=max_bytes)
    return frame(F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, isolation_level=0, session_id=0,
                   session_epoch=-1, topics=[F.FetchTopic(topic=topic, partitions=[part])], forgotten_topics_data=[],
                   rack_id=""), 1, FETCH_VERSION)


# --scrape-in-bursts: an arm's scraper, a process of its own. Each line it reads opens a burst: the
# seconds until its next scrape is due; it then scrapes once a second until it reads "end", and
# answers "<scrapes> <the last one's start on the monotonic clock> <bytes>".
SCRAPER = r"""
import os, select, sys, time, urllib.request
url, buf = sys.argv[1], b""
def line(deadline):  # the next line from the pipe, or None at the deadline (unbuffered: select sees it all)
    global buf
    while b"\n" not in buf:
        if deadline is not None and not select.select([0], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return None
        chunk = os.read(0, 4096)
        if not chunk:
            sys.exit(0)
        buf += chunk
    got, buf = buf.split(b"\n", 1)
    return got
while True:
    due = time.monotonic() + float(line(None))
    count, last, size = 0, -1.0, 0
    while line(due) is None:  # until "end"
        last = time.monotonic()
        with urllib.request.urlopen(url, timeout=60) as resp:
            size += len(resp.read())
        count += 1
        due = last + 1.0
    os.write(1, f"{count} {last} {size}\n".encode())
"""


class Arm:
    """One broker of a session, its clients, and what it has been sent so far."""

    def __init__(self, name: str, metrics: bool, tree: Path) -> None:
        self.name, self.metrics, self.tree = name, metrics, tree
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.url = ""
        self.last_scrape = 0.0
        self.scrapes: list[tuple[float, int]] = []  # (broker CPU s, bytes) of each scrape
        self.sock: socket.socket | None = None
        self.reader: BinaryIO | None = None
        self.producer: Producer | None = None
        self.consumer: Consumer | None = None
        self.raw_end = 0  # records in topic "raw"
        self.consumed = 0
        # --scrape-in-bursts: scraped once per second of this arm's own burst time, from a thread,
        # during its bursts (what the bursts' CPU and throughput then include)
        self.in_bursts = False
        self.busy_since_scrape = 0.0  # burst seconds since the last scrape
        self.scraper: subprocess.Popen[bytes] | None = None
        self.burst_scrapes = 0
        self.burst_scrape_bytes = 0
        self.burst_start = 0.0

    def start(self, data: Path, pin: str | None, hash_seed: str | None = None, clients: bool = True) -> None:
        self.raw_end = 0  # a fresh broker, empty topics
        self.busy_since_scrape = 0.0
        self.port = free_port()
        http = f"http://127.0.0.1:{free_port()}" if self.metrics else ""
        # cwd and PYTHONPATH: the arm's tree comes before the editable install of this one.
        env = dict(os.environ, PYTHONPATH=str(self.tree))
        if hash_seed is not None:  # the same for every arm of a session: one less difference between processes
            env["PYTHONHASHSEED"] = hash_seed
        self.proc, _ready, _cpu = start_broker(data / self.name, self.port, None, env,
                                               [f"kbroker.http.listeners={http}"], self.tree)
        if pin is not None:  # every thread of the broker, and those it starts later
            subprocess.run(["taskset", "-a", "-c", "-p", pin, str(self.proc.pid)], check=True,
                           stdout=subprocess.DEVNULL)
        bootstrap = f"127.0.0.1:{self.port}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for topic in ("small", "raw", "bench"):
            admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        self.reader = self.sock.makefile("rb")
        if not clients:  # a new consumer costs its broker ~10 ms/s for a second or two (presumably finding its
            # coordinator), which the idle reading at the session's start caught for some arms only
            return self._started(http)
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                                  "batch.size": 1_000_000, "compression.type": "none"})
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                                  "fetch.wait.max.ms": 10, "fetch.max.bytes": 52_428_800,
                                  "max.partition.fetch.bytes": 10_485_760})
        self.consumer.assign([TopicPartition("bench", 0, 0)])
        self.consumer.pause([TopicPartition("bench", 0)])
        self._started(http)

    def _started(self, http: str) -> None:
        if self.metrics:
            self.url = f"{http}/metrics"
            self.scrape()
            if self.in_bursts:
                self.scraper = subprocess.Popen([sys.executable, "-c", SCRAPER, self.url], stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE)

    def scrape(self) -> None:
        """GET /metrics; the broker's CPU around it (the broker answers while the client waits)."""
        self.last_scrape = time.monotonic()
        cpu0 = cpu_seconds(self.pid)
        with urllib.request.urlopen(self.url, timeout=30) as resp:
            size = len(resp.read())
        self.scrapes.append((cpu_seconds(self.pid) - cpu0, size))

    def maybe_scrape(self, idle: bool = False) -> None:
        """Scrape if a second has passed since the last scrape (called between bursts, and while
        idle; with --scrape-in-bursts only while idle)."""
        if self.metrics and (idle or not self.in_bursts) and time.monotonic() - self.last_scrape >= 1.0:
            self.scrape()

    def burst_begins(self) -> None:
        """--scrape-in-bursts: tell this arm's scraper process when its next scrape is due (when
        the arm's burst time reaches a second since its last scrape); it scrapes while the burst
        goes on, once a second, until the burst ends. A process of its own, as Prometheus is: a
        thread of this process would take the GIL from the client's loop (tens of ms a scrape)."""
        self.burst_start = time.monotonic()
        if self.scraper is not None:
            assert self.scraper.stdin is not None
            self.scraper.stdin.write(f"{max(0.0, 1.0 - self.busy_since_scrape)}\n".encode())
            self.scraper.stdin.flush()

    def burst_ends(self) -> None:
        now = time.monotonic()
        self.busy_since_scrape += now - self.burst_start
        if self.scraper is not None:
            assert self.scraper.stdin is not None and self.scraper.stdout is not None
            self.scraper.stdin.write(b"end\n")
            self.scraper.stdin.flush()
            count, last, size = self.scraper.stdout.readline().split()
            if int(count):  # the last scrape's start, on the same monotonic clock
                self.busy_since_scrape = now - float(last)
                self.burst_scrapes += int(count)
                self.burst_scrape_bytes += int(size)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.scraper is not None:
            assert self.scraper.stdin is not None
            self.scraper.stdin.close()
            self.scraper.wait(30)
            self.scraper = None
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        self.producer = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(120)
            self.proc = None

    def pipelined(self, frames: list[bytes], window: int, check: bool,
                  short: int = 0) -> tuple[float, float, int]:
        """Send ``frames`` keeping ``window`` in flight: (broker CPU s, wall s, response bytes).
        ``check``: decode the (Produce) responses and stop on an error; else only read them.
        ``short``: a response smaller than this (a Fetch that found nothing: the high watermark had
        not reached the records yet) has its request sent again until it is not, counted in."""
        assert self.sock is not None and self.reader is not None
        sock, reader = self.sock, self.reader
        cpu0, t0 = cpu_seconds(self.pid), time.perf_counter()
        got = 0
        todo = frames
        while todo:
            again: list[bytes] = []
            sent = received = 0
            while received < len(todo):
                if sent < len(todo) and sent - received < window:
                    sock.sendall(b"".join(todo[sent:received + window]))
                    sent = min(len(todo), received + window)
                (size,) = struct.unpack(">i", reader.read(4))
                body = reader.read(size)
                if check:
                    for topic in decode_response(body, 0, PRODUCE_VERSION)[1].responses:
                        for part in topic.partition_responses:
                            if part.error_code:
                                raise SystemExit(f"produce error {part.error_code} from broker {self.name}")
                if size < short:
                    again.append(todo[received])
                else:
                    got += size
                received += 1
            todo = again
            if again and time.perf_counter() - t0 > 60:
                raise SystemExit(f"broker {self.name} answered {len(again)} Fetch requests with nothing for 60 s")
        # the clock first: reading the broker's CPU (a file per thread in /proc) is outside the
        # timed window at both ends; otherwise each phase's time includes one reading, whose cost
        # grows with the broker's threads (a metrics-on broker has libuv's pool for its HTTP listener)
        wall = time.perf_counter() - t0
        return cpu_seconds(self.pid) - cpu0, wall, got


class Work:
    """The prepared requests and payloads every arm is sent."""

    def __init__(self, small: int, raw: int, records: int) -> None:
        self.small, self.raw, self.records = small, raw, records
        ts = 1_700_000_000_000
        self.small_produce = produce_frame("small", [Record(value=b"v" * 100, timestamp=ts + i) for i in range(10)])
        self.small_fetch = fetch_frame("small", 0, 65536)
        self.raw_produce = produce_frame("raw", [Record(value=os.urandom(RECORD), timestamp=ts + i)
                                                 for i in range(RAW_RECORDS)])
        self.raw_batch_bytes = len(self.raw_produce)  # about: the frame holds one batch
        self.payloads = [os.urandom(RECORD) for _ in range(64)]

    def burst(self, arm: Arm) -> dict[str, float]:
        """Every phase once on one arm: CPU s and wall s per phase, and the work done."""
        row: dict[str, float] = {}
        arm.burst_begins()
        try:
            self._burst(arm, row)
        finally:
            arm.burst_ends()
        return row

    def _burst(self, arm: Arm, row: dict[str, float]) -> None:
        if self.small:
            row["small_produce_cpu"], row["small_produce_s"], _ = arm.pipelined([self.small_produce] * self.small, 64,
                                                                                True)
            row["small_fetch_cpu"], row["small_fetch_s"], _ = arm.pipelined([self.small_fetch] * self.small, 64, False)
        if self.raw:
            cpu, wall, _ = arm.pipelined([self.raw_produce] * self.raw, 16, True)
            row["raw_produce_cpu"], row["raw_produce_s"] = cpu, wall
            max_bytes = RAW_PER_FETCH * self.raw_batch_bytes
            fetches = [fetch_frame("raw", arm.raw_end + i * RAW_PER_FETCH * RAW_RECORDS, max_bytes)
                       for i in range((self.raw + RAW_PER_FETCH - 1) // RAW_PER_FETCH)]
            cpu, wall, got = arm.pipelined(fetches, 4, False, short=self.raw_batch_bytes // 2)
            if got < self.raw * (self.raw_batch_bytes - 200):
                raise SystemExit(f"fetched {got} bytes from broker {arm.name}, fewer than produced")
            row["raw_fetch_cpu"], row["raw_fetch_s"] = cpu, wall
            arm.raw_end += self.raw * RAW_RECORDS
        if self.records:
            self.client_burst(arm, row)

    def client_burst(self, arm: Arm, row: dict[str, float]) -> None:
        assert arm.producer is not None and arm.consumer is not None
        producer, consumer = arm.producer, arm.consumer
        errors: list[object] = []

        def on_delivery(err: object, _msg: object) -> None:
            if err is not None:
                errors.append(err)

        cpu0, t0 = cpu_seconds(arm.pid), time.perf_counter()
        for i in range(self.records):
            producer.produce("bench", self.payloads[i % 64], partition=0, on_delivery=on_delivery)
        producer.flush(60)
        t1 = time.perf_counter()  # (the clock before the CPU reading: see pipelined)
        cpu1 = cpu_seconds(arm.pid)
        t1b = time.perf_counter()
        if errors:
            raise SystemExit(f"{len(errors)} delivery errors from broker {arm.name}, first: {errors[0]}")
        consumer.resume([TopicPartition("bench", 0)])
        got = 0
        while got < self.records:
            for msg in consumer.consume(self.records - got, 10.0):
                error = msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise SystemExit(f"consume error from broker {arm.name}: {error}")
                    continue
                got += 1
        t2 = time.perf_counter()
        cpu2 = cpu_seconds(arm.pid)
        consumer.pause([TopicPartition("bench", 0)])
        row["produce_cpu"], row["produce_s"] = cpu1 - cpu0, t1 - t0
        row["consume_cpu"], row["consume_s"] = cpu2 - cpu1, t2 - t1b

    def measures(self, row: dict[str, float]) -> dict[str, float]:
        """One round's sums turned into the reported measures."""
        out: dict[str, float] = {}
        if self.small:
            out["small_produce_us"] = row["small_produce_cpu"] / self.small * 1e6
            out["small_fetch_us"] = row["small_fetch_cpu"] / self.small * 1e6
            out["small_produce_rps"] = self.small / row["small_produce_s"]
            out["small_fetch_rps"] = self.small / row["small_fetch_s"]
        if self.raw:
            gb = self.raw * RAW_RECORDS * RECORD / 1e9
            out["raw_produce_cpu_gb"] = row["raw_produce_cpu"] / gb
            out["raw_fetch_cpu_gb"] = row["raw_fetch_cpu"] / gb
            out["raw_produce_mbs"] = gb * 1000 / row["raw_produce_s"]
            out["raw_fetch_mbs"] = gb * 1000 / row["raw_fetch_s"]
        if self.records:
            gb = self.records * RECORD / 1e9
            out["produce_cpu_gb"] = row["produce_cpu"] / gb
            out["consume_cpu_gb"] = row["consume_cpu"] / gb
            out["produce_mbs"] = gb * 1000 / row["produce_s"]
            out["consume_mbs"] = gb * 1000 / row["consume_s"]
        return out


def bootstrap(sessions_a: list[list[float]], sessions_b: list[list[float]], reps: int,
              rng: random.Random) -> tuple[float, float, float, float, float, float]:
    """Paired rounds of two arms (per session, round by round): (ratio of the totals - 1, its 95 %
    interval; median of the rounds' ratios - 1, its 95 % interval), in per cent. The interval
    resamples each session's rounds with replacement (stratified: a resample keeps the sessions'
    sizes), the same rounds for both arms. The totals count a scrape that fell in a block in
    proportion; the median is robust to a round disturbed by the machine but mostly misses the
    scrape (a block without one is the common case)."""
    pairs = [list(zip(a, b, strict=True)) for a, b in zip(sessions_a, sessions_b, strict=True)]

    def stats(sample: list[tuple[float, float]]) -> tuple[float, float]:
        return ((sum(b for _, b in sample) / sum(a for a, _ in sample) - 1) * 100,
                (statistics.median(b / a for a, b in sample) - 1) * 100)

    pooled = [p for session in pairs for p in session]
    total, median = stats(pooled)
    totals, medians = [], []
    for _ in range(reps):
        sample: list[tuple[float, float]] = []
        for session in pairs:
            sample.extend(rng.choices(session, k=len(session)))
        t, m = stats(sample)
        totals.append(t)
        medians.append(m)
    totals.sort()
    medians.sort()
    lo, hi = int(0.025 * reps), int(0.975 * reps) - 1
    return total, totals[lo], totals[hi], median, medians[lo], medians[hi]


def summarise(rows: dict[str, list[list[dict[str, float]]]], arms: list[str], reps: int) -> dict[str, object]:
    """Per measure: each arm's median and spread, and each arm against A: the ratio of the totals
    and the median of the paired rounds' ratios, each with its bootstrap interval, in per cent."""
    rng = random.Random(21)
    out: dict[str, object] = {}
    for key, label, unit, fmt, higher in MEASURES:
        if key not in rows["A"][0][0]:
            continue
        entry: dict[str, object] = {"label": label, "unit": unit}
        print(f"{label} [{unit}]:")
        for arm in arms:
            values = [row[key] for session in rows[arm] for row in session]
            q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
            entry[arm] = {"median": q2, "q1": q1, "q3": q3, "min": min(values), "max": max(values)}
            line = f"  {arm:2} median {q2:{fmt}} [{q1:{fmt}}-{q3:{fmt}}] ({min(values):{fmt}}-{max(values):{fmt}})"
            if arm != "A":
                # a throughput's totals: the same MB over the summed seconds (bootstrap the times)
                def side(name: str, key: str = key, higher: bool = higher) -> list[list[float]]:
                    return [[1 / row[key] if higher else row[key] for row in s] for s in rows[name]]

                t, tl, th, m, ml, mh = bootstrap(side("A"), side(arm), reps, rng)
                if higher:
                    t, tl, th, m, ml, mh = (((1 / (1 + x / 100)) - 1) * 100 for x in (t, th, tl, m, mh, ml))
                # each session's ratio of the totals: its brokers are fresh processes, and what
                # differs from one process to the next (the interval above resamples rounds within
                # sessions, not sessions) shows as these spreading wider than the interval
                per_session = [(sum(b) / sum(a) - 1) * 100 for a, b in zip(side("A"), side(arm), strict=True)]
                if higher:
                    per_session = [((1 / (1 + x / 100)) - 1) * 100 for x in per_session]
                entry[f"{arm}/A"] = {"totals": t, "totals_low": tl, "totals_high": th, "median": m,
                                     "median_low": ml, "median_high": mh, "sessions": per_session}
                line += (f"; {arm}/A: totals {t:+.2f} % (95 % CI {tl:+.2f} to {th:+.2f}), median of paired "
                         f"ratios {m:+.2f} % ({ml:+.2f} to {mh:+.2f}); totals per session "
                         + " ".join(f"{x:+.1f}" for x in per_session) + " %")
            print(line)
        out[key] = entry
    return out


def verdict(summary: dict[str, object], scrapes: dict[str, list[tuple[float, int]]], names: list[str],
            in_bursts: bool = False) -> None:
    """Each metrics-on arm's throughput cost for a CPU-bound broker (its event loop on one core)
    scraped once a second: the per-work CPU ratio to A, and the scrapes' CPU share of the core.
    With ``in_bursts`` the bursts already hold the scrapes: the ratios as they are, throughputs
    included (a throughput's cost: how much lower than A's, in per cent)."""
    for name, done in scrapes.items():
        share = 0.0 if in_bursts else statistics.mean(c for c, _ in done)  # core-s per s at one scrape a second
        if in_bursts:
            print(f"{name} against A, scraped once per second of its bursts inside them (cost: more CPU per "
                  f"work, less throughput):")
        else:
            print(f"{name} against A, a CPU-bound broker scraped every second (per-work CPU ratio, then the "
                  f"scrape's {share * 100:.2f} % of the core added):")
        for entry in summary.values():
            assert isinstance(entry, dict)
            pair = entry.get(f"{name}/A")
            if not isinstance(pair, dict) or (entry["unit"] not in ("us", "s/GB") and not in_bursts):
                continue
            sign = -1 if entry["unit"] not in ("us", "s/GB") else 1  # a throughput: its loss is the cost

            def cost(ratio: float, share: float = share, sign: int = sign) -> float:
                return sign * ((1 + ratio / 100) / (1 - share) - 1) * 100

            lo, hi = sorted((cost(pair["totals_low"]), cost(pair["totals_high"])))
            mlo, mhi = sorted((sign * pair["median_low"], sign * pair["median_high"]))
            control = entry.get("A2/A")
            line = (f"  {entry['label']}: {cost(pair['totals']):+.2f} % (95 % CI {lo:+.2f} to {hi:+.2f}), paired "
                    f"median {sign * pair['median']:+.2f} % ({mlo:+.2f} to {mhi:+.2f})")
            if isinstance(control, dict):
                clo, chi = sorted((sign * control["totals_low"], sign * control["totals_high"]))
                line += (f"; A/A control {sign * control['totals']:+.2f} % ({clo:+.2f} to {chi:+.2f}), per session "
                         + " ".join(f"{sign * x:+.1f}" for x in control["sessions"]))
            line += "; per session " + " ".join(f"{cost(x):+.1f}" for x in pair["sessions"]) + " %"
            print(line)


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
