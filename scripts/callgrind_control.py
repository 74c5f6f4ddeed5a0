"""A broker running under callgrind, for the instruction benchmarks (scripts/instr_metrics.py,
scripts/bench_fetch_cycle.py): ``callgrind_control``, the newest dump's total, stopping it.

Valgrind takes a ``callgrind_control`` command only when the program runs, and an idle broker waits
in ``epoll_wait``: the command is sent from a thread while ``poke`` sends the broker a cheap request
and reads its answer, every 50 ms, until the command returns."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path


def callgrind_control(pid: int, args: tuple[str, ...], poke: Callable[[], None]) -> None:
    done = threading.Event()
    result: list[subprocess.CompletedProcess[bytes]] = []

    def run() -> None:
        result.append(subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True))
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    while not done.wait(0.05):
        poke()
    thread.join()
    if result[0].returncode != 0:
        raise SystemExit(f"callgrind_control {args} failed: {result[0].stderr.decode()}")


def last_dump_total(out: Path, name: str, pid: int) -> int:
    """The instruction total (``totals:`` line) of the newest callgrind dump ``out/name.pid.*``."""
    dumps = sorted(out.glob(f"{name}.{pid}.*"), key=lambda p: p.stat().st_mtime)
    match = re.search(r"^totals:\s+(\d+)", dumps[-1].read_text(errors="replace"), re.M)
    if match is None:
        raise SystemExit(f"no totals in {dumps[-1]}")
    return int(match.group(1))


def stop_broker(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (callgrind writes its last dump on the way out), then SIGKILL after 300 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
