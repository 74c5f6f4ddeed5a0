"""Produce (key 0), served v3-13, advertised from v0 (see api_versions).

v3+ carries exactly one magic-2 record batch per partition. Its header is checked here (length,
magic, CRC, offsets, attributes); then, as Kafka's LogValidator does, its records are checked
against the header (``kbroker_protocol.record_validation``: framing, count, keys for compacted topics,
record timestamps against ``message.timestamp.before.max.ms``/``after.max.ms``) and it is stored
as received: the broker assigns offsets by patching baseOffset. Exceptions, as in Kafka: a topic
whose ``compression.type`` is not the producer's codec (or a compressed batch with inner offsets
not 0, 1, 2...) gets the batch rebuilt; ``message.timestamp.type=LogAppendTime`` rewrites the
header timestamp (CRC recomputed, records untouched); a maxTimestamp that disagrees with the
records is corrected. ZSTD needs v7+. v8+ responses carry per-record errors and an error message;
v10+ the current leader; v13 addresses topics by id.

Small batches are validated inline; large ones (and re-encodes) in a worker process, and the
handler then answers asynchronously (``kbroker.replication.validation``); appends to a partition
keep request order either way.

acks=0 sends no response. Only the partition's leader appends: another replica answers
NOT_LEADER_OR_FOLLOWER with, from v10, the current leader and its endpoint (KIP-951). acks=-1
with fewer in-sync replicas than ``min.insync.replicas`` (at most the replication factor) gets
NOT_ENOUGH_REPLICAS before the append; after it, the answer waits (Kafka's DelayedProduce) until
the high watermark passes the batch, woken by the followers' fetches: NONE, or
NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below the minimum meanwhile,
NOT_LEADER_OR_FOLLOWER when leadership moved, REQUEST_TIMED_OUT after ``timeout_ms``. With one
replica the high watermark moves with the append, so acks=-1 and acks=1 answer alike.

The refusals come in Kafka's order: WRITE on the topic, the topic and partition in the metadata,
the request's rules for the batch (one magic-2 batch; ZSTD from v7: KafkaApis'
``ProduceRequest.validateRecords``), an internal topic, the partition led here, the min ISR for
acks=-1 (``Partition.appendRecordsToLeader``), then the log's checks of the batch (baseOffset,
size, CRC, count, sequence: ``UnifiedLog.analyzeAndValidateRecords``, ``LogValidator``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, cast

from kbroker.api.context import PartitionLookup, RequestContext, partition_or_error
from kbroker.api.error_response import NO_OFFSET, NO_TIMESTAMP, refusal
from kbroker.api.leader_hint import LeaderLookup, current_leader
from kbroker.api.produce_answer import Numbers, SingleAnswer, TopicAnswer, partition_answer
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.metadata.image import INTERNAL_TOPICS
from kbroker.replication.deadline import Deadline
from kbroker.replication.produce_batch import AppendResult, ProduceError
from kbroker.replication.validation import check_request_batch
from kbroker.security.acls import TOPIC, TRANSACTIONAL_ID, WRITE, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.produce import ProduceRequest, ProduceResponse
from kbroker_protocol.primitives import Records, received_records

TopicResp = ProduceResponse.TopicProduceResponse
PartResp = ProduceResponse.TopicProduceResponse.PartitionProduceResponse
RecordError = PartResp.BatchIndexAndErrorMessage
ZERO_UUID = uuid.UUID(int=0)

if TYPE_CHECKING:
    from kbroker.replication.deadline import WaitClock
    from kbroker.replication.partition import Partition

_Endpoints = dict[int, tuple[str, int, str | None]]  # the KIP-951 leaders' endpoints: node -> (host, port, rack)
_Parts = list[PartResp]  # one topic's answers (_PENDING: a place held for an answer still pending)
# While handled: a plain success's answer is kept as its numbers (produce_answer.FIELDS), made a
# message only if the request is not answered by a TopicAnswer.
_Answers = list[PartResp | Numbers]
_Pending = list[tuple[_Parts, int, int, "Partition", Awaitable[AppendResult]]]  # (parts, slot, index, ...)
_Replicated = list[tuple[_Parts, int, "Partition", int]]  # (parts, slot, partition, offset to wait for)
# The place of a partition whose answer is still pending in its topic's answers (_complete_later
# replaces every one: it never reaches the wire).
_PENDING = PartResp(index=-1)

log = logging.getLogger(__name__)

# The refusals Kafka's ReplicaManager.appendToLocalLog answers without a log line (expected
# failures). Every other refused append gets its line, INVALID_PRODUCER_EPOCH at INFO as in Kafka,
# the rest at WARNING (Kafka: ERROR; here ERROR is kept for the broker's own faults, which the
# hostile tests look for: these are the client's).
QUIET_APPEND_ERRORS = frozenset({
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.MESSAGE_TOO_LARGE,
    ErrorCode.RECORD_LIST_TOO_LARGE, ErrorCode.CORRUPT_MESSAGE, ErrorCode.KAFKA_STORAGE_ERROR,
    ErrorCode.UNKNOWN_TOPIC_ID,
})
# Of those, the ones that say where a producer's batch did not go (the leadership moved, the log
# dir failed): kbroker logs them at INFO, at most one line a second per partition and error
# (``EventLog``), so that a fault run's node log shows what each producer was told. Kafka logs
# none of them; its answers are the same.
AVAILABILITY_ERRORS = frozenset({ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.KAFKA_STORAGE_ERROR})


class ProduceServices(LeaderLookup, PartitionLookup, Authorizing, Protocol):
    """The services Produce uses: the replicas (appends, and the leaders of KIP-951 answers) and
    the clock of the acks=all waits."""

    @property
    def clock(self) -> WaitClock | None: ...  # kbroker.clock=manual; None: real time


class EventLog:
    """Log lines of recurring events, at most one per ``interval`` seconds per key: the events of a
    key between two lines are counted, and the next line says how many were not logged."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 4096) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._max_keys = max_keys
        self._keys: dict[tuple[object, ...], tuple[float, int]] = {}  # key -> (time of its last line, events since)

    def log(self, key: tuple[object, ...], level: int, msg: str, *args: object) -> bool:
        """Log this event's line unless its key had one less than ``interval`` ago (then count it)."""
        if not self._logger.isEnabledFor(level):
            return False
        now = self._clock()
        last = self._keys.get(key)
        if last is not None and now - last[0] < self._interval:
            self._keys[key] = (last[0], last[1] + 1)
            return False
        if last is None and len(self._keys) >= self._max_keys:
            self._keys.clear()  # bounded: forgetting the keys only lets their next lines through
        self._keys[key] = (now, 0)
        skipped = last[1] if last is not None else 0
        if skipped:
            self._logger.log(level, msg + " (%d more like it since the last line)", *args, skipped)
        else:
            self._logger.log(level, msg, *args)
        return True


_events = EventLog(log)


def _log_refused(topic: str, index: int, exc: ProduceError) -> None:
    """Kafka's "Error processing append operation on partition" line for a refused append; the
    availability refusals Kafka does not log, at INFO and rate-limited."""
    if exc.code in AVAILABILITY_ERRORS:
        _log_unavailable(topic, index, exc.code, exc.message)
        return
    if exc.code in QUIET_APPEND_ERRORS:
        return
    level = logging.INFO if exc.code == ErrorCode.INVALID_PRODUCER_EPOCH else logging.WARNING
    log.log(level, "Error processing append operation on partition %s-%d: %s: %s", topic, index, exc.code.name,
            exc.message or exc.code.name)


def _log_unavailable(topic: str, index: int, code: ErrorCode, message: str | None = None) -> None:
    """A produce refused before its append because this node cannot take it (not the leader, the
    log dir failed)."""
    _events.log(("refused", topic, index, code), logging.INFO, "Append to partition %s-%d refused: %s%s", topic,
                index, code.name, f": {message}" if message else "")


def _log_failed_wait(partition: Partition, code: ErrorCode, first: int, required: int) -> None:
    """An acks=all produce answered with an error after its append (the batch is in this node's log
    at ``first``..``required - 1`` and may still be committed: the client cannot tell)."""
    _events.log(("wait", partition.topic, partition.index, code), logging.INFO,
                "Produce to partition %s-%d appended at offsets %d-%d answered %s (high watermark %d, ISR %s)",
                partition.topic, partition.index, first, required - 1, code.name, partition.high_watermark,
                sorted(partition.isr))


def _error(index: int, code: ErrorCode, message: str | None = None,
           record_errors: list[tuple[int, str]] | None = None) -> PartResp:
    return PartResp(index=index, error_code=code, base_offset=-1, log_append_time_ms=-1, log_start_offset=-1,
                    record_errors=[RecordError(batch_index=i, batch_index_error_message=m)
                                   for i, m in record_errors or ()],
                    error_message=message)


def _request_refusal(records: Records | None, version: int, index: int) -> PartResp | None:
    """The answer to a partition whose batch breaks the request's rules (Kafka's KafkaApis checks
    them, ``ProduceRequest.validateRecords``, before the replica manager refuses an internal topic
    or a partition not led here); None if it keeps them. (A partition led here has them checked
    by the append, ``ReplicaManager.append_from_client``.)"""
    try:
        check_request_batch(received_records(records), version)
    except ProduceError as exc:
        return _error(index, exc.code, exc.message)
    return None


def _ok(index: int, partition: Partition, result: AppendResult) -> PartResp:
    return PartResp(
        index=index, error_code=result.error, base_offset=result.base_offset,
        log_append_time_ms=result.log_append_time, log_start_offset=partition.log_start_offset,
        record_errors=[], error_message=result.message,
    )


def _not_leader(ctx: RequestContext[ProduceServices], endpoints: _Endpoints, topic: str, index: int) -> PartResp:
    resp = _error(index, ErrorCode.NOT_LEADER_OR_FOLLOWER)
    if ctx.api_version >= 10:
        leader, epoch = current_leader(ctx.broker, topic, index, ctx.connection.endpoint.listener, endpoints)
        resp.current_leader = PartResp.LeaderIdAndEpoch(leader_id=leader, leader_epoch=epoch)
    return resp


def _response(responses: list[TopicResp], endpoints: _Endpoints) -> ProduceResponse:
    response = ProduceResponse(responses=responses, throttle_time_ms=0)
    if endpoints:
        response.node_endpoints = [ProduceResponse.NodeEndpoint(node_id=n, host=h, port=p, rack=rack)
                                   for n, (h, p, rack) in sorted(endpoints.items())]
    return response


@api(ProduceRequest, ProduceResponse, 3, 13)
def handle_produce(ctx: RequestContext[ProduceServices], request: ProduceRequest
                   ) -> ProduceResponse | Awaitable[ProduceResponse | None] | None:
    broker = ctx.broker
    version = ctx.api_version
    acks = request.acks
    if acks not in (0, 1, -1):
        code = ErrorCode.INVALID_REQUIRED_ACKS
        responses = [
            TopicResp(name=t.name, topic_id=getattr(t, "topic_id", ZERO_UUID),
                      partition_responses=[_error(p.index, code) for p in t.partition_data])
            for t in request.topic_data
        ]
        return ProduceResponse(responses=responses, throttle_time_ms=0)
    if request.transactional_id is not None and not authorized(ctx, WRITE, TRANSACTIONAL_ID, request.transactional_id):
        code = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED  # Kafka: the whole request
        return ProduceResponse(throttle_time_ms=0, responses=[
            TopicResp(name=t.name, topic_id=getattr(t, "topic_id", ZERO_UUID),
                      partition_responses=[_error(p.index, code) for p in t.partition_data])
            for t in request.topic_data])
    image = broker.image
    replica_manager = broker.replica_manager
    clock = broker.clock  # kbroker.clock=manual: LogAppendTime and acks=all timeouts on it (None: real time)
    now_ms = int(time.time() * 1000) if clock is None else clock.now_ms()
    answers: list[_Answers] = []  # per topic
    plain = 0  # answers kept as numbers
    pending: _Pending = []
    endpoints: _Endpoints = {}
    replicated: _Replicated = []  # acks=-1: (parts, slot, partition, next offset) to wait for
    topic_data = request.topic_data
    for t in topic_data:
        # one topic with one partition (most requests): a success is answered by a SingleAnswer
        single = len(topic_data) == 1 and len(t.partition_data) == 1
        if version >= 13:
            topic = image.topic_by_id(t.topic_id)
            unknown = ErrorCode.UNKNOWN_TOPIC_ID
        else:
            topic = image.topic(t.name)
            unknown = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        name = topic.name if topic is not None else t.name
        denied = (topic is not None or version < 13) and not authorized(ctx, WRITE, TOPIC, name)
        parts: _Answers = []  # (_PENDING: a place held for an answer still pending)
        for p in t.partition_data:
            if denied:  # Kafka checks WRITE before the topic's existence (ACLs: kbroker/security/acls.py)
                parts.append(_error(p.index, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
                continue
            if topic is None:
                parts.append(_error(p.index, unknown))
                continue
            if topic.name in INTERNAL_TOPICS:  # (Kafka: after the partition's existence and the request's rules)
                if image.partition(topic.name, p.index) is None:
                    parts.append(_error(p.index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
                else:
                    parts.append(_request_refusal(p.records, version, p.index) or _error(
                        p.index, ErrorCode.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {topic.name}"))
                continue
            partition, missing = partition_or_error(broker, topic.name, p.index, leader=True)
            if partition is None:
                if missing != ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and (
                        refusal := _request_refusal(p.records, version, p.index)) is not None:
                    parts.append(refusal)
                    continue
                if missing in AVAILABILITY_ERRORS:
                    _log_unavailable(topic.name, p.index, missing)
                if missing == ErrorCode.NOT_LEADER_OR_FOLLOWER:
                    parts.append(_not_leader(ctx, endpoints, topic.name, p.index))
                else:
                    parts.append(_error(p.index, missing))
                continue
            partition.produce_requests += 1
            try:
                result = replica_manager.append_from_client(
                    partition, received_records(p.records), version, acks, request.transactional_id, now_ms
                )
            except ProduceError as exc:
                partition.failed_produce += 1
                _log_refused(topic.name, p.index, exc)
                if exc.code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
                    parts.append(_not_leader(ctx, endpoints, topic.name, p.index))
                else:
                    parts.append(_error(p.index, exc.code, exc.message, exc.record_errors))
                continue
            if isinstance(result, AppendResult):  # (not inspect.isawaitable: an ABC check, per partition)
                if acks == -1 and result.last_offset >= 0 and partition.high_watermark <= result.last_offset:
                    replicated.append((cast(_Parts, parts), len(parts), partition, result.last_offset + 1))
                elif result.message is None:
                    if single:
                        if acks == 0:
                            return None
                        return SingleAnswer(t.name, t.topic_id, (p.index, result.error, result.base_offset,
                                                                 result.log_append_time, partition.log_start_offset))
                    parts.append((p.index, result.error, result.base_offset, result.log_append_time,
                                  partition.log_start_offset))
                    plain += 1
                    continue
                parts.append(_ok(p.index, partition, result))
            else:  # validated off the event loop, or queued behind an append still pending
                pending.append((cast(_Parts, parts), len(parts), p.index, partition, result))
                parts.append(_PENDING)
        answers.append(parts)
    if acks == 0 and not pending and not replicated:
        return None
    if plain and len(answers) == 1 and plain == len(answers[0]) and not pending and not replicated and not endpoints:
        # one topic, every partition a plain success
        t = topic_data[0]
        return TopicAnswer(t.name, t.topic_id, cast(list[Numbers], answers[0]))
    responses = []
    for t, parts in zip(topic_data, answers, strict=True):
        if plain:
            for i, answer in enumerate(parts):
                if type(answer) is tuple:
                    parts[i] = partition_answer(*answer)
        responses.append(TopicResp(name=t.name, topic_id=getattr(t, "topic_id", ZERO_UUID),
                                   partition_responses=cast(_Parts, parts)))
    if pending or replicated:
        deadline = Deadline(request.timeout_ms, clock)
        return _complete_later(ctx, responses, pending, replicated, acks, endpoints, deadline)
    return _response(responses, endpoints)


async def _complete_later(ctx: RequestContext[ProduceServices], responses: list[TopicResp], pending: _Pending, replicated: _Replicated,
                          acks: int, endpoints: _Endpoints, deadline: Deadline) -> ProduceResponse | None:
    for parts, slot, index, partition, awaitable in pending:
        try:
            result = await awaitable
        except ProduceError as exc:
            partition.failed_produce += 1
            _log_refused(partition.topic, index, exc)
            if exc.code == ErrorCode.NOT_LEADER_OR_FOLLOWER:  # leadership moved during validation
                parts[slot] = _not_leader(ctx, endpoints, partition.topic, index)
            else:
                parts[slot] = _error(index, exc.code, exc.message, exc.record_errors)
            continue
        parts[slot] = _ok(index, partition, result)
        if acks == -1 and result.last_offset >= 0:
            replicated.append((parts, slot, partition, result.last_offset + 1))
    if replicated:
        replica_manager = ctx.broker.replica_manager
        codes = await asyncio.gather(*(replica_manager.wait_for_replication(partition, required, deadline)
                                       for _parts, _slot, partition, required in replicated))
        for (parts, slot, partition, required), code in zip(replicated, codes, strict=True):
            if code == ErrorCode.NONE:
                continue
            partition.failed_produce += 1
            _log_failed_wait(partition, code, parts[slot].base_offset, required)
            if code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
                parts[slot] = _not_leader(ctx, endpoints, partition.topic, partition.index)
            else:
                parts[slot] = _error(parts[slot].index, code)  # (answered before it was queued to wait)
    if acks == 0:
        return None
    return _response(responses, endpoints)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(0)
def _produce_error(request: ProduceRequest, version: int, code: int) -> ProduceResponse | None:
    if request.acks == 0:
        return None
    R = ProduceResponse
    topics: dict[tuple[str, uuid.UUID], ProduceResponse.TopicProduceResponse] = {}
    for topic in request.topic_data:
        out = topics.get((topic.name, topic.topic_id))
        if out is None:
            out = topics[(topic.name, topic.topic_id)] = R.TopicProduceResponse(
                name=topic.name, topic_id=topic.topic_id, partition_responses=[])
        for partition in topic.partition_data:
            out.partition_responses.append(R.TopicProduceResponse.PartitionProduceResponse(
                index=partition.index, error_code=code, base_offset=NO_OFFSET,
                log_append_time_ms=NO_TIMESTAMP, log_start_offset=NO_OFFSET, record_errors=[],
                error_message=None))
    return R(responses=list(topics.values()))
