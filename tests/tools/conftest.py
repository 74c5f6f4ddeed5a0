"""Kafka's own tools against the brokers: they reuse tests/integration's ``waiting`` helper;
``bootstrap`` is a kbroker and the reference Kafka 4.4 in turn (one each a module)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbroker.testing import BrokerThread

_INTEGRATION = str(Path(__file__).resolve().parents[1] / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)

_SCRIPTS = str(Path(__file__).resolve().parents[2] / "scripts")
sys.path.insert(0, _SCRIPTS)
try:
    import reference_kafka
finally:
    sys.path.remove(_SCRIPTS)


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
