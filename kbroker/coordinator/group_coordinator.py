"""The group coordinator: consumer groups and their committed offsets over ``__consumer_offsets``.

One node leads every partition of ``__consumer_offsets``, so this broker coordinates every group.
A group lives in partition ``abs(javaHashCode(group_id)) % partitions`` of that topic (Kafka's
rule, so tools that read the topic find it where Kafka would). As in Kafka the topic is created
lazily (``offsets.topic.num.partitions`` partitions, compacted): by the first FindCoordinator for a
group, which answers COORDINATOR_NOT_AVAILABLE meanwhile, or by the first group write that comes
without one; a broker restarting with the topic loads it at start-up.

The group APIs first ask :func:`coordinator_error` whether the group can be served, as Kafka's
``CoordinatorRuntime`` checks the partition's context: NOT_COORDINATOR when the broker stops, the
topic is missing (except for group writes, which create it) or the partition is led elsewhere,
COORDINATOR_LOAD_IN_PROGRESS while it loads (``loaded`` false, or in ``loading_partitions``).

Durability: every change is appended to the group's partition as a record in Kafka's format (see
``group_records``) before the request is answered. Offsets change state only by applying those
records — the same ``OffsetStore.apply`` serves a live commit and the replay at start-up. Classic
groups keep their state machine in memory (``group_classic``) and write a GroupMetadata snapshot
(members, generation, assignment) whenever a generation is settled (SyncGroup of the leader, the
group becoming empty, a static member replaced); replay rebuilds the group from its latest snapshot
(Stable with members, or Empty) and gives each member a session timeout to come back. KIP-848
groups (``group_consumer``) write Kafka's per-member deltas (member metadata, target and current
assignment, epochs) and replay them the same way. The group types share ``self.groups``; a group
id is either classic or consumer, and classic consumers may be hosted by a consumer group.

Transactions hook (called by the transaction coordinator)::

    prepare_txn_offsets(group_id, producer_id, producer_epoch, offsets) -> ErrorCode
        offsets: {(topic, partition): (offset, leader_epoch, metadata)}. Appends the offsets to the
        group's partition as a *transactional* batch of that producer (so they are durable and
        replayed as pending) and keeps them pending: OffsetFetch does not return them, and
        RequireStable fetches of those partitions get UNSTABLE_OFFSET_COMMIT. Group membership is
        not checked here: call ``validate_txn_offset_commit`` first (TxnOffsetCommit v3+).
    complete_txn_offsets(producer_id, group_id, commit) -> None
        Writes a COMMIT/ABORT control batch for the producer to the group's partition and then
        materializes (commit) or drops (abort) the pending offsets. Call it once per group of the
        transaction when the transaction ends, instead of sending a marker to __consumer_offsets.
        A restart replays the same outcome from the marker; a transaction left open by a crash
        stays pending until the transaction coordinator completes it after its own recovery.
    has_pending_txn_offsets(group_id, topic, partition) -> bool
    validate_txn_offset_commit(group_id, generation, member_id, group_instance_id) -> ErrorCode
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from kbroker.coordinator.coordinator_writes import ReplicatedWrites, WriteCallback, response_error
from kbroker.coordinator.group_classic import (
    ClassicConfig,
    ClassicGroup,
    ClassicGroupManager,
    ClassicMember,
    GroupState,
    _join_error,
    _sync_error,
)
from kbroker.coordinator.group_offsets import OffsetAndMetadata, OffsetStore, TopicPartition
from kbroker.coordinator.group_records import (
    GROUP_METADATA_KEY_TYPE,
    GroupKey,
    OffsetKey,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
    record_type,
)
from kbroker.coordinator.partitioning import partition_for
from kbroker.coordinator.share_group import PROTOCOL_TYPE as SHARE_PROTOCOL_TYPE
from kbroker.coordinator.share_group import SHARE_RECORD_TYPES, ShareGroup, ShareGroupManager
from kbroker.coordinator.streams_group import STREAMS_RECORD_TYPES, StreamsGroup
from kbroker.coordinator.timer_keys import TimerKey, of_group
from kbroker.log.batch_records import offset_of
from kbroker.replication.produce_batch import ProduceError
from kbroker.replication.topics import ensure_internal_topic, internal_replication_factor
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.coordinator import GroupMetadataValue
from kbroker_protocol.records import (
    ControlType,
    Record,
    build_batch,
    build_control_batch,
    iter_records,
    parse_control_record,
)

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"


def coordinator_error(coordinator: GroupCoordinator | None, group_id: str, *, create_topic: bool = False
                      ) -> ErrorCode:
    """What the group APIs answer for ``group_id`` before the coordinator looks at the group:
    COORDINATOR_NOT_AVAILABLE without a group coordinator (Kafka's inactive service), else
    :meth:`GroupCoordinator.group_error` (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or NONE)."""
    if coordinator is None:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    return coordinator.group_error(group_id, create_topic=create_topic)


async def group_write_error(coordinator: GroupCoordinator | None, group_id: str) -> ErrorCode:
    """Wait for what the group's partition has pending to be replicated (Kafka's coordinator
    runtime completes a write, with or without records, when the high watermark passes its last
    written offset): NONE once it is, or the error of a failed wait (NOT_COORDINATOR,
    COORDINATOR_NOT_AVAILABLE). NONE at once where this broker does not coordinate the group (the
    handler's answer says so already)."""
    if not group_id or coordinator_error(coordinator, group_id) != ErrorCode.NONE:
        return ErrorCode.NONE
    assert coordinator is not None
    return await coordinator.wait_for_replication(group_id)


class LoopTimer:
    """:class:`group_classic.Timer` on the running asyncio loop."""

    def __init__(self) -> None:
        self._handles: dict[TimerKey, asyncio.TimerHandle] = {}

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def schedule(self, key: TimerKey, delay_ms: int, fn: Callable[[], None]) -> None:
        self.cancel(key)

        def run() -> None:
            self._handles.pop(key, None)
            try:
                fn()
            except Exception:
                log.exception("group coordinator timer %s failed", key)

        self._handles[key] = asyncio.get_running_loop().call_later(max(delay_ms, 0) / 1000, run)

    def cancel(self, key: TimerKey) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def pending(self) -> list[TimerKey]:
        """The keys of the timers not yet run nor cancelled."""
        return list(self._handles)

    def cancel_group(self, group_id: str) -> None:
        """Cancel every timer of one group, whatever its kind (keys :class:`GroupTimerKey`)."""
        for key in [k for k in self.pending() if of_group(k, group_id)]:
            self.cancel(key)

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()


class GroupCoordinator:
    def __init__(self, broker: Any, timer: Any = None) -> None:
        self.broker = broker
        broker.group_coordinator = self
        self.timer = timer or LoopTimer()
        self.groups: dict[str, Any] = {}
        self.offsets = OffsetStore()
        self.classic = ClassicGroupManager(self.groups, self.timer, self._classic_config(), self._persist_classic)
        self.consumer: Any = None  # KIP-848 groups (group_consumer.ConsumerGroupManager), set in start()
        self.streams: Any = None  # KIP-1071 groups (streams_group.StreamsGroupManager), set in start()
        # KIP-932 share groups (share_group.ShareGroupManager); they live in ``groups`` too.
        self.share = ShareGroupManager(self)
        self.loaded = False
        # Partitions of __consumer_offsets still being loaded (Kafka's LOADING coordinator contexts):
        # their groups answer COORDINATOR_LOAD_IN_PROGRESS. Until start() has replayed the topic
        # (``loaded`` False) every partition counts as loading.
        self.loading_partitions: set[int] = set()
        # Partitions of __consumer_offsets whose groups are loaded here (this broker leads them).
        self.led_partitions: set[int] = set()
        self.started = False
        self.writes = ReplicatedWrites(broker)

    def _classic_config(self) -> ClassicConfig:
        c = self.broker.config
        return ClassicConfig(
            min_session_timeout_ms=c["group.min.session.timeout.ms"],
            max_session_timeout_ms=c["group.max.session.timeout.ms"],
            initial_rebalance_delay_ms=c["group.initial.rebalance.delay.ms"],
            max_size=c["group.max.size"],
        )

    # -- lifecycle ----------------------------------------------------------------------------------------

    topic_name = OFFSETS_TOPIC

    @property
    def num_partitions(self) -> int:
        """Partitions of ``__consumer_offsets``: the topic's own count once it exists (whoever
        created it), ``offsets.topic.num.partitions`` before."""
        topic = self.broker.image.topic(OFFSETS_TOPIC)
        if topic is not None and topic.partitions:
            return len(topic.partitions)
        return self.topic_partitions()

    def topic_configs(self) -> dict[str, str]:
        """The configs ``__consumer_offsets`` is created with (Kafka's groupMetadataTopicConfigs)."""
        return {
            "cleanup.policy": "compact",
            "segment.bytes": str(self.broker.config["offsets.topic.segment.bytes"]),
            "compression.type": "producer",
        }

    def topic_partitions(self) -> int:
        """The partitions ``__consumer_offsets`` is created with."""
        return self.broker.config["offsets.topic.num.partitions"]

    def ensure_topic(self) -> bool:
        """Create ``__consumer_offsets`` if it does not exist yet; True once it exists.

        Kafka creates the topic lazily, when a group first needs it (FindCoordinator, or here a
        group API writing before any FindCoordinator), with ``offsets.topic.num.partitions``."""
        return ensure_internal_topic(self.broker, OFFSETS_TOPIC, self.topic_partitions(), self.topic_configs(),
                                     internal_replication_factor(self.broker, "offsets.topic.replication.factor"))

    def start(self) -> None:
        # The topic is created on first use; one that exists (a restart) is loaded now.
        topic = self.broker.image.topic(OFFSETS_TOPIC)
        try:
            from kbroker.coordinator.group_consumer import ConsumerGroupManager
        except ImportError:  # KIP-848 support not present
            pass
        else:
            self.consumer = ConsumerGroupManager(self)
            self.classic.convert_foreign = self._convert_consumer_group
        from kbroker.coordinator.streams_group import StreamsGroupManager

        self.streams = StreamsGroupManager(self)
        # Only the partitions this broker leads (Kafka's onElection); the others load when their
        # leadership comes here (on_election), as the broker applies the metadata.
        if topic is not None:
            for index in sorted(topic.partitions):
                if self._leads(index):
                    self._replay(index)
                    self.led_partitions.add(index)
        self._on_groups_loaded(list(self.groups.values()))
        self.loaded = True
        self.started = True
        self._schedule_retention()
        self._watch_shutdown()

    def _on_groups_loaded(self, groups: list[Any]) -> None:
        for group in groups:
            if isinstance(group, ClassicGroup):
                self.classic.on_loaded(group)
            elif isinstance(group, ShareGroup):
                self.share.on_loaded(group)
            elif self._typed(group) is not None:
                self._typed(group).on_loaded(group)

    def _leads(self, index: int) -> bool:
        p = self.broker.partition(OFFSETS_TOPIC, index)
        return p is not None and p.is_leader

    # -- leadership of __consumer_offsets partitions (Kafka's GroupCoordinator.onElection/onResignation) --

    def on_partition_leadership(self, topic: str, index: int, leader: bool) -> None:
        """The broker's hook: this broker became (or stopped being) the leader of a partition."""
        if topic == OFFSETS_TOPIC:
            (self.on_election if leader else self.on_resignation)(index)

    def on_election(self, index: int) -> None:
        """This broker became the leader of ``__consumer_offsets-<index>``: load its groups and
        offsets from the log (COORDINATOR_LOAD_IN_PROGRESS meanwhile), then serve them."""
        if not self.started or index in self.led_partitions:
            return
        self.led_partitions.add(index)
        self.loading_partitions.add(index)
        try:
            before = set(self.groups)
            self._replay(index)
            self._on_groups_loaded([g for gid, g in self.groups.items()
                                    if gid not in before and self.partition_for(gid) == index])
            log.info("loaded the groups of %s-%d (now its leader)", OFFSETS_TOPIC, index)
        finally:
            self.loading_partitions.discard(index)

    def on_resignation(self, index: int) -> None:
        """This broker no longer leads ``__consumer_offsets-<index>``: drop its groups and offsets
        (their requests answer NOT_COORDINATOR and clients find the new coordinator)."""
        if index not in self.led_partitions:
            return
        self.led_partitions.discard(index)
        self.loading_partitions.discard(index)
        dropped = [gid for gid in list(self.groups) if self.partition_for(gid) == index]
        for gid in dropped:
            group = self.groups[gid]
            if isinstance(group, ClassicGroup):
                for m in group.members.values():
                    self.classic._respond_join(m, _join_error(ErrorCode.NOT_COORDINATOR, m.member_id))
                    self.classic._respond_sync(m, _sync_error(ErrorCode.NOT_COORDINATOR))
            del self.groups[gid]
            if isinstance(self.timer, LoopTimer):
                self.timer.cancel_group(gid)
        for gid in [g for g in self.offsets.committed if self.partition_for(g) == index]:
            del self.offsets.committed[gid]
        for gid in [g for g in self.offsets.unreplicated if self.partition_for(g) == index]:
            del self.offsets.unreplicated[gid]
        for pending in self.offsets.pending.values():
            for gid in [g for g in pending if self.partition_for(g) == index]:
                del pending[gid]
        log.info("unloaded %d groups of %s-%d (no longer its leader)", len(dropped), OFFSETS_TOPIC, index)

    def _watch_shutdown(self) -> None:
        """The broker lets in-flight requests finish before it stops its services; JoinGroup and
        SyncGroup may wait for a whole rebalance timeout, so once the broker is stopping they are
        answered NOT_COORDINATOR (as Kafka does when a coordinator unloads) and clients move on."""
        if getattr(self.broker, "_stopping", False):
            self.loaded = False
            self.classic.fail_pending(ErrorCode.NOT_COORDINATOR)
            return
        self.timer.schedule("shutdown-watch", 100, self._watch_shutdown)

    def stop(self) -> None:
        self.loaded = False
        self.started = False
        self.writes.close()
        if isinstance(self.timer, LoopTimer):
            self.timer.cancel_all()

    # -- whether this coordinator serves a group ---------------------------------------------------------

    def partition_error(self, index: int) -> ErrorCode:
        """Kafka's ``CoordinatorRuntime`` check of a ``__consumer_offsets`` partition's context.

        NOT_COORDINATOR without an active context: the broker is stopping (its coordinators are
        unloading), the offsets topic does not exist (no context was ever created; Kafka does not
        create it here, FindCoordinator does), or this broker does not lead the partition;
        COORDINATOR_LOAD_IN_PROGRESS while the partition loads; NONE when active."""
        if getattr(self.broker, "_stopping", False):
            return ErrorCode.NOT_COORDINATOR
        topic = self.broker.image.topic(OFFSETS_TOPIC)
        if topic is None or not topic.partitions:
            return ErrorCode.NOT_COORDINATOR
        state = self.broker.image.partition(OFFSETS_TOPIC, index)
        if state is None or state.leader != self.broker.node_id:
            return ErrorCode.NOT_COORDINATOR
        if not self.loaded or index in self.loading_partitions or index not in self.led_partitions:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

    def group_error(self, group_id: str, *, create_topic: bool = False) -> ErrorCode:
        """:meth:`partition_error` of the partition holding ``group_id``. ``create_topic``: create a
        missing offsets topic first (a simple consumer's commit without FindCoordinator, see the
        module docstring; Kafka would answer NOT_COORDINATOR), COORDINATOR_NOT_AVAILABLE if that fails."""
        if create_topic and not getattr(self.broker, "_stopping", False) and not self.ensure_topic():
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return self.partition_error(self.partition_for(group_id))

    def active_partitions(self) -> tuple[set[int], bool]:
        """For ListGroups (Kafka's scheduleReadAllOperation over this broker's contexts): the
        partitions whose groups are listed, and whether one of them is still loading."""
        topic = self.broker.image.topic(OFFSETS_TOPIC)
        if topic is None:
            return set(), False
        active: set[int] = set()
        loading = False
        for index in topic.partitions:
            code = self.partition_error(index)
            if code == ErrorCode.NONE:
                active.add(index)
            elif code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
                loading = True
        return active, loading

    # -- the log --------------------------------------------------------------------------------------------

    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.num_partitions)

    def _partition(self, index: int) -> Any:
        p = self.broker.partition(OFFSETS_TOPIC, index)
        if p is None:
            raise RuntimeError(f"{OFFSETS_TOPIC}-{index} is not hosted here")
        return p

    def _group_partition(self, group_id: str) -> Any:
        """The ``__consumer_offsets`` partition of ``group_id``, the topic created on first write."""
        if not self.ensure_topic():
            raise RuntimeError(f"{OFFSETS_TOPIC} cannot be created")
        return self._partition(self.partition_for(group_id))

    def append(self, group_id: str, records: list[tuple[bytes, bytes | None]], *, producer_id: int = -1,
               producer_epoch: int = -1) -> int:
        """Append ``(key, value)`` records for ``group_id``; returns the offset of the first."""
        if not records:
            return -1
        now = self.timer.now_ms()
        batch = build_batch(
            [Record(key=k, value=v, timestamp=now) for k, v in records],
            producer_id=producer_id, producer_epoch=producer_epoch, transactional=producer_id >= 0,
            base_sequence=0 if producer_id >= 0 else -1,
        )
        return self.broker.replica_manager.append_internal(self._group_partition(group_id), batch)

    async def wait_for_replication(self, group_id: str) -> ErrorCode:
        """Wait until what was appended for ``group_id`` is below its partition's high watermark
        (Kafka writes coordinator records with acks=all, ``offsets.commit.timeout.ms``); an error
        as Kafka's GroupCoordinatorService normalises it: NOT_COORDINATOR when leadership moved,
        COORDINATOR_NOT_AVAILABLE for too few replicas or a timeout."""
        p = self.broker.partition(OFFSETS_TOPIC, self.partition_for(group_id))
        if p is None:
            return ErrorCode.NOT_COORDINATOR
        return await self.writes.wait(p, p.log.log_end_offset)

    def write(self, group_id: str, records: list[tuple[bytes, bytes | None]], done: WriteCallback) -> None:
        """Kafka's CoordinatorRuntime write: append ``records`` to the group's partition now (acks=1)
        and call ``done(NONE)`` once they are replicated (below the high watermark), or
        ``done(error)`` with the client error if the append or the wait fails (see
        ``coordinator_writes``). A failed append calls ``done`` before returning."""
        try:
            self.append(group_id, records)
            p = self._group_partition(group_id)
        except ProduceError as exc:
            done(response_error(exc.code))
            return
        except RuntimeError as exc:  # the offsets topic or partition is not there
            log.warning("coordinator write for group %s failed: %s", group_id, exc)
            done(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            return
        except OSError as exc:
            log.error("coordinator write for group %s failed: %s", group_id, exc)
            done(ErrorCode.NOT_COORDINATOR)
            return
        self.writes.complete_when_replicated(p, p.log.log_end_offset, done)

    def _replay(self, index: int) -> None:
        p = self._partition(index)
        count = 0
        for header, data in p.log.iter_batches():
            if header.is_control:
                for record in iter_records(data):
                    marker = parse_control_record(record)
                    if marker.type in (ControlType.COMMIT, ControlType.ABORT):
                        pending = self.offsets.pending.get(header.producer_id, {})
                        here = {g for g in pending if self.partition_for(g) == index}
                        self.offsets.end_txn(header.producer_id, marker.type == ControlType.COMMIT, here)
                continue
            txn_pid = header.producer_id if header.is_transactional else -1
            for record in iter_records(data):
                if record.key is None:
                    continue
                self._apply(record.key, record.value, offset_of(record), txn_pid, header.producer_epoch, replay=True)
                count += 1
        if count:
            log.info("loaded %d records from %s-%d", count, OFFSETS_TOPIC, index)

    def _apply(self, key: bytes, value: bytes | None, offset: int, producer_id: int = -1,
               producer_epoch: int = -1, *, replay: bool) -> None:
        kind = record_type(key)
        if kind in SHARE_RECORD_TYPES:
            if replay:
                self.share.apply(kind, key, value)
            return
        if kind in STREAMS_RECORD_TYPES:
            if replay and self.streams is not None:
                self.streams.apply(kind, key, value)
            return
        if kind > GROUP_METADATA_KEY_TYPE:
            if self.consumer is not None:
                self.consumer.apply(kind, key, value, replay=replay)
            return
        decoded = decode_key(key)
        if isinstance(decoded, OffsetKey):
            tp = (decoded.topic, decoded.partition)
            om = None
            if value is not None:
                v = decode_offset_value(value)
                om = OffsetAndMetadata(v.offset, v.leader_epoch, v.metadata, v.commit_timestamp,
                                       v.expire_timestamp, offset)
            if producer_id >= 0:
                self.offsets.apply_pending(producer_id, producer_epoch, decoded.group, tp, om)
            else:
                self.offsets.apply(decoded.group, tp, om)
                if replay and om is not None and decoded.group not in self.groups:
                    self.groups[decoded.group] = ClassicGroup(decoded.group, state_timestamp_ms=om.commit_timestamp_ms)
        elif isinstance(decoded, GroupKey) and replay:
            self._replay_group(decoded.group, value)

    def _replay_group(self, group_id: str, value: bytes | None) -> None:
        if value is None:
            existing = self.groups.get(group_id)
            if isinstance(existing, ClassicGroup):
                del self.groups[group_id]
            return
        v = decode_group_value(value)
        group = ClassicGroup(group_id)
        group.protocol_type = v.protocol_type
        group.generation = v.generation
        group.protocol_name = v.protocol
        group.leader_id = v.leader
        group.state_timestamp_ms = v.current_state_timestamp
        for m in v.members:
            member = ClassicMember(
                member_id=m.member_id, group_instance_id=m.group_instance_id, client_id=m.client_id,
                client_host=m.client_host,
                rebalance_timeout_ms=m.rebalance_timeout if m.rebalance_timeout >= 0 else m.session_timeout,
                session_timeout_ms=m.session_timeout, protocol_type=v.protocol_type,
                protocols=[(v.protocol or "", bytes(m.subscription))], assignment=bytes(m.assignment))
            group.members[member.member_id] = member
            if member.group_instance_id is not None:
                group.static_members[member.group_instance_id] = member.member_id
        group.state = GroupState.STABLE if group.members else GroupState.EMPTY
        self.groups[group_id] = group

    def _typed(self, group: Any) -> Any:
        """The manager of a non-classic group: streams or consumer (KIP-848)."""
        if isinstance(group, StreamsGroup):
            return self.streams
        return self.consumer

    def hosting_group(self, group_id: str, *, non_empty: bool = False) -> Any:
        """The KIP-848 group of this id, when classic requests must go to it (JoinGroup only when
        it has members: an empty one is converted to a classic group instead)."""
        group = self.groups.get(group_id)
        if group is None or isinstance(group, (ClassicGroup, ShareGroup, StreamsGroup)) or self.consumer is None:
            return None
        if non_empty and self.consumer.is_empty(group):
            return None
        return group

    def _convert_consumer_group(self, group: Any) -> bool:
        """An empty KIP-848 or streams group makes way for a classic one of the same id (offsets stay)."""
        manager = None if isinstance(group, ShareGroup) else self._typed(group)
        if manager is None or not manager.is_empty(group):
            return False
        self.append(group.group_id, manager.tombstones(group))
        manager.mark_dead(group)
        del self.groups[group.group_id]
        return True

    def _persist_classic(self, group: ClassicGroup, assignment: dict[str, bytes], done: WriteCallback) -> None:
        """The classic manager's ``persist``: the group's GroupMetadata record with ``assignment``,
        ``done`` once replicated (Kafka's newGroupMetadataRecord and appendFuture)."""
        value = GroupMetadataValue(
            protocol_type=group.protocol_type or "", generation=group.generation, protocol=group.protocol_name,
            leader=group.leader_id, current_state_timestamp=group.state_timestamp_ms,
            members=[
                GroupMetadataValue.MemberMetadata(
                    member_id=m.member_id, group_instance_id=m.group_instance_id, client_id=m.client_id,
                    client_host=m.client_host, rebalance_timeout=m.rebalance_timeout_ms,
                    session_timeout=m.session_timeout_ms, subscription=m.metadata(group.protocol_name),
                    assignment=assignment.get(m.member_id, b""))
                for m in group.members.values()
            ],
        )
        self.write(group.group_id, [(encode_group_key(group.group_id), encode_group_value(value))], done)

    # -- OffsetCommit ---------------------------------------------------------------------------------------

    def validate_commit(self, group_id: str, generation: int, member_id: str, instance_id: str | None,
                        api_version: int, *, transactional: bool = False) -> tuple[ErrorCode, Any]:
        """Kafka's offset-commit validation; returns (error, group) and may create a simple group."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, None
        if not self.loaded:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, None
        group = self.groups.get(group_id)
        if group is None:
            if generation < 0:
                group = self.classic.get_or_create(group_id)
            elif transactional:
                return ErrorCode.ILLEGAL_GENERATION, None
            else:
                return (ErrorCode.GROUP_ID_NOT_FOUND if api_version >= 9 else ErrorCode.ILLEGAL_GENERATION), None
        if isinstance(group, ShareGroup):
            return ErrorCode.GROUP_ID_NOT_FOUND, group
        if isinstance(group, StreamsGroup):
            return self.streams.validate_commit(group, generation, member_id, instance_id, api_version,
                                                transactional=transactional), group
        if not isinstance(group, ClassicGroup):
            assert self.consumer is not None
            # TxnOffsetCommit has its own versions: only OffsetCommit < 9 is refused for KIP-848 members.
            version = 9 if transactional else api_version
            return self.consumer.validate_commit(group, generation, member_id, instance_id, version), group
        if group.is_in(GroupState.DEAD):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, group
        if generation < 0 and group.is_in(GroupState.EMPTY):
            return ErrorCode.NONE, group
        if generation >= 0 or member_id or instance_id is not None:
            if group.is_static_member_fenced(instance_id, member_id):
                return ErrorCode.FENCED_INSTANCE_ID, group
            if member_id not in group.members:
                return ErrorCode.UNKNOWN_MEMBER_ID, group
            if generation != group.generation:
                return ErrorCode.ILLEGAL_GENERATION, group
        elif not transactional and not group.is_in(GroupState.EMPTY):
            return ErrorCode.UNKNOWN_MEMBER_ID, group
        if not transactional and group.is_in(GroupState.COMPLETING_REBALANCE):
            return ErrorCode.REBALANCE_IN_PROGRESS, group
        return ErrorCode.NONE, group

    def commit_offsets(self, group_id: str, generation: int, member_id: str, instance_id: str | None,
                       retention_ms: int, entries: list[tuple[str, int, int, int, str | None]],
                       api_version: int) -> tuple[ErrorCode, list[ErrorCode]]:
        """``entries``: (topic, partition, offset, leader epoch, metadata). Returns the group-level
        error (applies to every partition when set) and one error per entry."""
        error, group = self.validate_commit(group_id, generation, member_id, instance_id, api_version)
        if error != ErrorCode.NONE:
            return error, [error] * len(entries)
        if isinstance(group, ClassicGroup) and generation >= 0:
            self.classic.touch(group, member_id)
        max_meta = self.broker.config["offset.metadata.max.bytes"]
        now = self.timer.now_ms()
        expire = now + retention_ms if retention_ms >= 0 else -1
        errors: list[ErrorCode] = []
        records: list[tuple[bytes, bytes | None]] = []
        keyed: list[tuple[TopicPartition, OffsetAndMetadata]] = []
        for topic, partition, offset, leader_epoch, metadata in entries:
            metadata = metadata or ""
            if isinstance(group, StreamsGroup):
                stale = self.streams.partition_error(group, member_id, generation, topic, partition)
                if stale != ErrorCode.NONE:
                    errors.append(stale)
                    continue
            if len(metadata.encode()) > max_meta:
                errors.append(ErrorCode.OFFSET_METADATA_TOO_LARGE)
                continue
            errors.append(ErrorCode.NONE)
            records.append((encode_offset_key(group_id, topic, partition),
                            encode_offset_value(offset, leader_epoch, metadata, now, expire)))
            keyed.append(((topic, partition), OffsetAndMetadata(offset, leader_epoch, metadata, now, expire)))
        if records:
            try:
                first = self.append(group_id, records)
            except ProduceError as exc:  # nothing appended, nothing applied
                code = response_error(exc.code)
                return code, [code if e == ErrorCode.NONE else e for e in errors]
            high_watermark = self._group_partition(group_id).log.high_watermark
            for i, (tp, om) in enumerate(keyed):
                self.offsets.apply_written(group_id, tp, OffsetAndMetadata(
                    om.offset, om.leader_epoch, om.metadata, om.commit_timestamp_ms, om.expire_timestamp_ms,
                    first + i), first + i, high_watermark)
        return ErrorCode.NONE, errors

    # -- OffsetFetch ------------------------------------------------------------------------------------------

    def fetch_offsets(self, group_id: str, topics: list[tuple[str, list[int]]] | None, require_stable: bool,
                      member_id: str | None = None, member_epoch: int = -1
                      ) -> tuple[ErrorCode, list[tuple[str, int, int, int, str, ErrorCode]]]:
        """Returns (group error, [(topic, partition, offset, leader epoch, metadata, error)]);
        ``topics=None`` means every committed partition."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, []
        if not self.loaded:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, []
        group = self.groups.get(group_id)
        if isinstance(group, ShareGroup):
            return ErrorCode.GROUP_ID_NOT_FOUND, []
        if group is not None and not isinstance(group, ClassicGroup) and self._typed(group) is not None:
            error = self._typed(group).validate_fetch(group, member_id, member_epoch)
            if error != ErrorCode.NONE:
                return error, []
        # As Kafka's read at the last committed offset: commits not yet replicated are not shown.
        p = self.broker.partition(OFFSETS_TOPIC, self.partition_for(group_id))
        committed = (self.offsets.group_offsets(group_id) if p is None
                     else self.offsets.replicated_offsets(group_id, p.log.high_watermark))
        if topics is None:
            wanted = sorted(committed)
        else:
            wanted = [(t, p) for t, parts in topics for p in parts]
        out = []
        for tp in wanted:
            if require_stable and self.offsets.has_pending(group_id, tp):
                out.append((tp[0], tp[1], -1, -1, "", ErrorCode.UNSTABLE_OFFSET_COMMIT))
                continue
            om = committed.get(tp)
            if om is None:
                out.append((tp[0], tp[1], -1, -1, "", ErrorCode.NONE))
            else:
                out.append((tp[0], tp[1], om.offset, om.leader_epoch, om.metadata, ErrorCode.NONE))
        return ErrorCode.NONE, out

    # -- groups: describe, list, delete ---------------------------------------------------------------------

    def list_groups(self, states: list[str], types: list[str]) -> list[tuple[str, str, str, str]]:
        """(group id, protocol type, state, type) of every live group matching the filters."""
        wanted_states = {s.lower() for s in states}
        wanted_types = {t.lower() for t in types}
        out = []
        for group_id, group in self.groups.items():
            if isinstance(group, ClassicGroup):
                state, gtype, ptype = group.state.value, "classic", group.protocol_type or ""
            elif isinstance(group, StreamsGroup):
                state, gtype, ptype = group.state_name(), "streams", "streams"
            elif isinstance(group, ShareGroup):
                state, gtype, ptype = group.state_name(), "share", SHARE_PROTOCOL_TYPE
            else:
                state, gtype, ptype = group.state_name(), "consumer", "consumer"
            if state == "Dead":
                continue
            if wanted_states and state.lower() not in wanted_states:
                continue
            if wanted_types and gtype not in wanted_types:
                continue
            out.append((group_id, ptype, state, gtype))
        return out

    def delete_groups(self, group_ids: list[str]) -> list[tuple[str, ErrorCode]]:
        out = []
        for group_id in group_ids:
            out.append((group_id, self._delete_group(group_id)))
        return out

    def _delete_group(self, group_id: str) -> ErrorCode:
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        if not self.loaded:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if isinstance(group, ClassicGroup):
            if group.is_in(GroupState.DEAD):
                return ErrorCode.GROUP_ID_NOT_FOUND
            if not group.is_in(GroupState.EMPTY):
                return ErrorCode.NON_EMPTY_GROUP
            tombstones: list[tuple[bytes, bytes | None]] = [(encode_group_key(group_id), None)]
        elif isinstance(group, ShareGroup):
            if not self.share.is_empty(group):
                return ErrorCode.NON_EMPTY_GROUP
            tombstones = self.share.tombstones(group)
        else:
            manager = self._typed(group)
            assert manager is not None
            if not manager.is_empty(group):
                return ErrorCode.NON_EMPTY_GROUP
            tombstones = manager.tombstones(group)
        self._remove_group(group_id, tombstones)
        return ErrorCode.NONE

    def _remove_group(self, group_id: str, group_tombstones: list[tuple[bytes, bytes | None]]) -> None:
        offsets = self.offsets.group_offsets(group_id)
        records = [(encode_offset_key(group_id, t, p), None) for t, p in sorted(offsets)]
        self.append(group_id, records + group_tombstones)
        self.offsets.drop_group(group_id)
        group = self.groups.pop(group_id, None)
        if isinstance(group, ClassicGroup):
            self.classic.mark_dead(group)
        elif isinstance(group, ShareGroup):
            self.share.mark_dead(group)
            for fn in self.share.on_group_deleted:
                fn(group_id)
        elif group is not None and self._typed(group) is not None:
            self._typed(group).mark_dead(group)

    def delete_offsets(self, group_id: str, topics: list[tuple[str, list[int]]]
                       ) -> tuple[ErrorCode, list[tuple[str, int, ErrorCode]]]:
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, []
        if not self.loaded:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, []
        group = self.groups.get(group_id)
        if group is None or (isinstance(group, ClassicGroup) and group.is_in(GroupState.DEAD)):
            return ErrorCode.GROUP_ID_NOT_FOUND, []
        if isinstance(group, ShareGroup):
            return ErrorCode.GROUP_ID_NOT_FOUND, []
        if isinstance(group, ClassicGroup):
            if not group.is_in(GroupState.EMPTY) and group.protocol_type != "consumer":
                return ErrorCode.NON_EMPTY_GROUP, []

            def subscribed(topic: str) -> bool:
                return group.is_subscribed_to(topic)
        else:
            def subscribed(topic: str) -> bool:
                return self._typed(group).is_subscribed_to(group, topic)
        committed = self.offsets.group_offsets(group_id)
        results = []
        records: list[tuple[bytes, bytes | None]] = []
        gone: list[TopicPartition] = []
        for topic, partitions in topics:
            is_subscribed = subscribed(topic)
            for p in partitions:
                if is_subscribed:
                    results.append((topic, p, ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC))
                    continue
                results.append((topic, p, ErrorCode.NONE))
                if (topic, p) in committed:
                    records.append((encode_offset_key(group_id, topic, p), None))
                    gone.append((topic, p))
        if records:
            self.append(group_id, records)
            for tp in gone:
                self.offsets.apply(group_id, tp, None)
        return ErrorCode.NONE, results

    # -- retention --------------------------------------------------------------------------------------------

    def _schedule_retention(self) -> None:
        interval = self.broker.config["offsets.retention.check.interval.ms"]
        self.timer.schedule("offsets-retention", interval, self._on_retention_check)

    def _on_retention_check(self) -> None:
        try:
            self.expire_offsets()
        finally:
            self._schedule_retention()

    def expire_offsets(self) -> int:
        """Tombstone offsets past ``offsets.retention.minutes``, as Kafka does: all offsets of a group
        without members (aged from when it became empty; simple groups from each commit), and in a
        group with consumer-protocol members the offsets of topics no member subscribes to any more
        (aged from their commit). Empty groups left without offsets are deleted. Returns how many
        offsets expired."""
        retention_ms = self.broker.config["offsets.retention.minutes"] * 60_000
        now = self.timer.now_ms()
        expired_total = 0
        for group_id in list(set(self.groups) | set(self.offsets.committed)):
            group = self.groups.get(group_id)
            subscribed: Callable[[str], bool] = lambda _topic: False  # noqa: E731
            if isinstance(group, ShareGroup):
                continue  # share groups have no committed offsets (their state is the share coordinator's)
            if isinstance(group, ClassicGroup):
                if group.is_in(GroupState.EMPTY):
                    base = group.state_timestamp_ms if group.protocol_type else None
                elif group.protocol_type == "consumer" and group.is_in(GroupState.STABLE):
                    base, subscribed = None, group.is_subscribed_to
                else:
                    continue
            elif group is not None:
                manager = self._typed(group)
                if manager.is_empty(group):
                    base = manager.empty_since(group)
                else:
                    base = None
                    subscribed = functools.partial(manager.is_subscribed_to, group)
            else:
                base = None
            expired = [tp for tp in self.offsets.expired(group_id, now, retention_ms, base) if not subscribed(tp[0])]
            if expired:
                self.append(group_id, [(encode_offset_key(group_id, t, p), None) for t, p in expired])
                for tp in expired:
                    self.offsets.apply(group_id, tp, None)
                expired_total += len(expired)
            empty = (isinstance(group, ClassicGroup) and group.is_in(GroupState.EMPTY)) or (
                group is not None and not isinstance(group, ClassicGroup) and self._typed(group).is_empty(group))
            if empty and not self.offsets.group_offsets(group_id) and not self.offsets.has_pending(group_id):
                if isinstance(group, ClassicGroup):
                    self._remove_group(group_id, [(encode_group_key(group_id), None)] if group.protocol_type else [])
                elif self._typed(group) is not None:
                    self._remove_group(group_id, self._typed(group).tombstones(group))
        if expired_total:
            log.info("expired %d offsets", expired_total)
        return expired_total

    def on_partition_deleted(self, topic: str, index: int) -> None:
        """A deleted topic's committed offsets go too (Kafka's onPartitionsDeleted)."""
        if topic == OFFSETS_TOPIC or not self.loaded:
            return
        for group_id in list(self.offsets.committed):
            if (topic, index) in self.offsets.group_offsets(group_id):
                self.append(group_id, [(encode_offset_key(group_id, topic, index), None)])
                self.offsets.apply(group_id, (topic, index), None)

    # -- transactions hook ---------------------------------------------------------------------------------

    def validate_txn_offset_commit(self, group_id: str, generation: int, member_id: str,
                                   group_instance_id: str | None) -> ErrorCode:
        error, _ = self.validate_commit(group_id, generation, member_id, group_instance_id, 0, transactional=True)
        if error == ErrorCode.ILLEGAL_GENERATION and group_id not in self.groups:
            return ErrorCode.NONE  # TxnOffsetCommit to a group that does not exist yet is accepted
        return error

    def prepare_txn_offsets(self, group_id: str, producer_id: int, producer_epoch: int,
                            offsets: dict[TopicPartition, tuple[int, int, str | None]]) -> ErrorCode:
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        max_meta = self.broker.config["offset.metadata.max.bytes"]
        now = self.timer.now_ms()
        records: list[tuple[bytes, bytes | None]] = []
        values = []
        for (topic, partition), (offset, leader_epoch, metadata) in offsets.items():
            metadata = metadata or ""
            if len(metadata.encode()) > max_meta:
                return ErrorCode.OFFSET_METADATA_TOO_LARGE
            records.append((encode_offset_key(group_id, topic, partition),
                            encode_offset_value(offset, leader_epoch, metadata, now)))
            values.append(((topic, partition), offset, leader_epoch, metadata))
        if not records:
            return ErrorCode.NONE
        first = self.append(group_id, records, producer_id=producer_id, producer_epoch=producer_epoch)
        if group_id not in self.groups:
            self.classic.get_or_create(group_id)
        for i, (tp, offset, leader_epoch, metadata) in enumerate(values):
            self.offsets.apply_pending(producer_id, producer_epoch, group_id, tp,
                                       OffsetAndMetadata(offset, leader_epoch, metadata, now, -1, first + i))
        return ErrorCode.NONE

    def complete_txn_offsets(self, producer_id: int, group_id: str, commit: bool) -> None:
        if not self.offsets.has_pending(group_id) or producer_id not in self.offsets.pending:
            return
        epoch = self.offsets.pending_epoch.get(producer_id, 0)
        batch = build_control_batch(ControlType.COMMIT if commit else ControlType.ABORT, producer_id=producer_id,
                                    producer_epoch=epoch, timestamp=self.timer.now_ms())
        partition = self._group_partition(group_id)
        marker = self.broker.replica_manager.append_internal(partition, batch)
        if commit:  # the offsets the marker commits are read once it is replicated
            for tp in self.offsets.pending.get(producer_id, {}).get(group_id, {}):
                self.offsets.note_unreplicated(group_id, tp, marker, partition.log.high_watermark)
        self.offsets.end_txn(producer_id, commit, {group_id})

    def has_pending_txn_offsets(self, group_id: str, topic: str, partition: int) -> bool:
        return self.offsets.has_pending(group_id, (topic, partition))
