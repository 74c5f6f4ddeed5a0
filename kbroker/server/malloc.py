"""The C allocator's thresholds for the broker process (issue 23: produce to many partitions).

A Produce request from a Java producer writing to many partitions carries one batch for each
partition with a full batch: ~1 MiB, read in feeds of up to 256 KiB and joined into one frame
(``kbroker_protocol.framing``). With glibc's defaults such buffers can cycle through the top of
the heap: freed, the top holds more than the trim threshold (twice the mmap threshold, which glibc
raises as it frees large chunks) and is given back to the kernel; the next request grows the heap
again (``brk``) and the kernel faults in and zero-fills the same pages anew. Whether a process
does so depends on its heap's layout (which long-lived allocations sit above the buffers).
Measured (ProducerPerformance, 500,000 records of 1 KiB into 16 partitions, acks=1, 2026-12-07
23:55-23:57 UTC): a broker that churned had 226,034 / 235,184 minor page faults (~900 MB faulted
in, system time 1.61 / 2.67 s); the same start with :func:`tune` called, 8,300 / 7,937
(1.13 / 1.91 s).

:func:`tune` pins the thresholds where glibc's own dynamic rule would put them after freeing a
16 MiB chunk (``M_MMAP_THRESHOLD`` 16 MiB, ``M_TRIM_THRESHOLD`` twice that; glibc lets them rise
to 32 and 64 MiB by itself): the heap keeps up to 32 MiB freed at its top for the next requests
instead of returning it, and buffers above 16 MiB still get their own mapping. Nothing changes
where the C library has no ``mallopt`` or the platform is not Linux.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 16 * 1024 * 1024
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD


def tune() -> bool:
    """Pin glibc's mmap and trim thresholds (above); True if both were set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not done:
        log.info("mallopt refused the allocator thresholds: the C library's defaults stay")
    return done
