#!/usr/bin/env python3
"""Long run of the sequence fuzzer against a broker process (the short run is
tests/hostile/test_sequence_fuzz.py).

Usage::

    .venv/bin/python scripts/fuzz_sequences.py [--seconds 300] [--seed N] [--mutation-rate 0.3]

Starts ``python -m kbroker`` on an ephemeral port with a temporary data directory, then runs
seeded request sequences (``kbroker.testing.sequence_fuzz``: classic and KIP-848 group
conversations, transactions, fetch sessions, with mutated, repeated, skipped and replayed steps)
until the time is up. After every batch it checks that the broker process is alive, samples its
RSS and scans its log for tracebacks and ERROR lines; at the end it stops the broker and starts it
again on the same data directory, which must come up and serve a clean client. It prints the seed, sequences and requests
sent, mutated steps, connections the broker closed, every finding (hang, undecodable response,
close on an unmutated step, clean client failing), crashes, log tracebacks and the RSS at start,
peak and end, and exits 1 if anything was found. ``--keep DIR`` keeps the broker's log and data.
"""

from __future__ import annotations

import argparse
import random
import re
import selectors
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbroker.testing.sequence_fuzz import SequenceFuzzer  # noqa: E402
from kbroker_protocol.errors import ErrorCode  # noqa: E402
from kbroker_protocol.messages import API_NAMES  # noqa: E402

READY = re.compile(rb"kbroker ready: node \d+ listening on PLAINTEXT://([^:\s]+):(\d+)")
BROKER_CONFIG = {
    "listeners": "PLAINTEXT://127.0.0.1:0",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "100",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
}


def start_broker(workdir: Path, log_name: str = "broker.log") -> tuple[subprocess.Popen, str, Path]:
    log_path = workdir / log_name
    overrides = [arg for key, value in {**BROKER_CONFIG, "log.dirs": str(workdir / "data")}.items()
                 for arg in ("--override", f"{key}={value}")]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "kbroker", *overrides], stdout=subprocess.PIPE,
                                stderr=log, cwd=workdir)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if sel.select(timeout=0.5):
            out += proc.stdout.read1(4096)
            match = READY.search(out)
            if match:
                return proc, f"{match.group(1).decode()}:{match.group(2).decode()}", log_path
    proc.kill()
    raise SystemExit(f"broker did not start; stdout={out!r}; log in {log_path}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def scan_log(log_path: Path) -> tuple[int, list[str]]:
    """(tracebacks, ERROR-or-worse lines) in the broker's log so far."""
    text = log_path.read_text(errors="replace")
    errors = [line for line in text.splitlines() if re.search(r" (ERROR|CRITICAL) ", line)]
    return text.count("Traceback (most recent call last)"), errors


def main() -> int:
    ap = argparse.ArgumentParser(description="fuzz kbroker with mutated request sequences")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--mutation-rate", type=float, default=0.3, help="share of steps mutated")
    ap.add_argument("--wait-cap-ms", type=int, default=500, help="cap on the waits a mutated step may ask for")
    ap.add_argument("--deadline", type=float, default=15.0, help="seconds before an unanswered step is a hang")
    ap.add_argument("--keep", type=Path, default=None, help="directory for the broker's log and data (kept)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        workdir, tmp = args.keep, None
    else:
        tmp = tempfile.TemporaryDirectory(prefix="fuzz-sequences-")
        workdir = Path(tmp.name)
    proc, bootstrap, log_path = start_broker(workdir)
    started = time.monotonic()
    rss_start = rss_peak = rss_kib(proc.pid)
    crashed = None
    fuzzer = SequenceFuzzer(bootstrap, seed, wait_cap_ms=args.wait_cap_ms, deadline_s=args.deadline,
                            mutation_rate=args.mutation_rate)
    print(f"seed {seed}: broker pid {proc.pid} at {bootstrap}, {args.seconds:.0f} s", flush=True)
    try:
        fuzzer.setup()
        next_report = started + 30
        while time.monotonic() - started < args.seconds:
            fuzzer.run(10)
            if proc.poll() is not None:
                crashed = f"broker exited with status {proc.returncode}"
                break
            rss_peak = max(rss_peak, rss_kib(proc.pid))
            if time.monotonic() >= next_report:
                next_report += 30
                s = fuzzer.stats
                print(f"  {time.monotonic() - started:5.0f} s: {s.sequences} sequences, {s.requests} requests, "
                      f"{len(s.findings)} findings, RSS {rss_kib(proc.pid) // 1024} MiB", flush=True)
    except (ConnectionError, OSError) as exc:
        crashed = f"{type(exc).__name__}: {exc}" if proc.poll() is None else f"broker exited ({proc.returncode})"
    elapsed = time.monotonic() - started
    rss_end = rss_kib(proc.pid) if proc.poll() is None else 0
    tracebacks, error_lines = scan_log(log_path)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            crashed = crashed or "broker did not stop within 30 s of SIGTERM"
    if proc.returncode not in (0, None) and crashed is None:
        crashed = f"broker exited with status {proc.returncode} on SIGTERM"
    restart = "not tried (the broker crashed)"
    if crashed is None:  # what the fuzzing left on disk must start again and serve
        try:
            proc, bootstrap, restart_log = start_broker(workdir, "restart.log")
        except SystemExit as exc:
            restart = f"FAILED: {exc}"
        else:
            fuzzer.bootstrap = bootstrap
            served = fuzzer.clean_client_works("restart")
            restart_tracebacks, restart_errors = scan_log(restart_log)
            tracebacks += restart_tracebacks
            error_lines += restart_errors
            restart = "ok" if served else "FAILED: a clean client cannot produce and fetch"
            proc.terminate()
            proc.wait(timeout=30)

    s = fuzzer.stats
    kinds = Counter(f.kind for f in s.findings)
    print(f"seed {seed}, {elapsed:.0f} s: {s.sequences} sequences, {s.requests} requests sent "
          f"({s.requests / max(elapsed, 1e-9):.0f}/s), {s.mutated} steps mutated, {s.closed} connections closed "
          "by the broker")
    print(f"hangs {kinds['hang']}, undecodable responses {kinds['bad-response']}, closes of unmutated steps "
          f"{kinds['closed-on-clean']}, clean-client failures {kinds['clean-client']}, "
          f"crash: {crashed or 'none'}")
    print(f"broker log: {tracebacks} tracebacks, {len(error_lines)} ERROR lines; restart on the same data: {restart}")
    print(f"broker RSS: start {rss_start // 1024} MiB, peak {rss_peak // 1024} MiB, end {rss_end // 1024} MiB")
    ok_steps = Counter({API_NAMES[k]: n for (k, code), n in s.outcomes.items() if code == ErrorCode.NONE})
    print("successful unmutated steps: " + ", ".join(f"{name} {n}" for name, n in sorted(ok_steps.items())))
    for finding in s.findings[:20]:
        print(f"FINDING {finding}")
    for line in error_lines[:10]:
        print(f"LOG {line}")
    if tmp is not None and (s.findings or tracebacks or error_lines or crashed or restart != "ok"):
        kept = Path(tempfile.mkdtemp(prefix="fuzz-sequences-log-"))
        for log in workdir.glob("*.log"):
            (kept / log.name).write_bytes(log.read_bytes())
        print(f"broker logs kept in {kept}")
    if tmp is not None:
        tmp.cleanup()
    return 1 if s.findings or tracebacks or error_lines or crashed or restart != "ok" else 0


if __name__ == "__main__":
    sys.exit(main())
