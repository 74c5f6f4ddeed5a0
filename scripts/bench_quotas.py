"""What client quotas cost the hot path: the broker's CPU time per Produce and per Fetch request
with no quota set (each request pays one attribute check), and with quotas set that the client
never reaches (each request is recorded: Produce bytes, Fetch bytes, handler time), against the
same broker before quotas existed (``--base``, a checkout of an earlier commit).

Each round starts the three brokers in turn (``python -m kbroker``, fresh data directories, the
order rotating) and measures, as ``scripts/bench_metrics.py`` does, the broker's CPU time (user +
system, from /proc) over ``--cpu-requests`` pipelined small Produce requests (10 records of 100 B,
acks=1) and as many Fetch requests: CPU time barely moves with other work on a shared machine,
unlike throughput. Reports every round and the median of each side, then the in-process cost of
the quota code itself per request (timeit), which resolves what the rounds cannot.

Usage: ``.venv/bin/python scripts/bench_quotas.py --base /tmp/kbroker-main [--rounds 3]
[--cpu-requests 20000]`` (make the base with ``git worktree add`` or
``mkdir /tmp/kbroker-main && git archive main | tar -x -C /tmp/kbroker-main``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from bench_broker import cpu_model, free_port, metadata_ok  # noqa: E402
from bench_metrics import broker_cpu_per_request  # noqa: E402

from kbroker_protocol.api import decode_response, encode_request  # noqa: E402
from kbroker_protocol.messages import REQUESTS, RequestHeader  # noqa: E402


def start(tree: Path, data_dir: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "kbroker", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
           "--override", f"log.dirs={data_dir}", "--override", "kbroker.http.listeners=",
           "--log-level", "WARNING"]
    env = dict(os.environ, PYTHONPATH=_tree_pythonpath(tree))
    proc = subprocess.Popen(cmd, cwd=tree, stdout=subprocess.DEVNULL, stderr=sys.stderr, env=env)
    deadline = time.monotonic() + 120
    while not metadata_ok(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("broker did not start")
        time.sleep(0.01)
    return proc


def set_unreached_quotas(port: int) -> None:
    """Quotas for every client id that the benchmark never reaches: each request is recorded."""
    A = REQUESTS[49]
    entity = [A.EntryData.EntityData(entity_type="client-id", entity_name=None)]
    ops = [A.EntryData.OpData(key=k, value=v, remove=False) for k, v in
           (("producer_byte_rate", 1e12), ("consumer_byte_rate", 1e12), ("request_percentage", 1e6))]
    header = RequestHeader(request_api_key=49, request_api_version=1, correlation_id=1, client_id="bench-quotas")
    payload = encode_request(header, A(entries=[A.EntryData(entity=entity, ops=ops)], validate_only=False))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        reader = sock.makefile("rb")
        (size,) = struct.unpack(">i", reader.read(4))
        _, body = decode_response(reader.read(size), 49, 1)
    assert body.entries[0].error_code == 0, body.entries[0].error_message


def measure(tree: Path, quotas: bool, requests: int, tag: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-quotas-") as tmp:
        port = free_port()
        proc = start(tree, Path(tmp) / "data", port)
        try:
            if quotas:
                set_unreached_quotas(port)
            return broker_cpu_per_request(port, proc.pid, f"bench-{tag}", requests)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


def per_request_cost() -> tuple[float, float, float]:
    """In-process, ns per request: the dispatcher's quota checks with no quota set (beyond the
    metrics check it already had), and with quotas set: a Produce's recording (bytes and handler
    time, ``ClientQuotas.response_throttle``) and a Fetch's (bytes)."""
    import timeit
    from types import SimpleNamespace

    from kbroker.security.quotas import DEFAULT, ClientQuotas

    quotas = ClientQuotas()
    conn = SimpleNamespace(_quotas=quotas, _metrics=None)
    n = 500_000
    with_checks = timeit.timeit(
        "q = c._quotas\nm = c._metrics is not None or (q is not None and q.request.enabled)\n"
        "q = c._quotas\nif q is not None and q.active:\n    pass", globals={"c": conn}, number=n)
    alone = timeit.timeit("m = c._metrics is not None", globals={"c": conn}, number=n)
    for manager, bound in ((quotas.produce, 1e12), (quotas.fetch, 1e12), (quotas.request, 1e6)):
        manager.update_quota(None, DEFAULT, bound)
    quotas.active = True
    response = SimpleNamespace(throttle_time_ms=0)
    m = 100_000
    produce = timeit.timeit(lambda: quotas.response_throttle(0, "ANONYMOUS", "c", 1200, 0.00005, response), number=m)
    fetch = timeit.timeit(lambda: quotas.fetch.record("ANONYMOUS", "c", 1200), number=m)
    return (with_checks - alone) / n * 1e9, produce / m * 1e9, fetch / m * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="a checkout of the tree before quotas")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu-requests", type=int, default=20000)
    args = parser.parse_args()
    sides = [("before (base)", args.base.resolve(), False), ("no quota set", ROOT, False),
             ("quotas set, not reached", ROOT, True)]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in sides}
    print(f"machine: nproc={os.cpu_count()} cpu={cpu_model()!r} python={sys.version.split()[0]}")
    for r in range(args.rounds):
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        for name, tree, quotas in order:
            produce_us, fetch_us = measure(tree, quotas, args.cpu_requests, f"{r}")
            results[name].append((produce_us, fetch_us))
            print(f"round {r + 1} {name:<25} produce {produce_us:7.1f} us/request   fetch {fetch_us:7.1f} us/request",
                  flush=True)
    print(f"median over {args.rounds} rounds, {args.cpu_requests} requests each, broker CPU per request:")
    for name, _, _ in sides:
        produce = statistics.median(p for p, _ in results[name])
        fetch = statistics.median(f for _, f in results[name])
        print(f"  {name:<25} produce {produce:7.1f} us   fetch {fetch:7.1f} us")
    checks, produce, fetch = per_request_cost()
    print(f"in-process: quota checks with none set {checks:.0f} ns/request; with quotas set, recording a Produce "
          f"{produce:.0f} ns, a Fetch {fetch:.0f} ns")
    print(f"load average at end: {os.getloadavg()[0]:.1f} (other work on the machine skews the figures)")


def _tree_pythonpath(tree):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tree_path import tree_pythonpath
    return tree_pythonpath(tree)


if __name__ == "__main__":
    main()
