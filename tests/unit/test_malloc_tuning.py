"""kbroker/server/malloc.py: the broker pins glibc's mmap threshold, so a buffer of a few MiB (a
large Produce request) comes from the heap instead of a mapping of its own (glibc's mallinfo2,
in a fresh interpreter each, since the thresholds are per process)."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
if sys.argv[1] == "tune":
    from kbroker.server import malloc
    assert malloc.tune()
buffer = bytearray(8 << 20)
print(libc.mallinfo2().hblkhd)
"""


def _mapped_bytes(arm: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, arm], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"),
                    reason="glibc 2.33+ only (mallinfo2)")
def test_a_buffer_of_8_mib_comes_from_the_heap_once_tuned() -> None:
    assert _mapped_bytes("default") >= 8 << 20  # glibc's default: a mapping of its own
    assert _mapped_bytes("tune") < 8 << 20

