"""The admin APIs of issue 4 at the wire, every version: CreatePartitions, DeleteRecords,
DescribeCluster, DescribeLogDirs, DescribeTopicPartitions, OffsetForLeaderEpoch, ElectLeaders."""

from __future__ import annotations

import os

import pytest
from waiting import wait_until
from wire import Wire, create_topic, produce

from kbroker.metadata import metadata_records as mr
from kbroker_protocol.messages import REQUESTS
from tests.integration.admin_helpers import (
    CP,
    E,
    delete_records,
    dtp,
    epoch_end,
    list_offset,
    partition_count,
)

# -- CreatePartitions ---------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_create_partitions_every_version(wire, topic_name, version):
    create_topic(wire, topic_name, 2)
    resp = wire.call(37, version, topics=[CP.CreatePartitionsTopic(name=topic_name, count=5, assignments=None)],
                     timeout_ms=5000, validate_only=False)
    assert [(r.name, r.error_code, r.error_message) for r in resp.results] == [(topic_name, E.NONE, None)]
    assert partition_count(wire, topic_name) == 5
    assert produce(wire, topic_name, 4, 3) == 0  # the new partition takes data


def test_create_partitions_validate_only_commits_nothing(wire, topic_name):
    create_topic(wire, topic_name, 1)
    resp = wire.call(37, 3, topics=[CP.CreatePartitionsTopic(name=topic_name, count=4, assignments=None)],
                     timeout_ms=5000, validate_only=True)
    assert resp.results[0].error_code == E.NONE
    assert partition_count(wire, topic_name) == 1


def test_create_partitions_errors(wire, broker, topic_name):
    create_topic(wire, topic_name, 3)
    node = broker.broker.node_id
    A = CP.CreatePartitionsTopic.CreatePartitionsAssignment

    def one(count, assignments=None, name=topic_name):
        resp = wire.call(37, 3, topics=[CP.CreatePartitionsTopic(name=name, count=count, assignments=assignments)],
                         timeout_ms=5000, validate_only=False)
        (r,) = resp.results
        return r.error_code, r.error_message

    assert one(3) == (E.INVALID_PARTITIONS, "Topic already has 3 partition(s).")
    assert one(2) == (E.INVALID_PARTITIONS,
                      f"The topic {topic_name} currently has 3 partition(s); 2 would not be an increase.")
    assert one(5, name=topic_name + "-missing") == (E.UNKNOWN_TOPIC_OR_PARTITION, None)
    code, message = one(5, [A(broker_ids=[node])])
    assert code == E.INVALID_REPLICA_ASSIGNMENT
    assert message == "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."
    assert one(4, [A(broker_ids=[])]) == (
        E.INVALID_REPLICA_ASSIGNMENT, "The manual partition assignment includes an empty replica list.")
    assert one(4, [A(broker_ids=[node + 100])]) == (
        E.INVALID_REPLICA_ASSIGNMENT,
        f"The manual partition assignment includes broker {node + 100}, but no such broker is registered.")
    assert one(4, [A(broker_ids=[node, node])]) == (
        E.INVALID_REPLICA_ASSIGNMENT, f"The manual partition assignment includes the broker {node} more than once.")
    assert partition_count(wire, topic_name) == 3
    # A valid manual assignment.
    assert one(4, [A(broker_ids=[node])]) == (E.NONE, None)
    assert partition_count(wire, topic_name) == 4


def test_excessively_many_partitions_fail_the_whole_request(wire, topic_name):
    # Kafka bounds the partitions one request adds to 10,000 (POLICY_VIOLATION for every topic);
    # nothing is created, and the connection stays usable.
    CT = REQUESTS[19]
    topics = [CT.CreatableTopic(name=f"{topic_name}-{i}", num_partitions=6000, replication_factor=1,
                                assignments=[], configs=[]) for i in range(2)]
    resp = wire.call(19, 7, topics=topics, timeout_ms=10000, validate_only=False)
    assert [(r.error_code, r.error_message) for r in resp.topics] == [
        (E.POLICY_VIOLATION, "Excessively large number of partitions per request.")] * 2
    create_topic(wire, topic_name, 1)
    assert partition_count(wire, topic_name) == 1
    resp = wire.call(37, 3, topics=[CP.CreatePartitionsTopic(name=topic_name, count=10_002, assignments=None)],
                     timeout_ms=5000, validate_only=False)
    assert [(r.error_code, r.error_message) for r in resp.results] == [
        (E.POLICY_VIOLATION, "Excessively large number of additional partitions per request.")]
    assert partition_count(wire, topic_name) == 1
    resp = wire.call(19, 7, topics=[CT.CreatableTopic(name=f"{topic_name}-0", num_partitions=1, replication_factor=1,
                                                      assignments=[], configs=[])],
                     timeout_ms=10000, validate_only=False)
    assert resp.topics[0].error_code == E.NONE


def test_create_partitions_duplicate_topic_in_request(wire, topic_name):
    create_topic(wire, topic_name, 1)
    other = topic_name + "-b"
    create_topic(wire, other, 1)
    resp = wire.call(37, 2, topics=[
        CP.CreatePartitionsTopic(name=topic_name, count=2, assignments=None),
        CP.CreatePartitionsTopic(name=topic_name, count=3, assignments=None),
        CP.CreatePartitionsTopic(name=other, count=2, assignments=None),
    ], timeout_ms=5000, validate_only=False)
    assert sorted((r.name, r.error_code, r.error_message) for r in resp.results) == sorted([
        (topic_name, E.INVALID_REQUEST, "Duplicate topic name."), (other, E.NONE, None)])
    assert partition_count(wire, topic_name) == 1
    assert partition_count(wire, other) == 2


def test_create_partitions_survive_restart(tmp_path):
    from kbroker.testing import BrokerThread

    data = str(tmp_path / "data")
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        create_topic(w, "grow", 1)
        resp = w.call(37, 3, topics=[CP.CreatePartitionsTopic(name="grow", count=3, assignments=None)],
                      timeout_ms=5000, validate_only=False)
        assert resp.results[0].error_code == E.NONE
        produce(w, "grow", 2, 4)
        w.close()
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        assert partition_count(w, "grow") == 3
        lo = w.call(2, 7, replica_id=-1, isolation_level=0, topics=[REQUESTS[2].ListOffsetsTopic(
            name="grow", partitions=[REQUESTS[2].ListOffsetsTopic.ListOffsetsPartition(
                partition_index=2, current_leader_epoch=-1, timestamp=-1)])])
        assert lo.topics[0].partitions[0].offset == 4
        w.close()


# -- DeleteRecords ------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2])
def test_delete_records_every_version(wire, topic_name, version):
    create_topic(wire, topic_name, 2)
    produce(wire, topic_name, 0, 10)
    produce(wire, topic_name, 1, 5)
    assert delete_records(wire, version, topic_name, {0: 4, 1: -1}) == {0: (E.NONE, 4), 1: (E.NONE, 5)}
    assert list_offset(wire, topic_name, 0, -2) == 4
    assert list_offset(wire, topic_name, 1, -2) == 5
    # Lower than the log start: nothing moves, the current low watermark comes back.
    assert delete_records(wire, version, topic_name, {0: 2}) == {0: (E.NONE, 4)}


def test_delete_records_errors(wire, topic_name):
    create_topic(wire, topic_name, 1)
    produce(wire, topic_name, 0, 3)
    assert delete_records(wire, 2, topic_name, {0: 4}) == {0: (E.OFFSET_OUT_OF_RANGE, -1)}
    assert delete_records(wire, 2, topic_name, {0: -7}) == {0: (E.OFFSET_OUT_OF_RANGE, -1)}
    assert delete_records(wire, 2, topic_name, {5: 1}) == {5: (E.UNKNOWN_TOPIC_OR_PARTITION, -1)}
    assert delete_records(wire, 2, topic_name + "-x", {0: 1}) == {0: (E.UNKNOWN_TOPIC_OR_PARTITION, -1)}
    assert delete_records(wire, 2, topic_name, {0: 3}) == {0: (E.NONE, 3)}  # == high watermark is allowed
    compacted = topic_name + "-c"
    create_topic(wire, compacted, 1, {"cleanup.policy": "compact"})
    assert delete_records(wire, 2, compacted, {0: 0}) == {0: (E.POLICY_VIOLATION, -1)}


def test_delete_records_then_fetch_from_new_start(wire, topic_name):
    create_topic(wire, topic_name, 1, {"segment.bytes": "1048576"})  # Kafka's smallest
    for _ in range(20):
        produce(wire, topic_name, 0, 5, pad=b"x" * 20_000)  # 2 MB: the first segment fills
    assert delete_records(wire, 1, topic_name, {0: 57}) == {0: (E.NONE, 57)}
    F = REQUESTS[1]
    resp = wire.call(1, 11, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                     session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=topic_name, partitions=[
                         F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=10,
                                                     log_start_offset=-1, partition_max_bytes=1 << 20)])],
                     forgotten_topics_data=[], rack_id="")
    part = resp.responses[0].partitions[0]
    assert part.error_code == E.OFFSET_OUT_OF_RANGE
    assert part.log_start_offset == 57
    resp = wire.call(1, 11, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                     session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic=topic_name, partitions=[
                         F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=57,
                                                     log_start_offset=-1, partition_max_bytes=1 << 20)])],
                     forgotten_topics_data=[], rack_id="")
    part = resp.responses[0].partitions[0]
    assert part.error_code == E.NONE
    assert part.log_start_offset == 57
    assert part.high_watermark == 100


# -- DescribeCluster ----------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2])
def test_describe_cluster_every_version(wire, broker, version):
    fields = {"include_cluster_authorized_operations": True}
    if version >= 1:
        fields["endpoint_type"] = 1
    if version >= 2:
        fields["include_fenced_brokers"] = True
    resp = wire.call(60, version, **fields)
    assert resp.error_code == E.NONE
    assert resp.cluster_id == broker.broker.cluster_id
    node = broker.broker.node_id
    assert resp.controller_id == node
    host, port = broker.bootstrap_servers.rsplit(":", 1)
    assert [(b.broker_id, b.host, b.port, b.rack) for b in resp.brokers] == [(node, host, int(port), None)]
    assert resp.cluster_authorized_operations > 0
    if version >= 2:
        assert resp.brokers[0].is_fenced is False


def test_describe_cluster_endpoint_types(wire):
    assert wire.call(60, 1, include_cluster_authorized_operations=False, endpoint_type=1).cluster_authorized_operations \
        == -(2**31)
    resp = wire.call(60, 1, include_cluster_authorized_operations=False, endpoint_type=2)
    assert resp.error_code == E.MISMATCHED_ENDPOINT_TYPE
    assert resp.error_message == ("The request was sent to an endpoint of type BROKER, but we wanted an endpoint "
                                  "of type CONTROLLER")
    resp = wire.call(60, 2, include_cluster_authorized_operations=False, endpoint_type=7, include_fenced_brokers=False)
    assert (resp.error_code, resp.error_message) == (E.UNSUPPORTED_ENDPOINT_TYPE, "Unsupported endpoint type 7")


def test_describe_cluster_fenced_brokers_only_when_asked():
    import uuid

    from kbroker.testing import BrokerThread

    with BrokerThread() as b:
        def register_fenced_peer():
            rec = mr.RegisterBrokerRecord(
                broker_id=b.broker.node_id + 1, incarnation_id=uuid.uuid4(), broker_epoch=99, rack="r2", fenced=True,
                end_points=[mr.RegisterBrokerRecord.BrokerEndpoint(name="PLAINTEXT", host="peer.example", port=9093,
                                                                   security_protocol=0)])
            b.broker.controller.commit([rec])
        b.call(register_fenced_peer)
        w = Wire(b.bootstrap_servers)
        node = b.broker.node_id
        hidden = w.call(60, 2, include_cluster_authorized_operations=False, endpoint_type=1,
                        include_fenced_brokers=False)
        assert [(x.broker_id, x.is_fenced) for x in hidden.brokers] == [(node, False)]
        shown = w.call(60, 2, include_cluster_authorized_operations=False, endpoint_type=1,
                       include_fenced_brokers=True)
        host, port = b.bootstrap_servers.rsplit(":", 1)
        assert [(x.broker_id, x.host, x.port, x.rack, x.is_fenced) for x in shown.brokers] == [
            (node, host, int(port), None, False),
            (node + 1, "peer.example", 9093, "r2", True),
        ]
        assert shown.controller_id == node  # an alive broker
        # v1 knows nothing of fencing: fenced brokers are never listed.
        v1 = w.call(60, 1, include_cluster_authorized_operations=False, endpoint_type=1)
        assert [x.broker_id for x in v1.brokers] == [node]
        w.close()


# -- DescribeLogDirs ----------------------------------------------------------------------

DL = REQUESTS[35]


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_describe_log_dirs_every_version(wire, broker, topic_name, version):
    create_topic(wire, topic_name, 2)
    produce(wire, topic_name, 1, 7)
    resp = wire.call(35, version, topics=None)
    (result,) = resp.results
    assert result.error_code == E.NONE
    assert result.log_dir == os.path.realpath(broker.data_dir)
    topics = {t.name: {p.partition_index: p for p in t.partitions} for t in result.topics}
    assert "__cluster_metadata" not in topics
    parts = topics[topic_name]
    assert sorted(parts) == [0, 1]
    assert parts[0].partition_size == 0
    assert parts[1].partition_size > 7 * 2  # seven records and a batch header
    assert {p.offset_lag for p in parts.values()} == {0}
    assert not any(p.is_future_key for p in parts.values())
    if version >= 4:
        assert result.total_bytes > 0 and 0 <= result.usable_bytes <= result.total_bytes
    else:
        assert result.total_bytes == -1
    if version >= 3:
        assert resp.error_code == E.NONE


def test_describe_log_dirs_selected_partitions(wire, topic_name):
    create_topic(wire, topic_name, 3)
    resp = wire.call(35, 4, topics=[DL.DescribableLogDirTopic(topic=topic_name, partitions=[2, 9])])
    topics = {t.name: [p.partition_index for p in t.partitions] for t in resp.results[0].topics}
    assert topics == {topic_name: [2]}  # topics with no partition asked for are left out


def test_describe_log_dirs_two_dirs(tmp_path):
    from kbroker.testing import BrokerThread

    dirs = [tmp_path / "a", tmp_path / "b"]
    with BrokerThread(config={"log.dirs": ",".join(map(str, dirs))}, data_dir=str(tmp_path / "unused")) as b:
        w = Wire(b.bootstrap_servers)
        create_topic(w, "spread", 4)
        produce(w, "spread", 3, 2)
        resp = w.call(35, 4, topics=[DL.DescribableLogDirTopic(topic="spread", partitions=[0, 1, 2, 3])])
        assert [r.log_dir for r in resp.results] == [os.path.realpath(d) for d in dirs]
        placed = {}
        for r in resp.results:
            assert r.error_code == E.NONE and r.total_bytes > 0
            for t in r.topics:
                for p in t.partitions:
                    if t.name == "spread":
                        placed[p.partition_index] = (r.log_dir, p.partition_size > 0)
                        # the directory is made after the commit, on the log manager's worker (as
                        # Kafka creates logs when the broker applies the records)
                        path = os.path.join(r.log_dir, f"spread-{p.partition_index}")
                        wait_until(lambda path=path: os.path.isdir(path), message=f"{path} made")
        assert sorted(placed) == [0, 1, 2, 3]
        assert {d for d, _ in placed.values()} == {os.path.realpath(d) for d in dirs}  # both dirs used
        assert [p for p, (_d, has_data) in sorted(placed.items()) if has_data] == [3]
        w.close()


# -- DescribeTopicPartitions ----------------------------------------------------------------


def test_describe_topic_partitions_named(wire, broker, topic_name):
    create_topic(wire, topic_name, 3)
    resp = dtp(wire, [topic_name, "no-such-topic-x", "bad/name"])
    assert resp.next_cursor is None
    by_name = {t.name: t for t in resp.topics}
    assert [t.name for t in resp.topics] == sorted(by_name)
    t = by_name[topic_name]
    assert t.error_code == E.NONE and not t.is_internal and t.topic_id.int != 0
    node = broker.broker.node_id
    assert [(p.partition_index, p.leader_id, p.leader_epoch, p.replica_nodes, p.isr_nodes, p.offline_replicas)
            for p in t.partitions] == [(i, node, 0, [node], [node], []) for i in range(3)]
    assert t.topic_authorized_operations > 0
    assert by_name["no-such-topic-x"].error_code == E.UNKNOWN_TOPIC_OR_PARTITION
    assert by_name["bad/name"].error_code == E.INVALID_TOPIC_EXCEPTION
    assert {t.topic_authorized_operations for t in resp.topics} == {t.topic_authorized_operations}


def test_describe_topic_partitions_paging(wire, topic_name):
    a, b, c = topic_name + "-a", topic_name + "-b", topic_name + "-c"
    create_topic(wire, a, 3)
    create_topic(wire, b, 2)
    create_topic(wire, c, 4)

    def page(limit, cursor=None):
        resp = dtp(wire, [c, a, b], limit, cursor)
        got = [(t.name, [p.partition_index for p in t.partitions]) for t in resp.topics]
        nxt = None if resp.next_cursor is None else (resp.next_cursor.topic_name, resp.next_cursor.partition_index)
        return got, nxt

    assert page(2) == ([(a, [0, 1])], (a, 2))
    assert page(2, (a, 2)) == ([(a, [2]), (b, [0])], (b, 1))
    assert page(2, (b, 1)) == ([(b, [1]), (c, [0])], (c, 1))
    assert page(3, (c, 1)) == ([(c, [1, 2, 3])], None)
    # The limit used up exactly at a topic's end: the cursor names the next topic at 0.
    assert page(3) == ([(a, [0, 1, 2])], (b, 0))
    assert page(100) == ([(a, [0, 1, 2]), (b, [0, 1]), (c, [0, 1, 2, 3])], None)
    # A limit of zero or below is taken as one.
    assert page(0) == page(-5) == page(1) == ([(a, [0])], (a, 1))
    # A cursor topic that is not in the topic list is an invalid request.
    resp = dtp(wire, [a, b], 10, (c, 0))
    assert [(t.name, t.error_code) for t in resp.topics] == [(a, E.INVALID_REQUEST), (b, E.INVALID_REQUEST)]


def test_describe_topic_partitions_all_topics_with_cursor(wire, topic_name):
    create_topic(wire, topic_name, 2)
    resp = dtp(wire, [], 2000, (topic_name, 1))
    names = [t.name for t in resp.topics]
    assert names == sorted(names) and names[0] == topic_name
    assert [p.partition_index for p in resp.topics[0].partitions] == [1]
    assert all(t.error_code == E.NONE for t in resp.topics)


# -- OffsetForLeaderEpoch ----------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 3, 4])
def test_offset_for_leader_epoch_every_version(wire, topic_name, version):
    create_topic(wire, topic_name, 1)
    produce(wire, topic_name, 0, 6)
    assert epoch_end(wire, version, topic_name, 0, 0) == (E.NONE, 0, 6)
    assert epoch_end(wire, version, topic_name, 0, 0, current=0) == (E.NONE, 0, 6)
    assert epoch_end(wire, version, topic_name, 0, -1) == (E.NONE, -1, -1)
    assert epoch_end(wire, version, topic_name, 0, 3) == (E.NONE, -1, -1)
    assert epoch_end(wire, version, topic_name, 0, 0, current=1)[0] == E.UNKNOWN_LEADER_EPOCH
    assert epoch_end(wire, version, topic_name, 0, 0, current=-1)[0] == E.NONE
    assert epoch_end(wire, version, topic_name, 7, 0)[0] == E.UNKNOWN_TOPIC_OR_PARTITION
    assert epoch_end(wire, version, topic_name + "-x", 0, 0)[0] == E.UNKNOWN_TOPIC_OR_PARTITION


def _change_leader(broker, name, partition, leader):
    def run():
        b = broker.broker
        topic = b.image.topic(name)
        b.controller.commit([mr.PartitionChangeRecord(partition_id=partition, topic_id=topic.topic_id, leader=leader)])
    broker.call(run)


def test_offset_for_leader_epoch_after_epoch_changes(wire, broker, topic_name):
    create_topic(wire, topic_name, 1)
    node = broker.broker.node_id
    produce(wire, topic_name, 0, 5)            # epoch 0: offsets 0-4
    _change_leader(broker, topic_name, 0, node)  # epoch 1
    produce(wire, topic_name, 0, 3)            # epoch 1: offsets 5-7
    _change_leader(broker, topic_name, 0, node)  # epoch 2, no data
    _change_leader(broker, topic_name, 0, node)  # epoch 3
    produce(wire, topic_name, 0, 2)            # epoch 3: offsets 8-9
    assert epoch_end(wire, 4, topic_name, 0, 3) == (E.NONE, 3, 10)
    assert epoch_end(wire, 4, topic_name, 0, 0) == (E.NONE, 0, 5)
    assert epoch_end(wire, 4, topic_name, 0, 1) == (E.NONE, 1, 8)
    assert epoch_end(wire, 4, topic_name, 0, 2) == (E.NONE, 1, 8)  # no epoch-2 data: the one before it
    assert epoch_end(wire, 4, topic_name, 0, 4) == (E.NONE, -1, -1)
    assert epoch_end(wire, 4, topic_name, 0, 0, current=2)[0] == E.FENCED_LEADER_EPOCH
    # After the log start passes epoch 0, epoch 0 ends where the log now starts... at epoch 1's start.
    assert delete_records(wire, 2, topic_name, {0: 6}) == {0: (E.NONE, 6)}
    assert epoch_end(wire, 4, topic_name, 0, 0) == (E.NONE, 0, 6)
    assert epoch_end(wire, 4, topic_name, 0, 1) == (E.NONE, 1, 8)


# -- ElectLeaders -------------------------------------------------------------------------

EL = REQUESTS[43]


def elect(wire, version, election_type, partitions):
    fields = {"topic_partitions": None if partitions is None else [
        EL.TopicPartitions(topic=t, partitions=ps) for t, ps in partitions.items()], "timeout_ms": 5000}
    if version >= 1:
        fields["election_type"] = election_type
    return wire.call(43, version, **fields)


def results(resp):
    return {(t.topic, p.partition_id): (p.error_code, p.error_message)
            for t in resp.replica_election_results for p in t.partition_result}


@pytest.mark.parametrize("version", [0, 1, 2])
def test_elect_leaders_not_needed(wire, topic_name, version):
    create_topic(wire, topic_name, 2)
    resp = elect(wire, version, 0, {topic_name: [0, 1, 5]})
    if version >= 1:
        assert resp.error_code == E.NONE
    not_needed = (E.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition.")
    assert results(resp) == {
        (topic_name, 0): not_needed, (topic_name, 1): not_needed,
        (topic_name, 5): (E.UNKNOWN_TOPIC_OR_PARTITION, f"No such partition as {topic_name}-5"),
    }
    if version >= 1:
        assert results(elect(wire, version, 1, {topic_name: [0]})) == {(topic_name, 0): not_needed}
    # All partitions: every topic is listed, without the partitions that need no election.
    everything = elect(wire, version, 0, None)
    assert results(everything) == {}
    assert topic_name in {t.topic for t in everything.replica_election_results}
    assert elect(wire, version, 0, {}).replica_election_results == []


def test_elect_leaders_elects_when_leaderless(wire, broker, topic_name):
    create_topic(wire, topic_name, 2)
    produce(wire, topic_name, 0, 3)
    _change_leader(broker, topic_name, 0, -1)
    _change_leader(broker, topic_name, 1, -1)
    node = broker.broker.node_id
    assert results(elect(wire, 2, 1, {topic_name: [0]})) == {(topic_name, 0): (E.NONE, None)}
    assert results(elect(wire, 2, 0, None)) == {(topic_name, 1): (E.NONE, None)}
    resp = dtp(wire, [topic_name])
    assert [(p.leader_id, p.leader_epoch) for p in resp.topics[0].partitions] == [(node, 2), (node, 2)]
    # The partition serves again at its new epoch.
    assert produce(wire, topic_name, 0, 1) == 3
    assert epoch_end(wire, 4, topic_name, 0, 2, current=2) == (E.NONE, 2, 4)


def test_elect_leaders_elects_from_the_elr_as_the_controller_does(wire, broker, topic_name):
    """ElectLeaders runs the controller's election (PartitionChangeBuilder, KIP-966): a leaderless
    partition with an empty ISR and its replica in the ELR gets that replica back cleanly, for a
    preferred election too; the ISR is the new leader, the ELR empties, no recovery."""
    create_topic(wire, topic_name, 2)
    node = broker.broker.node_id

    def lose_leader(partition):
        def run():
            b = broker.broker
            topic = b.image.topic(topic_name)
            b.controller.commit([mr.PartitionChangeRecord(partition_id=partition, topic_id=topic.topic_id,
                                                          leader=-1, isr=[], eligible_leader_replicas=[node])])
        broker.call(run)

    def state(partition):
        return broker.call(lambda: broker.broker.image.partition(topic_name, partition))

    lose_leader(0)
    lose_leader(1)
    assert (state(0).leader, state(0).isr, state(0).elr) == (-1, [], [node])
    assert results(elect(wire, 2, 0, {topic_name: [0]})) == {(topic_name, 0): (E.NONE, None)}
    assert results(elect(wire, 2, 1, {topic_name: [1]})) == {(topic_name, 1): (E.NONE, None)}
    for partition in (0, 1):
        p = state(partition)
        assert (p.leader, p.isr, p.elr, p.leader_recovery_state) == (node, [node], [], 0)


def test_elect_leaders_unknown_type(wire, topic_name):
    create_topic(wire, topic_name, 1)
    resp = elect(wire, 1, 5, {topic_name: [0]})
    assert resp.error_code == E.INVALID_REQUEST
    assert results(resp) == {(topic_name, 0): (E.INVALID_REQUEST, "Unknown election type 5")}


def test_elect_leaders_past_the_record_bound_fails_whole(wire, broker, topic_name, monkeypatch):
    # Kafka: more election records than MAX_RECORDS_PER_USER_OP (10,000; lowered here) fail the
    # whole operation, POLICY_VIOLATION top-level and for each partition named, nothing elected.
    from kbroker.controller.operations import elect_leaders as elect_leaders_api
    create_topic(wire, topic_name, 2)
    _change_leader(broker, topic_name, 0, -1)
    _change_leader(broker, topic_name, 1, -1)
    monkeypatch.setattr(elect_leaders_api, "MAX_RECORDS_PER_USER_OP", 1)
    batch = (E.POLICY_VIOLATION, "Unable to perform excessively large batch operation.")
    resp = elect(wire, 2, 1, {topic_name: [0, 1]})
    assert resp.error_code == E.POLICY_VIOLATION
    assert results(resp) == {(topic_name, 0): batch, (topic_name, 1): batch}
    everything = elect(wire, 2, 1, None)
    assert (everything.error_code, everything.replica_election_results) == (E.POLICY_VIOLATION, [])
    assert [p.leader_id for p in dtp(wire, [topic_name]).topics[0].partitions] == [-1, -1]
    assert results(elect(wire, 2, 1, {topic_name: [0]})) == {(topic_name, 0): (E.NONE, None)}
    assert [p.leader_id for p in dtp(wire, [topic_name]).topics[0].partitions] == [broker.broker.node_id, -1]
