#!/usr/bin/env python3
"""Codec benchmark: kbroker's generated codec next to kafka-python 3's, same work, same run.

Workloads (records are opaque 16 KB blobs to both codecs):

* a Produce request carrying 100 partitions (5 topics x 20) x one 16 KB batch, with its header:
  decode (what the broker does per request) and encode (parts, and joined into one ``bytes``);
* a Fetch response of the same shape, with its header: encode (what the broker does) and decode.
  "encode" is ``encode_response`` giving the parts the broker writes to the socket (records
  of 1 KB or more are not copied); "encode, joined" also joins them into one ``bytes``.

Usage::

    .venv/bin/python scripts/bench_codec.py [--seconds 2.0] [--clock cpu|wall] [--produce-version 9] [--fetch-version 12]

Prints requests/s and MB/s (frame bytes processed per second) per operation and codec, and the
speed-up.  Results are recorded in scripts/README.md ("Codec benchmark").
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_machine import cpu_model  # noqa: E402
from kafka.protocol.consumer import FetchResponse as KpFetch  # noqa: E402
from kafka.protocol.producer import ProduceRequest as KpProduce  # noqa: E402

from kbroker_protocol.api import decode_request, decode_response, encode_request, encode_response  # noqa: E402
from kbroker_protocol.messages import RequestHeader  # noqa: E402
from kbroker_protocol.messages.fetch import FetchResponse  # noqa: E402
from kbroker_protocol.messages.produce import ProduceRequest  # noqa: E402
from kbroker_protocol.primitives import Writer  # noqa: E402

TOPICS = 5
PARTITIONS = 20
BATCH = 16 * 1024


def batches() -> list[bytes]:
    return [os.urandom(BATCH) for _ in range(TOPICS * PARTITIONS)]


def _produce_fields(cls: type, blobs: list[bytes]) -> dict:
    """The Produce request's fields, made of either codec's classes (they have the same names)."""
    TD = cls.TopicProduceData
    PD = TD.PartitionProduceData
    return {"transactional_id": None, "acks": -1, "timeout_ms": 30000, "topic_data": [
        TD(name=f"topic-{t}", topic_id=uuid.UUID(int=t + 1),
           partition_data=[PD(index=p, records=blobs[t * PARTITIONS + p]) for p in range(PARTITIONS)])
        for t in range(TOPICS)]}


def _fetch_fields(cls: type, blobs: list[bytes]) -> dict:
    """The Fetch response's fields, made of either codec's classes (they have the same names)."""
    T = cls.FetchableTopicResponse
    P = T.PartitionData
    return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": [
        T(topic=f"topic-{t}", topic_id=uuid.UUID(int=t + 1), partitions=[
            P(partition_index=p, error_code=0, high_watermark=1000, last_stable_offset=1000, log_start_offset=0,
              aborted_transactions=None, preferred_read_replica=-1, records=blobs[t * PARTITIONS + p])
            for p in range(PARTITIONS)])
        for t in range(TOPICS)]}


def ours_produce(blobs: list[bytes]) -> ProduceRequest:
    return ProduceRequest(**_produce_fields(ProduceRequest, blobs))


def kp_produce(blobs: list[bytes], version: int) -> KpProduce:
    req = KpProduce(**_produce_fields(KpProduce, blobs), version=version)
    req.with_header(correlation_id=42, client_id="bench-client")
    return req


def ours_fetch(blobs: list[bytes]) -> FetchResponse:
    return FetchResponse(**_fetch_fields(FetchResponse, blobs))


def kp_fetch(blobs: list[bytes], version: int) -> KpFetch:
    resp = KpFetch(**_fetch_fields(KpFetch, blobs), version=version)
    resp.with_header(correlation_id=42)
    return resp


def encode_parts(header: RequestHeader, body: ProduceRequest) -> list:
    """What a client would hand to ``writelines``: header and body parts, records uncopied."""
    w = Writer()
    header.encode_into(w, 2)
    body.encode_into(w, header.request_api_version)
    return w.parts()


# CPU time of this process by default: on a shared machine it is far less disturbed by other
# processes than wall-clock time (``--clock wall`` to use wall time).
CLOCK = time.process_time


def _calls_per_round(fn, seconds: float) -> int:
    fn()
    n = 1
    while True:
        start = CLOCK()
        for _ in range(n):
            fn()
        elapsed = CLOCK() - start
        if elapsed > 0.02:
            return max(1, int(n * seconds / elapsed))
        n *= 2


def rates(ours, theirs, seconds: float, rounds: int = 7) -> tuple[float, float]:
    """Best calls/second of each, measured in alternating rounds (so that load from other
    processes hits both sides alike)."""
    per = seconds / rounds
    n_ours = _calls_per_round(ours, per)
    n_theirs = _calls_per_round(theirs, per)
    best = [0.0, 0.0]
    for _ in range(rounds):
        for i, (fn, n) in enumerate(((ours, n_ours), (theirs, n_theirs))):
            start = CLOCK()
            for _ in range(n):
                fn()
            best[i] = max(best[i], n / (CLOCK() - start))
    return best[0], best[1]


def main() -> int:
    ap = argparse.ArgumentParser(description="kbroker codec vs kafka-python codec")
    ap.add_argument("--seconds", type=float, default=2.0, help="time per codec per operation")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    ap.add_argument("--produce-version", type=int, default=9)
    ap.add_argument("--fetch-version", type=int, default=12)
    args = ap.parse_args()
    pv, fv = args.produce_version, args.fetch_version
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    blobs = batches()

    # Produce request frames (header + body, no size prefix).
    header = RequestHeader(request_api_key=0, request_api_version=pv, correlation_id=42, client_id="bench-client")
    ours_req = ours_produce(blobs)
    frame = encode_request(header, ours_req)
    kp_req = kp_produce(blobs, pv)
    kp_frame = bytes(kp_req.encode(header=True))
    assert kp_frame == frame, "the two codecs disagree on the Produce frame"
    h, body = decode_request(frame)
    assert body.encode(pv) == ours_req.encode(pv) and bytes(KpProduce.decode(frame, version=pv, header=True).topic_data[0].partition_data[0].records) == blobs[0]

    # Fetch response frames.
    ours_resp = ours_fetch(blobs)
    resp_frame = b"".join(encode_response(42, 1, fv, ours_resp))
    kp_resp = kp_fetch(blobs, fv)
    assert bytes(kp_resp.encode(header=True)) == resp_frame, "the two codecs disagree on the Fetch frame"
    assert decode_response(resp_frame, 1, fv)[1].encode(fv) == ours_resp.encode(fv)

    cases = [
        (f"Produce v{pv} request decode", len(frame), lambda: decode_request(frame),
         lambda: KpProduce.decode(frame, version=pv, header=True)),
        (f"Produce v{pv} request encode", len(frame), lambda: encode_parts(header, ours_req),
         lambda: kp_req.encode(header=True)),
        (f"Produce v{pv} encode, joined", len(frame), lambda: encode_request(header, ours_req),
         lambda: kp_req.encode(header=True)),
        (f"Fetch v{fv} response encode", len(resp_frame), lambda: encode_response(42, 1, fv, ours_resp),
         lambda: kp_resp.encode(header=True)),
        (f"Fetch v{fv} encode, joined", len(resp_frame), lambda: b"".join(encode_response(42, 1, fv, ours_resp)),
         lambda: kp_resp.encode(header=True)),
        (f"Fetch v{fv} response decode", len(resp_frame), lambda: decode_response(resp_frame, 1, fv),
         lambda: KpFetch.decode(resp_frame, version=fv, header=True)),
    ]
    print(f"python {platform.python_version()}, nproc {os.cpu_count()}, CPU {cpu_model()}, {args.clock} clock")
    print(f"frames: Produce {len(frame)} bytes, Fetch {len(resp_frame)} bytes "
          f"({TOPICS} topics x {PARTITIONS} partitions x {BATCH} B)")
    print(f"{'operation':32} {'kbroker req/s':>14} {'MB/s':>9} {'kafka-python req/s':>19} {'MB/s':>9} {'speed-up':>9}")
    for name, size, ours, theirs in cases:
        a, b = rates(ours, theirs, args.seconds)
        print(f"{name:32} {a:14.0f} {a * size / 1e6:9.0f} {b:19.0f} {b * size / 1e6:9.0f} {a / b:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
