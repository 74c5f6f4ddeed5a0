"""Security tests: certificates made once per session (openssl CLI, never committed), brokers with
SSL/SASL listeners, and ``acl_broker``, the SASL/PLAIN broker with an authorizer of the ACL tests.
They reuse tests/integration's ``waiting`` and ``wire`` helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from security_helpers import Certs, acl_config, make_certs

from kbroker.testing import BrokerThread
from tests.integration.controller_forwarding_helpers import controller_apis, nodes  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def acl_broker() -> Iterator[BrokerThread]:
    """A broker of ``acl_config()`` (SASL/PLAIN users admin, alice, bob; admin a super user), one a module."""
    with BrokerThread(acl_config()) as b:
        yield b
