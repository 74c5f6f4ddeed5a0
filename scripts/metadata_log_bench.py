#!/usr/bin/env python3
"""Timings of MetadataLog (kbroker/metadata/metadata_log.py) and the metadata snapshots.

Measures, in a temporary directory on the local disk:
- append + flush (fsync) of one entry, as a leader's commit of one record: median and p99;
- opening a log of N framed records (as a restart of a controller without a snapshot);
- image_to_snapshot + take_snapshot of an image with T topics x P partitions, and load_snapshot.

Usage: scripts/metadata_log_bench.py [--records 100000] [--topics 1000] [--partitions 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import MetadataImage
from kbroker.metadata.metadata_log import MetadataLog
from kbroker.metadata.snapshot import image_to_snapshot, load_snapshot
from kbroker.raft.log import Entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--topics", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=10)
    ap.add_argument("--flushes", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as tmp:
        d = Path(tmp) / "__cluster_metadata-0"
        log = MetadataLog(d, voters=(1, 2, 3))
        log.append([Entry(1, 1, control=True)])
        frame = mr.encode_frame(mr.ConfigRecord(resource_type=4, resource_name="", name="x", value="1"))
        lat = []
        for _ in range(args.flushes):
            t = time.perf_counter()
            log.append([Entry(1, frame)])
            log.flush()
            lat.append((time.perf_counter() - t) * 1000)
        lat.sort()
        print(f"append+flush of one record: median {statistics.median(lat):.2f} ms, "
              f"p99 {lat[int(len(lat) * 0.99) - 1]:.2f} ms ({args.flushes} flushes)")
        batch = 100
        for _ in range(args.records // batch):
            log.append([Entry(1, frame)] * batch)
        log.flush()
        end = log.end_offset
        log.close()
        t = time.perf_counter()
        log = MetadataLog(d, voters=(1, 2, 3))
        print(f"open a log of {end} records (batches of {batch}): {(time.perf_counter() - t) * 1000:.0f} ms")
        image = MetadataImage()
        offset = 0
        for i in range(args.topics):
            tid = uuid.UUID(int=i + 1)
            image.apply(mr.TopicRecord(name=f"topic-{i}", topic_id=tid), offset)
            offset += 1
            for p in range(args.partitions):
                image.apply(mr.PartitionRecord(partition_id=p, topic_id=tid, replicas=[1, 2, 3], isr=[1, 2, 3],
                                               leader=1, leader_epoch=0, partition_epoch=0), offset)
                offset += 1
        t = time.perf_counter()
        snap = log.take_snapshot(log.end_offset, image_to_snapshot(image))
        took = (time.perf_counter() - t) * 1000
        print(f"snapshot of {args.topics} topics x {args.partitions} partitions "
              f"({len(snap.data)} bytes): {took:.0f} ms")
        t = time.perf_counter()
        loaded = load_snapshot(snap.data, snap.end_offset)
        print(f"load_snapshot: {(time.perf_counter() - t) * 1000:.0f} ms ({len(loaded.topics)} topics)")
        log.close()


if __name__ == "__main__":
    main()
