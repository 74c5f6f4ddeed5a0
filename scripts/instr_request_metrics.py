"""Instructions the dispatcher's request metrics cost per request, counted by callgrind in-process (issue 21).

``scripts/instr_metrics.py`` counts a whole broker under callgrind, whose phases also count its
time-driven work over their (stretched) wall time: its repeats of one arm differ by more than the
metrics cost. This script counts only the dispatcher: a :class:`~kbroker.server.connection.KafkaConnection`
on a fake transport (as ``tests/unit/test_connection_answers.py`` builds one) is fed size-prefixed
ApiVersions frames whose handler (through the request hooks) answers in its call with a prepared
response: the connection's framing, dispatch, response order, encoding and write, and with metrics
on, every clock reading, the slot's points, the write's list and ``RequestStats`` (what
``requests_sent`` does per write, and the histograms' counts read once per ``--scrape`` requests, as a
scrape reads them). The handler is the same for both arms, so the difference is the metrics' work.

Each arm runs under ``valgrind --tool=callgrind`` twice, for P and 2P passes of ``--requests``
requests; (instructions(2P) - instructions(P)) / (P x requests) leaves out the interpreter's start-up
and imports. ``--per-read K`` hands K frames to each ``data_received`` (answered in one write): 1 is
a client waiting for each answer (or a pipelined client read one request at a time, as the
benchmarks' steady state), 8 a pipelined burst. Under callgrind the code runs ~50 times slower, so
its request times fall in later buckets than natively (other code paths: bisects, sorts);
``--step-us S`` replaces the clock the dispatcher reads (``_clock`` and ``time.monotonic`` in
``kbroker.server.connection``, ``_clock`` in ``kbroker.server.writer``) by a counter advancing S us a
reading (``itertools.count(...).__next__``, a C call like the clock, cheaper by ~150 instructions): the
times of a native run, the same for every tree.

    .venv/bin/python scripts/instr_request_metrics.py [--requests 2000] [--passes 2] [--per-read 1]
        [--scrape 10000] [--tree DIR]...

Arms: ``off`` and ``on`` from this tree, and ``on`` from each ``--tree DIR`` (another source tree: a
``git archive`` of another commit). Prints instructions per request and the metrics' cost (on - off).
``--text`` also counts a scrape's request-histogram text (RequestHistogramText) per scrape.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from tree_path import tree_pythonpath  # noqa: E402

INNER = r"""
import struct, sys
from typing import Any
from kbroker.api import install_handlers
from kbroker.config import BrokerConfig, Endpoint
from kbroker.server.connection import KafkaConnection
from kbroker.server.limits import ConnectionLimits
from kbroker_protocol.api import encode_request
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.messages.api_versions import ApiVersionsResponse

metrics_on, passes, requests, per_read, scrape, text = (sys.argv[1] == "on", int(sys.argv[2]), int(sys.argv[3]),
                                                        int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1")
step = float(sys.argv[7])
if step:  # every clock reading of the dispatcher: the previous one plus step seconds (a C callable)
    import itertools, types
    from kbroker.server import connection, writer
    clock = itertools.count(1000.0, step).__next__
    connection._clock = writer._clock = clock
    connection.time = types.SimpleNamespace(monotonic=clock, perf_counter=clock)

class Transport:
    written = 0
    def get_extra_info(self, name, default=None): return {"peername": ("127.0.0.1", 4242)}.get(name, default)
    def set_write_buffer_limits(self, high=None, low=None): pass
    def get_write_buffer_size(self): return 0
    def writelines(self, parts): self.written += len(parts)
    def write(self, data): self.written += 1
    def pause_reading(self): pass
    def resume_reading(self): pass
    def close(self): pass

RESPONSE = ApiVersionsResponse(error_code=0)

def handler(ctx, body):
    return RESPONSE

class Hooks:
    def intercept(self, ctx, body, h, size): return handler
    def refused(self, *args): pass

class Host:
    def __init__(self, metrics):
        self.config = BrokerConfig({"node.id": "1"}, warn=False)
        self.limits = ConnectionLimits(self.config)
        self.request_hooks = Hooks()
        self.request_metrics = metrics
        self.listener_security = {}
        self.client_quotas = None
        self.connections = set()
        self.connection_listeners = []

install_handlers()
stats = None
histograms = None
if metrics_on:
    from kbroker.metrics.requests import RequestStats
    stats = RequestStats()
    if text:
        from kbroker.metrics.request_text import RequestHistogramText
        histograms = RequestHistogramText(stats)
conn = KafkaConnection(Host(stats), Endpoint("PLAINTEXT", "127.0.0.1", 0))
conn.connection_made(Transport())
header = RequestHeader(request_api_key=18, request_api_version=3, correlation_id=7, client_id="instr")
payload = encode_request(header, REQUESTS[18]())
data = (struct.pack(">i", len(payload)) + payload) * per_read
reads = requests // per_read
since = 0

def scraped():
    if histograms is not None:
        histograms.text()
    elif stats is not None:
        for api in stats.apis.values():
            api.count

for _ in range(passes):
    for _ in range(reads):
        conn.data_received(data)
        since += per_read
        if since >= scrape:
            since = 0
            scraped()
    scraped()
"""


def count(tree: Path, arm: str, passes: int, args: argparse.Namespace, out: Path) -> int:
    dump = out / f"cg.{arm}.{passes}.{os.getpid()}"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}", sys.executable, "-c", INNER,
           "on" if arm != "off" else "off", str(passes), str(args.requests), str(args.per_read), str(args.scrape),
           "1" if args.text else "0", str(args.step_us / 1e6)]
    env = dict(os.environ, PYTHONPATH=tree_pythonpath(tree), PYTHONHASHSEED="0")
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    match = re.search(r"^(?:summary|totals):\s+(\d+)", dump.read_text(errors="replace"), re.M)
    dump.unlink()
    if match is None:
        raise SystemExit(f"no totals in callgrind's dump of {arm}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per pass")
    parser.add_argument("--passes", type=int, default=2, help="P: passes of the shorter run (the longer runs 2P)")
    parser.add_argument("--per-read", type=int, default=1, help="frames per data_received (one write each)")
    parser.add_argument("--scrape", type=int, default=10000, help="requests between two reads of the counts")
    parser.add_argument("--text", action="store_true", help="a scrape writes the request histograms' text")
    parser.add_argument("--step-us", type=float, default=0.0,
                        help="replace the dispatcher's clock by one advancing this many us per reading (0: the "
                             "real clock, whose readings under callgrind are ~50 times a native run's)")
    parser.add_argument("--tree", type=Path, action="append", default=[], help="another source tree (metrics on)")
    args = parser.parse_args()
    arms = [("off", ROOT), ("on", ROOT)] + [(f"C{i + 1}", tree.resolve()) for i, tree in enumerate(args.tree)]
    with tempfile.TemporaryDirectory(prefix="instr-request-metrics-") as tmp:
        results: dict[str, float] = {}
        for arm, tree in arms:
            short = count(tree, arm, args.passes, args, Path(tmp))
            long = count(tree, arm, 2 * args.passes, args, Path(tmp))
            results[arm] = (long - short) / (args.passes * args.requests)
            print(f"{arm:4} {tree}: {results[arm]:,.0f} instructions per request", flush=True)
    off = results["off"]
    for arm, per in results.items():
        if arm != "off":
            print(f"{arm}: metrics cost {per - off:+,.0f} instructions per request ({(per / off - 1) * 100:+.2f} % "
                  f"of this dispatcher-only request)")


if __name__ == "__main__":
    main()
