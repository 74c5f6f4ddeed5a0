#!/usr/bin/env python3
"""Which CRC-32C implementation should protocol.record_batch use? Measure them on record batches.

Candidates:
  crc32c         the ``crc32c`` package (ICRAR): SSE4.2 / ARMv8 hardware instructions, software fallback
  google-crc32c  Google's C library wrapper (``google_crc32c.value``), hardware accelerated
  crcmod (C)     ``crcmod.predefined.mkCrcFun('crc-32c')`` with its C extension (table driven)
  crcmod (pure)  crcmod's pure-Python fallback (``crcmod._crcfunpy``), what you get without a compiler

The input is about 1 MiB of real magic-2 record batches, once as ~10 KiB batches of 100 records and
once as ~200-byte batches of one record (where per-call overhead dominates), built with protocol.records.build_batch
(JSON-like values, headers; uncompressed and compressed batches), and the CRC of each batch is
computed over attributes..end exactly as protocol.record_batch.compute_crc does. Every candidate
must agree with the stored CRCs before it is timed.

    .venv/bin/pip install crcmod google-crc32c   # crcmod only for this measurement
    .venv/bin/python scripts/bench_crc.py

Figures are recorded in scripts/README.md, section "CRC-32C".
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_machine import cpu_model  # noqa: E402

from kbroker_protocol.compression import Codec  # noqa: E402
from kbroker_protocol.record_batch import CRC_COVERED_FROM, iter_batch_headers  # noqa: E402
from kbroker_protocol.records import Record, build_batch  # noqa: E402

TARGET = 1 << 20


def make_batches(per_batch: int) -> tuple[bytes, list[memoryview]]:
    batches: list[bytes] = []
    total = 0
    i = 0
    codecs = [Codec.NONE, Codec.NONE, Codec.LZ4, Codec.SNAPPY, Codec.ZSTD, Codec.GZIP]
    while total < TARGET:
        records = [
            Record(
                key=b"user-%d" % (j % 97),
                value=b'{"id": %d, "event": "page_view", "path": "/items/%d", "ts": %d, "pad": "%s"}'
                % (i * 100 + j, j * 7, 1_700_000_000_000 + j, os.urandom(16).hex().encode()),
                headers=(("source", b"web"), ("trace-id", os.urandom(8))),
                timestamp=1_700_000_000_000 + j,
            )
            for j in range(per_batch)
        ]
        batch = build_batch(records, base_offset=i * per_batch, compression=codecs[i % len(codecs)])
        batches.append(batch)
        total += len(batch)
        i += 1
    buf = b"".join(batches)
    regions = [memoryview(buf)[pos + CRC_COVERED_FROM : pos + h.size] for pos, h in iter_batch_headers(buf)]
    return buf, regions


def candidates() -> dict[str, Callable[[memoryview], int]]:
    found: dict[str, Callable[[memoryview], int]] = {}
    try:
        import crc32c

        found["crc32c (hardware)" if crc32c.hardware_based else "crc32c (software)"] = crc32c.crc32c
    except ImportError:
        pass
    try:
        import google_crc32c

        found[f"google-crc32c ({google_crc32c.implementation})"] = google_crc32c.value
    except ImportError:
        pass
    try:
        import crcmod._crcfunpy as crcfunpy
        import crcmod.predefined

        crcmod_module = sys.modules["crcmod.crcmod"]
        ext = crcmod.predefined.mkCrcFun("crc-32c")
        found["crcmod (C extension)" if crcmod_module._usingExtension else "crcmod (pure, no C ext)"] = ext
        # The pure-Python path, built from crcmod's own parameters and table.
        poly, init, xor_out = 0x11EDC6F41, 0, 0xFFFFFFFF
        size_bits, init_crc, xor_out = crcmod_module._verifyParams(poly, init, xor_out)
        table = crcmod_module._mkTable_r(poly, size_bits)

        def pure(data: memoryview, table=table, init_crc=init_crc, xor_out=xor_out) -> int:
            return xor_out ^ crcfunpy._crc32r(bytes(data), xor_out ^ init_crc, table)

        found["crcmod (pure Python)"] = pure
    except ImportError:
        pass
    return found


def bench(fn: Callable[[memoryview], int], regions: list[memoryview], budget: float) -> float:
    """Best wall time (s) for one pass over all regions, repeating within ``budget`` seconds."""
    best = float("inf")
    deadline = time.perf_counter() + budget
    runs = 0
    while runs < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        for region in regions:
            fn(region)
        best = min(best, time.perf_counter() - start)
        runs += 1
        if runs >= 200:
            break
    return best


def machine() -> str:
    model = cpu_model()
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = "sse4_2" if " sse4_2" in text else "no sse4_2"
    except OSError:
        pass
    return f"{model}; nproc={os.cpu_count()}; {flags}; Python {platform.python_version()} on {platform.machine()}"


def main() -> None:
    print(f"machine: {machine()}")
    for per_batch in (100, 1):
        run(*make_batches(per_batch))


def run(buf: bytes, regions: list[memoryview]) -> None:
    import crc32c

    expected = [crc32c.crc32c(r) for r in regions]
    stored = [int.from_bytes(buf[pos + 17 : pos + 21], "big") for pos, _ in iter_batch_headers(buf)]
    assert expected == stored, "reference CRCs disagree with the batches"
    covered = sum(len(r) for r in regions)
    print()
    print(f"input: {len(regions)} record batches, {len(buf)} bytes, {covered} bytes under CRC")
    print(f"{'implementation':32s} {'ms / MiB':>10s} {'MB/s':>10s}")
    as_bytes = [bytes(r) for r in regions]
    for name, fn in candidates().items():
        inputs: list = regions
        try:
            fn(regions[0])
        except TypeError:
            # Takes bytes only: the broker would copy each batch out of the request frame first.
            # Report both that real cost and the best case on ready-made bytes.
            copying = fn

            def fn(data: memoryview, inner=copying) -> int:
                return inner(bytes(data))

            rows = [(f"{name} +copy", fn, regions), (f"{name} on bytes", copying, as_bytes)]
        else:
            rows = [(name, fn, inputs)]
        for label, f, data in rows:
            assert [f(r) for r in data] == expected, f"{label} computes a different CRC"
            seconds = bench(f, data, budget=0.5 if "pure" not in label else 0.0)
            per_mib = seconds * (1 << 20) / covered
            print(f"{label:32s} {per_mib * 1000:10.3f} {covered / seconds / 1e6:10.1f}")


if __name__ == "__main__":
    main()
