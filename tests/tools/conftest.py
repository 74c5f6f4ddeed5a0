"""Kafka's own tools against the brokers: they reuse tests/integration's ``waiting`` helper;
``bootstrap`` is a kbroker and the reference Kafka 4.4 in turn (one each a module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import reference_kafka

from kbroker.testing import BrokerThread


@pytest.fixture(scope="module", params=["kbroker", "kafka"])
def bootstrap(request, tmp_path_factory) -> Iterator[str]:
    work = tmp_path_factory.mktemp(request.param)
    if request.param == "kbroker":
        with BrokerThread(dict(reference_kafka.TEST_SETTINGS), data_dir=str(work / "data")) as b:
            yield b.bootstrap_servers
    else:
        handle = reference_kafka.start_reference_kafka(work)
        try:
            yield handle.bootstrap
        finally:
            handle.stop()
