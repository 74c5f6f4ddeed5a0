#!/usr/bin/env python3
"""Creating many partitions at once, and what other clients see meanwhile.

Starts ``python -m kbroker`` on an ephemeral port with a fresh data directory, creates a small
topic ``other``, then sends one CreateTopics of ``--partitions`` partitions (9,999 by default,
the most one topic may have in one request: as Kafka, 10,000 partitions are 10,001 metadata
records, past the 10,000 one operation may write) on one connection while a second connection sends Metadata
requests for ``other`` one after another. Reports:

* the time to create the partitions (CreateTopics sent to response received);
* how many Metadata requests were answered during it, and the worst and median latency of those.

A broker that creates the partitions on its event loop answers no Metadata request until it is
done (worst latency about the creation time); one that creates them off the loop keeps answering.

Usage: .venv/bin/python scripts/bench_create_topics.py [--partitions 9999] [--nofile N]
``--nofile`` starts the broker with that RLIMIT_NOFILE (soft and hard).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from wire import Wire  # noqa: E402

from kbroker_protocol.messages import REQUESTS  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(data_dir: Path, port: int, nofile: int | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "kbroker", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
           "--override", f"log.dirs={data_dir}", "--override", "node.id=1", "--log-level", "WARNING"]

    def limit() -> None:
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, preexec_fn=limit)
    deadline = time.monotonic() + 120
    while True:
        try:
            wire = Wire(f"127.0.0.1:{port}", timeout=5)
            wire.call(18, 3, client_software_name="bench", client_software_version="1")
            wire.close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("broker did not start") from None
            time.sleep(0.05)


def create(wire: Wire, name: str, partitions: int) -> object:
    Req = REQUESTS[19]
    topic = Req.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1, assignments=[], configs=[])
    return wire.call(19, 7, topics=[topic], timeout_ms=600_000, validate_only=False)


def metadata(wire: Wire, name: str) -> object:
    Req = REQUESTS[3]
    return wire.call(3, 12, topics=[Req.MetadataRequestTopic(name=name, topic_id=uuid.UUID(int=0))],
                     allow_auto_topic_creation=False, include_topic_authorized_operations=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=9_999)
    parser.add_argument("--nofile", type=int, default=None)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="kbroker-bench-create-"))
    port = free_port()
    proc = start_broker(data_dir, port, args.nofile)
    try:
        bootstrap = f"127.0.0.1:{port}"
        admin, probe = Wire(bootstrap, timeout=900), Wire(bootstrap, timeout=900)
        result = create(admin, "other", 1)
        assert result.topics[0].error_code == 0, result
        done = threading.Event()
        outcome: dict[str, object] = {}

        def big() -> None:
            t0 = time.perf_counter()
            outcome["response"] = create(admin, "many", args.partitions)
            outcome["end"] = time.perf_counter()
            outcome["seconds"] = outcome["end"] - t0
            done.set()

        thread = threading.Thread(target=big)
        thread.start()
        sent: list[tuple[float, float]] = []  # (sent at, latency) of each Metadata request
        while not done.is_set():
            t0 = time.perf_counter()
            metadata(probe, "other")
            sent.append((t0, time.perf_counter() - t0))
            time.sleep(0.01)
        thread.join()
        # Those sent before the CreateTopics response came back (the last may have waited for it).
        latencies = [latency for at, latency in sent if at < outcome["end"]]
        worst_at = max((latency, at) for at, latency in sent if at < outcome["end"])[1] if latencies else 0.0
        start = outcome["end"] - outcome["seconds"]
        response = outcome["response"]
        error = response.topics[0].error_code  # type: ignore[attr-defined]
        print(f"partitions: {args.partitions}; nofile: {args.nofile or resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")
        print(f"CreateTopics: {outcome['seconds']:.2f} s, error code {error}")
        if latencies:
            print(f"Metadata sent during it: {len(latencies)}, worst {max(latencies) * 1000:.0f} ms, "
                  f"median {statistics.median(latencies) * 1000:.1f} ms; the worst sent {worst_at - start:.2f} s in")
        else:
            print("Metadata sent during it: none")
        admin.close()
        probe.close()
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
