"""Broker measurements: startup-to-ready, idle RSS, producer and consumer throughput.

Starts ``python -m kbroker`` (the CLI, as a user would) on an ephemeral port with a fresh data
directory, then drives it with confluent-kafka (librdkafka):

* startup-to-ready: from just before the process is spawned to the first successful Metadata
  response on its port (polled);
* idle RSS: VmRSS from /proc/<pid>/status after the broker has been idle for a while;
* producer throughput: ``--mb`` MB of ``--record-size`` byte records (random bytes, so
  compression does not flatter the figure), acks=all, until flush() returns;
* consumer throughput: every produced record read back from the beginning, by assignment.

Usage: ``.venv/bin/python scripts/bench_broker.py [--mb 300] [--record-size 1024] [--partitions 1]``
Add ``--profile out.svg`` (or ``out.txt`` for collapsed stacks; needs ``py-spy`` in .venv) to
record where the broker spends its time.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_machine import cpu_model  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from kbroker_protocol.api import decode_response, encode_request  # noqa: E402
from kbroker_protocol.messages import REQUESTS, RequestHeader  # noqa: E402

READY = re.compile(r"kbroker ready: node \d+ listening on PLAINTEXT://([^:\s]+):(\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metadata_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            header = RequestHeader(request_api_key=3, request_api_version=12, correlation_id=1, client_id="bench")
            payload = encode_request(header, REQUESTS[3](topics=None, allow_auto_topic_creation=False,
                                                         include_topic_authorized_operations=False))
            sock.sendall(struct.pack(">i", len(payload)) + payload)
            data = b""
            while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                data += chunk
            _h, body = decode_response(data[4:], 3, 12)
            return len(body.brokers) == 1
    except OSError:
        return False


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (robust against other load on the machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_broker(data_dir: Path, port: int, profile: str | None,
                 env: dict[str, str] | None = None, overrides: Sequence[str] = (),
                 tree: Path = ROOT) -> tuple[subprocess.Popen, float, float]:
    """Start ``python -m kbroker`` from ``tree`` (another checkout to compare with, or this one)
    with ``overrides`` (``key=value``) and wait until it answers Metadata: (process, seconds to
    ready, CPU seconds used by then)."""
    cmd = [sys.executable, "-m", "kbroker", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
           "--override", f"log.dirs={data_dir}", "--log-level", "WARNING"]
    for o in overrides:
        cmd += ["--override", o]
    if profile:
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        fmt = "flamegraph" if profile.endswith(".svg") else "raw"  # raw: collapsed stacks, one per line
        cmd = [py_spy, "record", "-r", "200", "-f", fmt, "-o", profile, "--", *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tree, stdout=subprocess.DEVNULL, stderr=sys.stderr, env=env)
    deadline = time.monotonic() + 120
    while not metadata_ok(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("broker did not start")
        time.sleep(0.005)
    ready = time.perf_counter() - t0
    start_cpu = cpu_seconds(proc.pid) if not profile else float("nan")
    return proc, ready, start_cpu


def produce(bootstrap: str, topic: str, total: int, size: int, partitions: int,
            compression: str = "none") -> float:
    """acks=all, ``total`` records of ``size`` bytes spread over ``partitions``: seconds taken.
    Compressed runs send hex text (about 2:1; random bytes would not compress at all)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "batch.size": 1_000_000, "queue.buffering.max.kbytes": 1_048_576,
                         "compression.type": compression})
    if compression == "none":
        payloads = [os.urandom(size) for _ in range(64)]
    else:
        payloads = [os.urandom(size // 2 + 1).hex().encode()[:size] for _ in range(64)]
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    t0 = time.perf_counter()
    for i in range(total):
        while True:
            try:
                producer.produce(topic, payloads[i % 64], partition=i % partitions, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(600)
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} delivery errors, first: {errors[0]}")
    return elapsed


def consume(bootstrap: str, topic: str, total: int, partitions: int) -> tuple[float, float]:
    """(seconds from assign to the last record, seconds from the first record to the last)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                         "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760,
                         "queued.max.messages.kbytes": 1_048_576})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = 0
    t0 = time.perf_counter()
    first = None
    while got < total:
        for msg in consumer.consume(10000, 1.0):
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    raise SystemExit(f"consume error: {msg.error()}")
                continue
            if first is None:
                first = time.perf_counter()
            got += 1
    end = time.perf_counter()
    consumer.close()
    return end - t0, end - (first or t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=300, help="MB of records to produce and consume")
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--profile", help="py-spy flame graph of the broker (svg)")
    args = parser.parse_args()

    total = args.mb * 1_000_000 // args.record_size
    data = Path(tempfile.mkdtemp(prefix="kbroker-bench-"))
    # Startup as this environment runs it (PYTHONDONTWRITEBYTECODE may be set: every module is
    # compiled from source), then with a warm bytecode cache kept outside the tree.
    cold_port = free_port()
    cold, cold_ready, cold_cpu = start_broker(data / "cold", cold_port, None)
    cold.send_signal(signal.SIGTERM)
    cold.wait(120)
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(data / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for name in ("warmup", "warm"):
        warm_port = free_port()
        warm, warm_ready, warm_cpu = start_broker(data / name, warm_port, None, env)
        warm.send_signal(signal.SIGTERM)
        warm.wait(120)
    port = free_port()
    proc, _ready, _cpu = start_broker(data / "data", port, args.profile, env)
    bootstrap = f"127.0.0.1:{port}"
    try:
        # py-spy wraps the broker: measure the broker process itself.
        pid = proc.pid
        if args.profile:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            pid = int(children[0]) if children else proc.pid
        time.sleep(args.idle_seconds)
        idle = rss_kb(pid)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("bench", num_partitions=args.partitions, replication_factor=1)])["bench"].result(30)
        cpu0 = cpu_seconds(pid)
        produce_s = produce(bootstrap, "bench", total, args.record_size, args.partitions)
        cpu1 = cpu_seconds(pid)
        consume_s, steady_s = consume(bootstrap, "bench", total, args.partitions)
        cpu2 = cpu_seconds(pid)
        peak = hwm_kb(pid)
    finally:
        proc.send_signal(signal.SIGTERM if not args.profile else signal.SIGINT)
        proc.wait(120)
        shutil.rmtree(data, ignore_errors=True)
    mb = total * args.record_size / 1e6
    print(f"machine: nproc={os.cpu_count()} cpu={cpu_model()!r} python={platform.python_version()} "
          f"load average at end={os.getloadavg()[0]:.1f} (other work on the machine skews the figures)")
    print(f"records: {total} x {args.record_size} B = {mb:.0f} MB, partitions={args.partitions}")
    print(f"startup-to-ready (spawn -> first Metadata response): {cold_ready * 1000:.0f} ms as this environment "
          f"runs it (PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}), "
          f"{warm_ready * 1000:.0f} ms with a warm bytecode cache; broker CPU until ready: {cold_cpu:.2f} s / "
          f"{warm_cpu:.2f} s")
    print(f"idle RSS after {args.idle_seconds:.0f} s: {idle / 1024:.1f} MiB")
    print(f"produce: {produce_s:.2f} s  {mb / produce_s:.1f} MB/s  {total / produce_s:,.0f} records/s; "
          f"broker CPU {cpu1 - cpu0:.2f} s = {mb / (cpu1 - cpu0):.0f} MB per broker CPU-second")
    print(f"consume: {consume_s:.2f} s  {mb / consume_s:.1f} MB/s  {total / consume_s:,.0f} records/s "
          f"(first to last record: {steady_s:.2f} s, {mb / steady_s:.1f} MB/s); "
          f"broker CPU {cpu2 - cpu1:.2f} s = {mb / max(cpu2 - cpu1, 0.01):.0f} MB per broker CPU-second")
    print(f"peak RSS (VmHWM): {peak / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
