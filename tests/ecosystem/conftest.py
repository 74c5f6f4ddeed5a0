"""The Kafka ecosystem (Connect, MirrorMaker 2, Streams) against kbroker and the reference Kafka 4.4.

Every module's ``broker`` fixture is parametrized over kbroker (in-process) and Apache Kafka 4.4.0
(``scripts/reference_kafka.py``); the same assertions run on both.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ecosystem_brokers import Broker, start_broker


@pytest.fixture(scope="module", params=["kbroker", "kafka"])
def broker(request, tmp_path_factory) -> Iterator[Broker]:
    with start_broker(request.param, tmp_path_factory.mktemp(request.param)) as b:
        yield b
