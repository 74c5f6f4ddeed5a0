"""Broker subprocess and request helpers shared by the CLI tests and others (moved from test_cli)."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.records import Record, build_batch

READY = re.compile(r"kbroker ready: node (\d+) listening on PLAINTEXT://([^:\s]+):(\d+)")


class BrokerProcess:
    def __init__(self, args: list[str], cwd: Path) -> None:
        self.stderr_path = cwd / f"stderr-{time.monotonic_ns()}.txt"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "kbroker", *args], stdout=subprocess.PIPE,
                                     stderr=self._stderr, cwd=cwd)
        self.stdout = b""

    def wait_ready(self, timeout: float = 60.0) -> re.Match:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = READY.search(self.stdout.decode(errors="replace"))
            if match:
                return match
            if not sel.select(timeout=0.2):
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            self.stdout += chunk
        raise AssertionError(f"no readiness line; stdout={self.stdout!r} stderr={self.stderr()!r}")

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.proc.stdout.close()
            self._stderr.close()


def call(host: str, port: int, key: int, version: int, **fields):
    with socket.create_connection((host, port), timeout=20) as sock:
        header = RequestHeader(request_api_key=key, request_api_version=version, correlation_id=7, client_id="cli")
        payload = encode_request(header, REQUESTS[key](**fields))
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = sock.recv(65536)
            assert chunk, "connection closed"
            data += chunk
        return decode_response(data[4:], key, version)[1]


def base_args(data: Path) -> list[str]:
    return ["--override", "listeners=PLAINTEXT://127.0.0.1:0", "--override", f"log.dirs={data}"]


def produce(host: str, port: int, topic: str, count: int) -> None:
    call(host, port, 3, 12, topics=[REQUESTS[3].MetadataRequestTopic(name=topic)], allow_auto_topic_creation=True,
         include_topic_authorized_operations=False)
    P = REQUESTS[0]
    batch = build_batch([Record(key=None, value=b"r%d" % i, timestamp=int(time.time() * 1000)) for i in range(count)])
    resp = call(host, port, 0, 9, transactional_id=None, acks=-1, timeout_ms=5000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])
    assert resp.responses[0].partition_responses[0].error_code == 0


def end_offset(host: str, port: int, topic: str) -> int:
    L = REQUESTS[2]
    resp = call(host, port, 2, 7, replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(name=topic, partitions=[
        L.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1, timestamp=-1)])])
    return resp.topics[0].partitions[0].offset
