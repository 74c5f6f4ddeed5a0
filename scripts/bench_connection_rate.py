#!/usr/bin/env python3
"""What the acceptor pays per connection for max.connection.creation.rate (kbroker/server/limits.py):
ConnectionLimits.record_connection, which records the connection in the broker-wide and the
listener's rate (Kafka records both whatever their bounds, so a dynamic change sees the history).

    .venv/bin/python scripts/bench_connection_rate.py
"""

from __future__ import annotations

import timeit

from kbroker.config import BrokerConfig
from kbroker.server.limits import ConnectionLimits


def main() -> None:
    count = 200_000
    for props in ({}, {"max.connection.creation.rate": "1000000"}):
        limits = ConnectionLimits(BrokerConfig(props, warn=False))
        seconds = timeit.timeit(lambda limits=limits: limits.record_connection("PLAINTEXT"), number=count)
        print(f"{props or 'defaults'}: {seconds / count * 1e6:.2f} us per accepted connection")


if __name__ == "__main__":
    main()
