"""Kafka 4.4's kafka-features, kafka-metadata-quorum and kafka-acls against kbroker and, side by
side, against the reference Apache Kafka 4.4.0 (issue 22: these ran only against kbroker, in
tests/integration/test_protocol_44.py, tests/cluster/test_kafka_quorum_tool.py and
tests/security/test_kafka_tools_security.py).

One broker per parameter (one JVM start for Kafka's column), set up alike on both: a formatted
combined broker+controller node (a one-voter KRaft quorum, ``combined_node_props``) with a
PLAINTEXT listener (principal User:ANONYMOUS), its CONTROLLER listener and a SASL_PLAINTEXT
listener with PLAIN users admin and alice, the StandardAuthorizer, super users admin and
ANONYMOUS. The expectations are the same on both brokers except where a comment says otherwise.
(On kbroker this setup used to fence the node's own broker 9 s after start, the tools then timing
out "waiting for a node assignment": tests/integration/test_sole_voter_session.py.)
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import reference_kafka

from kbroker.cluster import free_ports
from kbroker.config import BrokerConfig
from kbroker.storage import format_storage, random_uuid
from kbroker.testing import BrokerThread

TOOLS = "org.apache.kafka.tools."
JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')
SECURITY = {
    "sasl.enabled.mechanisms": "PLAIN",
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin;User:ANONYMOUS",
}


@dataclass
class Broker:
    kind: str
    bootstrap: str  # PLAINTEXT
    sasl: str  # SASL_PLAINTEXT
    controller: str  # CONTROLLER
    data_dir: Path
    admin: str  # client properties files
    alice: str


def _client_properties(path: Path, user: str) -> str:
    path.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                    "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f'username="{user}" password="{user}-secret";\n')
    return str(path)


@pytest.fixture(scope="module", params=["kbroker", "kafka"])
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    work = tmp_path_factory.mktemp(request.param)
    admin = _client_properties(work / "admin.properties", "admin")
    alice = _client_properties(work / "alice.properties", "alice")
    if request.param == "kbroker":
        # The same combined broker+controller node (a one-voter quorum) as the reference's, formatted
        # as kafka-storage.sh format would.
        port, cport, sport = free_ports(3)
        data = work / "data"
        config = {**reference_kafka.combined_node_props(port, cport, data, {"SASL_PLAINTEXT": sport},
                                                        {"SASL_PLAINTEXT": "SASL_PLAINTEXT"}),
                  **reference_kafka.TEST_SETTINGS, **SECURITY, "sasl.jaas.config": JAAS}
        format_storage(BrokerConfig(config, warn=False), random_uuid(), out=io.StringIO())
        with BrokerThread(config, data_dir=str(data)):
            yield Broker("kbroker", f"127.0.0.1:{port}", f"127.0.0.1:{sport}", f"127.0.0.1:{cport}", data,
                         admin, alice)
    else:
        handle = reference_kafka.start_reference_kafka(
            work / "kafka",
            overrides={**SECURITY, "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS},
            extra_listeners={"SASL_PLAINTEXT": "SASL_PLAINTEXT"})
        try:
            voters = next(line for line in (work / "kafka" / "server.properties").read_text().splitlines()
                          if line.startswith("controller.quorum.voters="))
            yield Broker("kafka", handle.bootstrap, f"127.0.0.1:{handle.listener_ports['SASL_PLAINTEXT']}",
                         voters.split("@", 1)[1], work / "kafka" / "data", admin, alice)
        finally:
            handle.stop()


def tool(main_class: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one of Kafka's tools; with ``ok`` (the default) it must exit 0."""
    res = reference_kafka.run_tool(TOOLS + main_class, list(args))
    if ok:
        assert res.returncode == 0, f"{main_class} {args} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res


def _cluster_id(data_dir: Path) -> str:
    for line in (data_dir / "meta.properties").read_text().splitlines():
        if line.startswith("cluster.id="):
            return line.split("=", 1)[1]
    raise AssertionError(f"no cluster.id in {data_dir}/meta.properties")


# -- kafka-features describe ---------------------------------------------------------------------

# A freshly formatted Kafka 4.4.0 node (static voters): name -> (SupportedMinVersion,
# SupportedMaxVersion, FinalizedVersionLevel), as FeatureCommand prints them.
FEATURES_44 = {
    "eligible.leader.replicas.version": ("0", "1", "1"),
    "group.version": ("0", "1", "1"),
    "kraft.version": ("0", "1", "0"),
    "metadata.version": ("3.3-IV3", "4.4-IV2", "4.4-IV2"),
    "share.version": ("0", "2", "2"),
    "streams.version": ("0", "1", "1"),
    "transaction.version": ("0", "2", "2"),
}


def test_kafka_features_describe(broker: Broker) -> None:
    res = tool("FeatureCommand", "--bootstrap-server", broker.bootstrap, "describe")
    rows: dict[str, dict[str, str]] = {}
    names: list[str] = []
    for line in res.stdout.splitlines():
        if not line.strip():
            continue
        words = line.split()
        assert words[0] == "Feature:", res.stdout
        assert words[2::2] == ["SupportedMinVersion:", "SupportedMaxVersion:", "FinalizedVersionLevel:",
                               "Epoch:"], line
        names.append(words[1])
        rows[words[1]] = dict(zip(words[2::2], words[3::2], strict=True))
    assert names == sorted(FEATURES_44), res.stdout  # one line a feature, by name
    for name, (lo, hi, finalized) in FEATURES_44.items():
        row = rows[name]
        assert (row["SupportedMinVersion:"], row["SupportedMaxVersion:"], row["FinalizedVersionLevel:"]) == \
            (lo, hi, finalized), name
    # The finalized features' epoch is the metadata log offset that wrote them: each broker's own.
    assert len({row["Epoch:"] for row in rows.values()}) == 1
    assert int(rows["metadata.version"]["Epoch:"]) > 0


# -- kafka-metadata-quorum describe --------------------------------------------------------------

STATUS_KEYS = ["ClusterId", "LeaderId", "LeaderEpoch", "HighWatermark", "MaxFollowerLag", "MaxFollowerLagTimeMs",
               "CurrentVoters", "CurrentObservers"]
REPLICATION_HEADER = ["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp",
                      "Status"]


def test_kafka_metadata_quorum_describe_status_and_replication(broker: Broker) -> None:
    # Through the broker (forwarded to the quorum) and through the controller listener alike. (Not
    # a parameter of its own: pytest would then interleave the module's two brokers.)
    for through, address in (("--bootstrap-server", broker.bootstrap), ("--bootstrap-controller", broker.controller)):
        _describe_quorum(broker, through, address)


def _describe_quorum(broker: Broker, through: str, address: str) -> None:
    res = tool("MetadataQuorumCommand", through, address, "describe", "--status")
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    status = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
    assert [line.partition(":")[0] for line in lines] == STATUS_KEYS, res.stdout
    assert status["ClusterId"] == _cluster_id(broker.data_dir)
    assert status["LeaderId"] == "1"
    assert int(status["LeaderEpoch"]) >= 1
    high_watermark = int(status["HighWatermark"])
    assert high_watermark > 0
    assert (status["MaxFollowerLag"], status["MaxFollowerLagTimeMs"]) == ("0", "0")
    assert json.loads(status["CurrentVoters"]) == [{"id": 1, "endpoints": [f"CONTROLLER://{broker.controller}"]}]
    assert json.loads(status["CurrentObservers"]) == []

    res = tool("MetadataQuorumCommand", through, address, "describe", "--replication")
    header, *rows = [line.split() for line in res.stdout.splitlines() if line.strip()]
    assert header == REPLICATION_HEADER, res.stdout
    assert len(rows) == 1, res.stdout
    row = dict(zip(header, rows[0], strict=True))
    assert (row["NodeId"], row["Lag"], row["Status"]) == ("1", "0", "Leader")
    assert row["DirectoryId"] == "AAAAAAAAAAAAAAAAAAAAAA"  # a static voter set: no directory ids
    assert int(row["LogEndOffset"]) >= high_watermark
    assert int(row["LastFetchTimestamp"]) > 0 and row["LastCaughtUpTimestamp"] == row["LastFetchTimestamp"]

    # describe without --status or --replication: the tool's usage error, exit 1, on both.
    res = tool("MetadataQuorumCommand", through, address, "describe", ok=False)
    assert res.returncode == 1
    assert "One of --status or --replication must be specified" in res.stdout + res.stderr


# -- kafka-acls with the StandardAuthorizer ------------------------------------------------------

def test_kafka_acls_with_the_standard_authorizer(broker: Broker) -> None:
    acls = ("AclCommand", "--bootstrap-server", broker.sasl, "--command-config", broker.admin)
    res = tool(*acls, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--operation",
               "Describe", "--topic", "orders", "--group", "billing")
    added = [line.strip() for line in res.stdout.splitlines() if line.strip()]
    assert added == [
        "Adding ACLs for resource `ResourcePattern(resourceType=GROUP, name=billing, patternType=LITERAL)`:",
        "(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)",
        "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)",
        "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:",
        "(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)",
        "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)",
    ], res.stdout

    res = tool(*acls, "--list", "--topic", "orders")
    assert [line.strip() for line in res.stdout.splitlines() if line.strip()] == [
        "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:",
        "(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)",
        "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)",
    ], res.stdout

    # alice is no super user and has no DESCRIBE on the cluster: she may not list ACLs. (The
    # exception's message text differs: Kafka names the request, kbroker says "Cluster
    # authorization failed."; the class and the exit code are the same.)
    res = tool("AclCommand", "--bootstrap-server", broker.sasl, "--command-config", broker.alice, "--list",
               ok=False)
    assert res.returncode == 1
    assert ("Error while executing ACL command: org.apache.kafka.common.errors.ClusterAuthorizationException: "
            in res.stdout + res.stderr), res.stdout + res.stderr

    tool(*acls, "--remove", "--force", "--allow-principal", "User:alice", "--operation", "Read", "--topic", "orders")
    res = tool(*acls, "--list", "--topic", "orders")
    assert [line.strip() for line in res.stdout.splitlines() if line.strip()][1:] == [
        "(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)"], res.stdout
    res = tool(*acls, "--list", "--group", "billing")
    assert "operation=READ" in res.stdout and "operation=DESCRIBE" in res.stdout
