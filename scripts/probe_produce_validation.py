#!/usr/bin/env python3
"""Send the hostile Produce batches of issue 13 to a broker and print what it answers.

Run against kbroker and against the reference Apache Kafka (scripts/reference_kafka.py) to compare
error codes, messages and record errors:

    .venv/bin/python scripts/reference_kafka.py            # prints BOOTSTRAP host:port
    .venv/bin/python scripts/probe_produce_validation.py --bootstrap host:port

For each batch: the partition error, the error message, the record errors, and the log end offset
before and after (it must not move).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration"), str(ROOT / "tests" / "hostile")]

import hostile_batches as hb  # noqa: E402
from wire import Wire, create_topic  # noqa: E402

from kbroker_protocol.errors import ErrorCode  # noqa: E402
from kbroker_protocol.messages import REQUESTS  # noqa: E402
from kbroker_protocol.records import Record, build_batch  # noqa: E402


def produce(wire: Wire, topic: str, batch: bytes, version: int = 9):
    Req = REQUESTS[0]
    data = Req.TopicProduceData(name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(
        index=0, records=batch)])
    resp = wire.call(0, version, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[data])
    return resp.responses[0].partition_responses[0]


def end_offset(wire: Wire, topic: str) -> int:
    Req = REQUESTS[2]
    resp = wire.call(2, 7, replica_id=-1, isolation_level=0, timeout_ms=10000, topics=[
        Req.ListOffsetsTopic(name=topic, partitions=[Req.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=0, current_leader_epoch=-1, timestamp=-1)])])
    return resp.topics[0].partitions[0].offset


def show(name: str, part, before: int, after: int) -> None:
    code = ErrorCode(part.error_code)
    errors = [(e.batch_index, e.batch_index_error_message) for e in part.record_errors]
    print(f"{name:28} {code.name} ({int(code)})  offsets {before}->{after}  message={part.error_message!r}"
          f"  record_errors={errors}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--bomb-mb", type=int, default=0, help="also send a zstd bomb of this many MB")
    args = ap.parse_args()
    wire = Wire(args.bootstrap)
    topic = f"probe-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    time.sleep(1)  # a script, not a test: let the leader settle on the reference broker
    cases = hb.named()
    if args.bomb_mb:
        cases[f"zstd bomb {args.bomb_mb} MB"] = hb.bomb(args.bomb_mb << 20)
    for name, batch in cases.items():
        before = end_offset(wire, topic)
        part = produce(wire, topic, batch)
        show(name, part, before, end_offset(wire, topic))
    # record errors: a compacted topic and records without keys; timestamps out of range
    compacted = f"probe-c-{uuid.uuid4().hex[:8]}"
    create_topic(wire, compacted, configs={"cleanup.policy": "compact"})
    time.sleep(1)
    recs = [Record(key=None if i in (1, 2, 4, 5) else b"k", value=b"v", timestamp=int(time.time() * 1000))
            for i in range(6)]
    for codec in (0, 4):
        before = end_offset(wire, compacted)
        part = produce(wire, compacted, build_batch(recs, compression=codec))
        show(f"compacted, no key, codec {codec}", part, before, end_offset(wire, compacted))
    now = int(time.time() * 1000)
    recs = [Record(key=b"k", value=b"v", timestamp=t) for t in (now, now + 7_200_000, now, now + 9_000_000)]
    for codec in (0, 1):
        before = end_offset(wire, topic)
        part = produce(wire, topic, build_batch(recs, compression=codec, max_timestamp=now))
        show(f"future timestamps, codec {codec}", part, before, end_offset(wire, topic))
    # a topic that re-encodes (compression.type=gzip): the same batches, and inner offsets 0, 0
    gz = f"probe-gz-{uuid.uuid4().hex[:8]}"
    create_topic(wire, gz, configs={"compression.type": "gzip"})
    time.sleep(1)
    records = [Record(key=None, value=b"v%d" % i, timestamp=now) for i in range(2)]
    zeroed = bytearray(build_batch(records, compression=3))
    zeroed[61 + 10:] = bytes(len(zeroed) - 61 - 10)
    repeated = bytearray(build_batch(records))
    repeated[61 + 1 + repeated[61] // 2 + 3] = 0  # the second record's offset delta: 0
    extra = {"lz4 zeroed after 10 bytes": hb.fix_crc(zeroed), "offset deltas 0, 0": hb.fix_crc(repeated),
             "lz4 offset deltas 0, 0": hb.with_payload(build_batch(records), 3, __import__(
                 "kbroker_protocol.compression", fromlist=["compress"]).compress(3, bytes(repeated[61:])))}
    for name, batch in {**cases, **extra}.items():
        before = end_offset(wire, gz)
        part = produce(wire, gz, batch)
        show(f"gzip topic: {name}", part, before, end_offset(wire, gz))
    for name in ("offset deltas 0, 0", "lz4 offset deltas 0, 0"):
        before = end_offset(wire, topic)
        part = produce(wire, topic, extra[name])
        show(f"producer topic: {name}", part, before, end_offset(wire, topic))
    wire.close()


if __name__ == "__main__":
    main()
