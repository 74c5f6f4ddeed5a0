"""A broker running under callgrind, for the instruction benchmarks (scripts/instr_metrics.py,
scripts/bench_fetch_cycle.py, scripts/instr_produce_partitions.py): ``callgrind_control``, the
newest dump's total, stopping it; :class:`BenchBroker`, such a broker (or one without callgrind)
started from a source tree with a topic made, poked with ApiVersions while a command waits.

Valgrind takes a ``callgrind_control`` command only when the program runs, and an idle broker waits
in ``epoll_wait``: the command is sent from a thread while ``poke`` sends the broker a cheap request
and reads its answer, every 50 ms, until the command returns."""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench_broker import metadata_ok
from tree_path import tree_pythonpath

from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.messages import REQUESTS, RequestHeader


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


def stop_broker(proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    """SIGTERM (callgrind writes its last dump on the way out), then SIGKILL after ``timeout`` s
    (300 by default: a broker under callgrind is slow to stop)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def frame(request: object, key: int, version: int, cid: int = 0) -> bytes:
    header = RequestHeader(request_api_key=key, request_api_version=version, correlation_id=cid, client_id="cycle")
    payload = encode_request(header, request)
    return struct.pack(">i", len(payload)) + payload


class Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> bytes:
        (size,) = struct.unpack(">i", self.reader.read(4))
        return self.reader.read(size)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class BenchBroker:
    """kbroker run as ``cmd`` (``python -m kbroker ...``, under valgrind if the caller put it in front)
    from ``tree`` (its PYTHONPATH, PYTHONHASHSEED 0, its output in ``work/name.log``), listening on
    ``port``, with ``topic`` created with ``partitions`` partitions, each with a leader (``topic_id``)."""

    def __init__(self, name: str, tree: Path, work: Path, port: int, cmd: list[str], topic: str,
                 partitions: int) -> None:
        self.name, self.out, self.port = name, work, port
        env = dict(os.environ, PYTHONPATH=tree_pythonpath(tree), PYTHONHASHSEED="0")
        self.log = work / f"{name}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while not metadata_ok(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"broker {name} did not start: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        self.topic_id = self._create_topic(topic, partitions)
        self.poke = Conn(port)
        self.poke_frame = frame(REQUESTS[18](), 18, 0)

    def _create_topic(self, topic: str, partitions: int) -> uuid.UUID:
        conn = Conn(self.port)
        try:
            C = REQUESTS[19]
            conn.send(frame(C(topics=[C.CreatableTopic(name=topic, num_partitions=partitions, replication_factor=1,
                                                       assignments=[], configs=[])], timeout_ms=60000), 19, 7))
            _h, created = decode_response(conn.recv(), 19, 7)
            if created.topics[0].error_code:
                raise SystemExit(f"CreateTopics: error {created.topics[0].error_code}")
            M = REQUESTS[3]
            deadline = time.monotonic() + 120
            while True:
                conn.send(frame(M(topics=[M.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False,
                                  include_topic_authorized_operations=False), 3, 12))
                _h, meta = decode_response(conn.recv(), 3, 12)
                t = meta.topics[0]
                if len(t.partitions) == partitions and all(p.leader_id >= 0 for p in t.partitions):
                    topic_id: uuid.UUID = t.topic_id
                    return topic_id
                if time.monotonic() > deadline:
                    raise SystemExit("the topic's partitions have no leader")
                time.sleep(0.1)
        finally:
            conn.close()

    def control(self, *args: str) -> None:
        """callgrind_control, poking the broker with requests until it has taken the command."""
        def poke() -> None:
            self.poke.send(self.poke_frame)
            self.poke.recv()

        callgrind_control(self.proc.pid, args, poke)

    def stop(self) -> None:
        self.poke.close()
        stop_broker(self.proc)
