#!/usr/bin/env python3
"""Produce validation costs: the inline record walk, the worker pool, and what a big request does to
other clients.

Three parts (figures in scripts/README.md, "Produce validation"):

``walk``    CPU per record of ``kbroker_protocol.record_walk.walk_plain`` (what every uncompressed Produce
            batch now costs inline) and of the general ``walk``, against the header+CRC check every batch already had, on 64 KB
            batches of 1 KiB records and on batches of tiny records. Process CPU time, best of 5.

``pool``    one big zstd batch of tiny records (default 1.29 M records, the issue's case) validated
            for a compacted topic, and re-encoded for an uncompressed topic, three ways: inline on the
            event loop, in a thread pool, in the process pool. A ticker on the loop (1 ms sleeps)
            measures the longest the loop was unavailable and how often it ran (ticks/s: ~1000 on
            an idle loop); also wall time and peak RSS.

``broker``  the same request against a real broker (``python -m kbroker``, started here on an
            ephemeral port; ``--tree`` picks another checkout, e.g. the code before the change):
            while it is handled, ApiVersions round trips on a second connection; reports the longest
            round trip, the produce's answer and time, and the broker's VmHWM.

    .venv/bin/python scripts/bench_validation.py walk
    .venv/bin/python scripts/bench_validation.py pool [--records 1290000]
    .venv/bin/python scripts/bench_validation.py broker [--tree DIR] [--records 1290000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbroker_protocol.api import decode_response, encode_request  # noqa: E402
from kbroker_protocol.compression import Codec, compress  # noqa: E402
from kbroker_protocol.messages import REQUESTS, RequestHeader  # noqa: E402
from kbroker_protocol.record_batch import CRC_OFFSET, HEADER_SIZE, compute_crc, parse_header, validate_batch  # noqa: E402
from kbroker_protocol.record_build import _write_varint  # noqa: E402
from kbroker_protocol.records import Record, build_batch  # noqa: E402

NOW = int(time.time() * 1000)
P = REQUESTS[0]


def tiny_batch(n: int, codec: int = Codec.ZSTD, keys: int = 1) -> bytes:
    """``n`` records with a short key (``keys`` distinct ones) and an empty value, compressed with ``codec``
    (1.29 M records make 0.93 MB of zstd, the issue's case; built directly:
    build_batch takes seconds for a million records)."""
    body = bytearray()
    for i in range(n):
        rec = bytearray(b"\x00\x00")  # attributes, timestamp delta 0
        _write_varint(rec, i)
        key = b"%d" % (i % keys)
        _write_varint(rec, len(key))
        rec += key
        rec += b"\x00\x00"  # value length 0, no headers
        _write_varint(body, len(rec))
        body += rec
    template = bytearray(build_batch([Record(key=b"k", value=b"", timestamp=NOW)], compression=codec))
    payload = compress(codec, body)
    out = template[:HEADER_SIZE] + payload
    struct.pack_into(">i", out, 8, len(out) - 12)
    struct.pack_into(">i", out, 23, n - 1)
    struct.pack_into(">i", out, 57, n)
    struct.pack_into(">I", out, CRC_OFFSET, compute_crc(out, 0, len(out)))
    return bytes(out)


# --- walk -----------------------------------------------------------------------------------------


def cmd_walk(_args) -> None:
    from kbroker_protocol.record_walk import walk, walk_plain

    def best(fn, reps: int) -> float:
        times = []
        for _ in range(5):
            t = time.process_time()
            for _ in range(reps):
                fn()
            times.append((time.process_time() - t) / reps)
        return min(times)

    for n, size in ((64, 1024), (1000, 1024), (1000, 10), (10000, 0)):
        batch = build_batch([Record(key=None, value=os.urandom(size), timestamp=NOW + i) for i in range(n)])
        h = parse_header(batch)
        reps = max(1, 20000 // n)
        w = best(lambda b=batch, h=h: walk(b, HEADER_SIZE, len(b), h.records_count), reps)
        p = best(lambda b=batch, h=h: walk_plain(b, HEADER_SIZE, len(b), h.records_count), reps)
        c = best(lambda b=batch: validate_batch(b), 200)
        print(f"{n:6} records x {size:5} B ({len(batch) / 1024:7.1f} KiB): walk_plain {p * 1e6:8.1f} us "
              f"({p / n * 1e9:5.0f} ns/record, {len(batch) / p / 1e6:6.0f} MB/s); walk {w / n * 1e9:5.0f} ns/record; "
              f"header+CRC {c * 1e6:6.1f} us")


# --- pool -----------------------------------------------------------------------------------------


def _rss_kb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


async def _measure(work) -> tuple[float, float, int, object]:
    lag = 0.0
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal lag, ticks
        while not done:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lag = max(lag, time.perf_counter() - t - 0.001)
            ticks += 1

    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    result = await work()
    wall = time.perf_counter() - t0
    done = True
    await tick
    return wall, lag, ticks, result


def cmd_pool(args) -> None:
    from kbroker.replication.validation import ValidationPool
    from kbroker_protocol.record_validation import Policy, validate_records

    batch = tiny_batch(args.records)
    header = parse_header(batch)
    print(f"batch: {args.records} records, {len(batch) / 1e6:.2f} MB zstd")
    cases = {
        "compacted key check": Policy("t-0", NOW, 1_000_000, compacted=True, max_decompressed=1 << 30),
        "re-encode to uncompressed": Policy("t-0", NOW, 1_000_000, target_codec=Codec.NONE,
                                            max_decompressed=1 << 30),
        "re-encode, max.message 20MB": Policy("t-0", NOW, 20_000_000, target_codec=Codec.NONE,
                                              max_decompressed=1 << 30),
        "re-encode to gzip, 20MB": Policy("t-0", NOW, 20_000_000, target_codec=Codec.GZIP,
                                          max_decompressed=1 << 30),
    }
    for label, policy in cases.items():
        for kind in ("inline", "thread", "process"):
            rss0 = _rss_kb()
            if kind == "inline":
                async def work(p=policy):
                    return validate_records(batch, header, p)
                pool = None
            else:
                pool = ValidationPool(workers=1, kind=kind)

                async def warm(pool=pool):  # start the worker before measuring
                    small = build_batch([Record(key=b"k", value=b"v", timestamp=NOW)])
                    return await pool.validate(small, Policy("t-0", NOW, 1_000_000))
                asyncio.run(warm())

                async def work(p=policy, pool=pool):
                    return await pool.validate(batch, p)
            wall, lag, ticks, outcome = asyncio.run(_measure(work))
            worker = ""
            if pool is not None:
                if kind == "process":
                    pids = list(pool._executor._processes)  # type: ignore[union-attr]
                    worker = f", worker peak RSS {max(_rss_kb(pid) for pid in pids) / 1024:.0f} MiB"
                pool.close()
            print(f"  {label:28} {kind:8} wall {wall:6.2f} s  longest loop stall {lag * 1000:8.1f} ms  "
                  f"loop ticks/s {ticks / wall:6.0f}  "
                  f"error {outcome.error}  peak RSS of this process +{(_rss_kb() - rss0) / 1024:.0f} MiB{worker}")


# --- broker ---------------------------------------------------------------------------------------


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.cid = 0

    def call(self, key: int, version: int, **fields):
        self.cid += 1
        header = RequestHeader(request_api_key=key, request_api_version=version, correlation_id=self.cid,
                               client_id="bench")
        payload = encode_request(header, REQUESTS[key](**fields))
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", self._read(4))[0]
        return decode_response(self._read(size), key, version)[1]

    def _read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return bytes(out)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _hwm(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if line.startswith(("VmHWM", "VmRSS")))
    text = f"RSS {int(fields['VmRSS'].split()[0]) // 1024} MiB, peak {int(fields['VmHWM'].split()[0]) // 1024} MiB"
    workers = []
    for child in _descendants(pid):
        try:
            workers.append(_rss_kb(child) // 1024)
        except OSError:
            pass
    if workers:
        text += f"; its {len(workers)} child processes: peak {', '.join(map(str, workers))} MiB"
    return text


def cmd_broker(args) -> None:
    tree = Path(args.tree).resolve() if args.tree else ROOT
    port = _free_port()
    data = tempfile.mkdtemp(prefix="bench-validation-")
    env = dict(os.environ, PYTHONPATH=_tree_pythonpath(tree))
    proc = subprocess.Popen([sys.executable, "-m", "kbroker", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                             "--override", f"log.dirs={data}", "--log-level", "WARNING"], cwd=tree, env=env,
                            stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                admin = _Conn(port)
                admin.call(18, 3, client_software_name="b", client_software_version="1")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        batch = tiny_batch(args.records)
        print(f"tree {tree}: batch {args.records} records, {len(batch) / 1e6:.2f} MB zstd; broker idle: "
              f"{_hwm(proc.pid)}")
        C = REQUESTS[19]
        cases = [("compacted", {"cleanup.policy": "compact"}, batch),
                 ("re-encode", {"compression.type": "uncompressed"}, batch)]
        if args.big:
            big_batch = tiny_batch(args.big)
            print(f"  (big: {args.big} records, {len(big_batch) / 1e6:.2f} MB zstd, max.message.bytes 20 MB)")
            cases += [("big compacted", {"cleanup.policy": "compact", "max.message.bytes": "20000000"}, big_batch),
                      ("big re-encode", {"compression.type": "uncompressed", "max.message.bytes": "20000000"},
                       big_batch)]
        for label, configs, request in cases:
            topic = f"bench-{label.replace(' ', '-')}-{os.getpid()}"
            resp = admin.call(19, 7, topics=[C.CreatableTopic(
                name=topic, num_partitions=1, replication_factor=1, assignments=[],
                configs=[C.CreatableTopic.CreatableTopicConfig(name=k, value=v) for k, v in configs.items()])],
                timeout_ms=10000, validate_only=False)
            assert resp.topics[0].error_code == 0, (resp.topics[0].error_code, resp.topics[0].error_message)
            big = _Conn(port)
            result: dict = {}

            def send(topic=topic, big=big, result=result, request=request) -> None:
                t = time.perf_counter()
                r = big.call(0, 9, transactional_id=None, acks=-1, timeout_ms=60000, topic_data=[
                    P.TopicProduceData(name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(
                        index=0, records=request)])])
                result["time"] = time.perf_counter() - t
                result["error"] = r.responses[0].partition_responses[0].error_code

            thread = threading.Thread(target=send)
            thread.start()
            worst = 0.0
            rounds = 0
            while thread.is_alive():
                t = time.perf_counter()
                admin.call(18, 3, client_software_name="b", client_software_version="1")
                worst = max(worst, time.perf_counter() - t)
                rounds += 1
            thread.join()
            print(f"  {label:13} produce answered in {result['time']:6.2f} s with error {result['error']}; "
                  f"{rounds} ApiVersions round trips meanwhile, longest {worst * 1000:8.1f} ms; broker {_hwm(proc.pid)}")
            big.sock.close()
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("walk")
    p = sub.add_parser("pool")
    p.add_argument("--records", type=int, default=1_290_000)
    b = sub.add_parser("broker")
    b.add_argument("--records", type=int, default=1_290_000)
    b.add_argument("--tree", help="checkout to run the broker from (default: this one)")
    b.add_argument("--big", type=int, default=0,
                   help="also send a request of this many records to topics with max.message.bytes 20 MB")
    args = ap.parse_args()
    {"walk": cmd_walk, "pool": cmd_pool, "broker": cmd_broker}[args.cmd](args)


def _tree_pythonpath(tree):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tree_path import tree_pythonpath
    return tree_pythonpath(tree)


if __name__ == "__main__":
    main()
