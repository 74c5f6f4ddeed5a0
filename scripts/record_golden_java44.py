#!/usr/bin/env python3
"""Record the Java 4.4 client's frames of the versions Kafka 4.4 added, as golden fixtures.

Runs the compat matrix's Java harness (kafka-clients 4.4.0, built by compat/java_harness.py) scenario
``consume_process_produce`` against an in-process kbroker and saves the first raw request frame
(without the 4-byte size prefix) of each of:

    api_versions_v5.bin              ApiVersions v5 on a bootstrap connection (no cluster id yet)
    api_versions_v5_cluster_id.bin   ApiVersions v5 naming the cluster and node (KIP-1242)
    txn_offset_commit_v6.bin         TxnOffsetCommit v6 from sendOffsetsToTransaction (topic id)

to tests/protocol/golden/java-4.4/, each with a .json of the decoded header and body plus
"configured": what the broker knew when it was recorded (cluster id, node id, the topic's name and
id), which tests/protocol/test_versions_44.py checks the decoded frame against. Do not edit the
.bin files by hand; review the JSON after re-recording.

    .venv/bin/python scripts/record_golden_java44.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "compat")]

from java_harness import ensure_java_harness  # noqa: E402

from kbroker.server import connection  # noqa: E402
from kbroker.testing import BrokerThread  # noqa: E402
from kbroker_protocol.api import decode_request  # noqa: E402

OUT = ROOT / "tests" / "protocol" / "golden" / "java-4.4"


def jsonable(value: Any) -> Any:
    if hasattr(value, "_FIELDS"):
        return {name: jsonable(getattr(value, name)) for name in value._FIELDS}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def main() -> int:
    cmd = ensure_java_harness()
    frames: dict[str, bytes] = {}

    def recording(frame):
        header, body = decode_request(frame)
        key, version = header.request_api_key, header.request_api_version
        name = None
        if (key, version) == (18, 5):
            name = "api_versions_v5" if body.cluster_id is None else "api_versions_v5_cluster_id"
        elif (key, version) == (28, 6):
            name = "txn_offset_commit_v6"
        if name is not None and name not in frames:
            frames[name] = bytes(frame)
        return header, body

    connection.decode_request = recording
    with BrokerThread(config={"group.initial.rebalance.delay.ms": "0"}) as b:
        run = subprocess.run([*cmd, b.bootstrap_servers, "consume_process_produce"], capture_output=True, text=True,
                             timeout=300)
        result = json.loads(run.stdout.strip().splitlines()[-1])
        if not result["ok"]:
            print(run.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"scenario failed: {result['error']}")
        image = b.broker.image
        configured = {"client_software_name": "apache-kafka-java", "client_software_version": result["client_version"],
                      "cluster_id": b.broker.cluster_id, "node_id": b.broker.node_id,
                      "topics": {str(t.topic_id): name for name, t in image.topics.items()
                                 if name.startswith("compat-")}}
    missing = {"api_versions_v5", "api_versions_v5_cluster_id", "txn_offset_commit_v6"} - set(frames)
    if missing:
        raise SystemExit(f"the client sent no {sorted(missing)}")
    OUT.mkdir(parents=True, exist_ok=True)
    for name, frame in sorted(frames.items()):
        header, body = decode_request(frame)
        (OUT / f"{name}.bin").write_bytes(frame)
        doc = {"api_key": header.request_api_key, "api_version": header.request_api_version,
               "header": jsonable(header), "body": jsonable(body), "configured": configured}
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {OUT / name}.bin ({len(frame)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
