#!/usr/bin/env python3
"""Longer fuzzing run of the codec's decoders (the bounded version is tests/protocol/test_codec_fuzz.py).

Usage::

    .venv/bin/python scripts/fuzz_codec.py [--seconds 60] [--seed N]

Builds valid request frames and response bodies for every API version with the reference
interpreter, applies stacked random mutations (truncations, bit flips, inserted and overwritten
giant lengths and over-long varints, duplicated chunks, garbage) and feeds them to
``decode_request`` and ``decode_response``.  The only outcomes allowed are a decoded value or
``ProtocolError``; anything else is printed with the input (hex) and the run exits with status 1.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kbroker_protocol.messages as messages  # noqa: E402
from kbroker_protocol.api import (  # noqa: E402
    decode_request,
    decode_response,
    request_header_version,
    response_header_version,
)
from kbroker_protocol.exceptions import ProtocolError  # noqa: E402
from kbroker_protocol.interpreter import Schema, load_specs, random_value  # noqa: E402
from kbroker_protocol.mutation import mutate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description="fuzz the kbroker codec's decoders")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    specs = load_specs()
    header_schema = Schema(specs["RequestHeader"])
    requests = [(c, v) for c in messages.REQUESTS.values() for v in range(c.MIN_VERSION, c.MAX_VERSION + 1)]
    responses = [(c, v) for c in messages.RESPONSES.values() for v in range(c.MIN_VERSION, c.MAX_VERSION + 1)]
    print(f"seed {seed}: {len(requests)} request and {len(responses)} response versions")
    deadline = time.monotonic() + args.seconds
    counts = {"decoded": 0, "rejected": 0}
    while time.monotonic() < deadline:
        is_request = rng.random() < 0.5
        cls, version = rng.choice(requests if is_request else responses)
        schema = Schema(specs[cls.__name__])
        body = schema.encode(random_value(schema, version, rng, max_items=rng.choice([1, 3, 8])), version)
        if is_request:
            header = {
                "request_api_key": cls.API_KEY,
                "request_api_version": version,
                "correlation_id": rng.randrange(1 << 31),
                "client_id": rng.choice([None, "", "fuzz"]),
                "unknown_tagged_fields": [],
            }
            frame = header_schema.encode(header, request_header_version(cls.API_KEY, version)) + body
        else:
            frame = b"\x00\x00\x00\x01" + (b"\x00" if response_header_version(cls.API_KEY, version) else b"") + body
        for _ in range(50):
            bad = mutate(frame, rng)
            try:
                if is_request:
                    decode_request(bad)
                else:
                    decode_response(bad, cls.API_KEY, version)
                counts["decoded"] += 1
            except ProtocolError:
                counts["rejected"] += 1
            except Exception:
                kind = "request" if is_request else "response"
                print(f"FAIL {cls.__name__} v{version} ({kind}) input {bad.hex()}")
                traceback.print_exc()
                return 1
    print(f"ok: {counts['decoded']} decoded, {counts['rejected']} rejected with ProtocolError")
    return 0


if __name__ == "__main__":
    sys.exit(main())
