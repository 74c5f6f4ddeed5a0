"""py-spy profiles of kbroker creating N partitions and starting again on them (issue 23).

    .venv/bin/pip install py-spy
    .venv/bin/python scripts/profile_partitions.py 10000 OUT   # OUT-create.txt, OUT-start.txt

Starts kbroker from this tree (scripts/bench_scale_nodes.py, the bench settings), records the
broker with py-spy (raw folded stacks, 50 Hz) while one topic of N partitions is created (more
than 5,000: CreateTopics then CreatePartitions), stops it cleanly, then starts it again under
py-spy until Metadata shows all N partitions led. Prints create_s, stop_s and startup_s (the
start-up under py-spy, so slower than without it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_brokers as bb  # noqa: E402
import bench_scale_nodes as sn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPY = str(ROOT / ".venv" / "bin" / "py-spy")


def main() -> int:
    parts, out = int(sys.argv[1]), sys.argv[2]
    base = Path(tempfile.mkdtemp(prefix="profile-partitions-"))
    node = sn.make("kbroker", base, dict(bb.BENCH_SETTINGS), ROOT)
    try:
        node.start()
        spy = subprocess.Popen([SPY, "record", "-r", "50", "-f", "raw", "-o", f"{out}-create.txt", "-p",
                                str(node.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)  # (py-spy attached)
        t0 = time.monotonic()
        sn.create_topic(node.bootstrap, "t", parts)
        node.wait_topic("t", parts)
        print("create_s", time.monotonic() - t0, flush=True)
        spy.send_signal(signal.SIGINT)
        spy.wait()
        print("stop_s", node.stop(), flush=True)
        cmd, env, cwd = node.command()
        t0 = time.monotonic()
        spied = subprocess.Popen([SPY, "record", "-r", "50", "-f", "raw", "-o", f"{out}-start.txt", "--", *cmd],
                                 env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def ready() -> bool:
            try:
                return sn.topic_ready(node.bootstrap, "t", parts, timeout=5)
            except OSError:
                return False

        while not ready():
            if spied.poll() is not None:
                raise RuntimeError("kbroker exited during start-up")
            time.sleep(0.05)
        print("startup_s", time.monotonic() - t0, flush=True)
        children = subprocess.run(["pgrep", "-P", str(spied.pid)], capture_output=True, text=True).stdout.split()
        for child in children:
            os.kill(int(child), signal.SIGTERM)
        spied.wait(600)
    finally:
        node.remove()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
