"""The group coordinator's committed offsets: OffsetCommit (and its validation), OffsetFetch,
OffsetDelete, the retention of offsets, and the transactional offsets of TxnOffsetCommit
(pending until the transaction's marker)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from kbroker.coordinator.coordinator_writes import response_error
from kbroker.coordinator.group_classic_model import ClassicGroup, GroupState
from kbroker.coordinator.group_coordinator_core import OFFSETS_TOPIC, GroupCoordinatorCore
from kbroker.coordinator.group_offsets import OffsetAndMetadata, TopicPartition
from kbroker.coordinator.group_records import encode_group_key, encode_offset_key, encode_offset_value
from kbroker.coordinator.share_group import ShareGroup
from kbroker.coordinator.streams_group import StreamsGroup
from kbroker.log.errors import LogClosedError, LogError
from kbroker.replication.deadline import Deadline
from kbroker.replication.partition import partition_state
from kbroker.replication.produce_batch import ProduceError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.records import ControlType, build_control_batch

log = logging.getLogger("kbroker.coordinator.group_coordinator")  # the logger of the module before the split


class GroupOffsetOps(GroupCoordinatorCore):
    """The committed offsets' operations of the group coordinator (the module's docstring)."""

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
            assert self.streams is not None  # (a streams group exists once start() made it)
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
                assert self.streams is not None
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
        ``topics=None`` means every committed partition. Without ``require_stable`` the offsets are
        read at the partition's high watermark (Kafka's read operation at the last committed
        offset); with it, at the latest state, a partition with pending transactional offsets
        answering UNSTABLE_OFFSET_COMMIT (Kafka's write operation reading at ``Long.MAX_VALUE``):
        the answer is sent once the writes pending then are replicated (:meth:`fetch_stable_offsets`)."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, []
        if not self.loaded:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, []
        if require_stable:
            error = self._fetch_error(group_id, member_id, member_epoch)
        else:  # the group as of the high watermark, as the offsets below (group_views)
            with self.views.at_committed([group_id]):
                error = self._fetch_error(group_id, member_id, member_epoch)
        if error != ErrorCode.NONE:
            return error, []
        p = self.broker.partition(OFFSETS_TOPIC, self.partition_for(group_id))
        if require_stable or p is None:
            committed = self.offsets.group_offsets(group_id)
        else:  # as Kafka's read at the last committed offset: commits not yet replicated are not shown
            committed = self.offsets.replicated_offsets(group_id, p.log.high_watermark)
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

    def _fetch_error(self, group_id: str, member_id: str | None, member_epoch: int) -> ErrorCode:
        """Kafka's ``validateOffsetFetch``: a share group is not found; a KIP-848 or streams
        member's id and epoch are checked."""
        group = self.groups.get(group_id)
        if isinstance(group, ShareGroup):
            return ErrorCode.GROUP_ID_NOT_FOUND
        if group is not None and not isinstance(group, ClassicGroup) and self._typed(group) is not None:
            error: ErrorCode = self._typed(group).validate_fetch(group, member_id, member_epoch)
            return error
        return ErrorCode.NONE

    async def fetch_stable_offsets(self, group_id: str, topics: list[tuple[str, list[int]]] | None,
                                   member_id: str | None = None, member_epoch: int = -1
                                   ) -> tuple[ErrorCode, list[tuple[str, int, int, int, str, ErrorCode]]]:
        """OffsetFetch with RequireStable, as Kafka's ``GroupCoordinatorService.fetchOffsets`` runs
        it: a write operation without records on the group's partition. The answer is computed
        now, at the latest state (:meth:`fetch_offsets`; a refused fetch answers at once), and sent
        once every write appended to the partition before it is replicated (the runtime defers a
        record-less write until the last written offset is committed), within
        ``offsets.commit.timeout.ms``. A failed wait is the group's error: NOT_COORDINATOR for a
        timeout, too few replicas or a missing partition (Kafka remaps them for OffsetFetch, whose
        pre-3.9 clients do not retry COORDINATOR_NOT_AVAILABLE), else as other coordinator writes."""
        error, rows = self.fetch_offsets(group_id, topics, True, member_id, member_epoch)
        if error != ErrorCode.NONE:
            return error, rows
        p = self.broker.partition(OFFSETS_TOPIC, self.partition_for(group_id))
        if p is None:
            return ErrorCode.NOT_COORDINATOR, []
        code = await self.writes.wait_raw(p, p.log.log_end_offset)
        if code == ErrorCode.NONE:
            return error, rows
        if code in (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.REQUEST_TIMED_OUT):
            return ErrorCode.NOT_COORDINATOR, []
        return response_error(code), []

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
                is_subscribed: bool = self._typed(group).is_subscribed_to(group, topic)
                return is_subscribed
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

    def complete_txn_offsets(self, producer_id: int, group_id: str, commit: bool, producer_epoch: int | None = None,
                             coordinator_epoch: int = 0) -> None:
        """End the producer's transaction in ``group_id``'s offsets partition if it has offsets of
        the group pending there (``producer_epoch`` None: the epoch of those): :meth:`complete_txn_partition`,
        which completes every group of that partition, not ``group_id`` alone."""
        if not self.offsets.pending.get(producer_id, {}).get(group_id):
            return
        epoch = self.offsets.pending_epoch.get(producer_id, 0) if producer_epoch is None else producer_epoch
        self.complete_txn_partition(producer_id, self.partition_for(group_id), commit, epoch, coordinator_epoch)

    def complete_txn_partition(self, producer_id: int, index: int, commit: bool, producer_epoch: int,
                               coordinator_epoch: int) -> None:
        """The transaction's marker for ``__consumer_offsets``-``index``, as Kafka's
        ``CoordinatorRuntime.completeTransaction`` writes it: one COMMIT/ABORT control batch for the
        partition, with the marker's epoch (Transactions V2: the bumped one) and the transaction
        coordinator's epoch, whatever groups of the partition the transaction committed offsets
        for (none too); then, as ``OffsetMetadataManager.replayEndTransactionMarker``, the
        producer's pending offsets of every group of the partition are committed (or dropped).
        The append closes the producer's transaction in the partition's producer state; it raises
        what ``append_internal`` raises (ProduceError, LogError, OSError)."""
        partition = self._partition(index)
        batch = build_control_batch(ControlType.COMMIT if commit else ControlType.ABORT, producer_id=producer_id,
                                    producer_epoch=producer_epoch, timestamp=self.timer.now_ms(),
                                    coordinator_epoch=coordinator_epoch)
        marker = self.broker.replica_manager.append_internal(partition, batch)
        pending = self.offsets.pending.get(producer_id, {})
        groups = {group_id for group_id in pending if self.partition_for(group_id) == index}
        if commit:  # the offsets the marker commits are read once it is replicated
            for group_id in sorted(groups):
                for tp in pending[group_id]:
                    self.offsets.note_unreplicated(group_id, tp, marker, partition.log.high_watermark)
        self.offsets.end_txn(producer_id, commit, groups)

    async def write_txn_marker(self, producer_id: int, index: int, commit: bool, producer_epoch: int,
                               coordinator_epoch: int) -> ErrorCode:
        """A transaction coordinator's marker for ``__consumer_offsets``-``index`` (its own, or by
        WriteTxnMarkers): :meth:`complete_txn_partition`, answered once the marker is replicated
        (acks=-1, as Kafka's marker appends) or with the partition's error:
        UNKNOWN_TOPIC_OR_PARTITION (not hosted here), NOT_LEADER_OR_FOLLOWER (not led here, or
        its log being deleted), KAFKA_STORAGE_ERROR (its log dir failed), NOT_ENOUGH_REPLICAS_AFTER_APPEND
        or REQUEST_TIMED_OUT (not replicated in time); the transaction coordinator retries those.
        A marker older than the producer state of the partition is refused, as every partition's
        (Kafka's ProducerAppendInfo.appendEndTxnMarker, reached by the group coordinator's append
        too): INVALID_PRODUCER_EPOCH (an older producer epoch) or TRANSACTION_COORDINATOR_FENCED (an
        older coordinator epoch: a coordinator that lost the transaction's partition), with nothing
        written and no pending offsets completed."""
        partition = self.broker.partition(OFFSETS_TOPIC, index)
        if partition is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if not partition.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        code = partition_state(partition).check_marker(producer_id, producer_epoch, coordinator_epoch)
        if code != ErrorCode.NONE:
            return code
        try:
            self.complete_txn_partition(producer_id, index, commit, producer_epoch, coordinator_epoch)
        except ProduceError as exc:
            return exc.code
        except LogClosedError:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        except (LogError, OSError) as exc:  # (Kafka's appendToLocalLog: a KafkaStorageException)
            log.error("marker for %s-%d not written: %s", OFFSETS_TOPIC, index, exc)
            return ErrorCode.KAFKA_STORAGE_ERROR
        from kbroker.replication.producer_manager import MARKER_TIMEOUT_MS

        deadline = Deadline(MARKER_TIMEOUT_MS, self.broker.clock)
        return await self.broker.replica_manager.wait_for_replication(partition, partition.log.log_end_offset,
                                                                      deadline)

    def has_pending_txn_offsets(self, group_id: str, topic: str, partition: int) -> bool:
        return self.offsets.has_pending(group_id, (topic, partition))
