#!/usr/bin/env python3
"""Partition log benchmark: append and sendfile-read throughput against plain file I/O.

Each figure is a ratio to a baseline measured in the same run on the same file system:

* append (default flushing): PartitionLog.append of 16 KiB batches vs. os.write of the same
  bytes to a plain file (no fsync in either);
* append (flush.messages=1): append with an fsync per batch vs. os.write + fdatasync per batch;
* read: PartitionLog.read (1 MiB per call, like a consumer fetch) + os.sendfile of each slice to a
  loopback TCP socket vs. os.sendfile of the plain file in 1 MiB chunks to the same kind of socket;
  a thread drains the socket in both cases. The data is in the page cache in both cases.

Each measurement is repeated (--repeat), each log run paired with its baseline (alternating which
runs first). The table shows the best wall-clock throughput of each, and the median over the pairs
of the ratio baseline time / log time, both in wall-clock time and in CPU time of this process
(user + system, all threads: the kernel's copying and sending count too). On a shared, noisy
machine the CPU-time ratio is the stable figure.

The log reserves disk blocks ahead of its appends (kbroker.log.prealloc, fallocate KEEP_SIZE);
the plain write does not. --no-reserve turns that off, leaving the log's own overhead alone.

Usage: .venv/bin/python scripts/bench_log.py [--dir DIR] [--mib 256] [--fsync-mib 16] [--repeat 5]
       [--no-reserve]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_machine import cpu_model  # noqa: E402

from kbroker.log import LogConfig, PartitionLog, prealloc  # noqa: E402
from kbroker_protocol.record_batch import HEADER_SIZE, LOG_OVERHEAD, BatchHeader, compute_crc, pack_header  # noqa: E402

CHUNK = 1024 * 1024


def _varint(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def make_batch(size: int) -> bytes:
    """One uncompressed batch of about ``size`` bytes: 16 records of equal size."""
    count = 16
    per_record = (size - HEADER_SIZE) // count
    records = []
    for i in range(count):
        body_len = per_record - 2
        value_len = body_len - 1 - 1 - len(_varint(i)) - 1 - 2 - 1
        value = os.urandom(value_len)
        body = b"\x00" + _varint(0) + _varint(i) + _varint(-1) + _varint(value_len) + value + _varint(0)
        records.append(_varint(len(body)) + body)
    body = b"".join(records)
    header = BatchHeader(0, HEADER_SIZE - LOG_OVERHEAD + len(body), 0, 2, 0, 0, count - 1, 0, 0, -1, -1, -1, count)
    out = bytearray(pack_header(header)) + body
    struct.pack_into(">I", out, 17, compute_crc(out, 0, len(out)))
    return bytes(out)


class Timer:
    """Wall-clock and CPU time (all threads of this process, user + system) of a block."""

    def __enter__(self) -> Timer:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.times = (time.perf_counter() - self.wall0, time.process_time() - self.cpu0)


def plain_write(path: Path, batch: bytes, count: int, fsync: bool) -> tuple[float, float]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with Timer() as t:
            for _ in range(count):
                os.write(fd, batch)
                if fsync:
                    os.fdatasync(fd)
        return t.times
    finally:
        os.close(fd)


def log_append(directory: Path, batch: bytes, count: int, config: LogConfig) -> tuple[tuple[float, float], PartitionLog]:
    shutil.rmtree(directory, ignore_errors=True)
    log = PartitionLog.open(directory, config)
    with Timer() as t:
        for _ in range(count):
            log.append(batch)
    log.high_watermark = log.log_end_offset
    return t.times, log


class Drain:
    """A loopback TCP connection whose receiving end is drained by a thread."""

    def __init__(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        self.sender = socket.create_connection(listener.getsockname())
        self.receiver, _ = listener.accept()
        listener.close()
        self.received = 0
        self._target = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray(CHUNK)
        while True:
            n = self.receiver.recv_into(buf)
            if not n:
                return
            with self._cond:
                self.received += n
                self._cond.notify_all()

    def wait_for(self, total: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.received >= total)

    def close(self) -> None:
        self.sender.close()
        self._thread.join()
        self.receiver.close()


def sendfile_all(sock: socket.socket, fd: int, position: int, size: int) -> None:
    while size:
        n = os.sendfile(sock.fileno(), fd, position, size)
        position += n
        size -= n


def plain_read(path: Path, drain: Drain) -> tuple[float, float]:
    size = path.stat().st_size
    target = drain.received + size
    with open(path, "rb") as f, Timer() as t:
        for position in range(0, size, CHUNK):
            sendfile_all(drain.sender, f.fileno(), position, min(CHUNK, size - position))
        drain.wait_for(target)
    return t.times


def log_read(log: PartitionLog, drain: Drain) -> tuple[float, float]:
    target = drain.received + log.size
    with Timer() as t:
        offset = log.log_start_offset
        while offset < log.log_end_offset:
            result = log.read(offset, CHUNK)
            for piece in result.slices:
                sendfile_all(drain.sender, piece.file.fileno(), piece.position, piece.size)
            offset = result.next_offset
        drain.wait_for(target)
    return t.times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="directory on the file system to test (default: a temp dir)")
    parser.add_argument("--mib", type=int, default=256, help="MiB appended and read without fsync")
    parser.add_argument("--fsync-mib", type=int, default=16, help="MiB appended with an fsync per batch")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch-kib", type=int, default=16, help="batch size in KiB (the goal is stated for 16)")
    parser.add_argument(
        "--no-reserve", action="store_true",
        help="turn off the log's block reservation ahead of appends (kbroker.log.prealloc), to see its share",
    )
    args = parser.parse_args()
    if args.no_reserve:
        prealloc._fallocate = None
    root = Path(tempfile.mkdtemp(prefix="bench-log-", dir=args.dir))
    batch = make_batch(args.batch_kib * 1024)
    count = args.mib * 1024 * 1024 // len(batch)
    fsync_count = args.fsync_mib * 1024 * 1024 // len(batch)
    mib = count * len(batch) / 2**20
    fsync_mib = fsync_count * len(batch) / 2**20
    results: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("write", "append", "fwrite", "fappend", "read", "lread")
    }
    drain = Drain()
    try:
        for i in range(args.repeat):
            # Alternate which of each pair runs first, so that order effects cancel out.
            first_plain = i % 2 == 0
            if first_plain:
                results["write"].append(plain_write(root / "plain.bin", batch, count, fsync=False))
            elapsed, log = log_append(root / "bench-0", batch, count, LogConfig())
            results["append"].append(elapsed)
            if not first_plain:
                results["write"].append(plain_write(root / "plain.bin", batch, count, fsync=False))
            if first_plain:
                results["read"].append(plain_read(root / "plain.bin", drain))
            results["lread"].append(log_read(log, drain))
            if not first_plain:
                results["read"].append(plain_read(root / "plain.bin", drain))
            log.close()
            if first_plain:
                results["fwrite"].append(plain_write(root / "plain-sync.bin", batch, fsync_count, fsync=True))
            elapsed, log = log_append(root / "bench-sync-0", batch, fsync_count, LogConfig(flush_messages=1))
            results["fappend"].append(elapsed)
            log.close()
            if not first_plain:
                results["fwrite"].append(plain_write(root / "plain-sync.bin", batch, fsync_count, fsync=True))
    finally:
        drain.close()
        shutil.rmtree(root, ignore_errors=True)
    best = {k: min(wall for wall, _ in v) for k, v in results.items()}

    def median_ratio(log_key: str, base_key: str, which: int) -> float:
        pairs = zip(results[log_key], results[base_key], strict=True)
        ratios = sorted(base[which] / log[which] for log, base in pairs)
        return ratios[len(ratios) // 2]

    rows = [
        ("append, default flushing", "append", "plain write", "write", mib),
        ("append, flush.messages=1", "fappend", "write+fdatasync", "fwrite", fsync_mib),
        ("read via sendfile", "lread", "plain sendfile", "read", mib),
    ]
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()}, {platform.system()}")
    print(f"batches of {len(batch)} bytes; {mib:.0f} MiB (fsync runs: {fsync_mib:.0f} MiB); {args.repeat} repeats")
    print(f"block reservation ahead of appends: {'on' if prealloc.supported() else 'off'}")
    print("ratio = baseline time / log time (higher is better, 1.00 = as fast as the baseline)")
    print(
        f"{'measurement':26} {'best MiB/s':>10}   {'baseline':16} {'best MiB/s':>10}"
        "   median wall ratio   median CPU ratio"
    )
    for name, key, base_name, base_key, amount in rows:
        value, base = amount / best[key], amount / best[base_key]
        print(
            f"{name:26} {value:10.1f}   {base_name:16} {base:10.1f}"
            f"   {median_ratio(key, base_key, 0):16.2f}x   {median_ratio(key, base_key, 1):15.2f}x"
        )

if __name__ == "__main__":
    main()
