"""Kafka 4.4's ``kafka-reassign-partitions.sh`` (--generate, --execute with --throttle, --verify)
against a kbroker quorum of three combined nodes and a fourth broker: an RF=3 partition led by
node 1 moves to the replica set the tool proposes for brokers 2, 3 and 4 while an acks=all
producer writes; every acknowledged record is read back, the replicas and ISR end as asked, and
node 1 deletes its replica. A move back onto node 1 once it is dead cannot progress: --list shows
it, --cancel restores the replicas. Bad plans (an unknown broker) are refused by the controller with
INVALID_REPLICA_ASSIGNMENT and change nothing."""

from __future__ import annotations

import json
import subprocess
import threading

import confluent_kafka
import reference_kafka
from cluster_fixture import FAST_SESSIONS, Cluster
from waiting import wait_until

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_partition_reassignments import AlterPartitionReassignmentsRequest
from kbroker_protocol.messages.create_topics import CreateTopicsRequest
from kbroker_protocol.messages.list_partition_reassignments import ListPartitionReassignmentsRequest
from tests.cluster.quorum_helpers import agreed_leader
from tests.cluster.replication_helpers import partition_state

E = ErrorCode
TOPIC = "moving"


def reassign(*args: str) -> subprocess.CompletedProcess:
    return reference_kafka.run_tool("org.apache.kafka.tools.reassign.ReassignPartitionsCommand", list(args))


def create_topic(cluster: Cluster, replicas: list[int]) -> None:
    C = CreateTopicsRequest

    def attempt() -> bool:
        w = cluster.wire(cluster.node_ids[0])
        try:
            resp = w.call(C(topics=[C.CreatableTopic(
                name=TOPIC, num_partitions=-1, replication_factor=-1,
                assignments=[C.CreatableTopic.CreatableReplicaAssignment(partition_index=0, broker_ids=replicas)],
                configs=[C.CreatableTopic.CreatableTopicConfig(name="min.insync.replicas", value="2")])],
                timeout_ms=10000), 7)
        finally:
            w.sock.close()
        return resp.topics[0].error_code in (E.NONE, E.TOPIC_ALREADY_EXISTS)

    wait_until(attempt, 30, 0.2, f"creation of {TOPIC}", cluster.logs)


class Writer(threading.Thread):
    """An idempotent acks=all producer writing numbered records until stopped."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                                  "enable.idempotence": True, "message.timeout.ms": 120000,
                                                  "linger.ms": 5})
        self.acked: list[bytes] = []
        self.errors: list[str] = []
        self.sent = 0
        self.stop = threading.Event()

    def _done(self, err, msg) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked.append(msg.value())

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.producer.produce(TOPIC, b"r%06d" % self.sent, partition=0, on_delivery=self._done)
                self.sent += 1
            except BufferError:
                pass
            self.producer.poll(0.002)
        self.producer.flush(60)


def test_reassign_partitions_tool_moves_a_partition_under_acks_all_writes(tmp_path):
    cluster = Cluster(tmp_path / "cluster", 3, FAST_SESSIONS, brokers=1)
    try:
        cluster.start()
        nodes = cluster.node_ids
        assert nodes == [1, 2, 3, 4]
        bootstrap = ",".join(cluster.bootstrap(n) for n in nodes)
        create_topic(cluster, [1, 2, 3])
        # each node applies the committed creation in its own time: node 4 is the one asked below
        for n in (2, 4):
            wait_until(lambda n=n: (p := partition_state(cluster, n, TOPIC)) is not None and p.leader_id == 1
                       and sorted(p.isr_nodes) == [1, 2, 3], 60, 0.1, f"leader 1 with a full ISR on node {n}",
                       cluster.logs)

        # a plan to an unknown broker: refused, nothing changes
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": TOPIC, "partition": 0, "replicas": [2, 3, 9], "log_dirs": ["any", "any", "any"]}]}))
        res = reassign("--bootstrap-server", bootstrap, "--execute", "--reassignment-json-file", str(bad))
        assert res.returncode != 0 and "Unknown broker id 9" in res.stdout + res.stderr, res.stdout + res.stderr
        # the tool checks the broker ids itself; the controller refuses them too (sent to the
        # broker-only node 4, which forwards it to the active controller in an Envelope)
        before = partition_state(cluster, 4, TOPIC)
        A = AlterPartitionReassignmentsRequest
        w = cluster.wire(4)
        try:
            resp = w.call(A(timeout_ms=10000, topics=[A.ReassignableTopic(name=TOPIC, partitions=[
                A.ReassignableTopic.ReassignablePartition(partition_index=0, replicas=[2, 3, 9])])]), 1)
            listed = w.call(ListPartitionReassignmentsRequest(timeout_ms=10000, topics=None), 0)
        finally:
            w.sock.close()
        out = resp.responses[0].partitions[0]
        assert (out.error_code, out.error_message) == (
            E.INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes broker 9, but no such broker is registered.")
        assert (listed.error_code, listed.topics) == (E.NONE, [])
        after = partition_state(cluster, 4, TOPIC)
        assert (after.leader_id, after.leader_epoch, list(after.replica_nodes), sorted(after.isr_nodes)) == \
            (before.leader_id, before.leader_epoch, list(before.replica_nodes), sorted(before.isr_nodes))

        writer = Writer(bootstrap)
        writer.start()
        try:
            wait_until(lambda: len(writer.acked) >= 200, 60, 0.05, "the first acknowledged records",
                       lambda: f"{writer.errors[:3]}\n{cluster.logs()}")
            move = tmp_path / "move.json"
            move.write_text(json.dumps({"version": 1, "topics": [{"topic": TOPIC}]}))
            res = reassign("--bootstrap-server", bootstrap, "--generate", "--topics-to-move-json-file", str(move),
                           "--broker-list", "2,3,4")
            assert res.returncode == 0, res.stdout + res.stderr
            lines = res.stdout.splitlines()
            current = json.loads(lines[lines.index("Current partition replica assignment") + 1])
            proposed = json.loads(lines[lines.index("Proposed partition reassignment configuration") + 1])
            assert [(p["topic"], p["partition"], p["replicas"]) for p in current["partitions"]] == \
                [(TOPIC, 0, [1, 2, 3])]
            [target] = proposed["partitions"]
            assert sorted(target["replicas"]) == [2, 3, 4]
            plan = tmp_path / "plan.json"
            plan.write_text(json.dumps(proposed))

            res = reassign("--bootstrap-server", bootstrap, "--execute", "--reassignment-json-file", str(plan),
                           "--throttle", "50000000")
            assert res.returncode == 0, res.stdout + res.stderr
            assert "Successfully started partition reassignment" in res.stdout, res.stdout
            assert "The inter-broker throttle limit was set to 50000000 B/s" in res.stdout, res.stdout

            verified: list[str] = []

            def completed() -> bool:
                out = reassign("--bootstrap-server", bootstrap, "--verify", "--reassignment-json-file", str(plan))
                verified.append(out.stdout + out.stderr)
                return out.returncode == 0 and f"Reassignment of partition {TOPIC}-0 is completed." in out.stdout

            wait_until(completed, 120, 0.5, "the reassignment verified complete",
                       lambda: f"{verified[-1:]}\n{cluster.logs()}")
            assert "Clearing broker-level throttles on brokers" in verified[-1], verified[-1]
            assert f"Clearing topic-level throttles on topic {TOPIC}" in verified[-1], verified[-1]
            # records keep being acknowledged by the new leader
            after = len(writer.acked)
            wait_until(lambda: len(writer.acked) >= after + 200, 60, 0.05, "records acknowledged after the move",
                       lambda: f"{writer.errors[:3]}\n{cluster.logs()}")
        finally:
            writer.stop.set()
            writer.join(90)
        assert writer.errors == []
        assert len(writer.acked) == writer.sent

        # replicas and ISR as asked, node 1 no longer a replica and its log gone
        def as_asked() -> bool:
            p = partition_state(cluster, 4, TOPIC)
            return p is not None and list(p.replica_nodes) == target["replicas"] and \
                sorted(p.isr_nodes) == [2, 3, 4] and p.leader_id in (2, 3, 4)

        wait_until(as_asked, 60, 0.1, "replicas and ISR as asked", lambda: partition_state(cluster, 4, TOPIC))
        wait_until(lambda: not (cluster.layout.data_dir(1) / f"{TOPIC}-0").exists(), 30, 0.1,
                   "node 1's replica deleted")
        assert (cluster.layout.data_dir(4) / f"{TOPIC}-0").is_dir()
        # the controllers serve both APIs on their listener too (Kafka's ControllerApis): the tool
        # with --bootstrap-controller finds the active one; another answers NOT_CONTROLLER
        active = wait_until(lambda: agreed_leader(cluster, [1, 2, 3]), 30, 0.1, "the active controller")
        other = next(n for n in (1, 2, 3) if n != active)
        res = reassign("--bootstrap-controller", cluster.layout.controller(other), "--list")
        assert res.returncode == 0 and "No partition reassignments found." in res.stdout, res.stdout + res.stderr
        w = cluster.controller_wire(other)
        try:
            listed = w.call(ListPartitionReassignmentsRequest(timeout_ms=10000, topics=None), 0)
        finally:
            w.sock.close()
        assert listed.error_code == E.NOT_CONTROLLER
        w = cluster.controller_wire(active)
        try:
            resp = w.call(A(timeout_ms=10000, topics=[A.ReassignableTopic(name=TOPIC, partitions=[
                A.ReassignableTopic.ReassignablePartition(partition_index=0, replicas=[])])]), 1)
        finally:
            w.sock.close()
        assert resp.responses[0].partitions[0].error_code == E.INVALID_REPLICA_ASSIGNMENT

        # every acknowledged record, once and in order
        consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                                             "enable.auto.commit": False})
        consumer.assign([confluent_kafka.TopicPartition(TOPIC, 0, 0)])
        got: list[bytes] = []

        def read_all() -> bool:
            for m in consumer.consume(500, 0.2):
                if m.error() is None:
                    got.append(m.value())
            return len(got) >= len(writer.acked)

        try:
            wait_until(read_all, 60, 0, "every acknowledged record", lambda: f"{len(got)} of {len(writer.acked)}")
        finally:
            consumer.close()
        assert got == [b"r%06d" % i for i in range(writer.sent)]

        # a move that cannot progress (back onto node 1, now dead) is listed, then cancelled with
        # the tool: the original replicas stay
        cluster.kill(1)
        back = tmp_path / "back.json"
        back.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": TOPIC, "partition": 0, "replicas": [1, 2, 3], "log_dirs": ["any", "any", "any"]}]}))

        def started() -> bool:
            w = cluster.wire(4)
            try:
                resp = w.call(A(timeout_ms=10000, topics=[A.ReassignableTopic(name=TOPIC, partitions=[
                    A.ReassignableTopic.ReassignablePartition(partition_index=0, replicas=[1, 2, 3])])]), 1)
            finally:
                w.sock.close()
            return resp.responses[0].partitions[0].error_code == E.NONE

        wait_until(started, 60, 0.2, "the move back accepted (the quorum may be electing)", cluster.logs)
        removing = sorted(set(target["replicas"]) - {1, 2, 3})
        res = reassign("--bootstrap-server", bootstrap, "--list")
        assert res.returncode == 0, res.stdout + res.stderr
        expected_replicas = ",".join(str(r) for r in [1, 2, 3, *removing])
        assert f"{TOPIC}-0: replicas: {expected_replicas}. adding: 1. removing: {','.join(map(str, removing))}." \
            in res.stdout, res.stdout
        # (--preserve-throttles: clearing them would ask the dead broker 1 for its own configs, in vain)
        res = reassign("--bootstrap-server", bootstrap, "--cancel", "--reassignment-json-file", str(back),
                       "--preserve-throttles")
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"Successfully cancelled partition reassignment for: {TOPIC}-0" in res.stdout, res.stdout
        # Kafka's PartitionReassignmentRevert: the replicas less the adding ones, in the order the
        # reassignment had them (not necessarily the order before it); committed by the controller,
        # then applied by node 4 in its own time
        wait_until(lambda: (p := partition_state(cluster, 4, TOPIC)) is not None
                   and list(p.replica_nodes) == [2, 3, *removing] and sorted(p.isr_nodes) == [2, 3, 4],
                   30, 0.1, "the replicas restored on node 4", lambda: partition_state(cluster, 4, TOPIC))
        w = cluster.wire(4)
        try:
            listed = w.call(ListPartitionReassignmentsRequest(timeout_ms=10000, topics=None), 0)
        finally:
            w.sock.close()
        assert (listed.error_code, listed.topics) == (E.NONE, [])
    finally:
        cluster.kill_all()
