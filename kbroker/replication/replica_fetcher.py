"""Followers fetching from their leaders (Kafka's ``ReplicaFetcherManager``/``ReplicaFetcherThread``).

One :class:`ReplicaFetcher` per source broker fetches every partition this broker follows there,
with the replica form of Fetch (v17: ``ReplicaState`` with this broker's id and registration
epoch, each partition's current leader epoch and last fetched epoch), from the leader's endpoint
on ``inter.broker.listener.name`` (the first listener when unset) as the metadata image's broker
registration gives it, in an incremental fetch session (KIP-227: after the first full fetch only
the partitions whose position changed are sent; a lost session starts again with a full fetch).
Records are appended as the leader sent them, byte for byte (offsets and
partitionLeaderEpoch kept; the leader epoch cache learns the epochs from them); the follower's
high watermark is the leader's, capped at its own log end.

Truncation (KIP-101/279, KIP-595 style as Kafka 4.x): a partition whose log knows an epoch
fetches with ``LastFetchedEpoch`` and the leader answers a ``DivergingEpoch`` when the logs
diverge; the follower truncates to that epoch's end (``PartitionLog.truncate_to_epoch_end``) and
fetches again. A log without epochs truncates to its high watermark first. OFFSET_OUT_OF_RANGE
asks the leader's log end and start (ListOffsets as a replica) and truncates to them.

Errors back off ``replica.fetch.backoff.ms`` (per partition for partition errors, the whole
fetcher for connection errors); leader changes move partitions between fetchers
(``ReplicaFetcherManager.add_partition``/``remove_partition``), and a response for a partition
whose fetch state changed meanwhile is dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.log import InvalidOffsetError, LogClosedError, LogCorruptedError, LogError
from kbroker.replication.broker_connection import BrokerConnection, FetcherConnectionError, setup_timeout_s
from kbroker.replication.fetch_sessions import INITIAL_EPOCH, INVALID_SESSION_ID
from kbroker.replication.follower_log import (
    FetchState,
    append_fetched,
    truncate_diverging,
    truncate_to_high_watermark,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.messages.fetch import FetchRequest
from kbroker_protocol.messages.list_offsets import ListOffsetsRequest
from kbroker_protocol.record_batch import InvalidRecordBatch

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.metadata.image import MetadataImage
    from kbroker.replication.partition import Partition


log = logging.getLogger("kbroker.replication.fetcher")


class InterBrokerSecurity(Protocol):
    """How a follower connects to a leader's inter-broker listener (kbroker.security.client's
    ``ClientSecurity``, handed to the connection)."""

    @property
    def listener(self) -> str: ...

    @property
    def protocol(self) -> str: ...


class InternodeSecurity(Protocol):
    """kbroker.security.internode's ``InterNodeSecurity`` as the fetchers read it."""

    @property
    def inter_broker(self) -> InterBrokerSecurity: ...


class FollowerThrottle(Protocol):
    """The follower side of the replication throttle (kbroker.security.replication_quotas)."""

    @property
    def enabled(self) -> bool: ...

    def is_throttled(self, partition: Partition) -> bool: ...

    def record(self, value: int) -> None: ...


class ReplicationThrottles(Protocol):
    @property
    def follower(self) -> FollowerThrottle: ...

    def follower_throttles(self, partition: Partition, lag: int | None) -> bool: ...


class FetcherHost(Protocol):
    """What the replica fetchers read of the broker (through the replica manager's ``broker``):
    config and image (the leaders' endpoints), the inter-broker security and the follower's
    replication throttle."""

    config: BrokerConfig
    image: MetadataImage

    @property
    def internode_security(self) -> InternodeSecurity: ...

    @property
    def replication_quotas(self) -> ReplicationThrottles: ...

FETCH_VERSION = 17
LIST_OFFSETS_VERSION = 9
UNDEFINED = -1
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class _Sent:
    """A partition as the last fetch sent it (what the leader's fetch session holds)."""

    state: FetchState
    fetch_offset: int
    leader_epoch: int
    last_fetched_epoch: int
    log_start_offset: int

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Sent) and self.state is other.state and (
            self.fetch_offset, self.leader_epoch, self.last_fetched_epoch, self.log_start_offset) == (
            other.fetch_offset, other.leader_epoch, other.last_fetched_epoch, other.log_start_offset)

    def __hash__(self) -> int:
        return hash((id(self.state), self.fetch_offset))


SESSION_ERRORS = frozenset({ErrorCode.FETCH_SESSION_ID_NOT_FOUND, ErrorCode.INVALID_FETCH_SESSION_EPOCH,
                            ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR})


def fetcher_id(topic: str, partition: int, num_fetchers: int) -> int:
    """Kafka's ``AbstractFetcherManager.getFetcherId``: which of the ``num.replica.fetchers``
    fetchers of a source broker fetches a partition, ``Utils.abs(31 * topic.hashCode() + partition)
    % n`` in Java's 32-bit int arithmetic (``String.hashCode`` over UTF-16 code units)."""
    h = 0
    data = topic.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    n = (31 * h + partition) & 0xFFFFFFFF
    signed = n - (1 << 32) if n & 0x80000000 else n
    return (0 if signed == -(1 << 31) else abs(signed)) % num_fetchers


class ReplicaFetcherManager:
    """The fetchers of this broker: ``num.replica.fetchers`` per source broker (each its own
    connection and fetch session, as Kafka's fetcher threads), a partition going to the one
    :func:`fetcher_id` names."""

    def __init__(self, replica_manager: Any) -> None:
        self.replica_manager = replica_manager  # kbroker.replication.replica_manager.ReplicaManager
        # (source broker, fetcher id) -> fetcher (Kafka's BrokerIdAndFetcherId)
        self.fetchers: dict[tuple[int, int], ReplicaFetcher] = {}
        self._by_partition: dict[tuple[str, int], FetchState] = {}
        self._closed = False
        self.num_fetchers = max(1, int(replica_manager.broker.config["num.replica.fetchers"]))

    def _key(self, topic: str, index: int, leader_id: int) -> tuple[int, int]:
        return leader_id, fetcher_id(topic, index, self.num_fetchers)

    def has_partition(self, partition: Partition) -> bool:
        s = self._by_partition.get((partition.topic, partition.index))
        return s is not None and s.partition is partition and s.leader_id == partition.leader_id \
            and s.leader_epoch == partition.leader_epoch

    def add_partition(self, partition: Partition) -> None:
        if self._closed:
            return
        plog = partition.log
        state = FetchState(partition, partition.leader_id, partition.leader_epoch, plog.log_end_offset,
                           truncating=plog.leader_epochs.latest_epoch < 0 and plog.log_end_offset > plog.high_watermark)
        self._by_partition[(partition.topic, partition.index)] = state
        key = self._key(partition.topic, partition.index, partition.leader_id)
        fetcher = self.fetchers.get(key)
        if fetcher is None:
            fetcher = self.fetchers[key] = ReplicaFetcher(self, partition.leader_id, key[1])
        fetcher.add(state)
        log.info("%s-%d: fetching from broker %d at offset %d, leader epoch %d", partition.topic, partition.index,
                 partition.leader_id, state.fetch_offset, state.leader_epoch)

    def remove_partition(self, partition: Partition) -> None:
        state = self._by_partition.pop((partition.topic, partition.index), None)
        if state is None:
            return
        key = self._key(partition.topic, partition.index, state.leader_id)
        fetcher = self.fetchers.get(key)
        if fetcher is not None:
            fetcher.remove(state)
            if not fetcher.partitions:
                fetcher.close()
                del self.fetchers[key]

    def close(self) -> None:
        self._closed = True
        for fetcher in self.fetchers.values():
            fetcher.close()
        self.fetchers.clear()
        self._by_partition.clear()


class ReplicaFetcher:
    """Fetches the partitions of one source broker given to fetcher ``fetcher_id`` (all of them
    with ``num.replica.fetchers=1``), over its own connection and fetch session."""

    def __init__(self, manager: ReplicaFetcherManager, source_id: int, fetcher_id: int = 0) -> None:
        self.manager = manager
        self.source_id = source_id
        self.fetcher_id = fetcher_id
        self.partitions: dict[tuple[str, int], FetchState] = {}
        self._wake = asyncio.Event()
        self._conn: BrokerConnection | None = None
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._run(), name=f"replica-fetcher-{fetcher_id}-{source_id}")
        self._logged: set[str] = set()
        # The fetch session with the source broker (KIP-227): id, next epoch, partitions as sent.
        self._session_id = INVALID_SESSION_ID
        self._session_epoch = INITIAL_EPOCH
        self._session: dict[tuple[uuid.UUID, int], _Sent] = {}
        self.connect_failures = 0  # connection attempts to the source broker that failed or timed out

    # -- partitions -----------------------------------------------------------------------

    def add(self, state: FetchState) -> None:
        p = state.partition
        self.partitions[(p.topic, p.index)] = state
        self._wake.set()

    def remove(self, state: FetchState) -> None:
        p = state.partition
        if self.partitions.get((p.topic, p.index)) is state:
            del self.partitions[(p.topic, p.index)]

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- config ---------------------------------------------------------------------------

    @property
    def _broker(self) -> FetcherHost:
        broker: FetcherHost = self.manager.replica_manager.broker
        return broker

    def _cfg(self, key: str) -> Any:
        return self._broker.config[key]

    def _endpoint(self) -> tuple[str, int] | None:
        broker = self._broker
        reg = broker.image.brokers.get(self.source_id)
        if reg is None or not reg.endpoints:
            return None
        security = broker.internode_security
        name = security.inter_broker.listener if security.inter_broker.protocol != \
            "PLAINTEXT" else broker.config["inter.broker.listener.name"] or broker.config.client_listeners[0].listener
        ep = reg.endpoints.get(name) or next(iter(reg.endpoints.values()))
        return ep[0], ep[1]

    # -- loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self._cfg("replica.fetch.backoff.ms") / 1000
        try:
            while True:
                if not self.partitions:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                now = loop.time()
                ready = [s for s in self.partitions.values() if s.delayed_until <= now]
                if not ready:
                    self._wake.clear()
                    wait = min(s.delayed_until for s in self.partitions.values()) - now
                    try:
                        await asyncio.wait_for(self._wake.wait(), max(wait, 0.001))
                    except TimeoutError:
                        pass
                    continue
                try:
                    conn = await self._connection()
                    if conn is None:
                        await asyncio.sleep(backoff)
                        continue
                    for s in [s for s in ready if s.truncating]:
                        truncate_to_high_watermark(s)
                    fetching = [s for s in ready if not s.truncating and self._current(s)]
                    # the follower's replication throttle (kbroker/security/replication_quotas.py)
                    throttles = self._broker.replication_quotas
                    if fetching and throttles.follower.enabled:
                        fetching = [s for s in fetching if not throttles.follower_throttles(s.partition, s.lag)]
                        if not fetching:  # Kafka: nothing to fetch, back off (or until woken)
                            self._wake.clear()
                            try:
                                await asyncio.wait_for(self._wake.wait(), backoff)
                            except TimeoutError:
                                pass
                    if fetching:
                        await self._fetch(conn, fetching)
                except (OSError, TimeoutError, EOFError, asyncio.IncompleteReadError, FetcherConnectionError,
                        ProtocolError) as exc:
                    self._log_once("conn", logging.INFO, "fetch from broker %d failed: %r; retrying in %d ms",
                                   self.source_id, exc, int(backoff * 1000))
                    self._drop_connection()
                    await asyncio.sleep(backoff)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug: keep fetching the other partitions, after a pause
                    log.exception("replica fetcher for broker %d failed; retrying in %d ms", self.source_id,
                                  int(backoff * 1000))
                    self._drop_connection()
                    await asyncio.sleep(backoff)
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _drop_connection(self) -> None:
        self._reset_session()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _log_once(self, key: str, level: int, msg: str, *args: Any) -> None:
        log.log(level if key not in self._logged else logging.DEBUG, msg, *args)
        self._logged.add(key)

    async def _connection(self) -> BrokerConnection | None:
        if self._conn is not None:
            return self._conn
        endpoint = self._endpoint()
        if endpoint is None:
            self._log_once("endpoint", logging.INFO, "broker %d has no registered endpoint yet", self.source_id)
            return None
        node = self.manager.replica_manager.node_id
        security = self._broker.internode_security
        conn = BrokerConnection(endpoint[0], endpoint[1], f"broker-{node}-fetcher-{self.fetcher_id}",
                                self._cfg("socket.request.max.bytes"),
                                security.inter_broker, self.source_id,
                                receive_buffer=self._cfg("replica.socket.receive.buffer.bytes"))
        # Kafka's BrokerBlockingSender: awaitReady for at most replica.socket.timeout.ms, its
        # NetworkClient abandoning the attempt after the connection setup timeout; the client's
        # connection state is dropped with the connection after any failure (NetworkClient.close(node)),
        # so each attempt starts at socket.connection.setup.timeout.ms (jittered), never grown
        try:
            await conn.open(min(setup_timeout_s(self._broker.config), self._cfg("replica.socket.timeout.ms") / 1000))
        except BaseException:
            self.connect_failures += 1
            raise
        self._conn = conn
        self._logged.discard("conn")
        log.info("fetching from broker %d at %s:%d", self.source_id, *endpoint)
        return conn

    def _current(self, s: FetchState) -> bool:
        p = s.partition
        return self.partitions.get((p.topic, p.index)) is s

    # -- out of range (truncation: kbroker.replication.follower_log) ------------------------

    async def _out_of_range(self, conn: BrokerConnection, s: FetchState) -> None:
        """Kafka's ``handleOutOfRangeError``: past the leader's end, truncate to it; before its
        start, start again at it."""
        p = s.partition
        leader_end = await self._list_offset(conn, s, -1)
        if leader_end is None:
            return
        if leader_end < s.fetch_offset:
            log.info("%s-%d: truncating to the leader's end offset %d (fetch offset %d out of range)", p.topic,
                     p.index, leader_end, s.fetch_offset)
            p.log.truncate_to(leader_end)
            p.producer_state = None
        else:
            leader_start = await self._list_offset(conn, s, -2)
            if leader_start is None:
                return
            if leader_start > p.log.log_end_offset or leader_start > s.fetch_offset:
                log.info("%s-%d: starting over at the leader's start offset %d (fetch offset %d out of range)",
                         p.topic, p.index, leader_start, s.fetch_offset)
                p.log.truncate_fully(leader_start)
                p.producer_state = None
        s.fetch_offset = p.log.log_end_offset

    async def _list_offset(self, conn: BrokerConnection, s: FetchState, timestamp: int) -> int | None:
        p = s.partition
        Req = ListOffsetsRequest
        request = Req(replica_id=self.manager.replica_manager.node_id, isolation_level=0, topics=[
            Req.ListOffsetsTopic(name=p.topic, partitions=[Req.ListOffsetsTopic.ListOffsetsPartition(
                partition_index=p.index, current_leader_epoch=s.leader_epoch, timestamp=timestamp)])])
        response = await conn.request(request, LIST_OFFSETS_VERSION, self._cfg("request.timeout.ms") / 1000)
        for t in response.topics:
            for rp in t.partitions:
                if rp.error_code == ErrorCode.NONE:
                    offset: int = rp.offset
                    return offset
                self._delay(s, rp.error_code)
        return None

    # -- fetching ---------------------------------------------------------------------------

    def _delay(self, s: FetchState, error: int) -> None:
        loop = asyncio.get_running_loop()
        s.delayed_until = loop.time() + self._cfg("replica.fetch.backoff.ms") / 1000
        p = s.partition
        level = logging.INFO if error not in s.errors_logged else logging.DEBUG
        s.errors_logged.add(error)
        log.log(level, "%s-%d: fetch from broker %d answered %s; backing off", p.topic, p.index, self.source_id,
                _name(error))

    def _request(self, states: list[FetchState]) -> tuple[FetchRequest, dict[tuple[uuid.UUID, int], _Sent]]:
        """The next Fetch: full (opening a fetch session) when there is no session, else
        incremental: only the partitions whose fetch position changed, the others forgotten."""
        rm = self.manager.replica_manager
        node = rm.node_id
        max_partition = self._cfg("replica.fetch.max.bytes")
        nxt: dict[tuple[uuid.UUID, int], _Sent] = {}
        for s in states:
            p = s.partition
            latest = p.log.leader_epochs.latest_epoch
            nxt[(p.topic_id, p.index)] = _Sent(s, s.fetch_offset, s.leader_epoch, latest if latest >= 0 else -1,
                                               p.log.log_start_offset)
        full = self._session_epoch == INITIAL_EPOCH
        topics: dict[uuid.UUID, FetchRequest.FetchTopic] = {}
        for key, sent in nxt.items():
            if not full and self._session.get(key) == sent:
                continue
            p = sent.state.partition
            topic = topics.get(p.topic_id)
            if topic is None:
                topic = topics[p.topic_id] = FetchRequest.FetchTopic(topic=p.topic, topic_id=p.topic_id, partitions=[])
            topic.partitions.append(FetchRequest.FetchTopic.FetchPartition(
                partition=p.index, current_leader_epoch=sent.leader_epoch, fetch_offset=sent.fetch_offset,
                last_fetched_epoch=sent.last_fetched_epoch, log_start_offset=sent.log_start_offset,
                partition_max_bytes=max_partition))
        forgotten: dict[uuid.UUID, FetchRequest.ForgottenTopic] = {}
        if not full:
            for topic_id, index in self._session:
                if (topic_id, index) not in nxt:
                    forgotten.setdefault(topic_id, FetchRequest.ForgottenTopic(topic_id=topic_id, partitions=[])) \
                        .partitions.append(index)
        request = FetchRequest(
            cluster_id=None, replica_id=node,
            replica_state=FetchRequest.ReplicaState(replica_id=node, replica_epoch=rm.broker_epoch(node)),
            max_wait_ms=self._cfg("replica.fetch.wait.max.ms"), min_bytes=self._cfg("replica.fetch.min.bytes"),
            max_bytes=self._cfg("replica.fetch.response.max.bytes"), isolation_level=0,
            session_id=self._session_id, session_epoch=self._session_epoch, topics=list(topics.values()),
            forgotten_topics_data=list(forgotten.values()), rack_id="")
        return request, nxt

    def _reset_session(self) -> None:
        """The next fetch is a full one (closing the old session, whose id it carries)."""
        self._session_epoch = INITIAL_EPOCH
        self._session = {}

    async def _fetch(self, conn: BrokerConnection, states: list[FetchState]) -> None:
        request, nxt = self._request(states)
        # Kafka's fetcher sends with its NetworkClient's request timeout, request.timeout.ms: no answer
        # in time closes the connection and the fetch is retried after replica.fetch.backoff.ms
        try:
            response = await conn.request(request, FETCH_VERSION, self._cfg("request.timeout.ms") / 1000)
        except BaseException:
            self._reset_session()
            raise
        if response.error_code != ErrorCode.NONE:
            self._reset_session()
            if response.error_code not in SESSION_ERRORS:
                for s in states:
                    self._delay(s, response.error_code)
            return
        # The leader now holds ``nxt`` as this session's partitions (KIP-227).
        if request.session_epoch == INITIAL_EPOCH:
            self._session_id = response.session_id
            self._session_epoch = INITIAL_EPOCH if response.session_id == INVALID_SESSION_ID else 1
        else:
            self._session_epoch = 1 if self._session_epoch >= 2**31 - 1 else self._session_epoch + 1
        self._session = dict(nxt) if self._session_epoch != INITIAL_EPOCH else {}
        for t in response.responses:
            for pd in t.partitions:
                sent = nxt.get((t.topic_id, pd.partition_index))
                if sent is None:
                    continue
                s = sent.state
                if not self._current(s) or s.fetch_offset != sent.fetch_offset:
                    continue  # the partition's fetch state changed while the fetch was out
                try:
                    await self._handle_partition(conn, s, pd)
                except (LogClosedError, LogCorruptedError, LogError, InvalidRecordBatch, InvalidOffsetError) as exc:
                    p = s.partition
                    log.warning("%s-%d: cannot append the records fetched from broker %d: %s", p.topic, p.index,
                                self.source_id, exc)
                    self._delay(s, ErrorCode.KAFKA_STORAGE_ERROR)

    async def _handle_partition(self, conn: BrokerConnection, s: FetchState, pd: Any) -> None:
        p = s.partition
        error = pd.error_code
        if error == ErrorCode.OFFSET_OUT_OF_RANGE:
            await self._out_of_range(conn, s)
            return
        if error != ErrorCode.NONE:
            self._delay(s, error)
            return
        s.errors_logged.clear()
        diverging = pd.diverging_epoch
        if diverging is not None and (diverging.epoch >= 0 or diverging.end_offset >= 0):
            truncate_diverging(s, diverging.epoch, diverging.end_offset)
            return
        records = pd.records
        if records is not None and len(records):
            append_fetched(s, memoryview(records))
            throttles = self._broker.replication_quotas
            if throttles.follower.is_throttled(p):
                throttles.follower.record(len(records))
            s.lag = max(0, pd.high_watermark - s.fetch_offset)
        elif s.lag is None:
            s.lag = max(0, pd.high_watermark - s.fetch_offset)
        plog = p.log
        before = plog.high_watermark
        plog.high_watermark = pd.high_watermark  # capped at the log end by the log
        if pd.log_start_offset > plog.log_start_offset and pd.log_start_offset <= plog.high_watermark:
            plog.advance_log_start(pd.log_start_offset)
        if plog.high_watermark != before:
            p.notify()

def _name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)
