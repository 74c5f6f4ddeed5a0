"""The share coordinator's RPCs over ``__share_group_state`` (see ``kbroker.coordinator.share_state``):
InitializeShareGroupState (83), ReadShareGroupState (84), WriteShareGroupState (85, v0-1),
DeleteShareGroupState (86) and ReadShareGroupStateSummary (87, v0-1).

Brokers send these to the share coordinator of a key (FindCoordinator key type 2). Per partition,
with Kafka's ``ShareCoordinatorShard`` checks and messages: a negative partition, leader epoch or
state epoch is INVALID_REQUEST; reading or writing a share partition that was never initialized is
INVALID_REQUEST; an older leader epoch FENCED_LEADER_EPOCH, an older state epoch
FENCED_STATE_EPOCH; an unknown topic or partition UNKNOWN_TOPIC_OR_PARTITION; an empty group id
INVALID_GROUP_ID. A read with a newer leader epoch records it. The summary of a share partition
without state is start offset -1. UNSUPPORTED_VERSION while the finalized ``share.version`` is 0.

The share partitions of this broker read and write the same store directly; a share partition
whose state is initialized, written or deleted through these RPCs is reloaded from the store on
its next fetch.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kbroker.api.context import RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.share_common import share_coordinator
from kbroker.coordinator.hosts import BrokerView
from kbroker.coordinator.share_coordinator import share_groups_enabled
from kbroker.coordinator.share_partition import StateBatch
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages import RESPONSES
from kbroker_protocol.messages.delete_share_group_state import (
    DeleteShareGroupStateRequest,
    DeleteShareGroupStateResponse,
)
from kbroker_protocol.messages.initialize_share_group_state import (
    InitializeShareGroupStateRequest,
    InitializeShareGroupStateResponse,
)
from kbroker_protocol.messages.read_share_group_state import (
    ReadShareGroupStateRequest,
    ReadShareGroupStateResponse,
)
from kbroker_protocol.messages.read_share_group_state_summary import (
    ReadShareGroupStateSummaryRequest,
    ReadShareGroupStateSummaryResponse,
)
from kbroker_protocol.messages.write_share_group_state import (
    WriteShareGroupStateRequest,
    WriteShareGroupStateResponse,
)
from kbroker_protocol.primitives import Message

if TYPE_CHECKING:
    from kbroker.coordinator.share_coordinator import ShareCoordinator

NEGATIVE_PARTITION_ID = "The partition id cannot be a negative number."
NEGATIVE_LEADER_EPOCH = "The leader epoch cannot be a negative number."
NEGATIVE_STATE_EPOCH = "The state epoch cannot be a negative number."
WRITE_UNINITIALIZED = "Write operation on uninitialized share partition not allowed."
READ_UNINITIALIZED = "Read operation on uninitialized share partition not allowed."

_Outcome = tuple[ErrorCode, str | None, dict[str, object]]
"""A partition's (error, message or None for the error's default, the result's other fields)."""
_StateRequest = (InitializeShareGroupStateRequest | ReadShareGroupStateRequest | WriteShareGroupStateRequest
                 | DeleteShareGroupStateRequest | ReadShareGroupStateSummaryRequest)
_Result = TypeVar("_Result", InitializeShareGroupStateResponse.InitializeStateResult,
                  ReadShareGroupStateResponse.ReadStateResult, WriteShareGroupStateResponse.WriteStateResult,
                  DeleteShareGroupStateResponse.DeleteStateResult,
                  ReadShareGroupStateSummaryResponse.ReadStateSummaryResult)
_Written = TypeVar("_Written", InitializeShareGroupStateResponse, WriteShareGroupStateResponse)


class ShareGroupStateServices(BrokerView, Protocol):
    """What the share-group state APIs (Initialize, Read, Write, Delete, ReadSummary) use of the broker."""

    @property
    def share_coordinator(self) -> ShareCoordinator | None: ...


def _unknown_partition(broker: ShareGroupStateServices, topic_id: uuid.UUID, partition: int) -> bool:
    topic = broker.image.topic_by_id(topic_id)
    return topic is None or partition >= len(topic.partitions)


# The fields a result without state carries (as the handlers' own error answers).
_UNSET: dict[str, dict[str, object]] = {
    "ReadStateResult": {"state_epoch": 0, "start_offset": -1, "state_batches": []},
    "ReadStateSummaryResult": {"state_epoch": 0, "leader_epoch": 0, "start_offset": -1,
                               "delivery_complete_count": -1},
}


def _each(broker: ShareGroupStateServices, request: _StateRequest, result_cls: type[_Result],
          fn: Callable[[uuid.UUID, Any], _Outcome]) -> list[_Result]:
    """Call ``fn(topic_id, partition_data) -> (error, message, extra fields)`` for every partition
    (``partition_data``: the request's own PartitionData class)."""
    P = result_cls.PartitionResult
    out = []
    enabled = share_groups_enabled(broker) and broker.share_coordinator is not None
    for t in request.topics:
        parts = []
        for p in t.partitions:
            extra: dict[str, object]
            if not enabled:
                code, message, extra = ErrorCode.UNSUPPORTED_VERSION, None, {}
            elif not request.group_id:
                code, message, extra = ErrorCode.INVALID_GROUP_ID, None, {}
            elif p.partition >= 0 and not share_coordinator(broker).store.leads(request.group_id, t.topic_id,
                                                                               p.partition):
                code, message, extra = ErrorCode.NOT_COORDINATOR, None, _UNSET.get(result_cls.__name__, {})
            else:
                code, message, extra = fn(t.topic_id, p)
            if code != ErrorCode.NONE and message is None:
                message = default_message(code)
            result = P(partition=p.partition, error_code=code, error_message=message)
            for name, value in extra.items():  # the fields of this API's result (``_Outcome``)
                setattr(result, name, value)
            parts.append(result)
        out.append(result_cls(topic_id=t.topic_id, partitions=parts))
    return out


async def _replicated(broker: ShareGroupStateServices,
                      request: InitializeShareGroupStateRequest | WriteShareGroupStateRequest,
                      response: _Written) -> _Written:
    """Kafka's share coordinator answers a write once it is committed (acks=all): wait for the
    state partitions' high watermark; a partition whose write is not replicated gets the error."""
    store = share_coordinator(broker).store
    for t in response.results:
        for p in t.partitions:
            if p.error_code == ErrorCode.NONE:
                code = await store.wait_replicated(request.group_id, t.topic_id, p.partition)
                if code != ErrorCode.NONE:
                    p.error_code, p.error_message = code, default_message(code)
    return response


def _reload(broker: ShareGroupStateServices, group_id: str, topic_id: uuid.UUID, partition: int) -> None:
    manager = share_coordinator(broker).manager
    if (group_id, topic_id, partition) in manager._remote:
        return  # this broker's own share partition sent the write (to itself, through the persister)
    sp = manager.partitions.pop((group_id, topic_id, partition), None)
    if sp is not None:
        sp.close()


async def _state_topic(broker: ShareGroupStateServices) -> None:
    """The writes go to ``__share_group_state``: asked of the controller on first use, with a
    bounded wait for its answer (kbroker.replication.topics.await_internal_topic)."""
    if share_groups_enabled(broker) and broker.share_coordinator is not None:
        await broker.share_coordinator.store.await_topic()


@api(InitializeShareGroupStateRequest, InitializeShareGroupStateResponse, 0, 0)
async def handle_initialize_share_group_state(ctx: RequestContext[ShareGroupStateServices], request: InitializeShareGroupStateRequest
                                              ) -> InitializeShareGroupStateResponse:
    broker = ctx.broker
    await _state_topic(broker)

    def one(topic_id: uuid.UUID, p: InitializeShareGroupStateRequest.InitializeStateData.PartitionData) -> _Outcome:
        if p.partition < 0:
            return ErrorCode.INVALID_REQUEST, NEGATIVE_PARTITION_ID, {}
        if p.state_epoch < 0:
            return ErrorCode.INVALID_REQUEST, NEGATIVE_STATE_EPOCH, {}
        store = share_coordinator(broker).store
        old = store.read(request.group_id, topic_id, p.partition)
        if old is not None and old.state_epoch > p.state_epoch:
            return ErrorCode.FENCED_STATE_EPOCH, None, {}
        if _unknown_partition(broker, topic_id, p.partition):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None, {}
        store.replace(request.group_id, topic_id, p.partition, p.state_epoch, old.leader_epoch if old else -1,
                      p.start_offset, [], 0 if p.start_offset >= 0 else -1)
        _reload(broker, request.group_id, topic_id, p.partition)
        return ErrorCode.NONE, None, {}

    return await _replicated(broker, request, InitializeShareGroupStateResponse(
        results=_each(broker, request, InitializeShareGroupStateResponse.InitializeStateResult, one)))


@api(ReadShareGroupStateRequest, ReadShareGroupStateResponse, 0, 0)
def handle_read_share_group_state(ctx: RequestContext[ShareGroupStateServices], request: ReadShareGroupStateRequest
                                  ) -> ReadShareGroupStateResponse:
    broker = ctx.broker
    R = ReadShareGroupStateResponse.ReadStateResult
    Batch = R.PartitionResult.StateBatch

    def one(topic_id: uuid.UUID, p: ReadShareGroupStateRequest.ReadStateData.PartitionData) -> _Outcome:
        empty: dict[str, object] = {"state_epoch": 0, "start_offset": -1, "state_batches": []}
        if p.partition < 0:
            return ErrorCode.INVALID_REQUEST, NEGATIVE_PARTITION_ID, empty
        if p.leader_epoch < 0:
            return ErrorCode.INVALID_REQUEST, NEGATIVE_LEADER_EPOCH, empty
        store = share_coordinator(broker).store
        state = store.read(request.group_id, topic_id, p.partition)
        if state is None:
            return ErrorCode.INVALID_REQUEST, READ_UNINITIALIZED, empty
        if state.leader_epoch > p.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH, None, empty
        if _unknown_partition(broker, topic_id, p.partition):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None, empty
        if state.leader_epoch != p.leader_epoch:
            store.replace(request.group_id, topic_id, p.partition, state.state_epoch, p.leader_epoch,
                          state.start_offset, state.batches, state.delivery_complete_count)
        return ErrorCode.NONE, None, {
            "state_epoch": state.state_epoch, "start_offset": state.start_offset,
            "state_batches": [Batch(first_offset=b.first_offset, last_offset=b.last_offset, delivery_state=b.state,
                                    delivery_count=b.delivery_count) for b in state.batches]}

    return ReadShareGroupStateResponse(results=_each(broker, request, R, one))


@api(WriteShareGroupStateRequest, WriteShareGroupStateResponse, 0, 1)
async def handle_write_share_group_state(ctx: RequestContext[ShareGroupStateServices], request: WriteShareGroupStateRequest
                                         ) -> WriteShareGroupStateResponse:
    broker = ctx.broker
    await _state_topic(broker)

    def one(topic_id: uuid.UUID, p: WriteShareGroupStateRequest.WriteStateData.PartitionData) -> _Outcome:
        if p.partition < 0:
            return ErrorCode.INVALID_REQUEST, NEGATIVE_PARTITION_ID, {}
        if p.leader_epoch < 0:
            return ErrorCode.INVALID_REQUEST, NEGATIVE_LEADER_EPOCH, {}
        if p.state_epoch < 0:
            return ErrorCode.INVALID_REQUEST, NEGATIVE_STATE_EPOCH, {}
        store = share_coordinator(broker).store
        state = store.read(request.group_id, topic_id, p.partition)
        if state is None:
            return ErrorCode.INVALID_REQUEST, WRITE_UNINITIALIZED, {}
        if state.leader_epoch > p.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH, None, {}
        if state.state_epoch > p.state_epoch:
            return ErrorCode.FENCED_STATE_EPOCH, None, {}
        if _unknown_partition(broker, topic_id, p.partition):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None, {}
        batches = [StateBatch(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count)
                   for b in p.state_batches]
        code = store.write(request.group_id, topic_id, p.partition, p.state_epoch, p.leader_epoch, p.start_offset,
                           batches, p.delivery_complete_count if ctx.api_version >= 1 else -1)
        if code == ErrorCode.NONE:
            _reload(broker, request.group_id, topic_id, p.partition)
        return code, None, {}

    return await _replicated(broker, request, WriteShareGroupStateResponse(
        results=_each(broker, request, WriteShareGroupStateResponse.WriteStateResult, one)))


@api(DeleteShareGroupStateRequest, DeleteShareGroupStateResponse, 0, 0)
async def handle_delete_share_group_state(ctx: RequestContext[ShareGroupStateServices], request: DeleteShareGroupStateRequest
                                          ) -> DeleteShareGroupStateResponse:
    broker = ctx.broker
    await _state_topic(broker)

    def one(topic_id: uuid.UUID, p: DeleteShareGroupStateRequest.DeleteStateData.PartitionData) -> _Outcome:
        if p.partition < 0:
            return ErrorCode.INVALID_REQUEST, NEGATIVE_PARTITION_ID, {}
        if _unknown_partition(broker, topic_id, p.partition):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None, {}
        _reload(broker, request.group_id, topic_id, p.partition)
        return share_coordinator(broker).store.delete(request.group_id, topic_id, p.partition), None, {}

    return DeleteShareGroupStateResponse(
        results=_each(broker, request, DeleteShareGroupStateResponse.DeleteStateResult, one))


@api(ReadShareGroupStateSummaryRequest, ReadShareGroupStateSummaryResponse, 0, 1)
def handle_read_share_group_state_summary(ctx: RequestContext[ShareGroupStateServices], request: ReadShareGroupStateSummaryRequest
                                          ) -> ReadShareGroupStateSummaryResponse:
    broker = ctx.broker

    def one(topic_id: uuid.UUID, p: ReadShareGroupStateSummaryRequest.ReadStateSummaryData.PartitionData) -> _Outcome:
        unset: dict[str, object] = {"state_epoch": 0, "leader_epoch": 0, "start_offset": -1, "delivery_complete_count": -1}
        if p.partition < 0:
            return ErrorCode.INVALID_REQUEST, NEGATIVE_PARTITION_ID, unset
        if _unknown_partition(broker, topic_id, p.partition):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None, unset
        state = share_coordinator(broker).store.read(request.group_id, topic_id, p.partition)
        if state is None:
            return ErrorCode.NONE, None, unset
        sp = share_coordinator(broker).manager.partitions.get((request.group_id, topic_id, p.partition))
        start, complete = state.start_offset, state.delivery_complete_count
        if sp is not None:  # this broker's share partition is the latest word on its window
            start, complete = sp.start_offset, sp.delivery_complete_count()
        return ErrorCode.NONE, None, {"state_epoch": state.state_epoch, "leader_epoch": max(state.leader_epoch, 0),
                                      "start_offset": start, "delivery_complete_count": complete}

    return ReadShareGroupStateSummaryResponse(
        results=_each(broker, request, ReadShareGroupStateSummaryResponse.ReadStateSummaryResult, one))


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


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

    refusal(api_key)(build)


_share_state(83, "InitializeStateResult", False)
_share_state(84, "ReadStateResult", True)
_share_state(85, "WriteStateResult", True)
_share_state(86, "DeleteStateResult", False)
_share_state(87, "ReadStateSummaryResult", True)
