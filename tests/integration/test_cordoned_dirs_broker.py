"""Cordoned log dirs (KIP-1066, Kafka 4.4) on a real broker with two log dirs: ``cordoned.log.dirs``
set dynamically for the broker (IncrementalAlterConfigs), shown by DescribeLogDirs v5 IsCordoned,
recorded by the controller; new partitions go to the other dir; with every dir cordoned
(``*``) the broker takes no new replica (CreateTopics: INVALID_REPLICATION_FACTOR, a manual
assignment: INVALID_REPLICA_ASSIGNMENT); AlterReplicaLogDirs into a cordoned dir is refused; bad
values and the cluster-default level are refused as Kafka does."""

from __future__ import annotations

import uuid

from waiting import wait_until
from wire import Wire, create_topic

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_replica_log_dirs import AlterReplicaLogDirsRequest
from kbroker_protocol.messages.create_topics import CreateTopicsRequest
from kbroker_protocol.messages.describe_log_dirs import DescribeLogDirsRequest
from kbroker_protocol.messages.incremental_alter_configs import IncrementalAlterConfigsRequest

E = ErrorCode
BROKER = 4
SET, DELETE = 0, 1
Res = IncrementalAlterConfigsRequest.AlterConfigsResource


def _alter(w: Wire, name: str, op: int, value: str | None) -> tuple[int, str | None]:
    resp = w.call(IncrementalAlterConfigsRequest(resources=[Res(resource_type=BROKER, resource_name=name, configs=[
        Res.AlterableConfig(name="cordoned.log.dirs", config_operation=op, value=value)])], validate_only=False), 1)
    (r,) = resp.responses
    return r.error_code, r.error_message


def _create(w: Wire, name: str, partitions: int = -1, rf: int = -1, assignments=None) -> tuple[int, str | None]:
    C = CreateTopicsRequest.CreatableTopic
    resp = w.call(CreateTopicsRequest(topics=[C(
        name=name, num_partitions=partitions, replication_factor=rf, configs=[],
        assignments=[C.CreatableReplicaAssignment(partition_index=i, broker_ids=b)
                     for i, b in enumerate(assignments or [])])], timeout_ms=10000), 7)
    return resp.topics[0].error_code, resp.topics[0].error_message


def test_cordoned_log_dirs_take_no_new_replica(tmp_path):
    dirs = [str(tmp_path / "disk0"), str(tmp_path / "disk1")]
    with BrokerThread(data_dir=dirs[0], config={"log.dirs": ",".join(dirs)}) as b:
        w = Wire(b.bootstrap_servers)
        node = str(b.broker.node_id)
        try:
            # per broker only, and only this broker's log dirs (Kafka's messages, INVALID_REQUEST)
            assert _alter(w, "", SET, dirs[0]) == (
                E.INVALID_REQUEST,
                "Cannot update these configs at default cluster level, broker id must be specified: "
                "[cordoned.log.dirs]")
            assert _alter(w, node, SET, "/elsewhere") == (
                E.INVALID_REQUEST, "requirement failed: All entries in cordoned.log.dirs must be present in "
                "log.dirs or log.dir. Missing entries : /elsewhere")
            assert _alter(w, node, SET, f"*,{dirs[0]}") == (
                E.INVALID_REQUEST, "requirement failed: When cordoned.log.dirs is set to *, it must not contain "
                "other values")

            assert _alter(w, node, SET, dirs[0]) == (E.NONE, None)
            wait_until(lambda: [r.is_cordoned for r in w.call(DescribeLogDirsRequest(topics=None), 5).results]
                       == [True, False], timeout=10, message="disk0 cordoned in DescribeLogDirs")

            def reg():
                return b.broker.image.brokers[b.broker.node_id]

            wait_until(lambda: reg().cordoned_log_dirs is not None and len(reg().cordoned_log_dirs) == 1
                       and reg().cordoned_log_dirs[0] in reg().log_dirs, timeout=10,
                       message="the controller's record of the cordoned dir")
            topic = f"c-{uuid.uuid4().hex[:8]}"
            create_topic(w, topic, 4)  # the broker still has an uncordoned dir: it takes replicas
            where = {r.log_dir for r in w.call(DescribeLogDirsRequest(topics=None), 5).results
                     for t in r.topics if t.name == topic}
            assert where == {dirs[1]}
            A = AlterReplicaLogDirsRequest.AlterReplicaLogDir
            resp = w.call(AlterReplicaLogDirsRequest(dirs=[A(path=dirs[0], topics=[
                A.AlterReplicaLogDirTopic(name=topic, partitions=[0])])]), 2)
            assert resp.results[0].partitions[0].error_code == E.INVALID_REPLICA_ASSIGNMENT

            assert _alter(w, node, SET, "*") == (E.NONE, None)
            wait_until(lambda: sorted(reg().cordoned_log_dirs or []) == sorted(reg().log_dirs),
                       timeout=10, message="every dir cordoned")
            assert _create(w, "none-left", 1, 1) == (
                E.INVALID_REPLICATION_FACTOR, "Unable to replicate the partition 1 time(s): All brokers are currently "
                "fenced, or have all their log directories cordoned.")
            assert _create(w, "none-left", assignments=[[b.broker.node_id]]) == (
                E.INVALID_REPLICA_ASSIGNMENT, f"The manual partition assignment includes broker {node}, but all its "
                "log directories are cordoned.")

            assert _alter(w, node, DELETE, None) == (E.NONE, None)
            wait_until(lambda: reg().cordoned_log_dirs == [], timeout=10, message="no dir cordoned")
            assert _create(w, "none-left", 2, 1) == (E.NONE, None)
            assert [r.is_cordoned for r in w.call(DescribeLogDirsRequest(topics=None), 5).results] == [False, False]
        finally:
            w.close()
