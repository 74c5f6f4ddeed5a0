"""The brokers tests/ecosystem runs against: kbroker (in-process) and Apache Kafka 4.4.0
(``scripts/reference_kafka.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import reference_kafka

from kbroker.testing import BrokerThread


@dataclass
class Broker:
    kind: str
    bootstrap: str


def start_broker(kind: str, work: Path, overrides: dict[str, str] | None = None):
    """A context manager yielding a running broker of ``kind`` ("kbroker" or "kafka"), with
    ``reference_kafka.TEST_SETTINGS`` and then ``overrides`` (server.properties keys both know)."""
    if kind == "kbroker":
        return _kbroker(work, overrides or {})
    return _kafka(work, overrides or {})


class _kbroker:
    def __init__(self, work: Path, overrides: dict[str, str]) -> None:
        self._thread = BrokerThread({**reference_kafka.TEST_SETTINGS, **overrides}, data_dir=str(work / "data"))

    def __enter__(self) -> Broker:
        b = self._thread.__enter__()
        return Broker("kbroker", b.bootstrap_servers)

    def __exit__(self, *exc) -> None:
        self._thread.__exit__(*exc)


class _kafka:
    def __init__(self, work: Path, overrides: dict[str, str]) -> None:
        self._work, self._overrides = work, overrides

    def __enter__(self) -> Broker:
        self._handle = reference_kafka.start_reference_kafka(self._work, self._overrides)
        return Broker("kafka", self._handle.bootstrap)

    def __exit__(self, *exc) -> None:
        self._handle.stop()


