"""Metadata snapshots in a quorum of three processes: taken by every node, loaded at restart, and
shipped over FetchSnapshot to a follower whose data was wiped."""

from __future__ import annotations

import io
import shutil

import pytest
from cluster_fixture import Cluster
from test_quorum_processes import agreed_leader, create_topic, metadata
from waiting import wait_until

from kbroker.config import BrokerConfig, load_properties_file
from kbroker.storage import BOOTSTRAP_SNAPSHOT, format_storage, read_meta_properties
from protocol.errors import ErrorCode

E = ErrorCode


@pytest.fixture
def snapshotting_cluster(tmp_path):
    # a snapshot every ~4 KB of committed records
    c = Cluster(tmp_path / "cluster", 3, {"metadata.log.max.record.bytes.between.snapshots": "4000"})
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
    for n in c.node_ids:
        assert set(names) | {"while-wiped"} <= {t.name for t in metadata(c, n).topics}
