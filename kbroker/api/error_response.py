"""The response to a request whose handler failed with an unexpected exception.

Kafka does not close the connection when an API handler throws: ``KafkaApis.handle`` catches the
throwable and answers with ``request.getErrorResponse(throttleMs, e)``. Each request type builds
that response itself, with ``Errors.forException(e)`` (UNKNOWN_SERVER_ERROR, -1, for anything that
is not a Kafka ``ApiException``) in the places where the response carries an error code: the
top-level ``error_code`` for some APIs, one entry per topic/partition/group/transaction of the
request for others, both for a few. This module has one builder per API kbroker serves, following
what Kafka's ``getErrorResponse`` of that request sets (the request's keys are echoed, the other
fields keep their schema defaults unless Kafka sets them, e.g. offsets to -1).

Error messages follow Kafka's ``ApiError.fromThrowable``: an UNKNOWN_SERVER_ERROR never carries
the exception's text (it could leak internals), so ``error_message`` stays null, except where
Kafka's builder uses the error's default message (FindCoordinator, DescribeConfigs).

A builder returns None when Kafka's ``getErrorResponse`` does (a Produce with acks=0): then no
response can be sent and the connection is closed, as Kafka does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from kbroker_protocol import messages
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages import RESPONSES
from kbroker_protocol.primitives import Message

__all__ = ["BUILDERS", "error_code_for", "error_response", "error_response_as"]

Builder = Callable[[Any, int, int], "Message | None"]  # (each builder takes its own API's request class)
"""``(request, api_version, error_code) -> response body`` (or None: no response possible)."""

BUILDERS: dict[int, Builder] = {}

_NO_OFFSET = -1  # Kafka's INVALID_OFFSET / UNKNOWN_OFFSET / UNDEFINED_EPOCH_OFFSET
_NO_EPOCH = -1
_NO_TIMESTAMP = -1
_AUTHORIZED_OPERATIONS_OMITTED = -(2**31)


def error_code_for(exc: BaseException) -> int:
    """Kafka's ``Errors.forException``: kbroker's handlers translate the errors they expect into
    response codes themselves, so an exception escaping a handler is unexpected."""
    return int(ErrorCode.UNKNOWN_SERVER_ERROR)


def error_response(api_key: int, api_version: int, request: Any, exc: BaseException) -> Message | None:
    """The error response Kafka would send for ``request`` after ``exc``; None when there is none
    (the caller then closes the connection). Raises KeyError for an API without a builder."""
    return BUILDERS[api_key](request, api_version, error_code_for(exc))


_R = TypeVar("_R", bound=Message)


def error_response_as(response_type: type[_R], request: Message, api_version: int, code: int) -> _R:
    """The error response of ``response_type``'s API for ``request`` with ``code``, typed: what a
    handler answers when it refuses a request as a whole. Raises TypeError when that API's builder
    gives no ``response_type`` (a Produce with acks=0 gives None: its handler never refuses this way)."""
    api_key = response_type.API_KEY
    if api_key is None:
        raise TypeError(f"{response_type.__qualname__} is not an API response")
    response = BUILDERS[api_key](request, api_version, code)
    if not isinstance(response, response_type):
        raise TypeError(f"the error response builder of API {api_key} gave {type(response).__qualname__}, "
                        f"not {response_type.__qualname__}")
    return response


_B = TypeVar("_B", bound=Builder)


def _builder(api_key: int) -> Callable[[_B], _B]:
    def register(fn: _B) -> _B:
        BUILDERS[api_key] = fn
        return fn

    return register


def _top_level(api_key: int) -> None:
    """Register a builder that sets only the top-level error code (other fields at defaults)."""
    response_cls: Callable[..., Message] = RESPONSES[api_key]  # (any message with a top-level error code)

    def build(request: Any, version: int, code: int) -> Message:
        return response_cls(error_code=code)

    BUILDERS[api_key] = build


# Heartbeat, LeaveGroup, AddOffsetsToTxn, EndTxn, ConsumerGroupHeartbeat, ListTransactions,
# DescribeLogDirs, OffsetDelete, ListGroups, ListConfigResources, StreamsGroupHeartbeat: error
# code only (lists empty, other fields default).
for _key in (12, 13, 25, 26, 68, 66, 35, 47, 16, 74, 88):
    _top_level(_key)


@_builder(93)
def _streams_group_topology_description_update(request: messages.StreamsGroupTopologyDescriptionUpdateRequest, version: int, code: int) -> messages.StreamsGroupTopologyDescriptionUpdateResponse:
    # ApiError.fromThrowable leaves the message null for UNKNOWN_SERVER_ERROR.
    return messages.StreamsGroupTopologyDescriptionUpdateResponse(error_code=code, error_message=None)


@_builder(89)
def _streams_group_describe(request: messages.StreamsGroupDescribeRequest, version: int, code: int) -> messages.StreamsGroupDescribeResponse:
    R = messages.StreamsGroupDescribeResponse
    return R(groups=[R.DescribedGroup(group_id=group_id, error_code=code) for group_id in request.group_ids])


@_builder(34)
def _alter_replica_log_dirs(request: messages.AlterReplicaLogDirsRequest, version: int, code: int) -> messages.AlterReplicaLogDirsResponse:
    R = messages.AlterReplicaLogDirsResponse
    T = R.AlterReplicaLogDirTopicResult
    return R(results=[T(topic_name=t.name, partitions=[T.AlterReplicaLogDirPartitionResult(partition_index=p,
                                                                                          error_code=code)
                                                       for p in t.partitions])
                      for d in request.dirs for t in d.topics])


@_builder(57)
def _update_features(request: messages.UpdateFeaturesRequest, version: int, code: int) -> messages.UpdateFeaturesResponse:
    # UpdateFeaturesResponse.createWithErrors: ApiError.fromThrowable leaves the message null for
    # UNKNOWN_SERVER_ERROR, and no per-feature results.
    return messages.UpdateFeaturesResponse(error_code=code, error_message=None, results=[])


@_builder(0)
def _produce(request: messages.ProduceRequest, version: int, code: int) -> messages.ProduceResponse | None:
    if request.acks == 0:
        return None
    R = messages.ProduceResponse
    topics: dict[tuple[str, uuid.UUID], messages.ProduceResponse.TopicProduceResponse] = {}
    for topic in request.topic_data:
        out = topics.get((topic.name, topic.topic_id))
        if out is None:
            out = topics[(topic.name, topic.topic_id)] = R.TopicProduceResponse(
                name=topic.name, topic_id=topic.topic_id, partition_responses=[])
        for partition in topic.partition_data:
            out.partition_responses.append(R.TopicProduceResponse.PartitionProduceResponse(
                index=partition.index, error_code=code, base_offset=_NO_OFFSET,
                log_append_time_ms=_NO_TIMESTAMP, log_start_offset=_NO_OFFSET, record_errors=[],
                error_message=None))
    return R(responses=list(topics.values()))


@_builder(1)
def _fetch(request: messages.FetchRequest, version: int, code: int) -> messages.FetchResponse:
    # v13+ clients read the top-level code; older ones also get it in every partition.
    R = messages.FetchResponse
    topics = []
    if version < 13:
        T = R.FetchableTopicResponse
        topics = [
            T(topic=topic.topic, topic_id=topic.topic_id, partitions=[
                T.PartitionData(partition_index=p.partition, error_code=code, high_watermark=_NO_OFFSET)
                for p in topic.partitions])
            for topic in request.topics
        ]
    return R(error_code=code, session_id=request.session_id, responses=topics)


@_builder(2)
def _list_offsets(request: messages.ListOffsetsRequest, version: int, code: int) -> messages.ListOffsetsResponse:
    R = messages.ListOffsetsResponse
    T = R.ListOffsetsTopicResponse
    return R(topics=[
        T(name=topic.name, partitions=[
            T.ListOffsetsPartitionResponse(partition_index=p.partition_index, error_code=code,
                                           offset=_NO_OFFSET, timestamp=_NO_TIMESTAMP)
            for p in topic.partitions])
        for topic in request.topics
    ])


@_builder(3)
def _metadata(request: messages.MetadataRequest, version: int, code: int) -> messages.MetadataResponse:
    # Kafka leaves the top-level error code (v13+) at NONE and flags every requested topic.
    R = messages.MetadataResponse
    return R(topics=[
        R.MetadataResponseTopic(name=topic.name or "", topic_id=topic.topic_id, error_code=code,
                                is_internal=False, partitions=[])
        for topic in request.topics or ()
    ])


@_builder(8)
def _offset_commit(request: messages.OffsetCommitRequest, version: int, code: int) -> messages.OffsetCommitResponse:
    R = messages.OffsetCommitResponse
    T = R.OffsetCommitResponseTopic
    return R(topics=[
        T(name=topic.name, topic_id=topic.topic_id, partitions=[
            T.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
            for p in topic.partitions])
        for topic in request.topics
    ])


@_builder(9)
def _offset_fetch(request: messages.OffsetFetchRequest, version: int, code: int) -> messages.OffsetFetchResponse:
    R = messages.OffsetFetchResponse
    if version >= 8:
        return R(groups=[R.OffsetFetchResponseGroup(group_id=group.group_id, error_code=code, topics=[])
                         for group in request.groups])
    topics = []
    if version < 2:  # no top-level error code before v2: every requested partition carries it
        T = R.OffsetFetchResponseTopic
        topics = [
            T(name=topic.name, partitions=[
                T.OffsetFetchResponsePartition(partition_index=index, committed_offset=_NO_OFFSET,
                                               committed_leader_epoch=_NO_EPOCH, metadata="",
                                               error_code=code)
                for index in topic.partition_indexes])
            for topic in request.topics or ()
        ]
    return R(error_code=code, topics=topics)


@_builder(10)
def _find_coordinator(request: messages.FindCoordinatorRequest, version: int, code: int) -> messages.FindCoordinatorResponse:
    R = messages.FindCoordinatorResponse
    message = default_message(code)
    if version < 4:
        return R(error_code=code, error_message=message, node_id=-1, host="", port=-1)
    return R(coordinators=[
        R.Coordinator(key=key, node_id=-1, host="", port=-1, error_code=code, error_message=message)
        for key in request.coordinator_keys
    ])


@_builder(11)
def _join_group(request: messages.JoinGroupRequest, version: int, code: int) -> messages.JoinGroupResponse:
    return messages.JoinGroupResponse(error_code=code, generation_id=-1,
                         protocol_name=None if version >= 7 else "",
                         leader="", member_id="", members=[])


@_builder(14)
def _sync_group(request: messages.SyncGroupRequest, version: int, code: int) -> messages.SyncGroupResponse:
    return messages.SyncGroupResponse(error_code=code, assignment=b"")


@_builder(15)
def _describe_groups(request: messages.DescribeGroupsRequest, version: int, code: int) -> messages.DescribeGroupsResponse:
    R = messages.DescribeGroupsResponse
    return R(groups=[
        R.DescribedGroup(group_id=group_id, error_code=code, group_state="", protocol_type="",
                         protocol_data="", members=[],
                         authorized_operations=_AUTHORIZED_OPERATIONS_OMITTED)
        for group_id in request.groups
    ])


@_builder(18)
def _api_versions(request: messages.ApiVersionsRequest, version: int, code: int) -> messages.ApiVersionsResponse:
    return messages.ApiVersionsResponse(error_code=code, api_keys=[])


@_builder(19)
def _create_topics(request: messages.CreateTopicsRequest, version: int, code: int) -> messages.CreateTopicsResponse:
    R = messages.CreateTopicsResponse
    return R(topics=[R.CreatableTopicResult(name=topic.name, error_code=code, error_message=None)
                     for topic in request.topics])


@_builder(20)
def _delete_topics(request: messages.DeleteTopicsRequest, version: int, code: int) -> messages.DeleteTopicsResponse:
    R = messages.DeleteTopicsResponse
    keys: list[tuple[str | None, uuid.UUID | None]]
    if version >= 6:
        keys = [(topic.name, topic.topic_id) for topic in request.topics]
    else:
        keys = [(name, None) for name in request.topic_names]
    results = []
    for name, topic_id in keys:
        result = R.DeletableTopicResult(name=name, error_code=code, error_message=None)
        if topic_id is not None:
            result.topic_id = topic_id
        results.append(result)
    return R(responses=results)


@_builder(21)
def _delete_records(request: messages.DeleteRecordsRequest, version: int, code: int) -> messages.DeleteRecordsResponse:
    R = messages.DeleteRecordsResponse
    T = R.DeleteRecordsTopicResult
    return R(topics=[
        T(name=topic.name, partitions=[
            T.DeleteRecordsPartitionResult(partition_index=p.partition_index, low_watermark=-1,
                                           error_code=code)
            for p in topic.partitions])
        for topic in request.topics
    ])


@_builder(22)
def _init_producer_id(request: messages.InitProducerIdRequest, version: int, code: int) -> messages.InitProducerIdResponse:
    return messages.InitProducerIdResponse(error_code=code, producer_id=-1, producer_epoch=-1)


@_builder(23)
def _offset_for_leader_epoch(request: messages.OffsetForLeaderEpochRequest, version: int, code: int) -> messages.OffsetForLeaderEpochResponse:
    R = messages.OffsetForLeaderEpochResponse
    T = R.OffsetForLeaderTopicResult
    return R(topics=[
        T(topic=topic.topic, partitions=[
            T.EpochEndOffset(partition=p.partition, error_code=code, leader_epoch=_NO_EPOCH,
                             end_offset=_NO_OFFSET)
            for p in topic.partitions])
        for topic in request.topics
    ])


@_builder(24)
def _add_partitions_to_txn(request: messages.AddPartitionsToTxnRequest, version: int, code: int) -> messages.AddPartitionsToTxnResponse:
    # v4+ is the broker-to-broker batched form: Kafka answers with the top-level code only.
    R = messages.AddPartitionsToTxnResponse
    if version >= 4:
        return R(error_code=code)
    T = R.AddPartitionsToTxnTopicResult
    return R(results_by_topic_v3_and_below=[
        T(name=topic.name, results_by_partition=[
            T.AddPartitionsToTxnPartitionResult(partition_index=index, partition_error_code=code)
            for index in topic.partitions])
        for topic in request.v3_and_below_topics
    ])


@_builder(27)
def _write_txn_markers(request: messages.WriteTxnMarkersRequest, version: int, code: int) -> messages.WriteTxnMarkersResponse:
    R = messages.WriteTxnMarkersResponse
    M = R.WritableTxnMarkerResult
    T = M.WritableTxnMarkerTopicResult
    return R(markers=[
        M(producer_id=marker.producer_id, topics=[
            T(name=topic.name, partitions=[
                T.WritableTxnMarkerPartitionResult(partition_index=index, error_code=code)
                for index in topic.partition_indexes])
            for topic in marker.topics])
        for marker in request.markers
    ])


@_builder(28)
def _txn_offset_commit(request: messages.TxnOffsetCommitRequest, version: int, code: int) -> messages.TxnOffsetCommitResponse:
    R = messages.TxnOffsetCommitResponse
    T = R.TxnOffsetCommitResponseTopic
    return R(topics=[
        T(name=topic.name, topic_id=topic.topic_id, partitions=[
            T.TxnOffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
            for p in topic.partitions])
        for topic in request.topics
    ])


@_builder(32)
def _describe_configs(request: messages.DescribeConfigsRequest, version: int, code: int) -> messages.DescribeConfigsResponse:
    R = messages.DescribeConfigsResponse
    message = default_message(code)
    return R(results=[
        R.DescribeConfigsResult(error_code=code, error_message=message,
                                resource_type=resource.resource_type,
                                resource_name=resource.resource_name, configs=[])
        for resource in request.resources
    ])


@_builder(33)
def _alter_configs(request: messages.AlterConfigsRequest, version: int, code: int) -> messages.AlterConfigsResponse:
    R = messages.AlterConfigsResponse
    return R(responses=[
        R.AlterConfigsResourceResponse(error_code=code, error_message=None, resource_type=resource.resource_type,
                                       resource_name=resource.resource_name)
        for resource in request.resources
    ])


@_builder(44)
def _incremental_alter_configs(
    request: messages.IncrementalAlterConfigsRequest, version: int, code: int
) -> messages.IncrementalAlterConfigsResponse:
    R = messages.IncrementalAlterConfigsResponse
    return R(responses=[
        R.AlterConfigsResourceResponse(error_code=code, error_message=None, resource_type=resource.resource_type,
                                       resource_name=resource.resource_name)
        for resource in request.resources
    ])


@_builder(37)
def _create_partitions(request: messages.CreatePartitionsRequest, version: int, code: int) -> messages.CreatePartitionsResponse:
    R = messages.CreatePartitionsResponse
    return R(results=[R.CreatePartitionsTopicResult(name=topic.name, error_code=code, error_message=None)
                      for topic in request.topics])


@_builder(42)
def _delete_groups(request: messages.DeleteGroupsRequest, version: int, code: int) -> messages.DeleteGroupsResponse:
    R = messages.DeleteGroupsResponse
    return R(results=[R.DeletableGroupResult(group_id=group_id, error_code=code)
                      for group_id in request.groups_names])


@_builder(43)
def _elect_leaders(request: messages.ElectLeadersRequest, version: int, code: int) -> messages.ElectLeadersResponse:
    R = messages.ElectLeadersResponse
    E = R.ReplicaElectionResult
    return R(error_code=code, replica_election_results=[
        E(topic=topic.topic, partition_result=[
            E.PartitionResult(partition_id=index, error_code=code, error_message=None)
            for index in topic.partitions])
        for topic in request.topic_partitions or ()
    ])


@_builder(45)
def _alter_partition_reassignments(request: messages.AlterPartitionReassignmentsRequest, version: int, code: int) -> messages.AlterPartitionReassignmentsResponse:
    # AlterPartitionReassignmentsRequest.getErrorResponse: the code at the top and on every
    # partition (ApiError.fromThrowable: no message for an exception carrying the default one)
    R = messages.AlterPartitionReassignmentsResponse
    T = R.ReassignableTopicResponse
    message = None
    return R(error_code=code, error_message=message, responses=[
        T(name=topic.name, partitions=[
            T.ReassignablePartitionResponse(partition_index=p.partition_index, error_code=code, error_message=message)
            for p in topic.partitions])
        for topic in request.topics
    ])


@_builder(46)
def _list_partition_reassignments(request: messages.ListPartitionReassignmentsRequest, version: int, code: int) -> messages.ListPartitionReassignmentsResponse:
    # ListPartitionReassignmentsRequest.getErrorResponse: each named partition echoed, no replicas
    R = messages.ListPartitionReassignmentsResponse
    T = R.OngoingTopicReassignment
    return R(error_code=code, error_message=None, topics=[
        T(name=topic.name, partitions=[T.OngoingPartitionReassignment(partition_index=index)
                                       for index in topic.partition_indexes])
        for topic in request.topics or ()
    ])


@_builder(55)
def _describe_quorum(request: messages.DescribeQuorumRequest, version: int, code: int) -> messages.DescribeQuorumResponse:
    # DescribeQuorumRequest.getTopLevelErrorResponse: the code alone, no topics
    return messages.DescribeQuorumResponse(error_code=code, topics=[])


@_builder(64)
def _unregister_broker(request: messages.UnregisterBrokerRequest, version: int, code: int) -> messages.UnregisterBrokerResponse:
    # ControllerApis/KafkaApis: UnregisterBrokerResponseData with the code, no message
    return messages.UnregisterBrokerResponse(error_code=code, error_message=None)


@_builder(60)
def _describe_cluster(request: messages.DescribeClusterRequest, version: int, code: int) -> messages.DescribeClusterResponse:
    return messages.DescribeClusterResponse(error_code=code, error_message=None)


@_builder(61)
def _describe_producers(request: messages.DescribeProducersRequest, version: int, code: int) -> messages.DescribeProducersResponse:
    R = messages.DescribeProducersResponse
    T = R.TopicResponse
    return R(topics=[
        T(name=topic.name, partitions=[T.PartitionResponse(partition_index=index, error_code=code)
                                       for index in topic.partition_indexes])
        for topic in request.topics
    ])


@_builder(65)
def _describe_transactions(request: messages.DescribeTransactionsRequest, version: int, code: int) -> messages.DescribeTransactionsResponse:
    R = messages.DescribeTransactionsResponse
    return R(transaction_states=[R.TransactionState(transactional_id=txn_id, error_code=code)
                                 for txn_id in request.transactional_ids])


@_builder(69)
def _consumer_group_describe(request: messages.ConsumerGroupDescribeRequest, version: int, code: int) -> messages.ConsumerGroupDescribeResponse:
    R = messages.ConsumerGroupDescribeResponse
    return R(groups=[R.DescribedGroup(group_id=group_id, error_code=code) for group_id in request.group_ids])


@_builder(75)
def _describe_topic_partitions(request: messages.DescribeTopicPartitionsRequest, version: int, code: int) -> messages.DescribeTopicPartitionsResponse:
    R = messages.DescribeTopicPartitionsResponse
    return R(topics=[
        R.DescribeTopicPartitionsResponseTopic(name=topic.name, error_code=code, is_internal=False,
                                               partitions=[])
        for topic in request.topics
    ])


# -- share groups (KIP-932): the *Request.getErrorResponse of Kafka 4.4 ----------------------------------

# ShareGroupHeartbeat, ShareFetch (ShareFetchResponse.of: no partitions, lock timeout 0),
# ShareAcknowledge: the top-level code only.
for _key in (76, 78, 79):
    _top_level(_key)


@_builder(77)
def _share_group_describe(request: messages.ShareGroupDescribeRequest, version: int, code: int) -> messages.ShareGroupDescribeResponse:
    R = messages.ShareGroupDescribeResponse
    return R(groups=[R.DescribedGroup(group_id=group_id, error_code=code) for group_id in request.group_ids])


def _share_state(api_key: int, result_cls: str, with_message: bool) -> None:
    """Initialize/Read/Write/Delete ShareGroupState, ReadShareGroupStateSummary: every partition of
    the request with the code (and, for Read, Write and ReadSummary, the error's default message)."""
    R: Callable[..., Message] = RESPONSES[api_key]  # (one of five shapes, picked by key)
    T = getattr(R, result_cls)

    def build(request: Any, version: int, code: int) -> Message:
        message = default_message(code) if with_message else None
        return R(results=[
            T(topic_id=topic.topic_id, partitions=[
                T.PartitionResult(partition=p.partition, error_code=code, error_message=message)
                for p in topic.partitions])
            for topic in request.topics
        ])

    BUILDERS[api_key] = build


_share_state(83, "InitializeStateResult", False)
_share_state(84, "ReadStateResult", True)
_share_state(85, "WriteStateResult", True)
_share_state(86, "DeleteStateResult", False)
_share_state(87, "ReadStateSummaryResult", True)


@_builder(90)
def _describe_share_group_offsets(request: messages.DescribeShareGroupOffsetsRequest, version: int, code: int) -> messages.DescribeShareGroupOffsetsResponse:
    R = messages.DescribeShareGroupOffsetsResponse
    G = R.DescribeShareGroupOffsetsResponseGroup
    return R(groups=[G(group_id=g.group_id, error_code=code, error_message=default_message(code), topics=[])
                     for g in request.groups])


@_builder(91)
def _alter_share_group_offsets(request: messages.AlterShareGroupOffsetsRequest, version: int, code: int) -> messages.AlterShareGroupOffsetsResponse:
    return messages.AlterShareGroupOffsetsResponse(error_code=code, error_message=default_message(code))


@_builder(92)
def _delete_share_group_offsets(request: messages.DeleteShareGroupOffsetsRequest, version: int, code: int) -> messages.DeleteShareGroupOffsetsResponse:
    return messages.DeleteShareGroupOffsetsResponse(error_code=code, error_message=default_message(code))


# SaslHandshake: error code only (no mechanisms).
_top_level(17)


@_builder(36)
def _sasl_authenticate(request: messages.SaslAuthenticateRequest, version: int, code: int) -> messages.SaslAuthenticateResponse:
    return messages.SaslAuthenticateResponse(error_code=code, error_message=None)


@_builder(50)
def _describe_user_scram_credentials(request: messages.DescribeUserScramCredentialsRequest, version: int, code: int) -> messages.DescribeUserScramCredentialsResponse:
    # Kafka: the top-level code, and one result per user asked for, without the user's name.
    R = messages.DescribeUserScramCredentialsResponse
    return R(error_code=code, error_message=None,
             results=[R.DescribeUserScramCredentialsResult(error_code=code, error_message=None)
                      for _user in request.users or ()])


@_builder(51)
def _alter_user_scram_credentials(request: messages.AlterUserScramCredentialsRequest, version: int, code: int) -> messages.AlterUserScramCredentialsResponse:
    # Kafka: one result per distinct user named by a deletion or upsertion, sorted.
    R = messages.AlterUserScramCredentialsResponse
    users = sorted({d.name for d in request.deletions} | {u.name for u in request.upsertions})
    return R(results=[R.AlterUserScramCredentialsResult(user=user, error_code=code, error_message=None) for user in users])


@_builder(29)
def _describe_acls(request: messages.DescribeAclsRequest, version: int, code: int) -> messages.DescribeAclsResponse:
    return messages.DescribeAclsResponse(error_code=code, error_message=None, resources=[])


@_builder(30)
def _create_acls(request: messages.CreateAclsRequest, version: int, code: int) -> messages.CreateAclsResponse:
    R = messages.CreateAclsResponse
    return R(results=[R.AclCreationResult(error_code=code, error_message=None) for _ in request.creations])


@_builder(31)
def _delete_acls(request: messages.DeleteAclsRequest, version: int, code: int) -> messages.DeleteAclsResponse:
    R = messages.DeleteAclsResponse
    return R(filter_results=[R.DeleteAclsFilterResult(error_code=code, error_message=None, matching_acls=[])
                             for _ in request.filters])


@_builder(48)
def _describe_client_quotas(request: messages.DescribeClientQuotasRequest, version: int, code: int) -> messages.DescribeClientQuotasResponse:
    # Kafka: the top-level code, entries null; ApiError.fromThrowable leaves the message null for
    # UNKNOWN_SERVER_ERROR and for an exception carrying its error's default message.
    return messages.DescribeClientQuotasResponse(error_code=code, error_message=None, entries=None)


@_builder(49)
def _alter_client_quotas(request: messages.AlterClientQuotasRequest, version: int, code: int) -> messages.AlterClientQuotasResponse:
    # Kafka: one entry per entry of the request, its entity echoed, the error's message.
    R = messages.AlterClientQuotasResponse
    return R(entries=[R.EntryData(error_code=code, error_message=default_message(code) if code else None,
                                  entity=[R.EntryData.EntityData(entity_type=e.entity_type, entity_name=e.entity_name)
                                          for e in entry.entity])
                      for entry in request.entries])
