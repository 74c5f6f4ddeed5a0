"""The cases of test_error_responses, one per API key: how to build a request carrying keys (topics,
partitions, groups, transactions, resources ...) at a version, the keys its response echoes at that
version, and the keys the request asked for (moved from test_error_responses)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages import REQUESTS

USE = ErrorCode.UNKNOWN_SERVER_ERROR

_UNKNOWN_MESSAGE = "The server experienced an unexpected error when processing the request."

ZERO = uuid.UUID(int=0)

U1 = uuid.UUID("6c4d3f0e-1b1d-4c51-9a0e-2d0f5b1a7e11")


def _q(key: int) -> Any:
    return REQUESTS[key]


# key -> (request for version v, keys echoed in the response at version v, keys the request asked)
Case = tuple[Callable[[int], Any], Callable[[Any, int], Any], Callable[[int], Any]]


def _top_level(key: int, **fields: Any) -> Case:
    return (lambda v: _q(key)(**fields), lambda r, v: None, lambda v: None)


def _share_state_case(key: int, topic_cls: str) -> Case:
    """The share coordinator RPCs: every partition of the request comes back with the code."""
    def request(v: int) -> Any:
        T = getattr(_q(key), topic_cls)
        return _q(key)(group_id="g", topics=[T(topic_id=U1, partitions=[T.PartitionData(partition=i)
                                                                         for i in (0, 2)])])
    return (request, lambda r, v: [(t.topic_id, [p.partition for p in t.partitions]) for t in r.results],
            lambda v: [(U1, [0, 2])])


CASES: dict[int, Case] = {
    0: (
        lambda v: _q(0)(acks=-1, timeout_ms=1000, topic_data=[
            _q(0).TopicProduceData(name="t1", topic_id=U1, partition_data=[
                _q(0).TopicProduceData.PartitionProduceData(index=i, records=None) for i in (0, 2)])]),
        lambda r, v: [(t.topic_id if v >= 13 else t.name, [p.index for p in t.partition_responses])
                      for t in r.responses],
        lambda v: [(U1 if v >= 13 else "t1", [0, 2])],
    ),
    1: (
        lambda v: _q(1)(max_wait_ms=0, session_id=7 if v >= 7 else 0, session_epoch=1, topics=[
            _q(1).FetchTopic(topic="t1", topic_id=U1, partitions=[
                _q(1).FetchTopic.FetchPartition(partition=i) for i in (0, 3)])]),
        lambda r, v: (r.session_id, [(t.topic_id if v >= 13 else t.topic, [p.partition_index for p in t.partitions])
                                     for t in r.responses]),
        # v13+ answers with the top-level code and no partitions
        lambda v: (7 if v >= 7 else 0, [] if v >= 13 else [("t1", [0, 3])]),
    ),
    2: (
        lambda v: _q(2)(replica_id=-1, topics=[_q(2).ListOffsetsTopic(name="t1", partitions=[
            _q(2).ListOffsetsTopic.ListOffsetsPartition(partition_index=i, timestamp=-1) for i in (1, 4)])]),
        lambda r, v: [(t.name, [(p.partition_index, p.offset, p.timestamp) for p in t.partitions])
                      for t in r.topics],
        lambda v: [("t1", [(1, -1, -1), (4, -1, -1)])],
    ),
    3: (
        lambda v: _q(3)(topics=[_q(3).MetadataRequestTopic(name=n) for n in ("t1", "t2")],
                        allow_auto_topic_creation=False),
        lambda r, v: ([t.name for t in r.topics], r.brokers, r.error_code),
        lambda v: (["t1", "t2"], [], 0),
    ),
    8: (
        lambda v: _q(8)(group_id="g", generation_id_or_member_epoch=-1, member_id="", topics=[
            _q(8).OffsetCommitRequestTopic(name="t1", topic_id=U1, partitions=[
                _q(8).OffsetCommitRequestTopic.OffsetCommitRequestPartition(partition_index=i, committed_offset=5)
                for i in (0, 1)])]),
        lambda r, v: [(t.topic_id if v >= 10 else t.name, [p.partition_index for p in t.partitions])
                      for t in r.topics],
        lambda v: [(U1 if v >= 10 else "t1", [0, 1])],
    ),
    9: (
        lambda v: _q(9)(
            group_id="g",
            topics=[_q(9).OffsetFetchRequestTopic(name="t1", partition_indexes=[0, 2])],
            groups=[_q(9).OffsetFetchRequestGroup(group_id=g, topics=None) for g in ("g1", "g2")],
        ),
        lambda r, v: (
            [g.group_id for g in r.groups] if v >= 8
            else [(t.name, [(p.partition_index, p.committed_offset, p.metadata) for p in t.partitions])
                  for t in r.topics]
        ),
        # before v2 the partitions carry the error; v2-7 the top-level code; v8+ each group
        lambda v: ["g1", "g2"] if v >= 8 else [("t1", [(0, -1, ""), (2, -1, "")])] if v < 2 else [],
    ),
    10: (
        lambda v: _q(10)(key="g", key_type=0, coordinator_keys=["g1", "g2"]),
        lambda r, v: (
            [(c.key, c.node_id, c.host, c.port, c.error_message) for c in r.coordinators] if v >= 4
            else (r.node_id, r.host, r.port, r.error_message if v >= 1 else None)
        ),
        lambda v: (
            [(k, -1, "", -1, default_message(USE)) for k in ("g1", "g2")] if v >= 4
            else (-1, "", -1, default_message(USE) if v >= 1 else None)
        ),
    ),
    11: (
        lambda v: _q(11)(group_id="g", session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id="",
                         protocol_type="consumer", protocols=[]),
        lambda r, v: (r.generation_id, r.protocol_name, r.leader, r.member_id, r.members),
        lambda v: (-1, None if v >= 7 else "", "", "", []),
    ),
    12: _top_level(12, group_id="g", generation_id=1, member_id="m"),
    13: _top_level(13, group_id="g", member_id="m",
                   members=[_q(13).MemberIdentity(member_id="m", group_instance_id=None)]),
    14: (
        lambda v: _q(14)(group_id="g", generation_id=1, member_id="m", assignments=[]),
        lambda r, v: r.assignment,
        lambda v: b"",
    ),
    15: (
        lambda v: _q(15)(groups=["g1", "g2"]),
        lambda r, v: [(g.group_id, g.group_state, g.members) for g in r.groups],
        lambda v: [("g1", "", []), ("g2", "", [])],
    ),
    16: (
        lambda v: _q(16)(),
        lambda r, v: r.groups,
        lambda v: [],
    ),
    17: _top_level(17, mechanism="PLAIN"),
    29: (lambda v: _q(29)(resource_type_filter=2, resource_name_filter="t", pattern_type_filter=3,
                          principal_filter=None, host_filter=None, operation=1, permission_type=1),
         lambda r, v: (r.error_message, r.resources), lambda v: (None, [])),
    30: (lambda v: _q(30)(creations=[_q(30).AclCreation(resource_type=2, resource_name=n, resource_pattern_type=3,
                                                         principal="User:a", host="*", operation=3, permission_type=3)
                                     for n in ("t1", "t2")]),
         lambda r, v: [x.error_message for x in r.results], lambda v: [None, None]),
    31: (lambda v: _q(31)(filters=[_q(31).DeleteAclsFilter(resource_type_filter=1, resource_name_filter=None,
                                                            pattern_type_filter=1, principal_filter=None,
                                                            host_filter=None, operation=1, permission_type=1)]),
         lambda r, v: [(x.error_message, x.matching_acls) for x in r.filter_results], lambda v: [(None, [])]),
    36: (lambda v: _q(36)(auth_bytes=b"x"), lambda r, v: r.error_message, lambda v: None),
    38: (lambda v: _q(38)(renewers=[], max_lifetime_ms=-1),
         lambda r, v: (r.principal_type, r.principal_name, r.token_id, r.issue_timestamp_ms, bytes(r.hmac)),
         lambda v: ("User", "ANONYMOUS", "", -1, b"")),
    39: (lambda v: _q(39)(hmac=b"h", renew_period_ms=1), lambda r, v: r.expiry_timestamp_ms, lambda v: 0),
    40: (lambda v: _q(40)(hmac=b"h", expiry_time_period_ms=1), lambda r, v: r.expiry_timestamp_ms, lambda v: 0),
    41: (lambda v: _q(41)(owners=None), lambda r, v: r.tokens, lambda v: []),
    48: (
        lambda v: _q(48)(components=[_q(48).ComponentData(entity_type="user", match_type=0, match="u")]),
        lambda r, v: (r.error_message, r.entries), lambda v: (None, None),
    ),
    49: (
        lambda v: _q(49)(entries=[_q(49).EntryData(
            entity=[_q(49).EntryData.EntityData(entity_type=t, entity_name=n)],
            ops=[_q(49).EntryData.OpData(key="producer_byte_rate", value=1.0)]) for t, n in (("user", "u1"),
                                                                                           ("client-id", None))]),
        # Kafka: each entry's entity echoed, with Errors.forException(e).message()
        lambda r, v: [([(e.entity_type, e.entity_name) for e in x.entity], x.error_message) for x in r.entries],
        lambda v: [([("user", "u1")], _UNKNOWN_MESSAGE), ([("client-id", None)], _UNKNOWN_MESSAGE)],
    ),
    50: (
        lambda v: _q(50)(users=[_q(50).UserName(name="u1"), _q(50).UserName(name="u2")]),
        lambda r, v: [(x.user, x.error_message) for x in r.results],
        lambda v: [("", None), ("", None)],
    ),
    51: (
        lambda v: _q(51)(deletions=[_q(51).ScramCredentialDeletion(name="u2", mechanism=1)],
                         upsertions=[_q(51).ScramCredentialUpsertion(name="u1", mechanism=1, iterations=4096,
                                                                     salt=b"s", salted_password=b"p")]),
        lambda r, v: [(x.user, x.error_message) for x in r.results],
        lambda v: [("u1", None), ("u2", None)],
    ),
    18: (
        lambda v: _q(18)(client_software_name="error-test", client_software_version="1"),
        lambda r, v: r.api_keys,
        lambda v: [],
    ),
    19: (
        lambda v: _q(19)(timeout_ms=1000, topics=[
            _q(19).CreatableTopic(name=n, num_partitions=1, replication_factor=1, assignments=[], configs=[])
            for n in ("t1", "t2")]),
        lambda r, v: [(t.name, t.error_message) for t in r.topics],
        lambda v: [("t1", None), ("t2", None)],
    ),
    20: (
        lambda v: _q(20)(timeout_ms=1000, topic_names=["t1", "t2"],
                         topics=[_q(20).DeleteTopicState(name="t1", topic_id=U1)]),
        lambda r, v: [(t.name, t.topic_id) for t in r.responses],
        lambda v: [("t1", U1)] if v >= 6 else [("t1", ZERO), ("t2", ZERO)],
    ),
    21: (
        lambda v: _q(21)(timeout_ms=1000, topics=[_q(21).DeleteRecordsTopic(name="t1", partitions=[
            _q(21).DeleteRecordsTopic.DeleteRecordsPartition(partition_index=i, offset=5) for i in (0, 2)])]),
        lambda r, v: [(t.name, [(p.partition_index, p.low_watermark) for p in t.partitions]) for t in r.topics],
        lambda v: [("t1", [(0, -1), (2, -1)])],
    ),
    22: (
        lambda v: _q(22)(transactional_id="tx", transaction_timeout_ms=60000),
        lambda r, v: (r.producer_id, r.producer_epoch),
        lambda v: (-1, -1),
    ),
    23: (
        lambda v: _q(23)(replica_id=-1, topics=[_q(23).OffsetForLeaderTopic(topic="t1", partitions=[
            _q(23).OffsetForLeaderTopic.OffsetForLeaderPartition(partition=i, leader_epoch=0) for i in (1, 2)])]),
        lambda r, v: [(t.topic, [(p.partition, p.leader_epoch, p.end_offset) for p in t.partitions])
                      for t in r.topics],
        lambda v: [("t1", [(1, -1, -1), (2, -1, -1)])],
    ),
    24: (
        lambda v: _q(24)(
            v3_and_below_transactional_id="tx", v3_and_below_producer_id=1, v3_and_below_producer_epoch=0,
            v3_and_below_topics=[_q(24).AddPartitionsToTxnTopic(name="t1", partitions=[0, 1])],
            transactions=[_q(24).AddPartitionsToTxnTransaction(
                transactional_id="tx", producer_id=1, producer_epoch=0, verify_only=True,
                topics=[_q(24).AddPartitionsToTxnTransaction.AddPartitionsToTxnTopic(name="t1", partitions=[0])])],
        ),
        lambda r, v: (
            r.results_by_transaction if v >= 4
            else [(t.name, [p.partition_index for p in t.results_by_partition])
                  for t in r.results_by_topic_v3_and_below]
        ),
        # v4+ (the broker-to-broker form) answers with the top-level code only
        lambda v: [] if v >= 4 else [("t1", [0, 1])],
    ),
    25: _top_level(25, transactional_id="tx", producer_id=1, producer_epoch=0, group_id="g"),
    26: _top_level(26, transactional_id="tx", producer_id=1, producer_epoch=0, committed=True),
    27: (
        lambda v: _q(27)(markers=[_q(27).WritableTxnMarker(
            producer_id=5, producer_epoch=0, transaction_result=True, coordinator_epoch=0,
            topics=[_q(27).WritableTxnMarker.WritableTxnMarkerTopic(name="t1", partition_indexes=[0, 3])])]),
        lambda r, v: [(m.producer_id, [(t.name, [p.partition_index for p in t.partitions]) for t in m.topics])
                      for m in r.markers],
        lambda v: [(5, [("t1", [0, 3])])],
    ),
    28: (
        lambda v: _q(28)(transactional_id="tx", group_id="g", producer_id=1, producer_epoch=0, topics=[
            _q(28).TxnOffsetCommitRequestTopic(name="t1", topic_id=U1, partitions=[
                _q(28).TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(partition_index=i)
                for i in (0, 1)])]),
        lambda r, v: [(t.topic_id if v >= 6 else t.name, [p.partition_index for p in t.partitions])
                      for t in r.topics],
        lambda v: [(U1 if v >= 6 else "t1", [0, 1])],
    ),
    32: (
        lambda v: _q(32)(resources=[_q(32).DescribeConfigsResource(resource_type=2, resource_name=n,
                                                                    configuration_keys=None)
                                    for n in ("t1", "t2")]),
        lambda r, v: [(x.resource_type, x.resource_name, x.error_message, x.configs) for x in r.results],
        # Kafka's DescribeConfigs error response carries the error's default message
        lambda v: [(2, n, default_message(USE), []) for n in ("t1", "t2")],
    ),
    33: (
        lambda v: _q(33)(resources=[_q(33).AlterConfigsResource(resource_type=2, resource_name="t1", configs=[])]),
        lambda r, v: [(x.resource_type, x.resource_name, x.error_message) for x in r.responses],
        lambda v: [(2, "t1", None)],
    ),
    35: (
        lambda v: _q(35)(topics=None),
        lambda r, v: r.results,
        lambda v: [],
    ),
    37: (
        lambda v: _q(37)(timeout_ms=1000, topics=[_q(37).CreatePartitionsTopic(name=n, count=3, assignments=None)
                                                  for n in ("t1", "t2")]),
        lambda r, v: [(t.name, t.error_message) for t in r.results],
        lambda v: [("t1", None), ("t2", None)],
    ),
    42: (
        lambda v: _q(42)(groups_names=["g1", "g2"]),
        lambda r, v: [g.group_id for g in r.results],
        lambda v: ["g1", "g2"],
    ),
    43: (
        lambda v: _q(43)(election_type=0, timeout_ms=1000,
                         topic_partitions=[_q(43).TopicPartitions(topic="t1", partitions=[0, 1])]),
        lambda r, v: [(t.topic, [(p.partition_id, p.error_message) for p in t.partition_result])
                      for t in r.replica_election_results],
        lambda v: [("t1", [(0, None), (1, None)])],
    ),
    44: (
        lambda v: _q(44)(resources=[_q(44).AlterConfigsResource(resource_type=2, resource_name="t1", configs=[])]),
        lambda r, v: [(x.resource_type, x.resource_name, x.error_message) for x in r.responses],
        lambda v: [(2, "t1", None)],
    ),
    47: (
        lambda v: _q(47)(group_id="g", topics=[_q(47).OffsetDeleteRequestTopic(name="t1", partitions=[
            _q(47).OffsetDeleteRequestTopic.OffsetDeleteRequestPartition(partition_index=0)])]),
        lambda r, v: r.topics,
        lambda v: [],
    ),
    45: (
        lambda v: _q(45)(timeout_ms=1000, topics=[_q(45).ReassignableTopic(name="t1", partitions=[
            _q(45).ReassignableTopic.ReassignablePartition(partition_index=i, replicas=[1])
            for i in (0, 2)])]),
        lambda r, v: (r.error_message, [(t.name, [(p.partition_index, p.error_message) for p in t.partitions])
                                        for t in r.responses]),
        lambda v: (None, [("t1", [(0, None), (2, None)])]),
    ),
    46: (
        lambda v: _q(46)(timeout_ms=1000, topics=[_q(46).ListPartitionReassignmentsTopics(
            name="t1", partition_indexes=[0, 2])]),
        lambda r, v: (r.error_message, [(t.name, [(p.partition_index, p.replicas) for p in t.partitions])
                                        for t in r.topics]),
        lambda v: (None, [("t1", [(0, []), (2, [])])]),
    ),
    55: (
        lambda v: _q(55)(topics=[_q(55).TopicData(topic_name="__cluster_metadata",
                                                  partitions=[_q(55).TopicData.PartitionData(partition_index=0)])]),
        lambda r, v: r.topics,
        lambda v: [],
    ),
    64: (
        lambda v: _q(64)(broker_id=7),
        lambda r, v: r.error_message,
        lambda v: None,
    ),
    80: (  # Kafka 4.4's getErrorResponse: setErrorMessage(error.message()), the default text
        lambda v: _q(80)(cluster_id=None, timeout_ms=1000, voter_id=4, voter_directory_id=U1, listeners=[]),
        lambda r, v: r.error_message,
        lambda v: default_message(USE),
    ),
    81: (  # Kafka 4.4's getErrorResponse: setErrorMessage(error.message()), the default text
        lambda v: _q(81)(cluster_id=None, voter_id=4, voter_directory_id=U1),
        lambda r, v: r.error_message,
        lambda v: default_message(USE),
    ),
    94: (
        lambda v: _q(94)(controller_id=4),
        lambda r, v: r.error_message,
        lambda v: None,
    ),
    60: (
        lambda v: _q(60)(),
        lambda r, v: (r.error_message, r.brokers),
        lambda v: (None, []),
    ),
    61: (
        lambda v: _q(61)(topics=[_q(61).TopicRequest(name="t1", partition_indexes=[0, 2])]),
        lambda r, v: [(t.name, [p.partition_index for p in t.partitions]) for t in r.topics],
        lambda v: [("t1", [0, 2])],
    ),
    65: (
        lambda v: _q(65)(transactional_ids=["a", "b"]),
        lambda r, v: [s.transactional_id for s in r.transaction_states],
        lambda v: ["a", "b"],
    ),
    66: (
        lambda v: _q(66)(state_filters=[], producer_id_filters=[]),
        lambda r, v: r.transaction_states,
        lambda v: [],
    ),
    68: (
        lambda v: _q(68)(group_id="g", member_id="m", member_epoch=0, rebalance_timeout_ms=10000,
                         subscribed_topic_names=["t1"], topic_partitions=[]),
        lambda r, v: (r.error_message, r.assignment),
        lambda v: (None, None),
    ),
    69: (
        lambda v: _q(69)(group_ids=["g1", "g2"]),
        lambda r, v: [g.group_id for g in r.groups],
        lambda v: ["g1", "g2"],
    ),
    57: (
        lambda v: _q(57)(feature_updates=[_q(57).FeatureUpdateKey(feature="group.version", max_version_level=1)]),
        lambda r, v: (r.error_message, r.results),
        lambda v: (None, []),
    ),
    74: _top_level(74, resource_types=[2]),
    88: (
        lambda v: _q(88)(group_id="g", member_id="m", member_epoch=0, rebalance_timeout_ms=10000,
                         topology=_q(88).Topology(epoch=0, subtopologies=[]), active_tasks=[], standby_tasks=[],
                         warmup_tasks=[]),
        lambda r, v: (r.error_message, r.active_tasks, r.status),
        lambda v: (None, None, []),
    ),
    89: (
        lambda v: _q(89)(group_ids=["g1", "g2"]),
        lambda r, v: [g.group_id for g in r.groups],
        lambda v: ["g1", "g2"],
    ),
    93: (
        lambda v: _q(93)(group_id="g", member_id="m", topology_epoch=0),
        lambda r, v: r.error_message,
        lambda v: None,
    ),
    34: (
        lambda v: _q(34)(dirs=[_q(34).AlterReplicaLogDir(path="/d1", topics=[
            _q(34).AlterReplicaLogDir.AlterReplicaLogDirTopic(name="t1", partitions=[0, 2])])]),
        lambda r, v: [(t.topic_name, [p.partition_index for p in t.partitions]) for t in r.results],
        lambda v: [("t1", [0, 2])],
    ),
    76: (
        lambda v: _q(76)(group_id="g", member_id="m", member_epoch=0, subscribed_topic_names=["t1"]),
        lambda r, v: (r.error_message, r.member_id, r.assignment),
        lambda v: (None, None, None),
    ),
    77: (
        lambda v: _q(77)(group_ids=["g1", "g2"]),
        lambda r, v: [g.group_id for g in r.groups],
        lambda v: ["g1", "g2"],
    ),
    78: (
        lambda v: _q(78)(group_id="g", member_id="m", share_session_epoch=0, topics=[
            _q(78).FetchTopic(topic_id=U1, partitions=[_q(78).FetchTopic.FetchPartition(partition_index=0)])]),
        lambda r, v: (r.responses, r.acquisition_lock_timeout_ms),
        lambda v: ([], 0),
    ),
    79: (
        lambda v: _q(79)(group_id="g", member_id="m", share_session_epoch=1, topics=[]),
        lambda r, v: r.responses,
        lambda v: [],
    ),
    **{key: _share_state_case(key, cls) for key, cls in (
        (83, "InitializeStateData"), (84, "ReadStateData"), (85, "WriteStateData"), (86, "DeleteStateData"),
        (87, "ReadStateSummaryData"))},
    90: (
        lambda v: _q(90)(groups=[_q(90).DescribeShareGroupOffsetsRequestGroup(group_id=g, topics=None)
                                 for g in ("g1", "g2")]),
        lambda r, v: [(g.group_id, g.error_message, g.topics) for g in r.groups],
        lambda v: [(g, default_message(USE), []) for g in ("g1", "g2")],
    ),
    91: (
        lambda v: _q(91)(group_id="g", topics=[]),
        lambda r, v: (r.error_message, r.responses),
        lambda v: (default_message(USE), []),
    ),
    92: (
        lambda v: _q(92)(group_id="g", topics=[]),
        lambda r, v: (r.error_message, r.responses),
        lambda v: (default_message(USE), []),
    ),
    75: (
        lambda v: _q(75)(topics=[_q(75).TopicRequest(name=n) for n in ("t1", "t2")], response_partition_limit=10),
        lambda r, v: [(t.name, t.partitions) for t in r.topics],
        lambda v: [("t1", []), ("t2", [])],
    ),
}
