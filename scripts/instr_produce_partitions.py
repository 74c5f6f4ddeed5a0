#!/usr/bin/env python3
"""Instructions per produced batch with one partition per Produce request and with 16 (issue 23).

    .venv/bin/python scripts/instr_produce_partitions.py [--tree DIR]... [--batches 320] [--rounds 3]
                                                         [--shapes big,small] [--per 1,16] [--idle 10]
                                                         [--keep DIR] [--cpu | --cprofile OUT.prof]
    .venv/bin/python scripts/instr_produce_partitions.py --pieces 1000

bench_vs_kafka.py's "produce, N partition(s)" row runs Kafka's ProducerPerformance (1 KiB values,
no keys, batch.size 64 KiB, linger.ms 5, acks=1): with one partition every Produce request carries
one batch of ~63 records; with 16 partitions the sticky partitioner fills one partition's batch
after another and a request carries one batch for each partition with a full batch, ~10-15 of
them (counted on kbroker, 2026-12-07 22:52 UTC: 7,954 batches of 62.9 records in 822 requests).
librdkafka producers with keys (bench_scale.py ceiling) send the other extreme: a request with a
small batch for each of the 16 partitions.

This script sends those shapes to ``python -m kbroker`` under valgrind's callgrind (the broker's
default settings: no roll, no retention inside a phase; instrumentation on only during a phase)
over one connection, pipelined in groups of 5 requests (``max.in.flight.requests.per.connection``),
each answer checked (no error, the expected base offset). Per shape, two phases with the same
batches: ``1``, one batch per request (``--batches`` requests, partitions in turn) and ``16``, one
batch for each of the 16 partitions per request (``--batches``/16 requests). Shapes: ``big``,
batches of 63 records of 1 KiB without key (ProducerPerformance's), ``small``, batches of one
keyed 1 KiB record (librdkafka's with keys). Produce v13 (topic ids, Kafka 4.4's Java client).
A phase also counts the broker's time-driven work (timers, the
raft and heartbeat ticks, the pokes callgrind_control needs) over its wall time, which callgrind and
the machine's load stretch: each round first measures ``--idle`` seconds of an idle broker, and
that rate times each phase's wall time is taken off the phase. Printed: instructions per batch per
phase, per tree, the median of ``--rounds`` rounds (trees interleaved), and what a request costs beyond its batches ((phase 1 - phase 16) x batches / (batches
- requests of phase 16)). ``--cpu`` runs without valgrind and prints the broker's CPU microseconds
(its threads' schedstat) per batch instead: load-dependent, for a rough look only. ``--cprofile F``
runs the first tree's broker under cProfile timed by its loop thread's CPU time, without valgrind
(each call then costs microseconds of its own: compare functions of similar call counts only).

``--pieces N`` instead runs this tree's pieces of one partition's path (decode of a 1- and a
16-partition request, the batch checks, the validation policy, the record walk, the log append, the
high watermark, the 16-partition answer, for a keyed one-record 1 KiB batch) N times each in one
process under callgrind, a dump after each (``--dump-before=os_getppid``), and prints instructions
per call.

Python under callgrind runs ~50 times slower: 320 batches of each shape, 3 rounds, two trees take
~5 minutes. Figures: scripts/README.md, "Produce cost per partition".
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_broker import free_port  # noqa: E402
from bench_fetch_cycle import CPROFILE  # noqa: E402
from bench_mixed_split import schedstat  # noqa: E402
from callgrind_control import BenchBroker, Conn, frame, last_dump_total  # noqa: E402

from kbroker_protocol.api import decode_response  # noqa: E402
from kbroker_protocol.messages import REQUESTS  # noqa: E402
from kbroker_protocol.records import Record, build_batch  # noqa: E402

PARTITIONS = 16
VERSION = 13
TOPIC = "parts"
IN_FLIGHT = 5
SHAPES = {"big": (63, False), "small": (1, True)}  # records per batch, keyed


class Broker(BenchBroker):
    """kbroker from ``tree`` (under callgrind with instrumentation off unless ``cpu``) with the topic."""

    def __init__(self, name: str, tree: Path, work: Path, cpu: bool, cprofile: Path | None = None) -> None:
        self.cpu = cpu or cprofile is not None
        port = free_port()
        cmd = [sys.executable, *(["-c", CPROFILE, str(cprofile)] if cprofile else ["-m", "kbroker"]), "--log-level", "WARNING",
               "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
               "--override", f"log.dirs={work / f'data-{name}'}",
               "--override", "offsets.topic.replication.factor=1", "--override", "offsets.topic.num.partitions=1",
               "--override", "log.retention.check.interval.ms=300000"]
        if not self.cpu:
            cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={work}/{name}.%p", *cmd]
        super().__init__(name, tree, work, port, cmd, TOPIC, PARTITIONS)

    def start(self) -> None:
        if self.cpu:
            self._cpu0 = schedstat(self.proc.pid)[0]
        else:
            self.control("-z")
            self.control("-i", "on")

    def stop_phase(self, label: str) -> float:
        """Instructions (or CPU us) since start()."""
        if self.cpu:
            return (schedstat(self.proc.pid)[0] - self._cpu0) / 1e3
        self.control("-i", "off")
        self.control("-d", label)
        return float(last_dump_total(self.out, self.name, self.proc.pid))

    def stop(self) -> None:
        if self.cpu:
            self.poke.close()
            self.proc.terminate()
            self.proc.wait(60)
        else:
            super().stop()


class Load:
    """One producer connection and where each partition's log ends."""

    def __init__(self, broker: Broker) -> None:
        self.topic_id = broker.topic_id
        self.conn = Conn(broker.port)
        self.ends = [0] * PARTITIONS
        self.cid = 0
        value = bytes(range(256)) * 4
        self.batches: dict[str, list[bytes]] = {}
        for shape, (records, keyed) in SHAPES.items():
            self.batches[shape] = [build_batch([Record(key=b"key-%04d" % (p * 1000 + i) if keyed else None, value=value,
                                                       timestamp=1_700_000_000_000 + i) for i in range(records)])
                                   for p in range(PARTITIONS)]

    def request(self, shape: str, parts: list[int]) -> bytes:
        P = REQUESTS[0]
        self.cid += 1
        data = [P.TopicProduceData.PartitionProduceData(index=p, records=self.batches[shape][p]) for p in parts]
        return frame(P(transactional_id=None, acks=1, timeout_ms=30000,
                       topic_data=[P.TopicProduceData(name="", topic_id=self.topic_id, partition_data=data)]),
                     0, VERSION, self.cid)

    def frames(self, shape: str, per_request: int, batches: int) -> list[tuple[bytes, list[int]]]:
        out = []
        for i in range(0, batches, per_request):
            parts = [(i + k) % PARTITIONS for k in range(per_request)]
            out.append((self.request(shape, parts), parts))
        return out

    def run(self, shape: str, frames: list[tuple[bytes, list[int]]]) -> None:
        """Send the frames pipelined, IN_FLIGHT at a time, and check every answer."""
        records = SHAPES[shape][0]
        for i in range(0, len(frames), IN_FLIGHT):
            group = frames[i:i + IN_FLIGHT]
            self.conn.send(b"".join(f for f, _parts in group))
            for _f, parts in group:
                _h, resp = decode_response(self.conn.recv(), 0, VERSION)
                got = {q.index: (q.error_code, q.base_offset) for t in resp.responses for q in t.partition_responses}
                for p in parts:
                    if got.get(p) != (0, self.ends[p]):
                        raise SystemExit(f"produce to {p}: {got.get(p)}, expected (0, {self.ends[p]})")
                    self.ends[p] += records

    def close(self) -> None:
        self.conn.close()


def pieces_child(n: int) -> None:
    """Under callgrind (``--dump-before=os_getppid``): each piece ``n`` times, ``os.getppid()``
    after each, so that every piece's calls are one dump; prints the pieces' names."""
    from kbroker.api.produce_answer import SingleAnswer, TopicAnswer
    from kbroker.log import LogConfig, PartitionLog
    from kbroker.replication.validation import (
        INLINE_DECOMPRESSED_BYTES,
        INLINE_RECORDS,
        check_batch_header,
        check_request_batch,
        validation_policy,
    )
    from kbroker_protocol.api import decode_request, encode_request, encode_response
    from kbroker_protocol.messages import RequestHeader
    from kbroker_protocol.messages.produce import ProduceResponse
    from kbroker_protocol.record_validation import validate_records

    value = bytes(range(256)) * 4
    batch = build_batch([Record(key=b"key-0001", value=value, timestamp=1_700_000_000_000)])
    P = REQUESTS[0]
    topic_id = uuid.uuid4()

    def request(count: int) -> bytes:
        data = [P.TopicProduceData.PartitionProduceData(index=p, records=batch) for p in range(count)]
        header = RequestHeader(request_api_key=0, request_api_version=VERSION, correlation_id=1, client_id="producer-1")
        return encode_request(header, P(transactional_id=None, acks=1, timeout_ms=30000, topic_data=[
            P.TopicProduceData(name="", topic_id=topic_id, partition_data=data)]))

    class Part:  # what validation_policy reads of a partition
        topic, index, policy_args = TOPIC, 3, None
        config = {"compression.type": "producer", "max.message.bytes": 1048588, "cleanup.policy": "delete",
                  "message.timestamp.type": "CreateTime", "message.timestamp.before.max.ms": 2**63 - 1,
                  "message.timestamp.after.max.ms": 3600000}

    one, sixteen = request(1), request(PARTITIONS)
    part = Part()
    now = int(time.time() * 1000)
    plog = PartitionLog.open(Path(tempfile.mkdtemp(prefix="produce-pieces-")) / f"{TOPIC}-3", LogConfig())
    found, records = check_request_batch(batch, VERSION)
    header, records = check_batch_header(records, found, 1048588, f"{TOPIC}-3")
    policy = validation_policy(part, now)
    TR = ProduceResponse.TopicProduceResponse
    PR = TR.PartitionProduceResponse

    def generic() -> None:
        parts = [PR(index=i, error_code=0, base_offset=1000, log_append_time_ms=-1, log_start_offset=0,
                    record_errors=[], error_message=None) for i in range(PARTITIONS)]
        encode_response(1, 0, VERSION, ProduceResponse(responses=[TR(name="", topic_id=topic_id,
                                                                     partition_responses=parts)], throttle_time_ms=0))

    def answer() -> None:
        encode_response(1, 0, VERSION, TopicAnswer("", topic_id, [(i, 0, 1000, -1, 0) for i in range(PARTITIONS)]))

    index, error, base_offset, append_time, start_offset = 3, 0, 1000, -1, 0  # variables, as in produce.py

    def single() -> None:
        encode_response(1, 0, VERSION, SingleAnswer("", topic_id, (index, error, base_offset, append_time, start_offset)))

    def hw() -> None:
        plog.high_watermark = plog.log_end_offset

    pieces: list[tuple[str, Any]] = [
        ("(an empty call)", lambda: None),
        ("decode_request, 1 partition", lambda: decode_request(one)),
        ("decode_request, 16 partitions", lambda: decode_request(sixteen)),
        ("check_request_batch", lambda: check_request_batch(batch, VERSION)),
        ("check_batch_header (CRC of 1 KiB)", lambda: check_batch_header(batch, header, 1048588, f"{TOPIC}-3")),
        ("validation_policy", lambda: validation_policy(part, now)),
        ("validate_records (the record walk)", lambda: validate_records(
            batch, header, policy, budget_records=INLINE_RECORDS, budget_bytes=INLINE_DECOMPRESSED_BYTES)),
        ("PartitionLog.append (pwritev's kernel work not counted)", lambda: plog.append(
            batch, leader_epoch=0, sync=False, header=header)),
        ("high_watermark = log_end_offset", hw),
        ("generic answer, 16 partitions", generic),
        ("TopicAnswer, 16 partitions", answer),
        ("SingleAnswer, 1 partition", single),
    ]
    if hasattr(plog, "high_watermark_to_end"):
        pieces.insert(-3, ("high_watermark_to_end()", plog.high_watermark_to_end))
    for _name, fn in pieces:
        fn()
    os.getppid()
    for _name, fn in pieces:
        for _ in range(n):
            fn()
        os.getppid()
    for name, _fn in pieces:
        print(name)


def pieces(n: int) -> None:
    """Instructions per call of the pieces of a partition's Produce path (this tree's code, in this
    process's interpreter under callgrind): a keyed 1 KiB one-record batch."""
    work = Path(tempfile.mkdtemp(prefix="produce-pieces-"))
    try:
        res = subprocess.run(["valgrind", "--tool=callgrind", "--dump-before=os_getppid",
                              f"--callgrind-out-file={work}/p.%p", sys.executable, __file__, "--pieces-child", str(n)],
                             capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED="0"), check=True)
        names = res.stdout.splitlines()
        dumps = sorted(work.glob("p.*.*"), key=lambda d: int(d.name.rsplit(".", 1)[1]))
        totals = [int(m.group(1)) for d in dumps
                  if (m := re.search(r"^totals:\s+(\d+)", d.read_text(errors="replace"), re.M))]
        per = [t / n for t in totals[1:len(names) + 1]]  # (the first dump: the set-up; the last: the exit)
        for name, value in zip(names, per, strict=True):
            print(f"{name:58s} {value:10,.0f}   net of an empty call {value - per[0]:10,.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", type=Path, action="append", default=[], help="a source tree (default: this one)")
    ap.add_argument("--batches", type=int, default=320, help="batches per phase (a multiple of 16)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shapes", default="big,small")
    ap.add_argument("--per", default="1,16", help="phases: batches per request (1, 16 or both)")
    ap.add_argument("--idle", type=float, default=10.0,
                    help="seconds of an idle phase per round and broker, whose rate is taken off each phase (0: none)")
    ap.add_argument("--cpu", action="store_true", help="broker CPU us per batch, no valgrind (load-dependent)")
    ap.add_argument("--keep", type=Path, help="keep callgrind's dumps in this folder")
    ap.add_argument("--cprofile", type=Path, help="run the first tree's broker under cProfile (its loop thread's CPU"
                    " time), no valgrind; its stats here")
    ap.add_argument("--pieces", type=int, metavar="N",
                    help="instead: instructions per call of the path's pieces, each called N times (this tree)")
    ap.add_argument("--pieces-child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.pieces_child:
        pieces_child(a.pieces_child)
        return
    if a.pieces:
        pieces(a.pieces)
        return
    if a.batches % PARTITIONS:
        raise SystemExit("--batches must be a multiple of 16")
    shapes = a.shapes.split(",")
    pers = [int(x) for x in a.per.split(",")]
    if not set(pers) <= {1, PARTITIONS}:
        raise SystemExit("--per: 1, 16 or both")
    trees = [t.resolve() for t in (a.tree or [ROOT])]
    work = Path(tempfile.mkdtemp(prefix="produce-parts-"))
    brokers: list[Broker] = []
    loads: list[Load] = []
    results: dict[tuple[str, str, int], list[float]] = {}
    try:
        for i, tree in enumerate(trees):
            brokers.append(Broker(f"T{i + 1}", tree, work, a.cpu, a.cprofile if i == 0 else None))
            loads.append(Load(brokers[-1]))
            for shape in shapes:  # warm-up: every code path once, files and index entries made
                for per in (1, PARTITIONS):
                    loads[-1].run(shape, loads[-1].frames(shape, per, 2 * PARTITIONS))
            print(f"# T{i + 1} = {tree}", file=sys.stderr)
        for r in range(a.rounds):
            order = list(range(len(brokers))) if r % 2 == 0 else list(range(len(brokers)))[::-1]
            for k in order:
                broker, load = brokers[k], loads[k]
                rate = 0.0  # the broker's own instructions (or CPU us) per second while idle
                if a.idle > 0:
                    t0 = time.monotonic()
                    broker.start()
                    time.sleep(a.idle)
                    rate = broker.stop_phase(f"r{r}-idle") / (time.monotonic() - t0)
                    print(f"{broker.name} round {r} idle: {rate:,.0f} per second", flush=True)
                for shape in shapes:
                    for per in pers:
                        frames = load.frames(shape, per, a.batches)
                        t0 = time.monotonic()
                        broker.start()
                        load.run(shape, frames)
                        total = broker.stop_phase(f"r{r}-{shape}-{per}")
                        wall = time.monotonic() - t0
                        value = (total - rate * wall) / a.batches
                        results.setdefault((broker.name, shape, per), []).append(value)
                        print(f"{broker.name} round {r} {shape} {per:>2} per request: {value:,.0f} per batch"
                              f" ({total / a.batches:,.0f} before taking off {wall:.1f} s of idle;"
                              f" load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        for load in loads:
            load.close()
        for broker in brokers:
            broker.stop()
        if a.keep is not None:
            a.keep.mkdir(parents=True, exist_ok=True)
            for dump in work.glob("T*.*"):
                shutil.copy(dump, a.keep)
        shutil.rmtree(work, ignore_errors=True)
    unit = "CPU us" if a.cpu or a.cprofile else "instructions"
    for broker in brokers:
        for shape in shapes:
            if len(pers) < 2:
                continue
            one = statistics.median(results[(broker.name, shape, 1)])
            many = statistics.median(results[(broker.name, shape, PARTITIONS)])
            requests16 = a.batches // PARTITIONS
            per_request = (one - many) * a.batches / (a.batches - requests16)
            base = results.get(("T1", shape, PARTITIONS))
            vs = (f", 16 per request {100 * (many / statistics.median(base) - 1):+.1f} % against T1"
                  if base and broker.name != "T1" else "")
            print(f"{broker.name} {shape}: {unit} per batch, 1 per request {one:,.0f} "
                  f"({' / '.join(f'{v:,.0f}' for v in results[(broker.name, shape, 1)])}), 16 per request {many:,.0f} "
                  f"({' / '.join(f'{v:,.0f}' for v in results[(broker.name, shape, PARTITIONS)])}); "
                  f"a request beyond its batches {per_request:,.0f}{vs}")


if __name__ == "__main__":
    main()
