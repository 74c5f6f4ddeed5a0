"""The share-group offsets admin APIs, as Kafka 4.4's group coordinator serves them:

- DescribeShareGroupOffsets (key 90, v0-1): per group, the share-partition start offset (SPSO) and
  leader epoch the share coordinator keeps, and (v1) the lag: high watermark - SPSO - records
  already delivered to completion within the window. Topics null: every partition with share
  state; unknown topics and partitions without state answer start offset -1 (lag -1), as Kafka.
- AlterShareGroupOffsets (key 91, v0): sets the SPSO of partitions of an empty share group (the
  group is created if needed; NON_EMPTY_GROUP with members), dropping what was in flight; unknown
  topics or partitions UNKNOWN_TOPIC_OR_PARTITION per partition.
- DeleteShareGroupOffsets (key 92, v0): deletes the share state of topics of an empty share group
  (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP top-level); a topic without state answers
  UNKNOWN_TOPIC_OR_PARTITION "There is no offset information to delete.".

All are refused with UNSUPPORTED_VERSION while the finalized ``share.version`` is 0.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.share_common import share_coordinator
from kbroker.coordinator.group_coordinator import coordinator_error, offsets_topic_created
from kbroker.coordinator.hosts import BrokerView
from kbroker.coordinator.share_coordinator import share_groups_enabled
from kbroker.coordinator.share_group import ShareGroupError
from kbroker.metadata.image import TopicImage
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.alter_share_group_offsets import (
    AlterShareGroupOffsetsRequest,
    AlterShareGroupOffsetsResponse,
)
from kbroker_protocol.messages.delete_share_group_offsets import (
    DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse,
)
from kbroker_protocol.messages.describe_share_group_offsets import (
    DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse,
)

if TYPE_CHECKING:
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.share_coordinator import ShareCoordinator
    from kbroker.replication.partition import Partition

DG = DescribeShareGroupOffsetsResponse.DescribeShareGroupOffsetsResponseGroup
DT = DG.DescribeShareGroupOffsetsResponseTopic
DP = DT.DescribeShareGroupOffsetsResponsePartition
AT = AlterShareGroupOffsetsResponse.AlterShareGroupOffsetsResponseTopic
AP = AT.AlterShareGroupOffsetsResponsePartition
XT = DeleteShareGroupOffsetsResponse.DeleteShareGroupOffsetsResponseTopic
ZERO_UUID = uuid.UUID(int=0)


class ShareGroupOffsetsServices(BrokerView, Protocol):
    """What AlterShareGroupOffsets and DeleteShareGroupOffsets use of the broker: the group and
    share coordinators, the image (the topics named), and the configuration and features that
    say whether share groups are on."""

    @property
    def group_coordinator(self) -> GroupCoordinator | None: ...
    @property
    def share_coordinator(self) -> ShareCoordinator | None: ...


class ShareGroupOffsetsDescribing(ShareGroupOffsetsServices, Protocol):
    """What DescribeShareGroupOffsets uses of the broker: those, and the local partitions (a
    partition's end offset, for the lag)."""

    def partition(self, topic: str, index: int) -> Partition | None: ...


def _describe_partition(broker: ShareGroupOffsetsDescribing, group_id: str, topic: TopicImage, index: int) -> DP:
    store = share_coordinator(broker).store
    state = store.read(group_id, topic.topic_id, index)
    sp = share_coordinator(broker).manager.partitions.get((group_id, topic.topic_id, index))
    if state is None or state.start_offset < 0:
        return DP(partition_index=index, start_offset=-1, leader_epoch=0, lag=-1)
    start, complete = state.start_offset, state.delivery_complete_count
    if sp is not None:
        start, complete = sp.start_offset, sp.delivery_complete_count()
    partition = broker.partition(topic.name, index)
    if partition is None:
        return DP(partition_index=index, start_offset=start, leader_epoch=max(state.leader_epoch, 0), lag=-1)
    lag = -1 if complete < 0 else partition.high_watermark - start - complete
    return DP(partition_index=index, start_offset=start, leader_epoch=max(state.leader_epoch, 0), lag=lag)


@api(DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, 0, 1)
def handle_describe_share_group_offsets(ctx: RequestContext[ShareGroupOffsetsDescribing], request: DescribeShareGroupOffsetsRequest
                                        ) -> DescribeShareGroupOffsetsResponse:
    broker = ctx.broker
    out = []
    for g in request.groups:
        if not share_groups_enabled(broker) or broker.share_coordinator is None:
            out.append(DG(group_id=g.group_id, error_code=ErrorCode.UNSUPPORTED_VERSION, topics=[]))
            continue
        coordinator = broker.group_coordinator
        code = coordinator_error(coordinator, g.group_id)
        if code != ErrorCode.NONE:
            out.append(DG(group_id=g.group_id, error_code=code, error_message=default_message(code), topics=[]))
            continue
        topics = []
        if g.topics is None:
            by_topic: dict[uuid.UUID, list[int]] = {}
            for _gid, tid, p in sorted(share_coordinator(broker).store.group_keys(g.group_id),
                                       key=lambda k: (str(k[1]), k[2])):
                by_topic.setdefault(tid, []).append(p)
            for tid, parts in by_topic.items():
                topic = broker.image.topic_by_id(tid)
                if topic is None:
                    continue
                topics.append(DT(topic_name=topic.name, topic_id=tid,
                                 partitions=[_describe_partition(broker, g.group_id, topic, p) for p in parts]))
        else:
            for t in g.topics:
                topic = broker.image.topic(t.topic_name)
                if topic is None:
                    topics.append(DT(topic_name=t.topic_name, topic_id=ZERO_UUID, partitions=[
                        DP(partition_index=p, start_offset=-1, leader_epoch=0, lag=-1) for p in t.partitions]))
                    continue
                topics.append(DT(topic_name=t.topic_name, topic_id=topic.topic_id, partitions=[
                    _describe_partition(broker, g.group_id, topic, p) for p in t.partitions]))
        out.append(DG(group_id=g.group_id, error_code=ErrorCode.NONE, topics=topics))
    return DescribeShareGroupOffsetsResponse(groups=out)


def _alter_error(code: ErrorCode, message: str | None = None) -> AlterShareGroupOffsetsResponse:
    return AlterShareGroupOffsetsResponse(error_code=code, error_message=message or default_message(code), responses=[])


@api(AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, 0, 0)
async def handle_alter_share_group_offsets(ctx: RequestContext[ShareGroupOffsetsServices], request: AlterShareGroupOffsetsRequest
                                           ) -> AlterShareGroupOffsetsResponse:
    share = ctx.broker.share_coordinator
    if request.group_id and share is not None and share_groups_enabled(ctx.broker):
        await share.store.await_topic()  # the new start offsets go to __share_group_state
    response = _alter_share_group_offsets(ctx, request)
    if (response.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE and request.group_id
            and await offsets_topic_created(ctx.broker.group_coordinator)):
        response = _alter_share_group_offsets(ctx, request)  # __consumer_offsets was being created
    return response


def _alter_share_group_offsets(ctx: RequestContext[ShareGroupOffsetsServices], request: AlterShareGroupOffsetsRequest
                               ) -> AlterShareGroupOffsetsResponse:
    broker = ctx.broker
    if not share_groups_enabled(broker) or broker.share_coordinator is None:
        return _alter_error(ErrorCode.UNSUPPORTED_VERSION)
    group_id = request.group_id
    if not group_id:
        return _alter_error(ErrorCode.INVALID_GROUP_ID)
    coordinator = broker.group_coordinator
    code = coordinator_error(coordinator, group_id, create_topic=True)
    if code != ErrorCode.NONE:
        return _alter_error(code)
    coordinator = require(coordinator, "the group coordinator")  # (coordinator_error: there is one)
    try:
        group = coordinator.share.share_group(group_id, create=True)
    except ShareGroupError as e:
        return _alter_error(e.code, e.message)
    if group.members:
        return _alter_error(ErrorCode.NON_EMPTY_GROUP)
    share = share_coordinator(broker)
    # As Kafka: the topics KafkaApis refuses (unknown) come first, then the coordinator's answers.
    unknown, responses = [], []
    for t in request.topics:
        topic = broker.image.topic(t.topic_name)
        if topic is None:
            unknown.append(AT(topic_name=t.topic_name, partitions=[
                AP(partition_index=p.partition_index, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                   error_message=default_message(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)) for p in t.partitions]))
            continue
        parts = []
        for p in t.partitions:
            if p.partition_index not in topic.partitions:
                parts.append(AP(partition_index=p.partition_index, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                error_message=default_message(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)))
                continue
            share.manager.reset_partition(group_id, topic.name, topic.topic_id, p.partition_index, p.start_offset,
                                          group.group_epoch)
            parts.append(AP(partition_index=p.partition_index, error_code=ErrorCode.NONE))
        responses.append(AT(topic_name=t.topic_name, topic_id=topic.topic_id, partitions=parts))
    return AlterShareGroupOffsetsResponse(error_code=ErrorCode.NONE, responses=unknown + responses)


def _delete_error(code: ErrorCode, message: str | None = None) -> DeleteShareGroupOffsetsResponse:
    return DeleteShareGroupOffsetsResponse(error_code=code, error_message=message or default_message(code),
                                           responses=[])


@api(DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse, 0, 0)
def handle_delete_share_group_offsets(ctx: RequestContext[ShareGroupOffsetsServices], request: DeleteShareGroupOffsetsRequest
                                      ) -> DeleteShareGroupOffsetsResponse:
    broker = ctx.broker
    if not share_groups_enabled(broker) or broker.share_coordinator is None:
        return _delete_error(ErrorCode.UNSUPPORTED_VERSION)
    group_id = request.group_id
    if not group_id:
        return _delete_error(ErrorCode.INVALID_GROUP_ID)
    coordinator = broker.group_coordinator
    code = coordinator_error(coordinator, group_id)
    if code != ErrorCode.NONE:
        return _delete_error(code)
    coordinator = require(coordinator, "the group coordinator")  # (coordinator_error: there is one)
    if group_id not in coordinator.groups:
        return _delete_error(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found.")
    try:
        group = coordinator.share.share_group(group_id)
    except ShareGroupError as e:
        return _delete_error(e.code, e.message)
    if group.members:
        return _delete_error(ErrorCode.NON_EMPTY_GROUP)
    share = share_coordinator(broker)
    keys = share.store.group_keys(group_id)
    responses = []
    for t in request.topics:
        topic = broker.image.topic(t.topic_name)
        if topic is None:
            responses.append(XT(topic_name=t.topic_name, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                error_message=default_message(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)))
            continue
        mine = [k for k in keys if k[1] == topic.topic_id]
        if not mine:
            responses.append(XT(topic_name=t.topic_name, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                error_message="There is no offset information to delete."))
            continue
        for _gid, tid, p in mine:
            share.manager.drop_partition(group_id, tid, p)
        responses.append(XT(topic_name=t.topic_name, topic_id=topic.topic_id, error_code=ErrorCode.NONE))
    return DeleteShareGroupOffsetsResponse(error_code=ErrorCode.NONE, responses=responses)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(90)
def _describe_share_group_offsets_error(request: DescribeShareGroupOffsetsRequest, version: int, code: int) -> DescribeShareGroupOffsetsResponse:
    R = DescribeShareGroupOffsetsResponse
    G = R.DescribeShareGroupOffsetsResponseGroup
    return R(groups=[G(group_id=g.group_id, error_code=code, error_message=default_message(code), topics=[])
                     for g in request.groups])


@refusal(91)
def _alter_share_group_offsets_error(request: AlterShareGroupOffsetsRequest, version: int, code: int) -> AlterShareGroupOffsetsResponse:
    return AlterShareGroupOffsetsResponse(error_code=code, error_message=default_message(code))


@refusal(92)
def _delete_share_group_offsets_error(request: DeleteShareGroupOffsetsRequest, version: int, code: int) -> DeleteShareGroupOffsetsResponse:
    return DeleteShareGroupOffsetsResponse(error_code=code, error_message=default_message(code))
