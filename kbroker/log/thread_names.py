"""OS names for the broker's worker threads, so ``top -H``, ``ps -L`` and ``/proc/<pid>/task/*/comm``
tell them apart (Python 3.11 leaves every thread named after the executable: ``python``).

``scripts/bench_cores.py`` reads these names to report the broker's CPU per thread (issue 23).
"""

from __future__ import annotations

import threading

COMM_MAX = 15  # the kernel's TASK_COMM_LEN (16) less the terminating NUL


def os_name_for(name: str) -> str:
    """The OS name for a Python thread name: without the ``kbroker-`` prefix, cut to 15 bytes."""
    return name.removeprefix("kbroker-").encode()[:COMM_MAX].decode(errors="ignore")


def name_os_thread() -> None:
    """Give the calling thread its Python name as OS name (a ThreadPoolExecutor ``initializer``).
    Where /proc is missing or refuses the write, the thread keeps its name: this never fails."""
    try:
        with open("/proc/thread-self/comm", "w") as comm:
            comm.write(os_name_for(threading.current_thread().name))
    except OSError:
        pass
