"""Metadata snapshots in a quorum of three processes: taken by every node, loaded at restart, and
shipped over FetchSnapshot to a follower whose data was wiped."""

from __future__ import annotations

import io
import shutil

import pytest
from cluster_fixture import FAST_SESSIONS, Cluster
from waiting import wait_until

from kbroker.config import BrokerConfig, load_properties_file
from kbroker.storage import BOOTSTRAP_SNAPSHOT, format_storage, read_meta_properties
from kbroker_protocol.errors import ErrorCode
from tests.cluster.quorum_helpers import agreed_leader, create_topic, metadata

E = ErrorCode


@pytest.fixture
def snapshotting_cluster(tmp_path):
    # a snapshot every ~4 KB of committed records; fast sessions: a restarted node registers again
    # once the session of its previous run expires (3 s rather than Kafka's 9 s)
    c = Cluster(tmp_path / "cluster", 3, {"metadata.log.max.record.bytes.between.snapshots": "4000", **FAST_SESSIONS})
    try:
        yield c.start()
    finally:
        c.kill_all()


def snapshots(c: Cluster, node_id: int) -> list[str]:
    d = c.layout.data_dir(node_id) / "__cluster_metadata-0"
    return sorted(p.name for p in d.glob("*.checkpoint") if p.name != BOOTSTRAP_SNAPSHOT)


def test_snapshots_taken_loaded_and_fetched(snapshotting_cluster):
    c = snapshotting_cluster
    leader = wait_until(lambda: agreed_leader(c), 30, 0.05, "a leader", c.logs)
    names = [f"topic-{i}" for i in range(40)]
    for name in names:
        assert create_topic(c, leader, name, partitions=2) == E.NONE
    for n in c.node_ids:
        wait_until(lambda n=n: snapshots(c, n), 20, 0.05, f"a snapshot on node {n}", c.logs)
    # a follower loses its disk: formatted again, it fetches the leader's snapshot and the tail
    follower = next(n for n in c.node_ids if n != leader)
    c.kill(follower)
    cluster_id = read_meta_properties(c.layout.data_dir(follower))["cluster.id"]
    shutil.rmtree(c.layout.data_dir(follower))
    config = BrokerConfig(load_properties_file(c.layout.properties_path(follower)), warn=False)
    format_storage(config, cluster_id, out=io.StringIO())
    assert create_topic(c, leader, "while-wiped") == E.NONE
    c.start_node(follower)
    wait_until(lambda: set(names) | {"while-wiped"} <= {t.name for t in metadata(c, follower).topics}, 30, 0.05,
               "the wiped follower catching up", c.logs)
    log = c.layout.log_path(follower).read_text()
    assert "loaded the metadata snapshot" in log
    # every node restarts from its snapshot and the log after it
    c.stop_all()
    c.start()
    wait_until(lambda: agreed_leader(c), 30, 0.05, "a leader after the restart", c.logs)
    for n in c.node_ids:  # each node applies what the new leader's high watermark commits, in its own time
        wait_until(lambda n=n: set(names) | {"while-wiped"} <= {t.name for t in metadata(c, n).topics}, 30, 0.05,
                   f"every topic on node {n} after the restart", c.logs)


def _call(c: Cluster, node_id: int, api_key: int, version: int, **fields):
    w = c.wire(node_id)
    try:
        return w.call(api_key, version, **fields)
    finally:
        w.sock.close()


def test_a_snapshot_installed_while_running_removes_what_it_no_longer_has(tmp_path):
    """A follower paused (SIGSTOP) while the leader deletes a topic, creates one, adds a SCRAM
    user and an ACL, and snapshots past them: resumed, it installs the snapshot while running and
    ends in its state through the image listeners: the deleted topic's partition closed and its
    log deleted, the new topic there, the SCRAM credential and the ACL known."""
    import os
    import signal
    import uuid

    from kbroker_protocol.messages import REQUESTS

    c = Cluster(tmp_path / "cluster", 3, {"metadata.log.max.record.bytes.between.snapshots": "4000",
                                          "authorizer.class.name":
                                              "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                                          "super.users": "User:ANONYMOUS"})
    try:
        c.start()
        leader = wait_until(lambda: agreed_leader(c), 30, 0.05, "a leader", c.logs)
        follower = next(n for n in c.node_ids if n != leader)
        assert create_topic(c, leader, "doomed") == E.NONE
        doomed_dir = c.layout.data_dir(follower) / "doomed-0"
        wait_until(doomed_dir.exists, 20, 0.05, "the follower's replica of doomed-0", c.logs)
        before = snapshots(c, leader)
        pid = c.procs[follower].pid
        os.killpg(pid, signal.SIGSTOP)
        try:
            r = _call(c, leader, 20, 6, topics=[REQUESTS[20].DeleteTopicState(name="doomed", topic_id=uuid.UUID(int=0))],
                      topic_names=[], timeout_ms=10000)
            assert [t.error_code for t in r.responses] == [E.NONE]
            assert create_topic(c, leader, "fresh", replication=2) == E.NONE
            Up = REQUESTS[51].ScramCredentialUpsertion
            r = _call(c, leader, 51, 0, deletions=[], upsertions=[Up(name="carol", mechanism=1, iterations=4096,
                                                                       salt=b"salt", salted_password=b"p" * 32)])
            assert [x.error_code for x in r.results] == [E.NONE]
            r = _call(c, leader, 30, 3, creations=[REQUESTS[30].AclCreation(
                resource_type=2, resource_name="fresh", resource_pattern_type=3, principal="User:carol",
                host="*", operation=3, permission_type=3)])
            assert [x.error_code for x in r.results] == [E.NONE]
            # enough records for a snapshot past all of it on the leader
            for i in range(40):
                assert create_topic(c, leader, f"pad-{i}", partitions=2, replication=2) == E.NONE
                if snapshots(c, leader) != before and i >= 5:
                    break
            wait_until(lambda: snapshots(c, leader) != before, 20, 0.05, "a new snapshot on the leader", c.logs)
        finally:
            os.killpg(pid, signal.SIGCONT)

        def caught_up() -> bool:
            names = {t.name for t in metadata(c, follower).topics}
            return "fresh" in names and "doomed" not in names
        wait_until(caught_up, 30, 0.05, "the follower installing the snapshot", c.logs)
        wait_until(lambda: not doomed_dir.exists(), 20, 0.05, "the follower deleting doomed-0", c.logs)
        log = c.layout.log_path(follower).read_text()
        assert "loaded the metadata snapshot" in log and "items from the image" in log
        # the SCRAM credential and the ACL, answered from the follower's own caches
        r = _call(c, follower, 50, 0, users=None)
        assert "carol" in [x.user for x in r.results]
        r = _call(c, follower, 29, 3, resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
                  principal_filter=None, host_filter=None, operation=1, permission_type=1)
        assert r.error_code == E.NONE
        assert [(res.resource_name, [a.principal for a in res.acls]) for res in r.resources] == [
            ("fresh", ["User:carol"])]
    finally:
        c.kill_all()
