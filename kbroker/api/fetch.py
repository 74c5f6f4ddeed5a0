"""Fetch (key 1), v4-18.

Record bytes are never copied in Python: each partition's records are a FileSlice of a segment,
written to the socket with ``os.sendfile`` by the connection. The first partition with data may
exceed the byte limits by one whole batch (as Kafka does), so a consumer always progresses.

Long polling: when fewer than MinBytes are available the request waits up to MaxWaitMs and is
woken by appends to any partition it reads (Kafka's DelayedFetch, kbroker/replication/delayed_fetch.py:
this handler gives it the re-read and the answer). IsolationLevel 1 (read_committed) reads up to the
last stable offset and lists the aborted transactions in range. v7+ fetch sessions (KIP-227, see
kbroker/replication/fetch_sessions.py); v9+ CurrentLeaderEpoch fencing; v13+ topics by id (UNKNOWN_TOPIC_ID).

Followers fetch from the leader only. Consumers too before v11; from v11 (KIP-392: the request
carries the client's rack) a follower replica serves them up to its own high watermark, and a
leader with ``replica.selector.class`` = ``RackAwareReplicaSelector`` answers a consumer in another
rack with a ``PreferredReadReplica`` (an in-sync follower in the client's rack) and no records.
Otherwise a broker that cannot serve says NOT_LEADER_OR_FOLLOWER, with the current leader and its
endpoint from v16 (KIP-951 ``CurrentLeader``/``NodeEndpoints``, also for FENCED_LEADER_EPOCH).

Replica fetches (ReplicaId, v15+ ReplicaState, >= 0) come from followers: they read up to the log
end (not the high watermark), must be replicas of the partition (else UNKNOWN_LEADER_EPOCH, or
NOT_LEADER_OR_FOLLOWER without a CurrentLeaderEpoch), and with a stale broker epoch get
NOT_LEADER_OR_FOLLOWER. Their LastFetchedEpoch (v12+) is checked against the leader epoch cache:
when the follower's log diverged the answer is a DivergingEpoch (the end of the largest epoch at
or below it) and no records, at once. Each replica fetch tells the replica manager the follower's
log end offset (its fetch offset), which moves the high watermark and the ISR.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import PartitionLookup, RequestContext, partition_or_error
from kbroker.api.error_response import NO_OFFSET, refusal
from kbroker.api.fetch_answer import NO_DIVERGING, NO_LEADER, NO_SNAPSHOT, FetchAnswer, topics_of
from kbroker.api.leader_hint import LeaderLookup, current_leader
from kbroker.api.offset_for_leader_epoch import UNDEFINED_EPOCH, UNDEFINED_OFFSET, leader_epoch_end
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.log import LogCorruptedError, LogError, OffsetOutOfRangeError
from kbroker.replication.delayed_fetch import DelayedFetch, FetchRead, answers_at_once, fetch_progress
from kbroker.replication.fetch_sessions import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    INVALID_SESSION_ID,
    CachedPartition,
    FetchSession,
    FetchSessionCache,
)
from kbroker.security.acls import CLUSTER, CLUSTER_ACTION, CLUSTER_NAME, READ, TOPIC, authorized
from kbroker.security.quotas import ClientQuotaManager, principal_user
from kbroker.security.replication_quotas import ReplicationQuotaHost, ReplicationQuotas, replication_quotas
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.fetch import FetchRequest, FetchResponse
from kbroker_protocol.primitives import Records

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.replication.deadline import WaitClock
    from kbroker.replication.partition import Partition
    from kbroker.security.quotas import ClientQuotas

TopicResp = FetchResponse.FetchableTopicResponse
PartData = FetchResponse.FetchableTopicResponse.PartitionData
Aborted = FetchResponse.FetchableTopicResponse.PartitionData.AbortedTransaction
ZERO_UUID = uuid.UUID(int=0)
EMPTY = b""
# A partition's tagged structs at their defaults, shared by the generic answers (fetch_answer.topics_of)
_NO_DIVERGING = NO_DIVERGING
_NO_LEADER = NO_LEADER
_NO_SNAPSHOT = NO_SNAPSHOT


class FetchServices(LeaderLookup, ReplicationQuotaHost, PartitionLookup, Authorizing, Protocol):
    """The services Fetch uses: the replicas, the fetch sessions, the client quotas and the
    replication quotas, the clock of the long polls and whether the broker is stopping."""

    config: BrokerConfig
    fetch_sessions: FetchSessionCache
    client_quotas: ClientQuotas
    stopping: bool  # shutting down: a long poll answers now

    @property
    def clock(self) -> WaitClock | None: ...  # kbroker.clock=manual; None: real time


@dataclass(slots=True)
class _Want:
    cached: CachedPartition
    topic_name: str | None  # resolved name; None when the topic is unknown
    unknown_error: ErrorCode


def _resolve(broker: FetchServices, version: int, topic_name: str | None,
             topic_id: uuid.UUID) -> tuple[str | None, uuid.UUID, ErrorCode]:
    image = broker.image
    if version >= 13:
        topic = image.topic_by_id(topic_id)
        return (topic.name if topic else None), topic_id, ErrorCode.UNKNOWN_TOPIC_ID
    topic = image.topic(topic_name) if topic_name is not None else None
    return topic_name if topic else None, (topic.topic_id if topic else ZERO_UUID), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def _wants_from_request(broker: FetchServices, request: FetchRequest, version: int) -> list[_Want]:
    wants = []
    by_id = version >= 13
    for t in request.topics:
        name = None if by_id else t.topic
        resolved, topic_id, unknown = _resolve(broker, version, name, t.topic_id)  # (the id: v13+)
        topic = resolved if by_id else name
        for p in t.partitions:
            # (CachedPartition's fields in order: topic, topic_id, partition, fetch_offset, max_bytes,
            # current_leader_epoch, log_start_offset, last_fetched_epoch; positional, a keyword costs)
            cached = CachedPartition(topic, topic_id, p.partition, p.fetch_offset, p.partition_max_bytes,
                                     p.current_leader_epoch, p.log_start_offset, p.last_fetched_epoch)
            wants.append(_Want(cached, resolved, unknown))
    return wants


def _session_key(version: int, cached: CachedPartition) -> tuple[uuid.UUID | str | None, int]:
    return (cached.topic_id if version >= 13 else cached.topic, cached.partition)


@dataclass(slots=True)
class _Read:
    want: _Want
    error: ErrorCode
    records: Records
    size: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    aborted: list[Aborted] | None
    diverging: tuple[int, int] | None = None  # (epoch, end offset) for a follower whose log diverged
    preferred: int = -1  # KIP-392: the replica the consumer should fetch from
    partition: Partition | None = None  # the replica read (a read without error): no second lookup to count it


@dataclass(slots=True)
class _Replica:
    """The follower a replica fetch comes from."""

    replica_id: int
    broker_epoch: int
    update: bool = True  # record its fetch position (the first read, not the re-reads of a long poll)
    quotas: ReplicationQuotas | None = None  # the leader's replication throttles


@dataclass(slots=True)
class _Client:
    """A consumer fetch's client metadata (v11+, KIP-392)."""

    rack: str | None
    listener: str


def _error(want: _Want, code: ErrorCode) -> _Read:
    return _Read(want, code, EMPTY, 0, -1, -1, -1, None)


def _read_partition(broker: FetchServices, want: _Want, limit: int, min_one: bool, isolation: int,
                    replica: _Replica | None = None, client: _Client | None = None) -> _Read:
    c = want.cached
    name = want.topic_name
    if name is None:
        return _error(want, want.unknown_error)
    # (partition_or_error's lookup; the error is worked out only when this broker has no replica)
    partition = broker.replica_manager.partition(name, c.partition)
    if partition is None:
        return _error(want, partition_or_error(broker, name, c.partition)[1])
    epoch = c.current_leader_epoch
    if epoch >= 0:
        if epoch > partition.leader_epoch:
            return _error(want, ErrorCode.UNKNOWN_LEADER_EPOCH)
        if epoch < partition.leader_epoch:
            return _error(want, ErrorCode.FENCED_LEADER_EPOCH)
    leader = partition.is_leader
    if not leader and (replica is not None or client is None):
        return _error(want, ErrorCode.NOT_LEADER_OR_FOLLOWER)
    if leader and client is not None and client.rack:
        preferred = broker.replica_manager.preferred_read_replica(partition, client.rack, c.fetch_offset,
                                                                  client.listener)
        if preferred is not None:
            plog = partition.log
            return _Read(want, ErrorCode.NONE, EMPTY, 0, plog.high_watermark, partition.last_stable_offset,
                         plog.log_start_offset, None, preferred=preferred)
    if replica is not None:
        if replica.replica_id not in partition.followers:
            return _error(want, ErrorCode.UNKNOWN_LEADER_EPOCH if c.current_leader_epoch >= 0
                          else ErrorCode.NOT_LEADER_OR_FOLLOWER)
        reg = broker.image.brokers.get(replica.replica_id)
        if replica.broker_epoch != -1 and reg is not None and reg.epoch > replica.broker_epoch:
            return _error(want, ErrorCode.NOT_LEADER_OR_FOLLOWER)  # a stale incarnation of the follower
    plog = partition.log
    try:
        hw = plog.high_watermark
        lso = partition.last_stable_offset_at(hw)
        start = plog.log_start_offset
        leo = plog.log_end_offset
        if replica is not None:
            isolation = 0
            max_offset = leo
            if c.last_fetched_epoch >= 0:
                epoch, end = leader_epoch_end(partition, c.last_fetched_epoch)
                if end == UNDEFINED_OFFSET or epoch == UNDEFINED_EPOCH or c.fetch_offset < start:
                    return _Read(want, ErrorCode.OFFSET_OUT_OF_RANGE, EMPTY, 0, hw, lso, start, None)
                if epoch < c.last_fetched_epoch or end < c.fetch_offset:
                    return _Read(want, ErrorCode.NONE, EMPTY, 0, hw, lso, start, None, (epoch, end))
        else:
            max_offset = lso if isolation == 1 else hw
        if c.fetch_offset > leo or c.fetch_offset < start:
            return _Read(want, ErrorCode.OFFSET_OUT_OF_RANGE, EMPTY, 0, hw, lso, start, None)
        aborted: list[Aborted] | None = [] if isolation == 1 else None
        if c.fetch_offset >= max_offset or limit <= 0 and not min_one:
            result = None
        elif replica is not None and replica.quotas is not None and replica.quotas.leader_throttles(
                partition, replica.replica_id):
            result = None  # a throttled catching-up follower gets no records (kbroker/security/replication_quotas.py)
        else:
            result = plog.read(c.fetch_offset, limit, max_offset=max_offset, min_one_batch=min_one)
    except OffsetOutOfRangeError:
        return _Read(want, ErrorCode.OFFSET_OUT_OF_RANGE, EMPTY, 0, plog.high_watermark,
                     partition.last_stable_offset, plog.log_start_offset, None)
    except LogCorruptedError:
        return _error(want, ErrorCode.KAFKA_STORAGE_ERROR)
    if replica is not None and replica.update:
        broker.replica_manager.on_follower_fetch(partition, replica.replica_id, c.fetch_offset, c.log_start_offset,
                                                 leo, replica.broker_epoch)
    if result is None:
        return _Read(want, ErrorCode.NONE, EMPTY, 0, hw, lso, start, aborted, None, -1, partition)
    records: Records = result if result.slices else EMPTY
    size = result.size
    if isolation == 1 and size:
        aborted = [Aborted(producer_id=pid, first_offset=first)
                   for pid, first in partition.aborted_transactions(c.fetch_offset, max_offset)]
    return _Read(want, ErrorCode.NONE, records, size, hw, lso, start, aborted, None, -1, partition)


def _read_all(broker: FetchServices, wants: list[_Want], max_bytes: int, isolation: int,
              replica: _Replica | None = None, client: _Client | None = None) -> tuple[list[_Read], int]:
    reads = []
    remaining = max_bytes
    total = 0
    got_data = False
    for w in wants:
        limit = min(w.cached.max_bytes, remaining)
        r = _read_partition(broker, w, limit, not got_data, isolation, replica, client)
        if r.size:
            got_data = True
            remaining -= r.size
            total += r.size
        reads.append(r)
    return reads, total


_LEADER_ERRORS = (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH)


def _build(version: int, reads: list[_Read], session_id: int, error: ErrorCode = ErrorCode.NONE,
           broker: FetchServices | None = None, listener: str | None = None) -> FetchResponse:
    leaders = version >= 16 and broker is not None and listener is not None
    for r in reads:
        if r.diverging is not None or leaders and r.error in _LEADER_ERRORS:
            break
    else:  # the common answer: encoded straight from the reads (kbroker/api/fetch_answer.py)
        return FetchAnswer(error, session_id, reads)
    topics, parts = topics_of(reads)
    endpoints: dict[int, tuple[str, int, str | None]] = {}
    if leaders and broker is not None and listener is not None:
        for r, pd in zip(reads, parts, strict=True):
            if r.error in _LEADER_ERRORS:
                leader, epoch = current_leader(broker, r.want.topic_name, r.want.cached.partition, listener, endpoints)
                pd.current_leader = PartData.LeaderIdAndEpoch(leader_id=leader, leader_epoch=epoch)
    response = FetchResponse(throttle_time_ms=0, error_code=error, session_id=session_id, responses=topics)
    if endpoints:
        response.node_endpoints = [FetchResponse.NodeEndpoint(node_id=n, host=h, port=p, rack=rack)
                                   for n, (h, p, rack) in sorted(endpoints.items())]
    return response


def _count(broker: FetchServices, reads: list[_Read]) -> None:
    """The per-partition counters the metrics endpoint reads (Kafka's BrokerTopicMetrics:
    fetch requests, failed ones, bytes out) for the reads this response carries."""
    for r in reads:
        partition = r.partition
        if partition is None:
            name = r.want.topic_name
            if name is None:
                continue
            partition = broker.partition(name, r.want.cached.partition)
            if partition is None:
                continue
        partition.fetch_requests += 1
        if r.error != ErrorCode.NONE:
            partition.failed_fetch += 1
        elif r.size:
            partition.bytes_out += r.size


def _record_throttled(broker: FetchServices, quotas: ReplicationQuotas, reads: list[_Read]) -> None:
    """Kafka's sizeOfThrottledPartitions: the leader quota counts the bytes of the throttled
    partitions a follower's answer carries."""
    size = 0
    for r in reads:
        if r.size and r.want.topic_name is not None:
            partition = broker.partition(r.want.topic_name, r.want.cached.partition)
            if partition is not None and quotas.leader.is_throttled(partition):
                size += r.size
    quotas.leader.record(size)


def _changed(r: _Read) -> bool:
    c = r.want.cached
    return (
        r.size > 0
        or r.error != ErrorCode.NONE
        or r.diverging is not None
        or r.preferred >= 0
        or r.high_watermark != c.sent_high_watermark
        or r.last_stable_offset != c.sent_last_stable_offset
        or r.log_start_offset != c.sent_log_start_offset
    )


def _remember(reads: list[_Read]) -> None:
    for r in reads:
        c = r.want.cached
        c.sent_high_watermark = r.high_watermark
        c.sent_last_stable_offset = r.last_stable_offset
        c.sent_log_start_offset = r.log_start_offset


def _deny_unauthorized(ctx: RequestContext[FetchServices], version: int, wants: list[_Want]) -> None:
    """Kafka's READ check per topic (before its existence, for requests by name): a partition of a
    topic the principal may not read answers TOPIC_AUTHORIZATION_FAILED (kbroker/security/acls.py)."""
    verdicts: dict[str, bool] = {}
    for w in wants:
        name = w.topic_name if w.topic_name is not None else (w.cached.topic if version < 13 else None)
        if name is None:
            continue
        if name not in verdicts:
            verdicts[name] = authorized(ctx, READ, TOPIC, name)
        if not verdicts[name]:
            w.topic_name = None
            w.unknown_error = ErrorCode.TOPIC_AUTHORIZATION_FAILED


@api(FetchRequest, FetchResponse, 4, 18)
def handle_fetch(ctx: RequestContext[FetchServices], request: FetchRequest) -> FetchResponse | Awaitable[FetchResponse]:
    """The answer, or when it waits for data (a long poll) a coroutine giving it: a Fetch that
    need not wait is answered in the handler's call, without a task (the dispatcher runs
    awaitable answers in one)."""
    broker = ctx.broker
    version = ctx.api_version
    isolation = request.isolation_level
    max_bytes = min(request.max_bytes, broker.config["fetch.max.bytes"])
    cache = broker.fetch_sessions
    session = None
    incremental = False
    session_id = INVALID_SESSION_ID
    if version >= 7:
        sid, epoch = request.session_id, request.session_epoch
        if sid != INVALID_SESSION_ID and epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            cache.remove(sid)
        if epoch == INITIAL_EPOCH:
            session = cache.create(version >= 13)
        elif epoch != FINAL_EPOCH:  # incremental, as Kafka's FetchManager.newContext checks it
            session = cache.get(sid)
            if session is None:
                return _build(version, [], INVALID_SESSION_ID, ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
            if session.epoch != epoch:
                return _build(version, [], INVALID_SESSION_ID, ErrorCode.INVALID_FETCH_SESSION_EPOCH)
            if session.uses_topic_ids != (version >= 13):
                return _build(version, [], INVALID_SESSION_ID, ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR)
            incremental = True
    wants = _wants_from_request(broker, request, version)
    replica_id = request.replica_state.replica_id if version >= 15 else request.replica_id
    replica = None
    if replica_id >= 0:
        replica = _Replica(replica_id, request.replica_state.replica_epoch if version >= 15 else -1)
        replica.quotas = replication_quotas(broker)
    listener = ctx.connection.endpoint.listener
    client = _Client(request.rack_id, listener) if replica is None and version >= 11 else None
    if session is not None:
        session_id = session.id
        if incremental:
            for forgotten in request.forgotten_topics_data:
                topic_key = forgotten.topic_id if version >= 13 else forgotten.topic
                for p in forgotten.partitions:
                    session.partitions.pop((topic_key, p), None)
            for w in wants:
                key = _session_key(version, w.cached)
                old = session.partitions.get(key)
                if old is not None:
                    old.fetch_offset = w.cached.fetch_offset
                    old.max_bytes = w.cached.max_bytes
                    old.current_leader_epoch = w.cached.current_leader_epoch
                    old.log_start_offset = w.cached.log_start_offset
                    old.last_fetched_epoch = w.cached.last_fetched_epoch
                else:
                    session.partitions[key] = w.cached
            resolved = []
            for c in session.partitions.values():
                name, _tid, unknown = _resolve(broker, version, c.topic, c.topic_id)
                resolved.append(_Want(c, name, unknown))
            wants = resolved
            session.next_epoch()
        else:
            for w in wants:
                session.partitions[_session_key(version, w.cached)] = w.cached

    if replica is None:
        _deny_unauthorized(ctx, version, wants)
    elif not authorized(ctx, CLUSTER_ACTION, CLUSTER, CLUSTER_NAME):
        # Kafka's handleFetch: a follower must have CLUSTER_ACTION on the cluster to fetch partition
        # data; without it every partition answers TOPIC_AUTHORIZATION_FAILED (and no READ ACL helps)
        for w in wants:
            w.topic_name = None
            w.unknown_error = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        replica = None  # nothing of a follower's is recorded for it
    else:
        ctx.connection.quota_exempt = True  # nor does it count against client quotas
    min_bytes = request.min_bytes
    fetch_quota = broker.client_quotas.fetch
    quota = fetch_quota if replica is None and fetch_quota.enabled else None
    user = client_id = ""
    if quota is not None:
        # Kafka: a consumer fetches at most what its consumer_byte_rate allows in one quota window,
        # so that a fetch is never certain to be throttled
        user, client_id = principal_user(ctx.connection.principal), ctx.client_id or ""
        cap = quota.max_value_in_window(user, client_id)
        if cap < max_bytes:
            max_bytes = int(cap)
        min_bytes = min(min_bytes, max_bytes)
    reads, total = _read_all(broker, wants, max_bytes, isolation, replica, client)
    if replica is not None:
        replica.update = False  # a long poll's re-reads leave the follower's recorded position alone
    complete = _completes(reads)
    if not answers_at_once(total, complete, min_bytes, request.max_wait_ms, len(wants)):
        complete, available = _progress(broker, reads, isolation, replica)
        finish = functools.partial(_answer, broker, version, replica, quota, user, client_id, session, incremental,
                                   cache, session_id, listener)
        reread = functools.partial(_reread, broker, wants, max_bytes, min_bytes, isolation, replica, client)
        delayed = DelayedFetch(reread, lambda done: finish(done.reads, done.size),
                               [(w.topic_name, w.cached.partition) for w in wants if w.topic_name is not None],
                               broker.partition, min_bytes, request.max_wait_ms, clock=broker.clock,
                               stopping=lambda: broker.stopping, replica_id=-1 if replica is None else replica.replica_id,
                               parked=None if replica is None else broker.replica_manager.parked_fetches)
        # start() watches the partitions now, in this call: the wait's task starts a turn of the loop
        # later, and an append meanwhile (a produce read with this fetch) must wake it
        return delayed.start(FetchRead(reads, total, complete, available))  # (kbroker/replication/delayed_fetch.py)
    return _answer(broker, version, replica, quota, user, client_id, session, incremental, cache, session_id, listener,
                   reads, total)


def _completes(reads: list[_Read]) -> bool:
    """Whether a partition's read is answered at once: an error, a diverging epoch, a preferred read replica."""
    return any(r.error != ErrorCode.NONE or r.diverging is not None or r.preferred >= 0 for r in reads)


def _reread(broker: FetchServices, wants: list[_Want], max_bytes: int, min_bytes: int, isolation: int,
            replica: _Replica | None, client: _Client | None) -> FetchRead[list[_Read]]:
    """A held fetch's partitions read again (woken by a change of one of them, or at its expiry)."""
    reads, total = _read_all(broker, wants, max_bytes, isolation, replica, client)
    complete = _completes(reads)
    if complete or total >= min_bytes and all(r.size <= r.want.cached.max_bytes for r in reads):
        # (no read larger than its partition's max bytes: Kafka's case G count is at least the
        # bytes read, or a read went past its segment, which is case F; no position is needed)
        return FetchRead(reads, total, complete)
    complete, available = _progress(broker, reads, isolation, replica)
    return FetchRead(reads, total, complete, available)


def _progress(broker: FetchServices, reads: list[_Read], isolation: int, replica: _Replica | None) -> tuple[bool, int]:
    """Kafka's ``DelayedFetch.tryComplete`` over a held fetch's partitions (cases F and G:
    ``fetch_progress``): whether one completes the fetch now, and the bytes they count toward
    ``MinBytes``. The end offset is the log end for a follower, the last stable offset for a
    read_committed consumer, the high watermark for another."""
    available = 0
    for r in reads:
        if r.error != ErrorCode.NONE:
            continue  # (an error completes the fetch anyway)
        c = r.want.cached
        partition = r.partition
        if partition is None:
            partition = broker.partition(r.want.topic_name, c.partition) if r.want.topic_name is not None else None
            if partition is None:
                continue
        plog = partition.log
        if replica is not None:
            end = plog.log_end_offset
        else:
            end = partition.last_stable_offset_at(plog.high_watermark) if isolation == 1 else plog.high_watermark
        throttled = c.fetch_offset < end and replica is not None and replica.quotas is not None \
            and replica.quotas.leader_throttles(partition, replica.replica_id)
        try:
            counted = fetch_progress(plog, c.fetch_offset, end, c.max_bytes, throttled)
        except LogError:  # (closed or offline meanwhile: Kafka's cases B and D)
            return True, available
        if counted is None:
            return True, available
        available += counted
    return False, available


def _answer(broker: FetchServices, version: int, replica: _Replica | None, quota: ClientQuotaManager | None,
            user: str, client_id: str, session: FetchSession | None, incremental: bool, cache: FetchSessionCache,
            session_id: int, listener: str, reads: list[_Read], total: int) -> FetchResponse:
    """The response of the reads: the client's fetch quota recorded (a throttled answer is empty),
    the bytes counted, the session's partitions remembered."""
    if quota is not None:
        throttle = quota.record(user, client_id, total)
        if throttle > 0:
            # Kafka: the bytes are taken back and the answer is empty (a new session is not kept)
            quota.unrecord(user, client_id, total)
            quota.throttled(user, client_id, throttle)
            if session is not None and not incremental:
                cache.remove(session.id)
                session_id = INVALID_SESSION_ID
            response = _build(version, [], session_id)
            response.throttle_time_ms = throttle
            return response
    if replica is None:
        _count(broker, reads)
    elif replica.quotas is not None:
        _record_throttled(broker, replica.quotas, reads)
    if incremental:
        changed = [r for r in reads if _changed(r)]
        _remember(reads)
        return _build(version, changed, session_id, broker=broker, listener=listener)
    if session is not None:
        _remember(reads)
    return _build(version, reads, session_id, broker=broker, listener=listener)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(1)
def _fetch_error(request: FetchRequest, version: int, code: int) -> FetchResponse:
    # v13+ clients read the top-level code; older ones also get it in every partition.
    R = FetchResponse
    topics = []
    if version < 13:
        T = R.FetchableTopicResponse
        topics = [
            T(topic=topic.topic, topic_id=topic.topic_id, partitions=[
                T.PartitionData(partition_index=p.partition, error_code=code, high_watermark=NO_OFFSET)
                for p in topic.partitions])
            for topic in request.topics
        ]
    return R(error_code=code, session_id=request.session_id, responses=topics)
