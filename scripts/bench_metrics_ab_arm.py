"""One arm of scripts/bench_metrics_ab.py: a broker (metrics off or on, from this tree or another), its
clients, and its /metrics scrapes (between bursts, or by a scraper process of its own during them)."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import BinaryIO

from bench_broker import free_port, start_broker
from bench_metrics import cpu_seconds
from bench_metrics_ab_frames import PRODUCE_VERSION
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker_protocol.api import decode_response

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
