"""ShareFetch (key 78), v1-2: KIP-932 queue-style fetching with acquisition.

As Kafka's ``KafkaApis.handleShareFetchRequest`` and ``SharePartitionManager``:

- UNSUPPORTED_VERSION while the finalized ``share.version`` is 0; a null group id or an invalid
  member id (empty or longer than 36) is INVALID_REQUEST; v2 IsRenewAck requires MaxBytes,
  MinBytes, MaxRecords and MaxWaitMs 0 (INVALID_REQUEST) and fetches nothing.
- The share session (``kbroker.coordinator.share_manager``): epoch 0 opens it (acknowledgements
  then are INVALID_REQUEST), later requests carry its epoch (INVALID_SHARE_SESSION_EPOCH,
  SHARE_SESSION_NOT_FOUND), -1 closes it after the acknowledgements and releases the member's
  records. Session errors are top-level.
- Piggy-backed acknowledgements are applied first; their per-partition result is the partition's
  AcknowledgeErrorCode.
- Each partition of the session acquires up to MaxRecords records for the member (whole batches;
  v2 ShareAcquireMode 1, record_limit, exactly MaxRecords at most);
  the response carries the log batches and the AcquiredRecords ranges with delivery counts, and
  AcquisitionLockTimeoutMs. Without records the request waits up to MaxWaitMs for an append or a
  release (real time), then answers.
- The response lists the partitions with records, an error or an acknowledgement result (as
  Kafka, a partition with nothing to deliver is left out, in the initial request too). Top-level
  errors carry no message, as Kafka's ``getErrorResponse``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import PartitionLookup, RequestContext, partition_or_error
from kbroker.api.registry import api
from kbroker.api.share_common import (
    ShareCommonServices,
    acknowledge,
    error_message,
    flush_acknowledgements,
    request_error,
    share_coordinator,
)
from kbroker.coordinator.share_group_config import effective
from kbroker.coordinator.share_manager import FINAL_EPOCH, ShareSessionError
from kbroker.coordinator.share_partition import mark_aborted, split_batches
from kbroker.log import LogCorruptedError, OffsetOutOfRangeError
from kbroker.replication.deadline import Deadline
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.share_fetch import ShareFetchRequest, ShareFetchResponse

if TYPE_CHECKING:
    from kbroker.coordinator.share_manager import ShareManager
    from kbroker.replication.deadline import WaitClock
    from kbroker.replication.partition import Partition

log = logging.getLogger(__name__)

TopicResp = ShareFetchResponse.ShareFetchableTopicResponse
PartData = ShareFetchResponse.ShareFetchableTopicResponse.PartitionData
Acq = PartData.AcquiredRecords
Leader = PartData.LeaderIdAndEpoch


class ShareFetchServices(ShareCommonServices, PartitionLookup, Protocol):
    """What ShareFetch uses of the broker."""

    node_id: int
    stopping: bool  # shutting down

    @property
    def clock(self) -> WaitClock | None: ...  # kbroker.clock=manual; None: real time

    def partition(self, topic: str, index: int) -> Partition | None: ...


def _top_error(code: ErrorCode, reason: str | None = None) -> ShareFetchResponse:
    """A top-level error as Kafka answers it (``ShareFetchRequest.getErrorResponse``: the code
    only, no message); ``reason`` is logged."""
    if reason:
        log.debug("ShareFetch refused (%s): %s", code.name, reason)
    return ShareFetchResponse(error_code=code, error_message=None, responses=[], node_endpoints=[])


class _Result:
    __slots__ = ("error", "records", "acquired", "leader_id", "leader_epoch")

    def __init__(self, error: ErrorCode = ErrorCode.NONE) -> None:
        self.error = error
        self.records = b""
        self.acquired: list[Acq] = []
        self.leader_id = -1
        self.leader_epoch = -1


def _not_leader(broker: ShareFetchServices, topic: str, index: int, code: ErrorCode = ErrorCode.NOT_LEADER_OR_FOLLOWER) -> _Result:
    """A partition answered ``code``, with the leader the metadata knows (none: -1)."""
    r = _Result(code)
    state = broker.image.partition(topic, index)
    if state is not None:
        r.leader_id, r.leader_epoch = state.leader, state.leader_epoch
    return r


async def _fetch_partition(broker: ShareFetchServices, manager: ShareManager, group_id: str, member_id: str, topic_id: uuid.UUID, index: int,
                           max_records: int, max_bytes: int, record_limit: bool) -> _Result:
    topic = broker.image.topic_by_id(topic_id)
    if topic is None:
        return _Result(ErrorCode.UNKNOWN_TOPIC_ID)
    # Kafka reads a share partition's records from its leader only (ReplicaManager.getPartitionOrError)
    partition, code = partition_or_error(broker, topic.name, index, leader=True)
    if partition is None:
        return _not_leader(broker, topic.name, index, code)
    code = await manager.load_partition(group_id, topic.name, topic_id, index)
    if code != ErrorCode.NONE:
        return _not_leader(broker, topic.name, index, code)
    partition, code = partition_or_error(broker, topic.name, index, leader=True)
    if partition is None:  # leadership moved while the state was read
        return _not_leader(broker, topic.name, index, code)
    result = _Result()
    result.leader_id, result.leader_epoch = broker.node_id, partition.leader_epoch
    sp = manager.partitions.get((group_id, topic_id, index))
    if sp is None:  # its state write failed since: it loads again on the next fetch
        return result
    if sp.adjust_to_log_start(partition.log_start_offset):
        manager._persist(sp)
    if not sp.can_acquire():
        return result
    offset = sp.next_fetch_offset()
    read_committed = effective(broker, group_id, "share.isolation.level") == "read_committed"
    end = partition.last_stable_offset if read_committed else partition.high_watermark
    if offset >= end:
        return result
    try:
        read = partition.log.read(offset, max(max_bytes, 1), max_offset=end, min_one_batch=True)
        data = read.read() if read.slices else b""
    except OffsetOutOfRangeError:
        return result
    except LogCorruptedError:
        return _Result(ErrorCode.KAFKA_STORAGE_ERROR)
    if not data:
        return result
    batches = split_batches(data)
    if read_committed and batches:
        mark_aborted(batches, partition.aborted_transactions(batches[0].base_offset, batches[-1].last_offset + 1))
    acquired, sent = sp.acquire(member_id, batches, max_records, record_limit)
    if acquired:
        result.records = b"".join(b.data for b in sent)
        result.acquired = [Acq(first_offset=a.first_offset, last_offset=a.last_offset, delivery_count=a.delivery_count)
                           for a in acquired]
        partition.bytes_out += len(result.records)
    partition.fetch_requests += 1
    return result


async def _fetch_all(broker: ShareFetchServices, manager: ShareManager, group_id: str, member_id: str, parts: list[tuple[uuid.UUID, int]], max_records: int,
               max_bytes: int, record_limit: bool = False) -> dict[tuple[uuid.UUID, int], _Result]:
    out = {}
    remaining_records = max(max_records, 1)
    remaining_bytes = max_bytes
    for topic_id, index in parts:
        if remaining_records <= 0 or remaining_bytes <= 0:
            out[(topic_id, index)] = _Result()
            continue
        r = await _fetch_partition(broker, manager, group_id, member_id, topic_id, index, remaining_records, remaining_bytes,
                             record_limit)
        out[(topic_id, index)] = r
        for a in r.acquired:
            remaining_records -= a.last_offset - a.first_offset + 1
        remaining_bytes -= len(r.records)
    return out


def _has_records(results: dict[tuple[uuid.UUID, int], _Result]) -> bool:
    return any(r.acquired for r in results.values())


@api(ShareFetchRequest, ShareFetchResponse, 1, 2)
async def handle_share_fetch(ctx: RequestContext[ShareFetchServices], request: ShareFetchRequest) -> ShareFetchResponse:
    broker, version = ctx.broker, ctx.api_version
    if (refused := request_error(broker, version, request, fetch=True)) is not None:
        return _top_error(*refused)
    manager = share_coordinator(broker).manager
    group_id, member_id, epoch = request.group_id, request.member_id, request.share_session_epoch
    assert group_id is not None and member_id is not None  # (request_error refuses null ones)
    wanted = [(t.topic_id, p.partition_index) for t in request.topics for p in t.partitions]
    forgotten = [(f.topic_id, p) for f in request.forgotten_topics_data for p in f.partitions]
    acks_present = any(p.acknowledgement_batches for t in request.topics for p in t.partitions)
    try:
        parts, _full = manager.new_fetch_context(group_id, member_id, epoch, wanted, forgotten, acks_present,
                                                 ctx.connection)
    except ShareSessionError as e:
        return _top_error(e.code)
    is_renew = version >= 2 and request.is_renew_ack
    ack_results: dict[tuple[uuid.UUID, int], tuple[ErrorCode, str | None]] = {}
    if acks_present:
        ack_topics = []
        for t in request.topics:
            with_acks = [p for p in t.partitions if p.acknowledgement_batches]
            if with_acks:
                t2 = type(t)(topic_id=t.topic_id, partitions=with_acks)
                ack_topics.append(t2)
        ack_results = acknowledge(broker, group_id, member_id, ack_topics, version >= 2, is_renew)
        await flush_acknowledgements(broker, group_id, ack_results)

    results: dict[tuple[uuid.UUID, int], _Result] = {}
    if epoch != FINAL_EPOCH and not is_renew and parts:
        max_bytes = min(request.max_bytes, broker.config["fetch.max.bytes"])
        record_limit = version >= 2 and request.share_acquire_mode == 1
        results = await _fetch_all(broker, manager, group_id, member_id, parts, request.max_records, max_bytes, record_limit)
        wait_ms = request.max_wait_ms
        if not _has_records(results) and wait_ms > 0 and not any(r.error for r in results.values()):
            results = await _wait(broker, manager, group_id, member_id, parts, request.max_records, max_bytes,
                                  wait_ms, record_limit)
    if epoch == FINAL_EPOCH:
        manager.release_session(group_id, member_id)

    lock_ms = manager.partition_config(group_id).record_lock_duration_ms
    response = ShareFetchResponse(error_code=ErrorCode.NONE, acquisition_lock_timeout_ms=lock_ms, responses=[],
                                  node_endpoints=[])
    by_topic: dict[uuid.UUID, TopicResp] = {}
    order = list(parts) + [k for k in ack_results if k not in results and k not in parts]
    for key in order:
        r = results.get(key)
        ack = ack_results.get(key)
        if (r is None or (not r.acquired and r.error == ErrorCode.NONE)) and ack is None:
            continue
        if r is None:
            r = _Result()
        topic_id, index = key
        tr = by_topic.get(topic_id)
        if tr is None:
            tr = by_topic[topic_id] = TopicResp(topic_id=topic_id, partitions=[])
            response.responses.append(tr)
        tr.partitions.append(PartData(
            partition_index=index, error_code=r.error, error_message=error_message(r.error),
            acknowledge_error_code=ack[0] if ack is not None else ErrorCode.NONE,
            acknowledge_error_message=ack[1] if ack is not None else None,
            current_leader=Leader(leader_id=r.leader_id, leader_epoch=r.leader_epoch),
            records=r.records, acquired_records=r.acquired))
    return response


async def _wait(broker: ShareFetchServices, manager: ShareManager, group_id: str, member_id: str, parts: list[tuple[uuid.UUID, int]],
                max_records: int, max_bytes: int, wait_ms: int, record_limit: bool
                ) -> dict[tuple[uuid.UUID, int], _Result]:
    """Long poll: fetch again on every append to a partition of the session or release of records,
    until records are acquired or ``wait_ms`` passes."""
    deadline = Deadline(wait_ms, broker.clock)  # on a manual clock if the broker has one
    results: dict[tuple[uuid.UUID, int], _Result] = {}
    while True:
        fut = manager.waiter()
        waited_on = []
        for topic_id, index in parts:
            topic = broker.image.topic_by_id(topic_id)
            p = broker.partition(topic.name, index) if topic is not None else None
            if p is not None:
                p.add_waiter(fut)
                waited_on.append(p)
        try:
            if not deadline.passed and not broker.stopping:
                await deadline.wait(asyncio.shield(fut))
        finally:
            manager.remove_waiter(fut)
            for p in waited_on:
                p.remove_waiter(fut)
        results = await _fetch_all(broker, manager, group_id, member_id, parts, max_records, max_bytes, record_limit)
        if _has_records(results) or deadline.passed or broker.stopping or any(
                r.error for r in results.values()):
            return results
