"""The kraft.version 0 -> 1 upgrade of a statically configured quorum of three kbroker processes
(KIP-853, Kafka 4.4's path): each voter sends the leader its endpoints, directory id and
kraft.version range in UpdateRaftVoter; Kafka 4.4's ``kafka-features.sh upgrade --feature
kraft.version=1`` then writes the KRaftVersionRecord
and the VotersRecord of the three voters; afterwards DescribeQuorum shows their directory ids and
endpoints and AddRaftVoter is served by the voter-change machinery (DUPLICATE_VOTER for a voter
already in the set, where kraft.version 0 answered UNSUPPORTED_VERSION); a voter restarted on
another controller port updates its entry in the voter set itself."""

from __future__ import annotations

import subprocess
import uuid

import reference_kafka
from cluster_fixture import FAST_SESSIONS, Cluster
from waiting import wait_until

from kbroker.cluster import free_ports
from kbroker.storage import read_meta_properties, uuid_from_str
from kbroker_protocol.errors import ErrorCode as E
from kbroker_protocol.messages.add_raft_voter import AddRaftVoterRequest
from kbroker_protocol.messages.update_features import UpdateFeaturesRequest

U = UpdateFeaturesRequest


def features_tool(*args: str) -> subprocess.CompletedProcess:
    """Kafka 4.4's kafka-features.sh (FeatureCommand)."""
    return reference_kafka.run_tool("org.apache.kafka.tools.FeatureCommand", list(args), timeout=180)


def update_kraft_version(c: Cluster, node: int, level: int, validate_only: bool = False):
    w = c.wire(node)
    try:
        return w.call(U(timeout_ms=30000, validate_only=validate_only, feature_updates=[
            U.FeatureUpdateKey(feature="kraft.version", max_version_level=level, upgrade_type=1)]), 1)
    finally:
        w.sock.close()


def add_voter(c: Cluster, node: int, voter: int, directory: uuid.UUID):
    A = AddRaftVoterRequest
    w = c.wire(node)
    try:
        return w.call(A(cluster_id=None, timeout_ms=10000, voter_id=voter, voter_directory_id=directory,
                        listeners=[A.Listener(name="CONTROLLER", host="127.0.0.1",
                                              port=c.layout.ports[voter][1])]), 0)
    finally:
        w.sock.close()


def directory_id(c: Cluster, node: int) -> uuid.UUID:
    return uuid_from_str(read_meta_properties(c.layout.data_dir(node))["directory.id"])


def leader(c: Cluster) -> int | None:
    for node in c.procs:
        try:
            p = c.describe_quorum(node).topics[0].partitions[0]
        except OSError:
            continue
        if p.leader_id >= 0:
            return p.leader_id
    return None


def test_static_quorum_upgrades_kraft_version_then_changes_voters(tmp_path):
    # fast sessions: node 3, killed and restarted twice, registers again once its previous session
    # expires (3 s rather than Kafka's 9 s)
    c = Cluster(tmp_path / "cluster", 3, FAST_SESSIONS)
    try:
        c.start()
        wait_until(lambda: leader(c) is not None, 30, 0.1, "a leader", c.logs)
        before = add_voter(c, 1, 2, directory_id(c, 2))
        assert before.error_code == E.UNSUPPORTED_VERSION
        assert "kraft.version feature is 0" in (before.error_message or "")

        # the followers send the leader their descriptions (once per leader, after a fetch timeout)
        # and each controller registers itself (ControllerRegistration, as Kafka's
        # QuorumFeatures checks): until both, the upgrade is refused (validate-only asks without
        # writing)
        def upgradable() -> bool:
            resp = update_kraft_version(c, 1, 1, validate_only=True)
            if resp.error_code == E.NONE:
                return True
            assert resp.error_code == E.INVALID_UPDATE_VERSION, resp
            message = resp.error_message or ""
            assert "because not all of the voters support it" in message or \
                "has not registered, and may not support this feature" in message, message
            return False

        wait_until(upgradable, 30, 0.2, "every voter's description at the leader", c.logs)
        upgrade = features_tool("--bootstrap-server", c.bootstrap(2), "upgrade", "--feature", "kraft.version=1")
        assert upgrade.returncode == 0, upgrade.stderr
        assert "kraft.version was upgraded to 1." in upgrade.stdout
        describe = features_tool("--bootstrap-server", c.bootstrap(3), "describe")
        assert describe.returncode == 0, describe.stderr
        words = next(x.split() for x in describe.stdout.splitlines() if x.split()[:2] == ["Feature:", "kraft.version"])
        assert words[words.index("FinalizedVersionLevel:") + 1] == "1", describe.stdout
        assert update_kraft_version(c, 2, 1).error_code == E.NONE  # already at 1: nothing to do

        def described() -> bool:
            at = leader(c)
            if at is None:
                return False
            try:
                q = c.describe_quorum(at)  # the leader answers DescribeQuorum
            except OSError:
                return False
            voters = q.topics[0].partitions[0].current_voters
            return sorted((v.replica_id, v.replica_directory_id) for v in voters) == \
                sorted((n, directory_id(c, n)) for n in c.node_ids) and \
                {n.node_id: n.listeners[0].port for n in q.nodes} == {n: c.layout.ports[n][1] for n in c.node_ids}

        wait_until(described, 30, 0.1, "the voter set with directory ids and endpoints", c.logs)
        after = add_voter(c, 1, 2, directory_id(c, 2))
        assert after.error_code == E.DUPLICATE_VOTER, after
        # a restart keeps kraft.version 1 (it is in the log) and the voters
        c.kill(3)
        c.start_node(3)
        wait_until(described, 30, 0.1, "the voter set after a restart", c.logs)

        # node 3 comes back on another controller port: it sends the leader its new endpoint
        # (UpdateRaftVoter at kraft.version 1) and the voter set in the log follows
        c.kill(3)
        client, old_port = c.layout.ports[3]
        new_port = free_ports(1)[0]
        path = c.layout.properties_path(3)
        text = path.read_text().replace(f"127.0.0.1:{old_port}", f"127.0.0.1:{new_port}")
        path.write_text(text)
        c.layout.ports[3] = (client, new_port)
        c.start_node(3)
        wait_until(described, 30, 0.1, "the voter set naming node 3's new port", c.logs)
        assert f"voter 3 sent its endpoints [('CONTROLLER', '127.0.0.1', {new_port})]" in \
            c.layout.log_path(3).read_text()
    finally:
        c.kill_all()


def test_reference_kafka_static_quorum_upgrades_the_same_way(tmp_path):
    """What Kafka 4.4 allows and prints for the same command against its own static quorum."""
    kafka = reference_kafka.start_reference_kafka(tmp_path / "kafka", heap="384m")
    try:
        def upgrade_done() -> bool:
            # retried: the tool may run before Kafka's controller serves it
            result = features_tool("--bootstrap-server", kafka.bootstrap, "upgrade", "--feature", "kraft.version=1")
            return result.returncode == 0 and "kraft.version was upgraded to 1." in result.stdout

        wait_until(upgrade_done, 120, 1, "Kafka's kraft.version upgrade")
        describe = features_tool("--bootstrap-server", kafka.bootstrap, "describe")
        words = next(x.split() for x in describe.stdout.splitlines() if x.split()[:2] == ["Feature:", "kraft.version"])
        assert words[words.index("FinalizedVersionLevel:") + 1] == "1", describe.stdout
    finally:
        kafka.stop()
