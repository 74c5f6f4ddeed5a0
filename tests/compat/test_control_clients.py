"""The control endpoint from Java and Go tests: a JUnit test with kafka-clients 4.4
(tests/clients/java) and a Go test with franz-go (tests/clients/go), each against a kbroker
started here with the HTTP control endpoint and a manual clock (for the session expiries).

Each language's test asserts what its client saw: the Java producer gets
NotLeaderOrFollowerException when it may not retry and recovers when it may, and the Java
consumer loses its partitions and rejoins after the broker's clock jumps past its session; the
franz-go producer gets exactly the injected TOPIC_AUTHORIZATION_FAILED and retries through an
injected NOT_LEADER_OR_FOLLOWER, and the franz-go group consumer loses its partitions and rejoins
in a new generation after the clock jumps past its session. Needs Maven and Go (as the compatibility matrix does;
scripts/install-compat-deps caches their dependencies).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kbroker.testing import BrokerThread

CLIENTS = Path(__file__).resolve().parents[1] / "clients"


def _run(cmd: list[str], cwd: Path, broker: BrokerThread) -> None:
    env = dict(os.environ, KBROKER_BOOTSTRAP=broker.bootstrap_servers, KBROKER_CONTROL_URL=broker.control_url)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-8000:]}\n{done.stderr[-4000:]}"


@pytest.mark.timeout(900)
def test_java_junit_with_kafka_clients() -> None:
    with BrokerThread(control=True, clock="manual") as broker:
        _run(["mvn", "-q", "-B", "test"], CLIENTS / "java", broker)


@pytest.mark.timeout(900)
def test_go_with_franz_go() -> None:
    with BrokerThread(control=True, clock="manual") as broker:
        _run(["go", "test", "-count=1", "./..."], CLIENTS / "go", broker)
