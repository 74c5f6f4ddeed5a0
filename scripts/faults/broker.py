"""A kbroker process under fault injection: start, wait for readiness, kill -9, pause, resume, stop."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

READY = re.compile(rb"kbroker ready: node \d+ listening on PLAINTEXT://[^:\s]+:(\d+)")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """An ephemeral port, chosen once and kept across restarts (clients keep one bootstrap address)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FLUSH_POLICIES = {"every": ["log.flush.interval.messages=1"], "default": []}


class BrokerProcess:
    def __init__(self, data: Path, port: int, flush: str, partitions: int, log_path: Path) -> None:
        self.overrides = [
            "node.id=1", f"listeners=PLAINTEXT://127.0.0.1:{port}", f"log.dirs={data}",
            f"num.partitions={partitions}", "offsets.topic.num.partitions=3", "offsets.topic.replication.factor=1",
            "group.initial.rebalance.delay.ms=0", *FLUSH_POLICIES[flush],
        ]
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        args = [sys.executable, "-m", "kbroker"]
        for item in self.overrides:
            args += ["--override", item]
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
        self.starts += 1
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        out = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if READY.search(out):
                    return
                if not sel.select(timeout=0.2):
                    if self.proc.poll() is not None:
                        break
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
            if READY.search(out):
                return
        finally:
            sel.close()
        raise RuntimeError(f"kbroker not ready (exit {self.proc.poll()}); stdout {out[-500:]!r}; "
                           f"stderr in {self.log_path}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """kill -9 and reap."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._close()

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        code = self.proc.returncode
        self._close()
        return code

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
