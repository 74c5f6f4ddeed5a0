"""Single-node start-up of ``python -m kbroker``: spawn-to-ready, CPU until ready, RSS at ready.

For each tree given (a checkout of kbroker; ``.`` is this one) and each round, interleaved (the
order of the trees alternates between rounds):

- *fresh*: a new empty data dir (the broker formats it: meta.properties, the one-voter metadata
  log, its bootstrap records);
- *existing*: the same data dir again after a clean SIGTERM stop.

"ready" is the first successful ApiVersions (v0) answer followed by a Metadata (v0) answer
listing a broker, polled every 5 ms on a fresh connection, measured from just before the process
is spawned. Also the CPU time (user+system) the broker used until then, its RSS then, and the
"started in N ms" its log prints (``Broker.start``, from the first log-dir step to serving). The broker runs as the dev start does (``python -m kbroker``, uvloop if installed),
on an ephemeral Kafka port, with the metrics/console HTTP listener on an ephemeral port too
(``--no-http``: without it); the process is run with ``cwd`` = the tree and that tree first on
``PYTHONPATH`` (``tree_path``), so it imports that tree's ``kbroker`` and codec. By default with a warm bytecode cache of its own per tree
(``PYTHONPYCACHEPREFIX``, one warm-up start first), as an installed package runs; ``--cold``:
``PYTHONDONTWRITEBYTECODE=1``, every module compiled at each start.

    .venv/bin/python scripts/bench_startup.py --rounds 9 --tree /tmp/startup-base --tree .

``--instructions``: instead, count with valgrind's callgrind the instructions of ``import
kbroker.broker`` (the imports before ``Broker``'s construction; warm bytecode cache) per tree, and
the message modules that import loads: a figure the machine's load does not move.

    .venv/bin/python scripts/bench_startup.py --instructions --tree /tmp/startup-base --tree .

``--instructions --to-start``: the instructions of the whole start instead, from the interpreter's
start to ``Broker.start`` returning, in one process on a fresh data dir (``python -m kbroker``'s
configuration and event loop, ``--no-http`` as given; the process exits at once after): the imports,
``Broker()`` and ``Broker.start``, which ``import kbroker.broker`` alone leaves out.

    .venv/bin/python scripts/bench_startup.py --instructions --to-start --no-http --tree /tmp/startup-base --tree .
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from callgrind_control import stop_broker  # noqa: E402
from tree_path import tree_pythonpath  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(api_key: int, version: int, correlation: int, body: bytes) -> bytes:
    client = b"bench-startup"
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


def _read_frame(sock: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    (size,) = struct.unpack(">i", exact(4))
    return exact(size)


def probe(port: int) -> bool:
    """ApiVersions v0 (error 0), then Metadata v0 for all topics listing at least one broker."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(_request(18, 0, 1, b""))
            frame = _read_frame(sock)
            correlation, error = struct.unpack_from(">ih", frame)
            if correlation != 1 or error != 0:
                return False
            sock.sendall(_request(3, 0, 2, struct.pack(">i", 0)))
            frame = _read_frame(sock)
            correlation, brokers = struct.unpack_from(">ii", frame)
            return correlation == 2 and brokers > 0
    except (OSError, struct.error):
        return False


def proc_stat(pid: int) -> tuple[float, int]:
    """(user+system CPU seconds, VmRSS KiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return cpu, rss


def start_once(tree: Path, data: Path, env: dict[str, str], http: bool) -> tuple[float, float, int, float]:
    port = free_port()
    cmd = [sys.executable, "-m", "kbroker", "--override", f"listeners=PLAINTEXT://localhost:{port}",
           "--override", f"log.dirs={data}"]
    if http:
        cmd += ["--override", "kbroker.http.listeners=http://127.0.0.1:0"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = t0 + 60
        while not probe(port):
            if proc.poll() is not None:
                raise SystemExit(f"{tree}: broker exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            if time.perf_counter() > deadline:
                raise SystemExit(f"{tree}: not ready within 60 s")
            time.sleep(0.005)
        ready = time.perf_counter() - t0
        cpu, rss = proc_stat(proc.pid)
    finally:
        stop_broker(proc, timeout=60)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: broker exited {proc.returncode} on SIGTERM: {proc.stderr.read().decode()[-2000:]}")
    started = re.search(r"started in (\d+) ms", proc.stderr.read().decode())
    return ready, cpu, rss, float(started.group(1)) if started else float("nan")


_IMPORT = ("import sys, kbroker.broker; "
           "print(sum(m.startswith('kbroker_protocol.messages.') for m in sys.modules), len(sys.modules))")


# The whole start in one process: python -m kbroker's configuration and event loop, then exit at once.
_START = """
import asyncio, os, sys
from kbroker.__main__ import build_config, parse_args
config = build_config(parse_args(sys.argv[1:]))
async def main():
    from kbroker.broker import Broker
    await Broker(config).start()
    print(sum(m.startswith('kbroker_protocol.messages.') for m in sys.modules), len(sys.modules), flush=True)
    os._exit(0)
try:
    import uvloop
    run = uvloop.run
except ImportError:
    run = asyncio.run
run(main())
"""


def import_instructions(tree: Path, env: dict[str, str], start_args: list[str] | None = None,
                        data: Path | None = None) -> tuple[int, int, int]:
    """Instructions of ``import kbroker.broker`` (callgrind), message modules and modules loaded;
    with ``start_args`` (``python -m kbroker``'s arguments but the data dir) of the whole start in
    one process, on a fresh data dir under ``data`` each time."""
    def command(run: int) -> list[str]:
        if start_args is None:
            return [sys.executable, "-c", _IMPORT]
        assert data is not None
        return [sys.executable, "-c", _START, *start_args, "--override", f"log.dirs={data / f'run-{run}'}"]

    subprocess.run(command(0), cwd=tree, env=env, check=True, capture_output=True)  # warm
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command(1)],
                         cwd=tree, env=env, check=True, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"{tree}: no callgrind total: {out.stderr[-2000:]}")
    messages, modules = (int(x) for x in out.stdout.split())
    return int(found.group(1)), messages, modules


def describe(tree: Path) -> str:
    try:
        rev = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--", "kbroker", "protocol"],
                               capture_output=True, text=True).stdout.strip()
        return f"{tree} ({rev}{'+changes' if dirty else ''})"
    except (OSError, subprocess.CalledProcessError):
        return str(tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="a kbroker checkout (repeatable; default .)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cold", action="store_true", help="no bytecode cache (PYTHONDONTWRITEBYTECODE=1)")
    parser.add_argument("--no-http", action="store_true", help="without the metrics/console HTTP listener")
    parser.add_argument("--instructions", action="store_true",
                        help="count the instructions of `import kbroker.broker` per tree instead (callgrind)")
    parser.add_argument("--to-start", action="store_true",
                        help="with --instructions: of the whole start, to Broker.start returning (fresh data dir)")
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [Path(".")])]
    work = Path(tempfile.mkdtemp(prefix="kbroker-bench-startup-"))
    if args.instructions:
        what = ("the start to `Broker.start` returned" + (" (no HTTP listener)" if args.no_http else "")
                if args.to_start else "`import kbroker.broker`")
        print(f"| tree | instructions of {what} | message modules loaded | modules loaded |")
        print("|---|---:|---:|---:|")
        start_args = None
        if args.to_start:
            start_args = ["--override", "listeners=PLAINTEXT://localhost:0"]
            if not args.no_http:
                start_args += ["--override", "kbroker.http.listeners=http://127.0.0.1:0"]
        try:
            for i, tree in enumerate(trees):
                env = dict(os.environ, PYTHONPATH=tree_pythonpath(tree), PYTHONHASHSEED="0",
                           PYTHONPYCACHEPREFIX=str(work / f"pycache-{i}"))
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                instructions, messages, modules = import_instructions(tree, env, start_args, work / f"data-{i}")
                print(f"| {describe(tree)} | {instructions:,} | {messages} | {modules} |")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    envs = []
    for i, tree in enumerate(trees):
        env = dict(os.environ)
        env["PYTHONPATH"] = tree_pythonpath(tree)  # the tree's own codec (kbroker_protocol), not the venv's
        if args.cold:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(work / f"pycache-{i}")
            start_once(tree, work / f"warmup-{i}", env, not args.no_http)  # fills the cache
        envs.append(env)
    results: dict[tuple[int, str], list[tuple[float, float, int, float]]] = {}
    try:
        for r in range(args.rounds):
            order = list(range(len(trees)))
            if r % 2:
                order.reverse()
            for i in order:
                data = work / f"data-{i}-{r}"
                for kind in ("fresh", "existing"):
                    results.setdefault((i, kind), []).append(start_once(trees[i], data, envs[i], not args.no_http))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"python {platform.python_version()}, nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} "
          f"at the end; {args.rounds} rounds, {'cold (no bytecode cache)' if args.cold else 'warm bytecode cache'}, "
          f"HTTP listener {'off' if args.no_http else 'on'}")
    print("| tree | data dir | spawn-to-ready median (min-max) | CPU until ready median (min) "
          "| `Broker.start` median (min) | RSS at ready median |")
    print("|---|---|---:|---:|---:|---:|")
    for i, tree in enumerate(trees):
        for kind in ("fresh", "existing"):
            rows = results[(i, kind)]
            ready = [x[0] * 1000 for x in rows]
            cpu = [x[1] * 1000 for x in rows]
            rss = [x[2] / 1024 for x in rows]
            start = [x[3] for x in rows]
            print(f"| {describe(tree)} | {kind} | {statistics.median(ready):.0f} ms ({min(ready):.0f}-{max(ready):.0f}) "
                  f"| {statistics.median(cpu):.0f} ms ({min(cpu):.0f}) | {statistics.median(start):.0f} ms ({min(start):.0f}) "
                  f"| {statistics.median(rss):.1f} MiB |")


if __name__ == "__main__":
    main()
