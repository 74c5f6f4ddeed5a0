"""DescribeQuorum (55) and UnregisterBroker (64) on a broker listener, as Kafka 4.4's brokers serve
them (forwarded to the active controller: here the single node's own controller)."""

from __future__ import annotations

from wire import Wire

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.api_versions import ApiVersionsRequest
from kbroker_protocol.messages.describe_quorum import DescribeQuorumRequest

T = DescribeQuorumRequest.TopicData


def _describe(wire: Wire, topic: str = "__cluster_metadata", version: int = 2):
    return wire.call(DescribeQuorumRequest(topics=[T(topic_name=topic, partitions=[T.PartitionData(
        partition_index=0)])]), version)


def test_advertised_on_the_broker_listener(bootstrap):
    w = Wire(bootstrap)
    keys = {k.api_key: (k.min_version, k.max_version) for k in w.call(ApiVersionsRequest(), 2).api_keys}
    assert keys[55] == (0, 2)
    assert keys[64] == (0, 0)
    assert 82 not in keys  # UpdateRaftVoter is controller-only in Kafka


def test_describe_quorum_names_the_leader_and_the_voter(bootstrap, broker):
    for version in (0, 1, 2):
        resp = _describe(Wire(bootstrap), version=version)
        assert resp.error_code == 0
        part = resp.topics[0].partitions[0]
        assert part.error_code == 0
        assert part.leader_id == broker.broker.node_id
        assert [v.replica_id for v in part.current_voters] == [broker.broker.node_id]
        assert part.high_watermark > 0


def test_describe_quorum_of_another_partition_is_refused(bootstrap):
    resp = _describe(Wire(bootstrap), topic="other")
    assert resp.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_unregister_an_unknown_broker(bootstrap):
    resp = Wire(bootstrap).call(64, 0, broker_id=4242)
    assert resp.error_code == ErrorCode.BROKER_ID_NOT_REGISTERED
    assert resp.error_message == "Broker ID 4242 is not currently registered"


def test_unregister_controller_on_the_broker_listener(bootstrap, broker):
    w = Wire(bootstrap)
    keys = {k.api_key for k in w.call(ApiVersionsRequest(), 2).api_keys}
    assert {80, 81, 94} <= keys
    # the active controller cannot unregister itself; an id never registered is refused
    me = w.call(94, 0, controller_id=broker.broker.node_id)
    assert me.error_code == ErrorCode.INVALID_REQUEST
    assert me.error_message == "Controller cannot unregister itself while it is active."
    other = w.call(94, 0, controller_id=77)
    assert other.error_code == ErrorCode.CONTROLLER_ID_NOT_REGISTERED
    assert other.error_message == "Controller ID 77 is not currently registered."


def test_voter_changes_on_a_static_single_voter_are_refused(bootstrap):
    import uuid

    w = Wire(bootstrap)
    bad = w.call(80, 1, cluster_id="nope", voter_id=2, voter_directory_id=uuid.uuid4(), listeners=[])
    assert bad.error_code == ErrorCode.INCONSISTENT_CLUSTER_ID
    no_dir = w.call(81, 0, cluster_id=None, voter_id=2, voter_directory_id=uuid.UUID(int=0))
    assert no_dir.error_code == ErrorCode.INVALID_REQUEST
    assert no_dir.error_message == "Remove voter request didn't include a valid voter"
    from kbroker_protocol.messages.add_raft_voter import AddRaftVoterRequest

    L = AddRaftVoterRequest.Listener
    no_listener = w.call(80, 1, cluster_id=None, voter_id=2, voter_directory_id=uuid.uuid4(),
                         listeners=[L(name="OTHER", host="localhost", port=1234)])
    assert no_listener.error_code == ErrorCode.INVALID_REQUEST
    assert no_listener.error_message.startswith("Add voter request didn't include the endpoint (")
    no_voter = w.call(80, 1, cluster_id=None, voter_id=-1, voter_directory_id=uuid.uuid4(), listeners=[])
    assert no_voter.error_message == "Add voter request didn't include a valid voter"
    add_static = w.call(80, 1, cluster_id=None, voter_id=2, voter_directory_id=uuid.uuid4(),
                        listeners=[L(name="CONTROLLER", host="localhost", port=1234)])
    assert add_static.error_code == ErrorCode.UNSUPPORTED_VERSION
    static = w.call(81, 0, cluster_id=None, voter_id=1, voter_directory_id=uuid.uuid4())
    assert static.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert static.error_message == "Cluster doesn't support removing voter because the kraft.version feature is 0"
