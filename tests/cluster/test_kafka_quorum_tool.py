"""Kafka 4.4's ``kafka-metadata-quorum.sh --bootstrap-controller`` against a kbroker quorum of three."""

from __future__ import annotations

import subprocess

import reference_kafka
from waiting import wait_until

from tests.cluster.quorum_helpers import agreed_leader, quorum_view
from tests.cluster.quorum_tool_helpers import fields


def metadata_quorum(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return reference_kafka.run_tool("org.apache.kafka.tools.MetadataQuorumCommand", list(args), timeout=timeout)


def test_describe_status_through_a_controller(cluster):
    leader = wait_until(lambda: agreed_leader(cluster), 30, 0.05, "a leader", cluster.logs)
    follower = next(n for n in cluster.node_ids if n != leader)
    _, _, epoch, _, _ = quorum_view(cluster, leader)
    res = metadata_quorum("--bootstrap-controller", cluster.layout.controller(follower), "describe", "--status")
    assert res.returncode == 0, res.stdout + res.stderr
    status = fields(res.stdout)
    assert status["ClusterId"] == (cluster.layout.data_dir(1) / "meta.properties").read_text().split(
        "cluster.id=")[1].split()[0]
    assert status["LeaderId"] == str(leader)
    assert status["LeaderEpoch"] == str(epoch)
    assert int(status["HighWatermark"]) > 0
    assert status["CurrentVoters"].count("\"id\"") == 3
    for n in cluster.node_ids:
        assert f"\"id\": {n}" in status["CurrentVoters"]
    # --replication: one row per voter, the leader's marked Leader, the others Follower
    res = metadata_quorum("--bootstrap-controller", cluster.layout.controller(leader), "describe", "--replication")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [line.split() for line in res.stdout.splitlines()[1:] if line.strip()]
    status_of = {int(r[0]): r[-1] for r in rows}
    assert status_of == {n: ("Leader" if n == leader else "Follower") for n in cluster.node_ids}, res.stdout
