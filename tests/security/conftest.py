"""Security tests: certificates made once per session (openssl CLI, never committed), brokers with
SSL/SASL listeners. They reuse tests/integration's ``waiting`` and ``wire`` helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
_INTEGRATION = str(Path(__file__).resolve().parents[1] / "integration")
for _path in (_HERE, _INTEGRATION):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from security_helpers import Certs, make_certs  # noqa: E402


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))
