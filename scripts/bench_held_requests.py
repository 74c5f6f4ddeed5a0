"""Broker memory with clients sending huge requests slowly (issue 13, hole 6).

Starts ``python -m kbroker`` (the CLI, so uvloop) on an ephemeral port with a fresh data dir,
opens ``--connections`` connections that each announce a frame of ``--frame-mb`` MB and send its
body as fast as the broker reads it, ``--chunk-kb`` at a time with ``--pause-ms`` between
chunks (never completing it). Reports the broker's RSS while they are held (and whether a
Metadata request from another client is answered meanwhile), then closes them and reports RSS
again once the broker has had ``--settle-seconds`` to release the memory.

    .venv/bin/python scripts/bench_held_requests.py                      # 20 x 99.99 MB frames
    .venv/bin/python scripts/bench_held_requests.py --override queued.max.request.bytes=-1
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kbroker_protocol.api import decode_response, encode_request  # noqa: E402
from kbroker_protocol.messages import REQUESTS, RequestHeader  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def metadata_seconds(port: int, timeout: float = 30.0) -> float | None:
    """Seconds for a Metadata request on a new connection; None if not answered in time."""
    header = RequestHeader(request_api_key=3, request_api_version=12, correlation_id=1, client_id="bench")
    payload = encode_request(header, REQUESTS[3](topics=[], allow_auto_topic_creation=False))
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(payload)) + payload)
            data = b""
            while len(data) < 4:
                data += s.recv(4 - len(data))
            (size,) = struct.unpack(">i", data)
            body = b""
            while len(body) < size:
                chunk = s.recv(size - len(body))
                if not chunk:
                    return None
                body += chunk
            decode_response(body, 3, 12)
    except OSError:
        return None
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--frame-mb", type=float, default=99.99)
    parser.add_argument("--chunk-kb", type=int, default=1024)
    parser.add_argument("--pause-ms", type=float, default=10.0)
    parser.add_argument("--hold-seconds", type=float, default=60.0, help="longest to keep sending")
    parser.add_argument("--settle-seconds", type=float, default=5.0)
    parser.add_argument("--override", action="append", default=[], help="broker config key=value")
    args = parser.parse_args()

    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="kbroker-held-"))
    cmd = [sys.executable, "-m", "kbroker", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
           "--override", f"log.dirs={data}", "--log-level", "WARNING"]
    for item in args.override:
        cmd += ["--override", item]
    proc = subprocess.Popen(cmd, cwd=os.getcwd(), stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while metadata_seconds(port, 1.0) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("broker did not start")
            time.sleep(0.05)
        idle = status_kb(proc.pid, "VmRSS")
        frame = int(args.frame_mb * 1_000_000)
        chunk = b"\0" * (args.chunk_kb * 1024)
        sent = [0] * args.connections
        stop = threading.Event()
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.connections)]

        def send(i: int) -> None:
            s = socks[i]
            try:
                s.sendall(struct.pack(">i", frame))
                while sent[i] < frame - 1 and not stop.is_set():
                    n = min(len(chunk), frame - 1 - sent[i])
                    s.sendall(chunk[:n])
                    sent[i] += n
                    time.sleep(args.pause_ms / 1000)
            except OSError:
                pass

        threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(args.connections)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        # Until every sender is done or blocked (the broker stopped reading) for 3 s, or the limit.
        last, still = -1, time.monotonic()
        while time.monotonic() - t0 < args.hold_seconds:
            total = sum(sent)
            if total != last:
                last, still = total, time.monotonic()
            elif time.monotonic() - still > 3 or all(not t.is_alive() for t in threads):
                break
            time.sleep(0.2)
        held_rss = status_kb(proc.pid, "VmRSS")
        peak = status_kb(proc.pid, "VmHWM")
        bystander = metadata_seconds(port)
        alive = proc.poll() is None
        stop.set()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in threads:
            t.join(10)
        time.sleep(args.settle_seconds)  # the broker's time to close and release, measured after
        after = status_kb(proc.pid, "VmRSS")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)
    print(f"connections: {args.connections} x {frame:,} B frames, sent {args.chunk_kb} KiB every "
          f"{args.pause_ms:g} ms; overrides: {args.override or 'none'}")
    print(f"client bytes sent (the kernel's socket buffers hold some): {sum(sent) / 1e6:,.0f} MB "
          f"in {time.monotonic() - t0 - args.settle_seconds:.0f} s")
    print(f"broker RSS: idle {idle / 1024:.0f} MiB; while held {held_rss / 1024:.0f} MiB; "
          f"peak (VmHWM) {peak / 1024:.0f} MiB; {args.settle_seconds:g} s after the clients closed "
          f"{after / 1024:.0f} MiB")
    print("Metadata from another client while held: "
          + (f"answered in {bystander * 1000:.0f} ms" if bystander is not None else "not answered")
          + ("" if alive else " (broker process died)"))


if __name__ == "__main__":
    main()
