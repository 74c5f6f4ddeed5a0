"""What TLS costs a fetch: sendfile (PLAINTEXT) against copying through the TLS transport (SSL).

Starts ``python -m kbroker`` (the CLI, so uvloop) with a PLAINTEXT and an SSL listener (certificates
made with the openssl CLI in a temporary directory), writes ``--mib`` MiB to one partition, then
fetches the whole log ``--repeat`` times on each listener with raw Fetch v11 requests (the response
bytes are read, not decoded). Reports, per listener, the throughput seen by the client and the
broker's CPU seconds per GiB served (utime + stime from /proc). The client decrypts on the same
machine, so the SSL throughput is bounded by both sides; the broker CPU figure is the broker's own.

    .venv/bin/python scripts/bench_tls_fetch.py                  # 64 MiB, 5 fetches per listener
    .venv/bin/python scripts/bench_tls_fetch.py --mib 256 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kbroker_protocol.api import decode_response, encode_request  # noqa: E402
from kbroker_protocol.messages import REQUESTS, RequestHeader  # noqa: E402
from kbroker_protocol.records import Record, build_batch  # noqa: E402

TOPIC = "tls-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(d: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=bench-ca", "-addext", "basicConstraints=critical,CA:TRUE")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.pem", "-days", "1", "-extfile", "ext")
    (d / "store.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_exact(sock: socket.socket, n: int, buf: bytearray | None = None) -> int:
    """Read n bytes (into buf when given, reused); returns n."""
    view = memoryview(buf)[:n] if buf is not None else None
    got = 0
    while got < n:
        if view is not None:
            k = sock.recv_into(view[got:], n - got)
        else:
            k = len(sock.recv(n - got))
        if k == 0:
            raise ConnectionError("closed")
        got += k
    return n


def call(sock: socket.socket, key: int, version: int, body: object, cid: int) -> object:
    header = RequestHeader(request_api_key=key, request_api_version=version, correlation_id=cid, client_id="bench")
    payload = encode_request(header, body)
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL) if not isinstance(sock, ssl.SSLSocket)
                         else _ssl_exact(sock, 4))[0]
    data = _ssl_exact(sock, size) if isinstance(sock, ssl.SSLSocket) else sock.recv(size, socket.MSG_WAITALL)
    return decode_response(data, key, version)[1]


def _ssl_exact(sock: ssl.SSLSocket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return bytes(out)


def fill(port: int, mib: int) -> None:
    Req = REQUESTS[0]
    with socket.create_connection(("127.0.0.1", port)) as s:
        CT = REQUESTS[19]
        call(s, 19, 7, CT(topics=[CT.CreatableTopic(name=TOPIC, num_partitions=1, replication_factor=1,
                                                    assignments=[], configs=[])], timeout_ms=10000), 1)
        value = os.urandom(1024)
        for i in range(mib):
            batch = build_batch([Record(key=None, value=value, timestamp=1_700_000_000_000 + j) for j in range(1024)])
            data = Req.TopicProduceData(name=TOPIC, partition_data=[Req.TopicProduceData.PartitionProduceData(
                index=0, records=batch)])
            resp = call(s, 0, 9, Req(transactional_id=None, acks=1, timeout_ms=10000, topic_data=[data]), 2 + i)
            assert resp.responses[0].partition_responses[0].error_code == 0


def fetch_all(sock: socket.socket, total: int, cid: int, buf: bytearray) -> int:
    """One Fetch of the whole partition; returns the response bytes read."""
    F = REQUESTS[1]
    body = F(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=total, isolation_level=0, session_id=0,
             session_epoch=-1, topics=[F.FetchTopic(topic=TOPIC, partitions=[F.FetchTopic.FetchPartition(
                 partition=0, current_leader_epoch=-1, fetch_offset=0, log_start_offset=-1,
                 partition_max_bytes=total)])], forgotten_topics_data=[], rack_id="")
    header = RequestHeader(request_api_key=1, request_api_version=11, correlation_id=cid, client_id="bench")
    payload = encode_request(header, body)
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    head = bytearray(4)
    read_exact(sock, 4, head)
    (size,) = struct.unpack(">i", head)
    if size > len(buf):
        raise SystemExit(f"response of {size} bytes larger than the buffer")
    return read_exact(sock, size, buf)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kbroker-tls-bench-"))
    make_certs(work)
    plain, tls = free_port(), free_port()
    overrides = {
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}",
        "log.dirs": str(work / "data"), "node.id": "1",
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(work / "store.pem"),
        "fetch.max.bytes": str(max(57671680, (args.mib + 8) << 20)),
        "message.max.bytes": str(2 << 20),
    }
    cmd = [sys.executable, "-m", "kbroker", *[x for k, v in overrides.items() for x in ("--override", f"{k}={v}")]]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "kbroker ready" not in line:
            raise SystemExit(f"broker did not start: {line!r}")
        fill(plain, args.mib)
        total = (args.mib + 8) << 20
        buf = bytearray(total)
        ctx = ssl.create_default_context(cafile=str(work / "ca.pem"))
        print(f"{args.mib} MiB log, {args.repeat} whole-log fetches per listener (Fetch v11)")
        for name, port, wrap in (("PLAINTEXT (sendfile)", plain, False), ("SSL (copy)", tls, True)):
            sock: socket.socket = socket.create_connection(("127.0.0.1", port))
            if wrap:
                sock = ctx.wrap_socket(sock, server_hostname="localhost")
            fetch_all(sock, total, 1, buf)  # warm the page cache and the connection
            cpu0, t0, served = cpu_seconds(proc.pid), time.perf_counter(), 0
            for i in range(args.repeat):
                served += fetch_all(sock, total, 2 + i, buf)
            elapsed, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
            sock.close()
            gib = served / (1 << 30)
            print(f"  {name:22s} {served / elapsed / (1 << 20):8.0f} MiB/s   broker CPU {cpu / gib:6.2f} s/GiB")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
