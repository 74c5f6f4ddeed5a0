"""Real share consumers against kbroker: Kafka 4.4's Java KafkaShareConsumer (kafka-clients 4.4.0,
tests/share/java): two consumers sharing one partition, each record delivered once, the group
described and listed as a share group; explicit RELEASE redelivered with delivery count 2.
Needs Maven and Java (as the compatibility matrix does; scripts/install-compat-deps caches the
dependencies)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kbroker.testing import BrokerThread

JAVA = Path(__file__).resolve().parent / "java"


@pytest.mark.timeout(900)
def test_java_kafka_share_consumer() -> None:
    with BrokerThread() as broker:
        env = dict(os.environ, KBROKER_BOOTSTRAP=broker.bootstrap_servers)
        done = subprocess.run(["mvn", "-q", "-B", "test"], cwd=JAVA, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"mvn test failed:\n{done.stdout[-8000:]}\n{done.stderr[-4000:]}"
