#!/usr/bin/env python3
"""Share-group consumption throughput: one or more share consumers (at the wire, ShareFetch with
piggy-backed ACCEPTs) drain a one-partition topic on an in-process broker.

    .venv/bin/python scripts/bench_share.py [--records 50000] [--batch 500] [--consumers 1]

Prints records/s (acquire + acknowledge round trips, persisted state included).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tests" / "share"))

from share_wire import ACCEPT, ShareClient, topic_id  # noqa: E402
from wire import Wire, create_topic, produce  # noqa: E402

from kbroker.testing import BrokerThread  # noqa: E402
from kbroker_protocol.messages import REQUESTS  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--consumers", type=int, default=1)
    args = ap.parse_args()
    with BrokerThread() as b:
        admin = Wire(b.bootstrap_servers)
        topic, group = f"bench-{uuid.uuid4().hex[:6]}", f"bench-{uuid.uuid4().hex[:6]}"
        create_topic(admin, topic)
        tid = topic_id(admin, topic)
        Req = REQUESTS[44]
        admin.call(44, 1, validate_only=False, resources=[Req.AlterConfigsResource(
            resource_type=32, resource_name=group, configs=[Req.AlterConfigsResource.AlterableConfig(
                name="share.auto.offset.reset", config_operation=0, value="earliest")])])
        for _ in range(args.records // args.batch):
            produce(admin, topic, 0, args.batch, pad=b"x" * 90)
        clients = [ShareClient(Wire(b.bootstrap_servers), group) for _ in range(args.consumers)]
        for c in clients:
            c.join([topic])
        done = 0
        pending: dict[int, list] = {i: [] for i in range(len(clients))}
        t0 = time.perf_counter()
        while done < args.records:
            for i, c in enumerate(clients):
                resp = c.fetch(tid, acks=pending[i], max_records=args.batch, max_wait_ms=100)
                pending[i] = []
                for t in resp.responses:
                    for p in t.partitions:
                        for a in p.acquired_records:
                            pending[i].append((a.first_offset, a.last_offset, [ACCEPT]))
                            done += a.last_offset - a.first_offset + 1
        for i, c in enumerate(clients):
            if pending[i]:
                c.ack(tid, pending[i])
        secs = time.perf_counter() - t0
        print(f"share consume: {done} records, {args.consumers} consumer(s), batch {args.batch}: "
              f"{secs:.2f} s, {done / secs:,.0f} records/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
