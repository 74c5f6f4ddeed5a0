#!/usr/bin/env python3
"""Record real client requests as golden fixtures for tests/protocol/test_golden.py.

A small in-process Kafka look-alike (asyncio, 127.0.0.1, ephemeral port) answers just enough of
ApiVersions, Metadata, InitProducerId, Produce, FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
OffsetFetch, ListOffsets, Fetch, OffsetCommit and LeaveGroup for kafka-python, aiokafka and
confluent-kafka (librdkafka) to produce one compressed batch and consume it in a group. The first
raw request frame of each (API, version) a client sends is saved as

    tests/protocol/golden/<client>/<api>_v<N>.bin    (the frame, without the 4-byte size prefix)
    tests/protocol/golden/<client>/<api>_v<N>.json   (decoded header and body, plus "configured")

"configured" holds what the scenario told the client to send (client ids, topic, group, acks,
codec, record keys and values); the test checks the decoded request against it, so a fixture
whose JSON was merely copied from a wrong decode would still fail. Review the JSON after
re-recording; do not edit .bin files by hand.

    .venv/bin/python scripts/record_golden.py [--client kafka-python|aiokafka|confluent-kafka]...
    .venv/bin/python scripts/record_golden.py --java     # needs java and scripts/reference_kafka.py's jars

``--java`` writes record batches built by Apache Kafka's own kafka-clients 4.4.0
(``MemoryRecordsBuilder`` for every codec, ``withEndTransactionMarker``, ``setMaxTimestamp``) to
tests/protocol/golden/java/, and has that same library validate and read batches built by
protocol.records.build_batch for every codec, failing if Java disagrees with us.

This is a recorder, not a broker: one node, one partition per topic, an in-memory list of batches,
no validation beyond decoding.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The code, by concern: golden_recorder.py (the look-alike broker, the JSON view of decoded messages,
# what each scenario tells its client to send), golden_clients.py (the clients' scenarios and one
# client's recording), golden_java_batches.py (--java).
from golden_clients import RUNNERS, record  # noqa: E402
from golden_java_batches import record_java  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--client", action="append", choices=sorted(RUNNERS))
    parser.add_argument("--java", action="store_true", help="record Kafka-built record batches only")
    args = parser.parse_args()
    if args.java:
        for p in record_java():
            print(f"  {p.relative_to(ROOT)}")
        return
    for client in args.client or sorted(RUNNERS):
        paths = record(client)
        print(f"{client}: {len(paths)} fixtures")
        for p in paths:
            print(f"  {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
