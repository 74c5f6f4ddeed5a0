"""A dynamic KRaft quorum (KIP-853) of kbroker processes, changed with Kafka 4.4's own tool.

Three combined nodes are formatted with ``--initial-controllers`` and configured with
``controller.quorum.bootstrap.servers`` only (no ``controller.quorum.voters``); a fourth,
controller-only node formatted with ``--no-initial-controllers`` starts as an observer (it finds the
leader through the bootstrap servers). ``kafka-metadata-quorum.sh add-controller`` makes it a
voter, ``remove-controller`` removes another one; DescribeQuorum shows each voter set with its
directory ids, and topics are still created. A fifth, broker-only node configured with the
bootstrap servers only joins and serves.
"""

from __future__ import annotations

import io
import subprocess
import uuid
from pathlib import Path

import pytest
import reference_kafka
from cluster_fixture import FAST_RAFT, Cluster
from waiting import wait_until

from kbroker.cluster import ClusterLayout, free_ports, wait_ready
from kbroker.config import BrokerConfig, load_properties_file
from kbroker.storage import format_storage, random_uuid, read_meta_properties, uuid_from_str
from kbroker_protocol.errors import ErrorCode as E
from tests.cluster.quorum_helpers import create_topic
from tests.cluster.quorum_tool_helpers import fields


def metadata_quorum(*args: str) -> subprocess.CompletedProcess:
    return reference_kafka.run_tool("org.apache.kafka.tools.MetadataQuorumCommand", list(args), timeout=180)


def dynamic_cluster(root: Path) -> Cluster:
    """Nodes 1-3 combined voters (``--initial-controllers``), 4 controller-only (not a voter), 5
    broker-only; nobody has ``controller.quorum.voters``."""
    root.mkdir(parents=True, exist_ok=True)
    ports = free_ports(8)
    layout = ClusterLayout(root, {1: (ports[0], ports[1]), 2: (ports[2], ports[3]), 3: (ports[4], ports[5]),
                                  4: (0, ports[6]), 5: (ports[7], 0)}, dict(FAST_RAFT))
    bootstrap = ",".join(f"127.0.0.1:{layout.ports[i][1]}" for i in (1, 2, 3))
    directories = {i: random_uuid() for i in (1, 2, 3)}
    initial = ",".join(f"{i}@127.0.0.1:{layout.ports[i][1]}:{directories[i]}" for i in (1, 2, 3))
    cluster_id = random_uuid()
    for node_id in layout.ports:
        props = layout.properties(node_id)
        props.pop("controller.quorum.voters")
        props["controller.quorum.bootstrap.servers"] = bootstrap
        layout.properties_path(node_id).write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        config = BrokerConfig(load_properties_file(layout.properties_path(node_id)), warn=False)
        if node_id in directories:
            format_storage(config, cluster_id, initial_controllers=initial, out=io.StringIO())
        else:
            format_storage(config, cluster_id, no_initial_controllers=True, out=io.StringIO())
    cluster = Cluster.__new__(Cluster)
    cluster.layout = layout
    cluster.procs = {}
    return cluster


@pytest.fixture
def dynamic(tmp_path):
    c = dynamic_cluster(tmp_path / "cluster")
    try:
        yield c
    finally:
        c.kill_all()


def directory_id(cluster: Cluster, node_id: int):
    return uuid_from_str(read_meta_properties(cluster.layout.data_dir(node_id))["directory.id"])


def partition(cluster: Cluster, node_id: int):
    return cluster.describe_quorum(node_id).topics[0].partitions[0]


def leader_view(cluster: Cluster, nodes):
    """The leader's DescribeQuorum partition once one of ``nodes`` answers as leader."""
    for n in nodes:
        try:
            p = partition(cluster, n)
        except OSError:
            continue
        if p.error_code == E.NONE and p.leader_id == n:
            return p
    return None


def voters(p) -> dict[int, object]:
    return {v.replica_id: v.replica_directory_id for v in p.current_voters}


def test_add_and_remove_controllers_with_kafkas_tool(dynamic):
    c = dynamic
    for n in (1, 2, 3):
        c.start_node(n, wait=False)
    for n in (1, 2, 3):
        wait_ready(c.layout, n, c.procs[n], 0, timeout=90)
    lead = wait_until(lambda: leader_view(c, (1, 2, 3)), 60, 0.1, "a leader of the dynamic quorum", c.logs)
    assert voters(lead) == {i: directory_id(c, i) for i in (1, 2, 3)}

    # node 4 starts as an observer: it found the leader through the bootstrap servers
    c.start_node(4)
    wait_until(lambda: 4 in {o.replica_id for o in (leader_view(c, (1, 2, 3)) or lead).observers}, 60, 0.1,
               "node 4 fetching as an observer", c.logs)

    # a wrong cluster id, and a replica that is not caught up (unknown id): refused, nothing changes
    from kbroker_protocol.messages.add_raft_voter import AddRaftVoterRequest
    L = AddRaftVoterRequest.Listener
    leader_id = lead.leader_id
    w = c.controller_wire(leader_id)
    port4 = c.layout.ports[4][1]
    bad = w.call(AddRaftVoterRequest(cluster_id="not-this-cluster", timeout_ms=5000, voter_id=4,
                                     voter_directory_id=directory_id(c, 4),
                                     listeners=[L(name="CONTROLLER", host="127.0.0.1", port=port4)]), 1)
    assert bad.error_code == E.INCONSISTENT_CLUSTER_ID
    assert bad.error_message.startswith('The given id "not-this-cluster" doesn\'t match the cluster id')
    lagging = w.call(AddRaftVoterRequest(cluster_id=None, timeout_ms=5000, voter_id=9,
                                         voter_directory_id=directory_id(c, 4),
                                         listeners=[L(name="CONTROLLER", host="127.0.0.1", port=port4)]), 1)
    assert lagging.error_code == E.REQUEST_TIMED_OUT, lagging
    w.sock.close()
    assert set(voters(leader_view(c, (1, 2, 3)) or lead)) == {1, 2, 3}

    # add-controller: node 4 becomes a voter
    res = metadata_quorum("--bootstrap-controller", c.layout.controller(1), "--command-config",
                          str(c.layout.properties_path(4)), "add-controller")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Added controller 4 with directory id" in res.stdout
    after_add = wait_until(lambda: (p := leader_view(c, (1, 2, 3, 4))) is not None and set(voters(p)) == {1, 2, 3, 4}
                           and p, 60, 0.1, "four voters", c.logs)
    assert voters(after_add)[4] == directory_id(c, 4)

    # UpdateRaftVoter on the leader's controller listener: node 4's endpoint again (its voter set
    # entry is rewritten), a stale epoch, and another directory id
    from kbroker_protocol.messages.update_raft_voter import UpdateRaftVoterRequest as U
    w = c.controller_wire(after_add.leader_id)

    def update(epoch: int, directory) -> object:
        return w.call(U(cluster_id=None, current_leader_epoch=epoch, voter_id=4, voter_directory_id=directory,
                        listeners=[U.Listener(name="CONTROLLER", host="127.0.0.1", port=port4)],
                        kraft_version_feature=U.KRaftVersionFeature(min_supported_version=0,
                                                                    max_supported_version=1)), 0)

    assert update(after_add.leader_epoch - 1, directory_id(c, 4)).error_code == E.FENCED_LEADER_EPOCH
    stale_update = update(after_add.leader_epoch, uuid.uuid4())
    assert stale_update.error_code == E.VOTER_NOT_FOUND
    assert stale_update.current_leader.leader_id == after_add.leader_id
    assert update(after_add.leader_epoch, directory_id(c, 4)).error_code == E.NONE
    w.sock.close()
    # The rewritten entry is a voter change of its own; Kafka takes no other change before it commits
    # (REQUEST_TIMED_OUT "waiting for voters to commit the latest voter change"): wait until the high
    # watermark reaches the leader's log end as it is now, past that change.
    view = wait_until(lambda: leader_view(c, (1, 2, 3, 4)), 60, 0.1, "a leader", c.logs)
    end = next(v.log_end_offset for v in view.current_voters if v.replica_id == view.leader_id)
    wait_until(lambda: (p := leader_view(c, (1, 2, 3, 4))) is not None and p.high_watermark >= end, 60, 0.1,
               f"the high watermark at {end}", c.logs)

    # a stale directory id is refused; then remove-controller removes a voter that is not the leader
    victim = next(n for n in (1, 2, 3) if n != after_add.leader_id)
    stale = metadata_quorum("--bootstrap-controller", c.layout.controller(4), "remove-controller",
                            "--controller-id", str(victim), "--controller-directory-id", random_uuid())
    assert stale.returncode != 0 and "VoterNotFoundException" in stale.stdout + stale.stderr
    res = metadata_quorum("--bootstrap-controller", c.layout.controller(4), "remove-controller",
                          "--controller-id", str(victim), "--controller-directory-id",
                          read_meta_properties(c.layout.data_dir(victim))["directory.id"])
    assert res.returncode == 0, res.stdout + res.stderr
    remaining = {1, 2, 3, 4} - {victim}
    wait_until(lambda: (p := leader_view(c, remaining)) is not None and set(voters(p)) == remaining, 60, 0.1,
               f"voters {sorted(remaining)}", c.logs)

    # the tool describes the new quorum
    status = metadata_quorum("--bootstrap-controller", c.layout.controller(4), "describe", "--status")
    assert status.returncode == 0, status.stdout + status.stderr
    current = fields(status.stdout)["CurrentVoters"]
    assert all(f"\"id\": {n}" in current for n in remaining) and f"\"id\": {victim}," not in current

    # topics are still created (through a broker that is no longer a voter), and a broker-only node
    # configured with the bootstrap servers only joins and serves them
    c.start_node(5)
    assert create_topic(c, victim, "after-changes") == 0

    def known_by_5():
        w5 = c.wire(5)
        try:
            md = w5.call(3, 12, topics=None)
        finally:
            w5.sock.close()
        return any(t.name == "after-changes" and t.error_code == 0 for t in md.topics) and {
            b.node_id for b in md.brokers} >= {1, 2, 3, 5}

    wait_until(known_by_5, 60, 0.2, "broker 5 serving the new topic's metadata", c.logs)

    # DescribeQuorum on a broker-only node's client listener: forwarded to the active controller
    from kbroker_protocol.messages.describe_quorum import DescribeQuorumRequest as D
    w5 = c.wire(5)
    try:
        described = w5.call(D(topics=[D.TopicData(topic_name="__cluster_metadata",
                                                  partitions=[D.TopicData.PartitionData(partition_index=0)])]), 2)
    finally:
        w5.sock.close()
    p = described.topics[0].partitions[0]
    assert p.error_code == E.NONE and set(voters(p)) == remaining
    assert p.leader_id == leader_view(c, remaining).leader_id
    assert 5 in {o.replica_id for o in p.observers}

    # UnregisterController: every controller registered itself; the removed one, once stopped, is
    # unregistered through a broker listener (forwarded to the active controller), once
    c.kill(victim)
    leader_now = wait_until(lambda: leader_view(c, remaining), 60, 0.1, "a leader", c.logs).leader_id
    via = 5

    def unregister(controller_id: int):
        w = c.wire(via)
        try:
            return w.call(94, 0, controller_id=controller_id)
        finally:
            w.sock.close()

    # Kafka 4.4's kafka-cluster.sh unregister-controller, through broker 5
    tool = reference_kafka.run_tool("org.apache.kafka.tools.ClusterTool",
                                    ["unregister-controller", "--bootstrap-server", c.layout.bootstrap(via),
                                     "--id", str(victim)], timeout=180)
    assert tool.returncode == 0, tool.stdout + tool.stderr
    assert f"Controller {victim} is no longer registered." in tool.stdout
    again = unregister(victim)
    assert again.error_code == E.CONTROLLER_ID_NOT_REGISTERED
    assert again.error_message == f"Controller ID {victim} is not currently registered."
    itself = unregister(leader_now)
    assert itself.error_code == E.INVALID_REQUEST


def test_a_standalone_controller_grows_into_a_quorum(tmp_path):
    """``format --standalone`` on node 1 (combined), then node 2 (controller-only, bootstrap servers
    only) added with Kafka's tool: two voters, node 1's broker stays registered and unfenced past
    its session timeout, topics are created."""
    root = tmp_path / "standalone"
    root.mkdir()
    ports = free_ports(3)
    extra = dict(FAST_RAFT, **{"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500"})
    layout = ClusterLayout(root, {1: (ports[0], ports[1]), 2: (0, ports[2])}, extra)
    cluster_id = random_uuid()
    for node_id in layout.ports:
        props = layout.properties(node_id)
        props.pop("controller.quorum.voters")
        props["controller.quorum.bootstrap.servers"] = f"127.0.0.1:{ports[1]}"
        layout.properties_path(node_id).write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        config = BrokerConfig(load_properties_file(layout.properties_path(node_id)), warn=False)
        format_storage(config, cluster_id, standalone=node_id == 1, no_initial_controllers=node_id != 1,
                       out=io.StringIO())
    c = Cluster.__new__(Cluster)
    c.layout = layout
    c.procs = {}
    try:
        c.start_node(1)
        c.start_node(2)
        # Kafka's leader adds only a replica that has caught up with it as an observer (otherwise
        # "Aborted add voter operation ... since it is lagging behind"): wait for that, as an
        # operator would before add-controller
        wait_until(lambda: any(o.replica_id == 2 and o.last_caught_up_timestamp >= 0
                               for o in getattr(leader_view(c, (1,)), "observers", [])), 60, 0.1,
                   "node 2 caught up as an observer", c.logs)
        res = metadata_quorum("--bootstrap-controller", layout.controller(1), "--command-config",
                              str(layout.properties_path(2)), "add-controller")
        assert res.returncode == 0, res.stdout + res.stderr
        wait_until(lambda: (p := leader_view(c, (1, 2))) is not None and set(voters(p)) == {1, 2}, 60, 0.1,
                   "two voters", c.logs)
        assert create_topic(c, 1, "grown", replication=1) == 0
        # node 1's broker registered with the active controller and heartbeats (it would otherwise be
        # fenced once its session timed out, a controller being the active one of a larger quorum)
        assert "registered with the active controller" in layout.log_path(1).read_text()

    finally:
        c.kill_all()
