#!/usr/bin/env python3
"""Instructions per codec operation, counted by valgrind's callgrind, for one or more source trees.

``scripts/bench_codec.py`` times the codec in CPU seconds, which a shared machine disturbs by a few
per cent; an instruction count does not depend on the load. For each tree (its own ``kbroker_protocol``
first on ``PYTHONPATH``, see ``tree_path``) this script runs a child Python under
``valgrind --tool=callgrind`` twice, once doing each operation ``--n`` times and once zero times
(same set-up), and prints the difference divided by ``--n``: the instructions of one operation
(with the garbage collector off during the loop: when it runs depends on what the tree imported).

Operations (the broker's request path through the codec):

* ``produce decode``: ``decode_request`` of a Produce v9 frame of 100 partitions (5 topics x 20),
  each one batch of 10 records of 100 bytes;
* ``fetch encode``: ``encode_response`` of a Fetch v12 response of the same shape (records as
  ``bytes``), as the broker encodes it;
* ``metadata encode``: ``encode_response`` of a Metadata v12 response of 5 topics x 20 partitions
  with 3 replicas;
* ``produce records check``: ``check_produce_records`` then ``iter_records`` over one of the batches.

Usage: ``.venv/bin/python scripts/instr_codec.py [--n 200] [--op OPERATION]... --tree /tmp/base --tree .``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tree_path import tree_pythonpath  # noqa: E402

CHILD = r'''
import sys, uuid
from kbroker_protocol.api import decode_request, encode_request, encode_response
from kbroker_protocol.messages import RequestHeader
from kbroker_protocol.messages.fetch import FetchResponse
from kbroker_protocol.messages.metadata import MetadataResponse
from kbroker_protocol.messages.produce import ProduceRequest
from kbroker_protocol.records import Record, build_batch, check_produce_records, iter_records

op, n = sys.argv[1], int(sys.argv[2])
TOPICS, PARTITIONS = 5, 20
batch = build_batch([Record(key=b"k%d" % i, value=bytes(100), timestamp=1_700_000_000_000 + i) for i in range(10)])
TD = ProduceRequest.TopicProduceData
PD = TD.PartitionProduceData
produce = ProduceRequest(transactional_id=None, acks=-1, timeout_ms=30000, topic_data=[
    TD(name=f"topic-{t}", partition_data=[PD(index=p, records=batch) for p in range(PARTITIONS)])
    for t in range(TOPICS)])
frame = encode_request(RequestHeader(request_api_key=0, request_api_version=9, correlation_id=7,
                                     client_id="bench"), produce)
FT = FetchResponse.FetchableTopicResponse
fetch = FetchResponse(throttle_time_ms=0, error_code=0, session_id=0, responses=[
    FT(topic=f"topic-{t}", partitions=[FT.PartitionData(partition_index=p, high_watermark=1000,
                                                       last_stable_offset=1000, log_start_offset=0,
                                                       records=batch) for p in range(PARTITIONS)])
    for t in range(TOPICS)])
MT = MetadataResponse.MetadataResponseTopic
metadata = MetadataResponse(brokers=[MetadataResponse.MetadataResponseBroker(node_id=i, host="localhost", port=9092 + i)
                                     for i in range(3)], cluster_id="c", controller_id=0, topics=[
    MT(name=f"topic-{t}", topic_id=uuid.UUID(int=t + 1), partitions=[
        MT.MetadataResponsePartition(partition_index=p, leader_id=p % 3, leader_epoch=1, replica_nodes=[0, 1, 2],
                                     isr_nodes=[0, 1, 2]) for p in range(PARTITIONS)]) for t in range(TOPICS)])
# The collector off: when a collection falls depends on what the tree imported before the loop,
# and one more or fewer full collection would count as the operation's own work.
import gc
gc.collect()
gc.disable()
if op == "produce decode":
    for _ in range(n):
        decode_request(frame)
elif op == "fetch encode":
    for _ in range(n):
        encode_response(7, 1, 12, fetch)
elif op == "metadata encode":
    for _ in range(n):
        encode_response(7, 3, 12, metadata)
elif op == "produce records check":
    for _ in range(n):
        check_produce_records(9, batch)
        for _r in iter_records(batch):
            pass
'''

OPS = ("produce decode", "fetch encode", "metadata encode", "produce records check")


def count(tree: Path, op: str, n: int) -> int:
    with tempfile.TemporaryDirectory(prefix="kbroker-instr-codec-") as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(CHILD)
        env = dict(os.environ, PYTHONPATH=tree_pythonpath(tree), PYTHONHASHSEED="0",
                   PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        out = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
                              sys.executable, str(script), op, str(n)],
                             cwd=tree, env=env, capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", out.stderr)
    if match is None:
        raise SystemExit(f"no callgrind total for {tree}: {out.stderr[-2000:]}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="a kbroker checkout (repeatable; default .)")
    parser.add_argument("--n", type=int, default=200, help="operations per measured run")
    parser.add_argument("--op", action="append", choices=OPS, help="only this operation (repeatable)")
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [Path(".")])]
    ops = args.op or list(OPS)
    print("| operation | " + " | ".join(str(t) for t in trees) + " |")
    print("|---|" + "---:|" * len(trees), flush=True)
    for op in ops:
        per = [(count(tree, op, args.n) - count(tree, op, 0)) / args.n for tree in trees]
        cells = [f"{per[0]:,.0f}"] + [f"{x:,.0f} ({x / per[0] - 1:+.2%})" for x in per[1:]]
        print(f"| {op} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
