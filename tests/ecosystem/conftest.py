"""The Kafka ecosystem (Connect, MirrorMaker 2, Streams) against kbroker and the reference Kafka 4.4.

Every module's ``broker`` fixture is parametrized over kbroker (in-process) and Apache Kafka 4.4.0
(``scripts/reference_kafka.py``); the same assertions run on both.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "tests" / "integration", ROOT / "scripts", Path(__file__).resolve().parent):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import reference_kafka  # noqa: E402

from kbroker.testing import BrokerThread  # noqa: E402


@dataclass
class Broker:
    kind: str
    bootstrap: str


def start_broker(kind: str, work: Path):
    """A context manager yielding a running broker of ``kind`` ("kbroker" or "kafka")."""
    if kind == "kbroker":
        return _kbroker(work)
    return _kafka(work)


class _kbroker:
    def __init__(self, work: Path) -> None:
        self._thread = BrokerThread(dict(reference_kafka.TEST_SETTINGS), data_dir=str(work / "data"))

    def __enter__(self) -> Broker:
        b = self._thread.__enter__()
        return Broker("kbroker", b.bootstrap_servers)

    def __exit__(self, *exc) -> None:
        self._thread.__exit__(*exc)


class _kafka:
    def __init__(self, work: Path) -> None:
        self._work = work

    def __enter__(self) -> Broker:
        self._handle = reference_kafka.start_reference_kafka(self._work)
        return Broker("kafka", self._handle.bootstrap)

    def __exit__(self, *exc) -> None:
        self._handle.stop()


@pytest.fixture(scope="module", params=["kbroker", "kafka"])
def broker(request, tmp_path_factory) -> Iterator[Broker]:
    with start_broker(request.param, tmp_path_factory.mktemp(request.param)) as b:
        yield b
