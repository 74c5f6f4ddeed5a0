"""The group coordinator's core (``group_coordinator``): its state, the ``__consumer_offsets``
partitions it leads (creation, loading and replay of their records, leadership changes), the
writes to them, and the dispatch of a group to its kind's manager."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kbroker.coordinator.coordinator_writes import (
    GroupSnapshot,
    ReplicatedWrites,
    WriteCallback,
    response_error,
)
from kbroker.coordinator.group_classic import ClassicGroupManager
from kbroker.coordinator.group_classic_model import (
    ClassicConfig,
    ClassicGroup,
    ClassicMember,
    GroupState,
    _join_error,
    _sync_error,
)
from kbroker.coordinator.group_members import MemberGroup
from kbroker.coordinator.group_offsets import OffsetAndMetadata, OffsetStore
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
    record_type,
)
from kbroker.coordinator.group_views import CommittedViews
from kbroker.coordinator.hosts import GroupsHost
from kbroker.coordinator.loop_timer import LoopTimer
from kbroker.coordinator.partitioning import partition_for
from kbroker.coordinator.share_group import SHARE_RECORD_TYPES, ShareGroup, ShareGroupManager
from kbroker.coordinator.streams_group import STREAMS_RECORD_TYPES, StreamsGroup
from kbroker.log.batch_records import offset_of
from kbroker.log.errors import LogError, RecordBatchTooLargeError
from kbroker.replication.produce_batch import ProduceError
from kbroker.replication.topics import (
    await_internal_topic,
    ensure_internal_topic,
    internal_replication_factor,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.coordinator import GroupMetadataValue
from kbroker_protocol.records import ControlType, Record, build_batch, iter_records, parse_control_record

if TYPE_CHECKING:
    from kbroker.coordinator.group_consumer import ConsumerGroupManager
    from kbroker.coordinator.streams_group import StreamsGroupManager
    from kbroker.replication.partition import Partition

log = logging.getLogger("kbroker.coordinator.group_coordinator")  # the logger of the module before the split

OFFSETS_TOPIC = "__consumer_offsets"


class GroupCoordinatorCore:
    """State and partitions of the group coordinator; the operations are in its subclasses
    (``group_offset_ops.GroupOffsetOps``, ``group_coordinator.GroupCoordinator``)."""

    def __init__(self, broker: GroupsHost, timer: LoopTimer | None = None) -> None:
        self.broker = broker
        self.timer = timer or LoopTimer()
        self.groups: dict[str, Any] = {}
        self.offsets = OffsetStore()
        self.classic = ClassicGroupManager(self.groups, self.timer, self._classic_config(), self._persist_classic)
        self.classic.create = self._create_classic
        self.consumer: ConsumerGroupManager | None = None  # KIP-848 groups, set in start()
        self.streams: StreamsGroupManager | None = None  # KIP-1071 groups, set in start()
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
        # The groups as of their partition's high watermark, for describe and list (group_views).
        self.views = CommittedViews(self.groups, self._high_watermark)

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
        configured: int = self.broker.config["offsets.topic.num.partitions"]
        return configured

    def ensure_topic(self) -> bool:
        """True once ``__consumer_offsets`` exists; until then the active controller is asked to
        create it (kbroker.replication.topics.ensure_internal_topic) and False answered.

        Kafka creates the topic lazily, when a group first needs it (FindCoordinator, or here a
        group API writing before any FindCoordinator), with ``offsets.topic.num.partitions``."""
        return ensure_internal_topic(self.broker, OFFSETS_TOPIC, self.topic_partitions(), self.topic_configs(),
                                     internal_replication_factor(self.broker, "offsets.topic.replication.factor"))

    async def await_topic(self) -> bool:
        """:meth:`ensure_topic` with a bounded wait for the controller's answer (none while the
        broker is stopping)."""
        if self.broker.stopping:
            return self.ensure_topic()
        return await await_internal_topic(
            self.broker, OFFSETS_TOPIC, self.topic_partitions(), self.topic_configs(),
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

    def on_metadata_record(self, record: object) -> None:
        """The metadata image's listener (hooked by ``kbroker.wiring.coordinators``): a new topic
        makes the consumer groups' regular-expression resolutions stale."""
        if self.consumer is not None:
            self.consumer.regexes.on_metadata_record(record)

    def _schedule_retention(self) -> None:
        """Start the committed offsets' retention checks (``GroupOffsetOps`` does); none here."""

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
            if self.consumer is not None:
                self.consumer.on_unloaded(gid)
        self.views.forget_where(lambda gid: self.partition_for(gid) == index)
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
        if self.broker.stopping:
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
        if self.broker.stopping:
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
        if create_topic and not self.broker.stopping and not self.ensure_topic():
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

    def _partition(self, index: int) -> Partition:
        p: Partition | None = self.broker.partition(OFFSETS_TOPIC, index)
        if p is None:
            raise RuntimeError(f"{OFFSETS_TOPIC}-{index} is not hosted here")
        return p

    def _group_partition(self, group_id: str) -> Partition:
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
        # Every failure is a ProduceError with the append's error (``response_error`` maps it for
        # the client), so that a caller can undo what the records were to persist.
        try:
            partition = self._group_partition(group_id)
        except RuntimeError as exc:  # the offsets topic or partition is not there
            raise ProduceError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, str(exc)) from None
        try:
            offset: int = self.broker.replica_manager.append_internal(partition, batch)
        except RecordBatchTooLargeError as exc:
            raise ProduceError(ErrorCode.MESSAGE_TOO_LARGE, str(exc)) from None
        except (LogError, OSError) as exc:
            log.error("coordinator write for group %s failed: %s", group_id, exc)
            raise ProduceError(ErrorCode.KAFKA_STORAGE_ERROR, str(exc)) from None
        return offset

    def _high_watermark(self, group_id: str) -> int | None:
        p = self.broker.partition(OFFSETS_TOPIC, self.partition_for(group_id))
        if p is None:
            return None
        hw: int = p.log.high_watermark
        return hw

    def note_written(self, snapshot: GroupSnapshot) -> None:
        """Records were just appended for ``snapshot.group_id`` (``snapshot``: the group before
        them): until they are replicated, describe and list read the group as it was
        (``group_views``). Nothing to keep when the high watermark has passed them already."""
        p = self.broker.partition(OFFSETS_TOPIC, self.partition_for(snapshot.group_id))
        if p is not None and p.log.high_watermark < p.log.log_end_offset:
            self.views.note(snapshot, p.log.log_end_offset)

    async def wait_for_replication(self, group_id: str) -> ErrorCode:
        """Wait until what was appended for ``group_id`` is below its partition's high watermark
        (Kafka writes coordinator records with acks=all, ``offsets.commit.timeout.ms``); an error
        as Kafka's GroupCoordinatorService normalises it: NOT_COORDINATOR when leadership moved,
        COORDINATOR_NOT_AVAILABLE for too few replicas or a timeout."""
        p = self.broker.partition(OFFSETS_TOPIC, self.partition_for(group_id))
        if p is None:
            return ErrorCode.NOT_COORDINATOR
        return await self.writes.wait(p, p.log.log_end_offset)

    def write(self, group_id: str, records: list[tuple[bytes, bytes | None]], done: WriteCallback) -> bool:
        """Kafka's CoordinatorRuntime write: append ``records`` to the group's partition now (acks=1)
        and call ``done(NONE)`` once they are replicated (below the high watermark), or
        ``done(error)`` with the client error if the append or the wait fails (see
        ``coordinator_writes``). A failed append calls ``done`` before returning (False)."""
        try:
            self.append(group_id, records)
            p = self._group_partition(group_id)
        except ProduceError as exc:
            done(response_error(exc.code))
            return False
        except RuntimeError as exc:  # the offsets topic or partition is not there
            log.warning("coordinator write for group %s failed: %s", group_id, exc)
            done(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            return False
        except OSError as exc:
            log.error("coordinator write for group %s failed: %s", group_id, exc)
            done(ErrorCode.NOT_COORDINATOR)
            return False
        self.writes.complete_when_replicated(p, p.log.log_end_offset, done)
        return True

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
        before = GroupSnapshot.take(self.groups, group.group_id, MemberGroup)
        self.append(group.group_id, manager.tombstones(group))
        manager.mark_dead(group)
        del self.groups[group.group_id]
        self.note_written(before)
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

    def _create_classic(self, group: ClassicGroup, done: WriteCallback) -> None:
        """The classic manager's ``create`` (group_classic_created): Kafka's
        newEmptyGroupMetadataRecord; until it is replicated describe and list do not show the
        group (it was not there before the record)."""
        value = GroupMetadataValue(protocol_type="", generation=0, protocol=None, leader=None,
                                   current_state_timestamp=group.state_timestamp_ms, members=[])
        if self.write(group.group_id, [(encode_group_key(group.group_id), encode_group_value(value))], done):
            self.note_written(GroupSnapshot(group.group_id, None, None, []))

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
        try:
            self._remove_group(group_id, tombstones)
        except ProduceError as exc:  # not appended: the group stays (the error as Kafka normalises it)
            return response_error(exc.code)
        return ErrorCode.NONE

    def _remove_group(self, group_id: str, group_tombstones: list[tuple[bytes, bytes | None]]) -> None:
        offsets = self.offsets.group_offsets(group_id)
        records = [(encode_offset_key(group_id, t, p), None) for t, p in sorted(offsets)]
        before = GroupSnapshot.take(self.groups, group_id, MemberGroup)
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
        self.note_written(before)
