#!/usr/bin/env python3
"""Memory a delayed-delivery leader keeps per pending record (kbroker/delayed.py, issue 24).

Starts an in-process broker on a manual clock, diverts ``--records`` delayed records (one hour
ahead, ``--value-bytes`` each, in batches of 100) to one partition as Produce would, then has the
leader of the internal partition load it again under ``tracemalloc``: the bytes still allocated
once the load is done are what the scheduler holds for those records.

    .venv/bin/python scripts/bench_delayed_memory.py [--records 20000] [--value-bytes 1024]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--value-bytes", type=int, default=1024)
    args = parser.parse_args()
    from confluent_kafka.admin import AdminClient, NewTopic

    from kbroker.delayed import DELAYED_TOPIC
    from kbroker.testing import BrokerThread
    from kbroker_protocol.records import Record, build_batch

    with BrokerThread(clock="manual", control=True) as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        admin.create_topics([NewTopic("bench", 1, 1)])["bench"].result(30)
        delayed = b.broker.delayed
        value = os.urandom(args.value_bytes)
        now = b.call(lambda: delayed.now_ms())
        for start in range(0, args.records, 100):
            batch = build_batch([Record(key=b"k%d" % i, value=value, timestamp=now,
                                        headers=(("kbroker-deliver-after-ms", b"3600000"),))
                                 for i in range(start, min(start + 100, args.records))])
            b.call(lambda batch=batch: delayed.divert(b.broker.partition("bench", 0), batch, 9, 1, None, now))
        [index] = b.call(lambda: [i for i, s in delayed.states.items() if s.heap])

        def reload() -> tuple[int, int]:
            delayed._unload(index)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            delayed._load(b.broker.partition(DELAYED_TOPIC, index))
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            return held, len(delayed.states[index].heap)
        held, pending = b.call(reload)
    print(f"{pending} pending records of {args.value_bytes} B: {held / 1e6:.1f} MB held, "
          f"{held / pending:.0f} B per record")


if __name__ == "__main__":
    main()
