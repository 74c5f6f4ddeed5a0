"""Instructions per request with metrics off and on, counted by valgrind's callgrind (issue 21).

``scripts/bench_metrics_ab.py`` measures the broker's CPU time per request; on this project's
shared machine it resolves a few per cent only over hundreds of interleaved rounds. Counting the
instructions the broker executes for the same requests moves far less with the machine's load,
though not by nothing: a phase also counts the broker's time-driven work (timers,
ticks, the pokes below) over its wall time, which callgrind stretches ~50 times and the load further,
so phases with few requests (``--raw``) and arms that ran at different loads differ by several per
cent for that alone (scripts/README.md, "Metrics cost", session of 06:05-07:05 UTC):
this script starts ``python -m kbroker`` under ``valgrind --tool=callgrind`` with instrumentation
off, warms it up, then for each phase zeroes the counters, turns instrumentation on, sends the
phase's pipelined requests (the same frames as bench_metrics_ab's small Produce and small Fetch,
and with ``--raw N`` N of its 64 KiB Produce batches, then those read back by ~1 MiB Fetches), turns
it off and dumps the counts. Per arm
(``off``: metrics off; ``on``: ``kbroker.http.listeners`` set, the console running, ``/metrics``
scraped before each phase; each ``--tree DIR``: metrics on, from another source tree) it prints
instructions per request (or per MB) and the ratio to ``off``. Instruction counts leave out
what a CPU-time measure also sees (cache misses, branch mispredictions, allocation patterns'
effects on them), nor the kernel's work (a large Fetch's sendfile: not measured here): read them
as the code's own work, next to bench_metrics_ab's CPU ratios.

callgrind takes commands (``callgrind_control``) only while the broker runs code, so a second
connection sends ApiVersions requests every 50 ms while a command waits (one or two of them can
fall inside a phase: ~0.1 % of a 500-request phase of small requests). Each arm takes a minute or two (Python under callgrind runs ~50 times slower).

Usage: ``.venv/bin/python scripts/instr_metrics.py [--requests 500] [--repeat 2] [--tree DIR]...``
``--plain-tree DIR`` adds an arm with metrics off from another tree (``P1``...; a tree from before
metrics ignores the empty ``kbroker.http.listeners`` as an unknown key); ``--no-on`` leaves out this
tree's metrics-on arm, so ``--no-on --plain-tree OLD`` compares OLD with this tree, both plain.
``--keep DIR`` keeps callgrind's dump of each phase there (``callgrind_annotate`` reads them:
C-level functions only, the Python code shows as the interpreter's eval loop).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_broker import free_port, metadata_ok  # noqa: E402
from bench_metrics_ab import RAW_PER_FETCH, RAW_RECORDS, RECORD, Work, fetch_frame  # noqa: E402  (warm-up)
from callgrind_control import callgrind_control, last_dump_total, stop_broker  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from tree_path import tree_pythonpath  # noqa: E402

from kbroker_protocol.api import encode_request  # noqa: E402
from kbroker_protocol.messages import REQUESTS, RequestHeader  # noqa: E402


def api_versions_frame() -> bytes:
    payload = encode_request(RequestHeader(request_api_key=18, request_api_version=0, correlation_id=0,
                                           client_id="poke"), REQUESTS[18]())
    return struct.pack(">i", len(payload)) + payload


class Broker:
    def __init__(self, name: str, metrics: bool, tree: Path, out: Path) -> None:
        self.name, self.metrics, self.tree, self.out = name, metrics, tree, out
        self.port = free_port()
        self.url = ""
        self.raw_end = 0
        http = f"http://127.0.0.1:{free_port()}" if metrics else ""
        if metrics:
            self.url = f"{http}/metrics"
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/{name}.%p",
               sys.executable, "-m", "kbroker", "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
               "--override", f"log.dirs={out / ('data-' + name)}", "--override", f"kbroker.http.listeners={http}",
               "--log-level", "WARNING"]
        env = dict(os.environ, PYTHONPATH=tree_pythonpath(tree), PYTHONHASHSEED="0")  # the tree's own codec
        self.proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 600
        while not metadata_ok(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"broker {name} did not start")
            time.sleep(0.2)
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.port}"})
        for topic in ("small", "raw"):
            admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(120)
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=300)
        self.reader = self.sock.makefile("rb")
        self.poke_sock = socket.create_connection(("127.0.0.1", self.port), timeout=300)
        self.poke_reader = self.poke_sock.makefile("rb")
        self.poke_frame = api_versions_frame()

    def pipelined(self, frames: list[bytes], window: int = 64) -> int:
        sent = received = got = 0
        while received < len(frames):
            if sent < len(frames) and sent - received < window:
                self.sock.sendall(b"".join(frames[sent:received + window]))
                sent = min(len(frames), received + window)
            (size,) = struct.unpack(">i", self.reader.read(4))
            self.reader.read(size)
            got += size
            received += 1
        return got

    def control(self, *args: str) -> None:
        """callgrind_control, poking the broker with requests until it has taken the command."""
        def poke() -> None:
            self.poke_sock.sendall(self.poke_frame)
            (size,) = struct.unpack(">i", self.poke_reader.read(4))
            self.poke_reader.read(size)

        callgrind_control(self.proc.pid, args, poke)

    def scrape(self) -> None:
        if self.url:
            with urllib.request.urlopen(self.url, timeout=120) as resp:
                resp.read()

    def phase(self, name: str, frames: list[bytes]) -> int:
        """Instructions the broker ran for ``frames`` (callgrind's Ir of the phase's dump)."""
        self.scrape()
        self.control("-z")
        self.control("-i", "on")
        self.pipelined(frames)
        self.control("-i", "off")
        self.control("-d", name)
        return last_dump_total(self.out, self.name, self.proc.pid)

    def stop(self) -> None:
        self.sock.close()
        self.poke_sock.close()
        stop_broker(self.proc)


def run_arm(name: str, metrics: bool, tree: Path, out: Path, work: Work, requests: int, repeat: int,
            raw: int) -> dict[str, list[float]]:
    broker = Broker(name, metrics, tree, out)
    rows: dict[str, list[float]] = {}
    try:
        # warm-up: every code path once, the log past its first batches
        broker.pipelined([work.small_produce] * 100)
        broker.pipelined([work.small_fetch] * 100)
        broker.pipelined([work.raw_produce] * 4)
        broker.pipelined([fetch_frame("raw", 0, RAW_PER_FETCH * RAW_RECORDS * (RECORD + 100))])
        broker.raw_end = 4 * RAW_RECORDS
        for _ in range(repeat):
            ir = broker.phase("small_produce", [work.small_produce] * requests)
            rows.setdefault("instructions per small Produce", []).append(ir / requests)
            ir = broker.phase("small_fetch", [work.small_fetch] * requests)
            rows.setdefault("instructions per small Fetch", []).append(ir / requests)
            if raw:
                ir = broker.phase("raw_produce", [work.raw_produce] * raw)
                rows.setdefault("instructions per MB produced (64 KiB batches)", []).append(
                    ir / (raw * len(work.raw_produce) / 1e6))
                # read them back as bench_metrics_ab does: Fetches of 16 batches (~1 MiB)
                max_bytes = RAW_PER_FETCH * work.raw_batch_bytes
                fetches = [fetch_frame("raw", broker.raw_end + i * RAW_PER_FETCH * RAW_RECORDS, max_bytes)
                           for i in range((raw + RAW_PER_FETCH - 1) // RAW_PER_FETCH)]
                last = fetch_frame("raw", broker.raw_end + (raw - 1) * RAW_RECORDS, max_bytes)
                deadline = time.monotonic() + 120
                while broker.pipelined([last]) < work.raw_batch_bytes // 2:  # the high watermark past them
                    if time.monotonic() > deadline:
                        raise SystemExit("the produced batches did not become readable")
                ir = broker.phase("raw_fetch", fetches)
                broker.raw_end += raw * RAW_RECORDS
                rows.setdefault("instructions per MB fetched (~1 MiB Fetches)", []).append(
                    ir / (raw * len(work.raw_produce) / 1e6))
    finally:
        broker.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="small requests per phase")
    parser.add_argument("--raw", type=int, default=0, help="64 KiB Produce batches per phase (0: none)")
    parser.add_argument("--repeat", type=int, default=2, help="phases of each kind per broker")
    parser.add_argument("--tree", type=Path, action="append", default=[], help="another source tree (metrics on)")
    parser.add_argument("--plain-tree", type=Path, action="append", default=[],
                        help="another source tree with metrics off (e.g. an older commit, issue 14's before/after)")
    parser.add_argument("--no-off", action="store_true", help="leave out the metrics-off arm")
    parser.add_argument("--no-on", action="store_true", help="leave out the metrics-on arm of this tree")
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps in this folder")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    out = args.keep or Path(tempfile.mkdtemp(prefix="instr-metrics-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    out.mkdir(parents=True, exist_ok=True)
    work = Work(args.requests, args.raw, 0)
    arms: list[tuple[str, bool, Path]] = []
    if not args.no_off:
        arms.append(("off", False, ROOT))
    if not args.no_on:
        arms.append(("on", True, ROOT))
    arms += [(f"C{i + 1}", True, tree.resolve()) for i, tree in enumerate(args.tree)]
    arms += [(f"P{i + 1}", False, tree.resolve()) for i, tree in enumerate(args.plain_tree)]
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for name, metrics, tree in arms:
            started = time.monotonic()
            results[name] = run_arm(name, metrics, tree, out, work, args.requests, args.repeat, args.raw)
            print(f"# arm {name} ({tree}) done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)
    base = results.get("off")
    for measure in next(iter(results.values())):
        print(measure)
        for name, rows in results.items():
            values = rows[measure]
            mean = sum(values) / len(values)
            spread = " / ".join(f"{v:,.0f}" for v in values)
            ratio = ""
            if base is not None and name != "off":
                b = sum(base[measure]) / len(base[measure])
                ratio = f"  {100 * (mean / b - 1):+.2f} % against off"
            print(f"  {name:4} {mean:14,.0f}  ({spread}){ratio}")


if __name__ == "__main__":
    main()
