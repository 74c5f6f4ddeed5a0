#!/usr/bin/env python3
"""What the second metadata image costs (the controller's beside the broker's, issue 14).

Each node now holds two ``MetadataImage`` objects fed from one metadata log: the broker's (the
MetadataLoader's, committed records) and the controller's. This measures, for T topics of P
partitions with R replicas (default: one topic of 10,000 partitions, one replica, as
``scripts/bench_scale.py partitions``):

- the memory of one image (tracemalloc: the bytes allocated by applying the decoded records to an
  empty image and still held), i.e. what the second image adds; and of a ``copy()``;
- the time to decode and apply the records to one image (what a standby controller now does a
  second time), and the time of ``copy()`` (an active controller's revert when it stops leading).

With ``--rss TREE [TREE ...]`` it measures instead a single-node broker's idle RSS (a kbroker
process run from each source tree, e.g. a ``git archive`` of the commit before and this worktree;
``scripts/bench_scale_nodes.py``): one topic of ``--partitions`` partitions created, then
``--settle`` seconds, then VmRSS; ``--reps`` rounds, the trees' order alternating.

Usage: .venv/bin/python scripts/bench_metadata_images.py [--topics 1] [--partitions 10000] [--replicas 1]
       .venv/bin/python scripts/bench_metadata_images.py --rss /tmp/before . [--partitions 10000] [--reps 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import MetadataImage


def records(topics: int, partitions: int, replicas: int) -> list[bytes]:
    """The framed records of the topics (as the metadata log holds them), with a broker per replica."""
    out = [mr.encode_frame(mr.FeatureLevelRecord(name="metadata.version", feature_level=27))]
    for t in range(topics):
        topic_id = uuid.UUID(int=t + 1)
        out.append(mr.encode_frame(mr.TopicRecord(name=f"topic-{t}", topic_id=topic_id)))
        for p in range(partitions):
            reps = [(p + i) % replicas + 1 for i in range(replicas)]
            out.append(mr.encode_frame(mr.PartitionRecord(
                partition_id=p, topic_id=topic_id, replicas=reps, isr=reps, leader=reps[0],
                directories=[uuid.UUID(int=b) for b in reps])))
    return out


def applied(frames: list[bytes]) -> MetadataImage:
    image = MetadataImage()
    for offset, frame in enumerate(frames):
        image.apply(mr.decode_frame(frame), offset)
    return image


def held_bytes(build: object) -> tuple[int, object]:
    """Bytes still allocated after ``build()`` (its result kept alive)."""
    assert callable(build)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, result


def idle_rss(trees: list[Path], partitions: int, reps: int, settle: float) -> None:
    """Each tree's broker: create the topic, settle, VmRSS (MiB); rounds alternate the order."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_brokers as bb
    import bench_scale_nodes as sn

    rss: dict[Path, list[float]] = {t: [] for t in trees}
    with tempfile.TemporaryDirectory(prefix="bench-images-") as base:
        for rep in range(reps):
            for tree in (trees if rep % 2 == 0 else trees[::-1]):
                node = sn.KBrokerNode(Path(base), dict(bb.BENCH_SETTINGS), tree)
                try:
                    node.start()
                    sn.create_topic(node.bootstrap, "scale", partitions)
                    node.wait_topic("scale", partitions)
                    time.sleep(settle)  # (a measurement interval, not a synchronisation)
                    rss[tree].append(node.rss_kib() / 1024)
                finally:
                    node.stop()
                    node.remove()
                print(f"round {rep + 1}: {tree}: {rss[tree][-1]:.1f} MiB", flush=True)
    for tree, values in rss.items():
        print(f"{tree}: idle RSS with {partitions} partitions: median {statistics.median(values):.1f} MiB "
              f"(runs {', '.join(f'{v:.1f}' for v in values)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topics", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=10_000)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rss", nargs="+", type=Path, help="source trees whose broker's idle RSS to compare")
    ap.add_argument("--settle", type=float, default=5.0)
    args = ap.parse_args()
    if args.rss:
        idle_rss([t.resolve() for t in args.rss], args.partitions, args.reps, args.settle)
        return
    frames = records(args.topics, args.partitions, args.replicas)
    total = args.topics * args.partitions
    image_bytes, image = held_bytes(lambda: applied(frames))
    assert isinstance(image, MetadataImage)
    copy_bytes, _copy = held_bytes(image.copy)
    apply_s, copy_s = [], []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        applied(frames)
        apply_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        image.copy()
        copy_s.append(time.perf_counter() - t0)
    print(f"{args.topics} topic(s) x {args.partitions} partitions x {args.replicas} replica(s) "
          f"= {total} partitions, {len(frames)} records")
    print(f"one image (the second image's cost): {image_bytes / 2**20:.1f} MiB "
          f"({image_bytes / total:.0f} bytes a partition); a copy(): {copy_bytes / 2**20:.1f} MiB")
    print(f"decode + apply to one image: median {statistics.median(apply_s) * 1000:.0f} ms; "
          f"copy() (a revert): median {statistics.median(copy_s) * 1000:.0f} ms  ({args.reps} runs)")


if __name__ == "__main__":
    main()
