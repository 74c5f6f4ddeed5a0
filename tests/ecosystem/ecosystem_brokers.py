"""The brokers tests/ecosystem runs against: kbroker (in-process) and Apache Kafka 4.4.0
(``scripts/reference_kafka.py``)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "tests" / "integration", ROOT / "scripts"):
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


