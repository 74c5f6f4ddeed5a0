"""``callgrind_control`` against a broker running under callgrind, for the instruction benchmarks
(scripts/instr_metrics.py, scripts/bench_fetch_cycle.py).

Valgrind takes a ``callgrind_control`` command only when the program runs, and an idle broker waits
in ``epoll_wait``: the command is sent from a thread while ``poke`` sends the broker a cheap request
and reads its answer, every 50 ms, until the command returns."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable


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
