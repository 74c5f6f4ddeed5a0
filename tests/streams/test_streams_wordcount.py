"""A Kafka Streams 4.4 application of the project's own (tests/clients/streams: word count with a
state store and a repartition topic, exactly-once, two instances, ``group.protocol=streams``) run
against kbroker and against Apache Kafka 4.4 (scripts/reference_kafka.py) side by side: both runs
must end with both instances running active tasks, the group Stable with two members, and the same
counts, which are the counts of the text the application produced.

Needs Maven and a JDK, as the compatibility matrix does (scripts/install-compat-deps).
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from kbroker.testing import BrokerThread

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "clients" / "streams"

# Both brokers get the same group settings: a fast heartbeat and no initial rebalance delay.
GROUP_SETTINGS = {
    "group.streams.heartbeat.interval.ms": "500",
    "group.streams.min.heartbeat.interval.ms": "500",
    "group.streams.initial.rebalance.delay.ms": "0",
}


def _build() -> str:
    done = subprocess.run(["mvn", "-q", "-B", "compile", "dependency:build-classpath",
                           "-Dmdep.outputFile=target/classpath.txt"], cwd=APP, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"building the streams app failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return "target/classes:" + (APP / "target" / "classpath.txt").read_text().strip()


def _run(classpath: str, bootstrap: str, state_dir: Path) -> dict:
    app_id = f"wordcount-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(["java", "-Xmx256m", "-cp", classpath, "kbroker.streams.WordCount", bootstrap, app_id,
                           str(state_dir)], cwd=APP, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "OK" in done.stdout.splitlines(), (
        f"word count against {bootstrap} failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}")
    counts = {}
    tasks = group = None
    for line in done.stdout.splitlines():
        parts = line.split()
        if parts[:1] == ["COUNT"]:
            counts[parts[1]] = int(parts[2])
        elif parts[:1] == ["TASKS"]:
            tasks = dict(p.split("=") for p in parts[1:])
        elif parts[:1] == ["GROUP"]:
            group = dict(p.split("=") for p in parts[1:])
    return {"counts": counts, "tasks": tasks, "group": group}


@pytest.mark.timeout(1200)
def test_word_count_same_on_kbroker_and_kafka(tmp_path):
    from reference_kafka import start_reference_kafka

    classpath = _build()
    with BrokerThread(config={**GROUP_SETTINGS, "offsets.topic.num.partitions": "5",
                              "transaction.state.log.num.partitions": "5"}) as kb:
        on_kbroker = _run(classpath, kb.bootstrap_servers, tmp_path / "kbroker")
    reference = start_reference_kafka(str(tmp_path / "kafka"), GROUP_SETTINGS)
    try:
        on_kafka = _run(classpath, reference.bootstrap, tmp_path / "kafka-state")
    finally:
        reference.stop()
    for run in (on_kbroker, on_kafka):
        assert int(run["tasks"]["a"]) > 0 and int(run["tasks"]["b"]) > 0
        assert run["group"] == {"state": "Stable", "members": "2", "members_with_active_tasks": "2",
                                "subtopologies": "2"}
    # 400 lines of 1-8 words from a 12-word vocabulary: every word counted, the same everywhere.
    assert len(on_kbroker["counts"]) == 12
    assert on_kbroker["counts"] == on_kafka["counts"]
