"""Share sessions and share partitions of this broker (Kafka's ``SharePartitionManager``).

A share session is keyed by (group id, member id). ShareFetch with epoch 0 opens one (replacing
any previous session of that member; acknowledgements are not allowed then: INVALID_REQUEST), each
later request must carry the session's epoch (else INVALID_SHARE_SESSION_EPOCH; no session:
SHARE_SESSION_NOT_FOUND) and the epoch moves on by one (wrapping to 1 after Integer.MAX_VALUE);
epoch -1 closes the session after its acknowledgements and releases the member's acquired records,
as does the close of the connection that opened the session (Kafka's ConnectionDisconnectListener).
At most ``group.share.max.share.sessions`` sessions (SHARE_SESSION_LIMIT_REACHED).
ShareAcknowledge follows the same epochs, except that epoch 0 is INVALID_SHARE_SESSION_EPOCH.

Share partitions (:class:`SharePartition`) are created on first fetch: from the state the share
coordinator stored (``share_state``), else at the group's ``share.auto.offset.reset`` (Kafka's
default ``latest``: the high watermark; ``earliest``: the log start offset). When a member leaves
its share group (heartbeat -1, session timeout) its sessions go and its acquired records are
released, as Kafka's ``ShareGroupListener`` does.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kbroker.coordinator.share_dlq import DeadLetters
from kbroker.coordinator.share_group_config import effective
from kbroker.coordinator.share_partition import SharePartition, SharePartitionConfig
from kbroker.coordinator.share_persister import PersisterError, SharePersister, share_partition_error
from kbroker.coordinator.share_state import ShareState, ShareStateStore
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.coordinator.group_classic_model import Timer
    from kbroker.coordinator.share_persister import PersisterHost
    from kbroker.replication.partition import Partition


log = logging.getLogger(__name__)

INITIAL_EPOCH, FINAL_EPOCH = 0, -1
INT_MAX = 2**31 - 1

TopicIdPartition = tuple[uuid.UUID, int]


def _duration_ms(text: str) -> int:
    """An ISO-8601 duration (``PT1H``, ``P1DT30M``...) in milliseconds."""
    import re

    m = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", text.strip().upper())
    if m is None:
        return 0
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return int((((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000)


def next_epoch(epoch: int) -> int:
    """Kafka's ``ShareRequestMetadata.nextEpoch``."""
    if epoch < 0:
        return FINAL_EPOCH
    if epoch == INT_MAX:
        return 1
    return epoch + 1


class ShareSessionError(Exception):
    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code.name)
        self.code = code


@dataclass
class ShareSession:
    group_id: str
    member_id: str
    epoch: int
    partitions: list[TopicIdPartition] = field(default_factory=list)
    connection: object = None  # the client connection that opened the session


class ShareManager:
    """The share sessions and share partitions of a broker, with the share state store."""

    def __init__(self, broker: PersisterHost, timer: Timer, store: ShareStateStore) -> None:
        self.broker = broker
        self.timer = timer
        self.store = store
        self.dead_letters = DeadLetters(broker, timer)
        self.sessions: dict[tuple[str, str], ShareSession] = {}
        self.partitions: dict[tuple[str, uuid.UUID, int], SharePartition] = {}
        self._waiters: list[asyncio.Future[None]] = []
        # The share coordinator of a share partition whose state partition another broker leads.
        self.persister = SharePersister(broker, store)
        self._remote: set[tuple[str, uuid.UUID, int]] = set()  # share partitions persisting remotely
        self._loading: dict[tuple[str, uuid.UUID, int], asyncio.Future[ErrorCode]] = {}
        self._dirty: set[tuple[str, uuid.UUID, int]] = set()
        self._writers: dict[tuple[str, uuid.UUID, int], asyncio.Task[ErrorCode]] = {}

    # -- configs (the group's dynamic configs, else the broker's group.share.* defaults) -----------------

    def partition_config(self, group_id: str) -> SharePartitionConfig:
        b = self.broker
        return SharePartitionConfig(
            record_lock_duration_ms=effective(b, group_id, "share.record.lock.duration.ms"),
            delivery_count_limit=effective(b, group_id, "share.delivery.count.limit"),
            max_in_flight=effective(b, group_id, "share.partition.max.record.locks"),
        )

    def auto_offset_reset(self, group_id: str) -> str:
        strategy: str = effective(self.broker, group_id, "share.auto.offset.reset")
        return strategy.lower()

    # -- sessions --------------------------------------------------------------------------------------------

    def new_fetch_context(self, group_id: str, member_id: str, epoch: int, wanted: list[TopicIdPartition],
                          forgotten: list[TopicIdPartition], acks_present: bool, connection: object
                          ) -> tuple[list[TopicIdPartition], bool]:
        """Kafka's ``SharePartitionManager.newContext``: the partitions to fetch and whether this
        is a full (initial) request. Raises ShareSessionError."""
        key = (group_id, member_id)
        if epoch == FINAL_EPOCH:
            if key not in self.sessions:
                raise ShareSessionError(ErrorCode.SHARE_SESSION_NOT_FOUND)
            return [], False
        if epoch == INITIAL_EPOCH:
            if acks_present:
                raise ShareSessionError(ErrorCode.INVALID_REQUEST)
            self.sessions.pop(key, None)
            if len(self.sessions) >= self.broker.config["group.share.max.share.sessions"]:
                raise ShareSessionError(ErrorCode.SHARE_SESSION_LIMIT_REACHED)
            parts = list(dict.fromkeys(wanted))
            self.sessions[key] = ShareSession(group_id, member_id, next_epoch(epoch), parts, connection)
            return parts, True
        session = self.sessions.get(key)
        if session is None:
            raise ShareSessionError(ErrorCode.SHARE_SESSION_NOT_FOUND)
        if session.epoch != epoch:
            raise ShareSessionError(ErrorCode.INVALID_SHARE_SESSION_EPOCH)
        for tp in wanted:
            if tp not in session.partitions:
                session.partitions.append(tp)
        for tp in forgotten:
            if tp in session.partitions:
                session.partitions.remove(tp)
        session.epoch = next_epoch(session.epoch)
        return list(session.partitions), False

    def acknowledge_session_update(self, group_id: str, member_id: str, epoch: int) -> None:
        if epoch == INITIAL_EPOCH:
            raise ShareSessionError(ErrorCode.INVALID_SHARE_SESSION_EPOCH)
        session = self.sessions.get((group_id, member_id))
        if session is None:
            raise ShareSessionError(ErrorCode.SHARE_SESSION_NOT_FOUND)
        if epoch == FINAL_EPOCH:
            return
        if session.epoch != epoch:
            raise ShareSessionError(ErrorCode.INVALID_SHARE_SESSION_EPOCH)
        session.epoch = next_epoch(session.epoch)

    def release_session(self, group_id: str, member_id: str) -> None:
        session = self.sessions.pop((group_id, member_id), None)
        if session is None:
            return
        for topic_id, index in session.partitions:
            sp = self.partitions.get((group_id, topic_id, index))
            if sp is not None:
                sp.release_member(member_id)

    def on_connection_closed(self, connection: object) -> None:
        """Kafka's ``ClientConnectionDisconnectListener``: the share sessions opened on a connection
        that closes end, and their members' acquired records are released at once."""
        for key, session in list(self.sessions.items()):
            if session.connection is connection:
                self.release_session(*key)

    def on_member_removed(self, group_id: str, member_id: str) -> None:
        """The member left its share group or its session timed out."""
        self.sessions.pop((group_id, member_id), None)
        for (gid, _tid, _p), sp in list(self.partitions.items()):
            if gid == group_id:
                sp.release_member(member_id)

    # -- share partitions ------------------------------------------------------------------------------------

    def share_partition(self, group_id: str, topic: str, topic_id: uuid.UUID, index: int,
                        remote_state: ShareState | None = None) -> SharePartition:
        """The share partition, created from the local store's state (or, for a share partition whose
        share coordinator is another broker, from ``remote_state`` that :meth:`load_partition` read)."""
        key = (group_id, topic_id, index)
        sp = self.partitions.get(key)
        if sp is not None:
            return sp
        sp = SharePartition(group_id, topic, topic_id, index, self.timer,
                            lambda: self.partition_config(group_id), self._persist, self._wake, self._dead_letter)
        partition = self.broker.partition(topic, index)
        leader_epoch = partition.leader_epoch if partition is not None else 0
        sp.leader_epoch = leader_epoch
        if remote_state is not None:
            sp.initialize(remote_state.start_offset, remote_state.state_epoch, remote_state.batches)
            self._remote.add(key)
        else:
            self._remote.discard(key)
            state = self.store.read(group_id, topic_id, index)
            if state is not None and state.start_offset >= 0:
                sp.initialize(state.start_offset, state.state_epoch, state.batches)
            else:
                start = self._reset_offset(group_id, partition)
                sp.initialize(start, state.state_epoch if state is not None else 0, [])
                self.store.replace(group_id, topic_id, index, sp.state_epoch, leader_epoch, start, [], 0)
        self.partitions[key] = sp
        if partition is not None and sp.adjust_to_log_start(partition.log_start_offset) and remote_state is not None:
            self._persist(sp)
        log.info("share group %s: %s-%d starts at %d (%d in flight)%s", group_id, topic, index, sp.start_offset,
                 sp.in_flight_count(), " (state from the share coordinator)" if remote_state is not None else "")
        return sp

    async def load_partition(self, group_id: str, topic: str, topic_id: uuid.UUID, index: int) -> ErrorCode:
        """Make sure this broker's share partition exists (Kafka's ``SharePartition.maybeInitialize``).
        When
        another broker is the share coordinator of the key, the state is read from it
        (ReadShareGroupState; a share partition never initialized is initialized there at the
        group's ``share.auto.offset.reset``). Returns the share partition's error, NONE when ready."""
        key = (group_id, topic_id, index)
        partition = self.broker.partition(topic, index)
        leader_epoch = partition.leader_epoch if partition is not None else 0
        sp = self.partitions.get(key)
        if sp is not None:
            sp.leader_epoch = max(sp.leader_epoch, leader_epoch)  # the epoch its state writes carry
            return ErrorCode.NONE
        if self.persister.is_local(group_id, topic_id, index):
            # the local store writes to __share_group_state: asked of the controller on first use
            if not await self.store.await_topic():
                return ErrorCode.COORDINATOR_NOT_AVAILABLE
            if key not in self.partitions:
                self.share_partition(group_id, topic, topic_id, index)
            return ErrorCode.NONE
        pending = self._loading.get(key)
        if pending is not None:  # another request is loading it: wait for that
            return await asyncio.shield(pending)
        fut: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
        self._loading[key] = fut
        code = ErrorCode.NONE
        try:
            state = await self.persister.read(group_id, topic_id, index, max(leader_epoch, 0))
            if state is None or state.start_offset < 0:
                start = self._reset_offset(group_id, partition)
                epoch = state.state_epoch if state is not None else 0
                await self.persister.initialize(group_id, topic_id, index, epoch, start)
                state = ShareState(state_epoch=epoch, leader_epoch=leader_epoch, start_offset=start)
            current = self.broker.partition(topic, index)
            if current is None or not current.is_leader or current.leader_epoch != leader_epoch:
                code = ErrorCode.NOT_LEADER_OR_FOLLOWER
            elif key not in self.partitions:
                self.share_partition(group_id, topic, topic_id, index, remote_state=state)
        except PersisterError as e:
            code = share_partition_error(e.code)
            log.warning("share group %s: %s-%d cannot load its state from the share coordinator: %s (%s)",
                        group_id, topic, index, e, code.name)
        finally:
            del self._loading[key]
            fut.set_result(code)
        return code

    def on_leadership_lost(self, topic: str, index: int) -> None:
        """This broker stopped leading a topic partition (Kafka's SharePartitionManager listener,
        onBecomingFollower): its share partitions leave the cache; if leadership comes back they
        load again from the share coordinator's state."""
        for key in [k for k, sp in self.partitions.items() if sp.topic == topic and sp.partition == index]:
            self._forget(key)

    def _forget(self, key: tuple[str, uuid.UUID, int]) -> None:
        sp = self.partitions.pop(key, None)
        if sp is not None:
            sp.close()
        self._remote.discard(key)
        self._dirty.discard(key)
        self._writers.pop(key, None)

    def _reset_offset(self, group_id: str, partition: Partition | None) -> int:
        if partition is None:
            return 0
        strategy = self.auto_offset_reset(group_id)
        if strategy == "earliest":
            return partition.log_start_offset
        if strategy.startswith("by_duration:"):
            # The first record at or after now - duration (Kafka's offsetForTimestamp), else the end.
            found = partition.log.offset_for_timestamp(self.timer.now_ms() - _duration_ms(strategy[12:]))
            return found[0] if found is not None else partition.high_watermark
        return partition.high_watermark

    def _dead_letter(self, sp: SharePartition, entries: list[tuple[int, int]], cause: str) -> None:
        if self.dead_letters.enabled(sp.group_id):
            self.dead_letters.write(sp.group_id, sp.topic, sp.partition, entries, cause)

    def _persist(self, sp: SharePartition) -> None:
        key = (sp.group_id, sp.topic_id, sp.partition)
        if key not in self._remote and not self.persister.is_local(*key):
            self._remote.add(key)  # the share coordinator moved to another broker since it loaded
        if key not in self._remote:
            self.store.replace(sp.group_id, sp.topic_id, sp.partition, sp.state_epoch, sp.leader_epoch,
                               sp.start_offset, sp.state_batches(), sp.delivery_complete_count())
            return
        # WriteShareGroupState to the share coordinator, in order: one writer per share partition
        # sends the latest window until nothing changed since its last write.
        self._dirty.add(key)
        task = self._writers.get(key)
        if task is None or task.done():
            self._writers[key] = asyncio.get_running_loop().create_task(self._write_loop(key, sp))

    async def _write_loop(self, key: tuple[str, uuid.UUID, int], sp: SharePartition) -> ErrorCode:
        while key in self._dirty and self.partitions.get(key) is sp:
            self._dirty.discard(key)
            try:
                await self.persister.write(sp.group_id, sp.topic_id, sp.partition, sp.state_epoch, sp.leader_epoch,
                                           sp.start_offset, sp.state_batches(), sp.delivery_complete_count())
            except PersisterError as e:
                code = share_partition_error(e.code)
                # As Kafka's SharePartitionManager after a failed write: the share partition leaves
                # the cache and is initialized again from the share coordinator's state.
                log.warning("share group %s: %s-%d state write failed: %s (%s); reloading it", sp.group_id,
                            sp.topic, sp.partition, e, code.name)
                if self.partitions.get(key) is sp:
                    self._forget(key)
                return code
        return ErrorCode.NONE

    async def flush(self, group_id: str, keys: list[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], ErrorCode]:
        """Wait for the state writes of these share partitions; the error of each that failed."""
        out = {}
        for topic_id, index in keys:
            key = (group_id, topic_id, index)
            if key not in self._remote and key in self.partitions:  # written to the local store: replicated?
                code = await self.store.wait_replicated(*key)
                if code != ErrorCode.NONE:
                    out[(topic_id, index)] = share_partition_error(code)
                continue
            task = self._writers.get(key)
            if task is not None:
                code = await asyncio.shield(task)
                if self._writers.get(key) is task and task.done():
                    del self._writers[key]
                if code != ErrorCode.NONE:
                    out[(topic_id, index)] = code
        return out

    def drop_group(self, group_id: str) -> None:
        """The group was deleted: its share partitions and their stored state go."""
        for key in [k for k in self.partitions if k[0] == group_id]:
            self.partitions.pop(key).close()
        for gid, tid, p in self.store.group_keys(group_id):
            self.store.delete(gid, tid, p)
        for session in [k for k in self.sessions if k[0] == group_id]:
            del self.sessions[session]

    def reset_partition(self, group_id: str, topic: str, topic_id: uuid.UUID, index: int, start_offset: int,
                        state_epoch: int) -> None:
        """AlterShareGroupOffsets: the share partition starts over at ``start_offset``."""
        sp = self.partitions.pop((group_id, topic_id, index), None)
        if sp is not None:
            sp.close()
        old = self.store.read(group_id, topic_id, index)
        epoch = max(state_epoch, (old.state_epoch + 1) if old is not None else 0)
        self.store.replace(group_id, topic_id, index, epoch, old.leader_epoch if old else -1, start_offset, [], 0)

    def drop_partition(self, group_id: str, topic_id: uuid.UUID, index: int) -> None:
        sp = self.partitions.pop((group_id, topic_id, index), None)
        if sp is not None:
            sp.close()
        self.store.delete(group_id, topic_id, index)

    # -- waiting ---------------------------------------------------------------------------------------------

    def waiter(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def remove_waiter(self, fut: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass

    def _wake(self) -> None:
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def close(self) -> None:
        for sp in self.partitions.values():
            sp.close()
        for task in self._writers.values():
            task.cancel()
        self._wake()
