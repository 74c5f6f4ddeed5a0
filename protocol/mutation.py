"""Byte-level mutations of encoded frames, shared by the fuzzers (``tests/protocol/test_codec_fuzz.py``,
``scripts/fuzz_codec.py``, and the broker sequence fuzzer ``kbroker.testing.sequence_fuzz``).

Not used by the codec itself: it only produces hostile inputs for it.
"""

from __future__ import annotations

import random

# Lengths and counts a hostile peer would claim: int32/int16 extremes and negatives, unsigned
# varints of 2^32-1 and ~2^28, one longer than 5 bytes and one longer than 10.
GIANT = (
    b"\x7f\xff\xff\xff",
    b"\xff\xff\xff\xfe",  # -2
    b"\x80\x00\x00\x00",
    b"\xff\xff\xff\xff",  # -1
    b"\x7f\xff",
    b"\xff\xfe",
    b"\xff\xff\xff\xff\x0f",  # uvarint 2^32-1
    b"\xff\xff\xff\xff\xff\x01",  # uvarint longer than 5 bytes
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # uvarlong longer than 10 bytes
    b"\xfe\xff\xff\x7f",  # uvarint ~2^28
    b"\x00",
)


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> bytes:
    """``data`` with ``rounds`` stacked random mutations (by default 1-3): truncation, a bit flip,
    an inserted or overwriting giant length, a garbage tail, a duplicated chunk, a deleted run."""
    b = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.choice((1, 1, 1, 2, 3))):
        kind = rng.randrange(7)
        pos = rng.randrange(len(b) + 1)
        if kind == 0:
            del b[pos:]
        elif kind == 1 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif kind == 2:
            b[pos:pos] = rng.choice(GIANT)
        elif kind == 3:
            g = rng.choice(GIANT)
            b[pos : pos + len(g)] = g
        elif kind == 4:
            b[pos:] = rng.randbytes(rng.randrange(1, 16))
        elif kind == 5:
            end = min(len(b), pos + rng.randrange(1, 32))
            b[end:end] = b[pos:end]
        else:
            del b[pos : pos + rng.randrange(1, 8)]
    return bytes(b)
