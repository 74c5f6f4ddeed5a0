"""The ``slow`` marker: ``pytest -m "not slow"`` is the quick local loop; CI runs everything.

Slow is what starts other programs or many brokers: three-node clusters and fault runs, the
reference Apache Kafka and Kafka's tools (a JVM each), the clients' own suites, Kafka Streams and
Connect, a browser, mypy over the whole tree, crash loops and the long seeded simulations. Marked here, by folder and by module, so the list is
in one place; a module may also mark itself with ``pytestmark = pytest.mark.slow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# Whole folders: clusters of processes, the JVM, other toolchains.
SLOW_DIRS = frozenset({"cluster", "compat", "ecosystem", "faults", "streams", "tools"})

# Single modules elsewhere: they start a JVM, a browser, podman, mypy or a wheel build, kill broker
# processes in loops, or run the long seeded simulations (each over 10 s on this machine). The
# modules that start one kbroker process, kcat or a compiled C client stay in the quick loop: each
# took under 15 s whole (2026-12-07: hostile/test_fd_budget 9 s, integration/test_kcat 7 s,
# test_null_broker 5 s, test_cli 8 s, test_delayed_delivery 14 s, hostile/test_config_limits 4 s).
SLOW_MODULES = frozenset({
    "console/test_browser.py",
    "hostile/test_fetch_stall.py",
    "integration/test_docker_engine.py",
    "integration/test_groups_clients.py",  # a consumer process killed mid-group, clients' rebalances: 34 s
    "integration/test_protocol_44.py",
    "integration/test_topic_limits_reference.py",
    "log/test_crash.py",
    "log/test_log_model.py",
    "raft/test_metadata_log_kafka_tools.py",
    "raft/test_raft_simulation.py",
    "raft/test_raft_voter_changes.py",
    "security/test_kafka_tools_security.py",
    "security/test_kafka_tools_tokens.py",
    "security/test_oauthbearer.py",
    "share/test_share_clients.py",
    "unit/test_mypy.py",
    "unit/test_packaging.py",
})


def is_slow(path: Path) -> bool:
    rel = path.resolve().relative_to(TESTS)
    return rel.parts[0] in SLOW_DIRS or rel.as_posix() in SLOW_MODULES


def pytest_configure(config: pytest.Config) -> None:
    # A reference broker's storage format runs in the tools' warm JVM (scripts/reference_kafka.py).
    import reference_kafka
    reference_kafka.WARM_FORMAT = True
    config.addinivalue_line(
        "markers", "slow: starts other programs or many brokers (deselect with -m 'not slow' for a quick loop)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if is_slow(item.path):
            item.add_marker(pytest.mark.slow)
