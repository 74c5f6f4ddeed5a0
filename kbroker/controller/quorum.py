"""The controller: owner of the metadata log, the only writer of metadata records.

This is a single-voter quorum: the controller appends records to its metadata log
(``__cluster_metadata-0``), fsyncs them, and only then applies them to the image; a restart
replays the log. Each record's value is Kafka's metadata frame: unsigned varints frame version
(1), record type (the spec's apiKey) and record version, then the record body. Clustering adds
voters and replicates this log; the callers keep calling the same operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from kbroker.controller.errors import ControllerError
from kbroker.controller.topic_plans import plan_partitions, plan_topic
from kbroker.log import PartitionLog
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.features import (
    KRAFT_VERSION,
    METADATA_VERSION,
    SUPPORTED_FEATURES,
    FeatureUpdateError,
    KRaftVersionUpgrade,
    bootstrap_levels,
    plan_feature_updates,
)
from kbroker.metadata.image import RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC, MetadataImage
from kbroker.metadata.loader import MetadataLoader, kraft_version_of
from kbroker.metadata.metadata_log import MetadataLog
from kbroker.metadata.new_topic import NewTopic
from kbroker.raft.io import RaftDriver
from kbroker.raft.log import ControlRecord, Entry, Snapshot
from kbroker.raft.node import NotLeaderError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.data.kraft_version_record import KRaftVersionRecord
from kbroker_protocol.messages.data.voters_record import VotersRecord
from kbroker_protocol.record_batch import BatchHeader, iter_batch_headers
from kbroker_protocol.records import ControlType, Record, build_batch, iter_records, parse_control_record

if TYPE_CHECKING:
    from kbroker.controller.cluster_control import ClusterControl

log = logging.getLogger(__name__)

PRODUCER_ID_BLOCK_SIZE = 1000
class RaftLogView:
    """What callers read of the metadata log (offsets, high watermark) when it is a Raft log."""

    flush_buckets = None  # no flush latency histogram (kbroker.metrics)
    flush_ms = 0.0

    def __init__(self, raft: RaftDriver) -> None:
        self._raft = raft

    @property
    def log_start_offset(self) -> int:
        return self._raft.log.start_offset

    @property
    def log_end_offset(self) -> int:
        return self._raft.log.end_offset

    @property
    def high_watermark(self) -> int:
        return self._raft.high_watermark


class QuorumController:
    """The metadata quorum's state machine on this node and the writer of its records.

    Its image (``image``) is the controller's own, never the broker's (Kafka's QuorumController
    state, not the MetadataLoader's image). With ``raft`` (a ``RaftDriver``), records are Raft
    entries (one framed record each): `write` proposes them on the active controller (the Raft
    leader), which applies them to its image as soon as they are appended, before they are
    committed (Kafka's replay in ``ControllerWriteEvent``), so that its next operation decides on
    them; a standby applies them when they are committed (`on_commit`). An active controller that
    stops leading reverts its image to the committed one (``committed``, the node's
    ``MetadataLoader``: Kafka's renounce, revert to the last committed offset). A sole voter (the
    single-node start) commits synchronously (`commit`)."""

    def __init__(self, node_id: int, log: PartitionLog | None, image: MetadataImage,
                 raft: RaftDriver | None = None, committed: MetadataLoader | None = None) -> None:
        self.node_id = node_id
        self.image = image
        self.raft = raft
        # the node's image of the committed log: what a revert goes back to; without a Raft
        # driver, what `commit` publishes each record to once it is appended
        self.committed = committed
        # records applied to the image when appended, not yet committed: offset -> epoch
        self._uncommitted: dict[int, int] = {}
        # the ClusterControl of the controller listener's handlers (kbroker.controller.cluster_runtime)
        self.cluster_control: ClusterControl | None = None
        # the segment log under the Raft log (MetadataLog.partition_log), read by the metrics, the
        # tools' tests and the topic creation's failure check; its high watermark follows the commits
        self.plog = raft.log.partition_log if raft is not None and isinstance(raft.log, MetadataLog) else None
        # without a Raft driver: the metadata log this controller appends to itself
        self._own_log: PartitionLog | None = None
        self.log: PartitionLog | RaftLogView
        if raft is None:
            if log is None:
                raise ValueError("a controller without a Raft driver needs its metadata log")
            self._own_log = self.log = log
        else:
            self.log = self.plog if self.plog is not None else RaftLogView(raft)
        self.term = 1
        self.cluster_id: str | None = None
        # The records an empty metadata log starts with (bootstrap.checkpoint's): the active
        # controller writes them when it activates, before any other write (Kafka's
        # QuorumController.ActivationRecordsGenerator).
        self.bootstrap_records: list[mr.MetadataRecord] = []
        self._activation: asyncio.Task[object] | None = None
        # Kafka's controller runs one operation at a time on its event queue: an operation reads
        # the image, decides, writes, and the next one sees its records. `write` may await (a Raft
        # commit), so the operations that read-then-write hold this lock across their write.
        self._operation_lock = asyncio.Lock()

    # -- raft ------------------------------------------------------------------------------

    def on_commit(self, offset: int, item: Entry | Snapshot) -> None:
        """``RaftDriver.on_commit``: one committed entry. A record this controller applied when it
        appended it is confirmed (the same epoch: the same entry); any other is applied now (a
        standby's replay). The node's MetadataLoader gets it first (``wire_metadata``)."""
        if isinstance(item, Snapshot):
            self._load_snapshot(item)
            return
        if self.plog is not None and self.raft is not None:
            self.plog.high_watermark = min(self.raft.high_watermark, self.plog.log_end_offset)
        epoch = self._uncommitted.pop(offset, None)
        if epoch is not None:
            if epoch == item.epoch:
                return
            # a leader that lost its leadership has reverted (on_resign) before another epoch's
            # entry can commit here; this is the net under it
            log.error("the committed entry at offset %d is of epoch %d, not the epoch %d this controller "
                      "applied: reverting to the committed image", offset, item.epoch, epoch)
            self.revert()
            return
        if item.control:
            level = kraft_version_of(item)
            if level is not None:
                self.image.apply_kraft_version(level, offset)
                return
            if self.raft is not None and item.value == self.node_id and item.epoch == self.raft.epoch \
                    and self.raft.is_leader:
                self.term = item.epoch
                self._activate()
            return
        self.image.apply(mr.decode_frame(item.value), offset)

    def _applied_on_append(self, records: Sequence[mr.MetadataRecord]) -> Callable[[int], None]:
        """``on_append`` of a proposal of ``records``: apply them at their offsets, remembered as
        not yet committed (Kafka's active controller replays each record as it appends it)."""
        def apply(last: int) -> None:
            assert self.raft is not None
            epoch = self.raft.epoch
            first = last - len(records) + 1
            for i, record in enumerate(records):
                self._uncommitted[first + i] = epoch
                self.image.apply(record, first + i)
        return apply

    def on_resign(self) -> None:
        """``RaftDriver.on_resign``: this node no longer leads; what it applied but was not
        committed goes (Kafka's QuorumController.renounce), and so does its heartbeat state."""
        if self.cluster_control is not None:
            self.cluster_control.deactivate()
        if self._uncommitted:
            log.info("no longer the active controller: reverting %d uncommitted records", len(self._uncommitted))
            self.revert()

    def revert(self) -> None:
        """Make the image the committed one again (a copy of the node's MetadataLoader image)."""
        self._uncommitted.clear()
        if self.committed is None:
            log.error("no committed image to revert the controller's image to")
            return
        self.image.replace_with(self.committed.image.copy())

    @property
    def uncommitted(self) -> int:
        """How many records the image holds that are not yet committed."""
        return len(self._uncommitted)

    def take_snapshot(self) -> Snapshot | None:
        """Snapshot the committed image now (the node's MetadataLoader writes it)."""
        if self.committed is None:
            raise RuntimeError("a controller without a MetadataLoader has no committed image to snapshot")
        return self.committed.take_snapshot()

    def _load_snapshot(self, snap: Snapshot) -> None:
        """Replace the image by a snapshot's (Kafka's handleLoadSnapshot on a standby: the active
        controller never loads one, its log being the longest)."""
        from kbroker.metadata.snapshot import load_snapshot

        self._uncommitted.clear()
        self.image.replace_with(MetadataImage())
        load_snapshot(snap.data, snap.end_offset, self.image)

    def _activate(self) -> None:
        """This node's leadership is committed: it is the active controller. An empty log gets
        its bootstrap records first (a sole voter writes them synchronously at start)."""
        raft = self.raft
        if self.image.features or not self.bootstrap_records or raft is None or raft.node is None \
                or raft.node.voters == frozenset({self.node_id}):
            return
        self._activation = asyncio.get_running_loop().create_task(self._write_bootstrap())

    async def _write_bootstrap(self) -> None:
        try:
            await self._propose(self.bootstrap_records, None)
            log.info("wrote the bootstrap metadata (%d records)", len(self.bootstrap_records))
        except Exception as exc:  # leadership lost: the next active controller writes them
            log.warning("could not write the bootstrap metadata: %s", exc)

    @property
    def next_write_offset(self) -> int:
        """The offset the next committed record gets (a new broker's epoch)."""
        return self.log.log_end_offset

    @property
    def active_controller_id(self) -> int:
        """The active controller (the Raft leader) as this node knows it, -1 if none."""
        if self.raft is None:
            return self.node_id
        return self.raft.leader_id

    @property
    def commits_synchronously(self) -> bool:
        """Whether `commit` works (the sole voter of a one-node quorum); elsewhere only `write`."""
        return self.raft is None or (self.raft.node is not None and self.raft.node.voters == frozenset({self.node_id}))

    def is_active(self) -> bool:
        """Whether this node is the active controller (the single voter always is; a Raft quorum's
        controller is active while it leads, once it has applied every entry before its epoch's
        start: Kafka's KafkaRaftClient tells a new leader's controller of its leadership only then,
        so that it decides and appends on an image holding all that was committed before).
        Forwarded requests reaching an inactive controller are answered NOT_CONTROLLER."""
        raft = self.raft
        if raft is None:
            return True
        node = raft.node
        return raft.is_leader and node is not None and node.applied_offset >= node.epoch_start_offset

    # -- log -------------------------------------------------------------------------------

    def replay(self) -> int:
        """Apply every record of the controller's own metadata log to its image (and the committed
        image, if any); returns the number applied."""
        plog = self._own_log if self._own_log is not None else self.plog
        if plog is None:
            raise RuntimeError("the metadata log is a Raft log without segments: the Raft driver replays it")
        count = 0
        offset = plog.log_start_offset
        end = plog.log_end_offset
        while offset < end:
            result = plog.read(offset, 4 * 1024 * 1024)
            if not result.slices:
                break
            data = b"".join(s.read() for s in result.slices)
            for _pos, header in iter_batch_headers(data, validate=True):
                batch = memoryview(data)[_pos : _pos + header.size]
                if header.is_control:
                    for rec_offset, level in iter_kraft_versions(batch):
                        if rec_offset >= offset:
                            self.image.apply_kraft_version(level, rec_offset)
                            if self.committed is not None:
                                self.committed.image.apply_kraft_version(level, rec_offset)
                for rec_offset, record in iter_metadata_records(batch, header):
                    if rec_offset >= offset:
                        self.image.apply(record, rec_offset)
                        if self.committed is not None:
                            self.committed.apply(record, rec_offset)
                        count += 1
                offset = header.next_offset
        plog.high_watermark = plog.log_end_offset
        return count

    def build(self, records: Sequence[mr.MetadataRecord]) -> list[bytes] | bytes:
        """The batch `commit` appends for ``records``; pure, so it may run on a worker thread
        (encoding 10,000 partition records takes a fraction of a second)."""
        if self.raft is not None:
            return [mr.encode_frame(r) for r in records]
        now = int(time.time() * 1000)
        return build_batch(
            [Record(key=None, value=mr.encode_frame(r), timestamp=now) for r in records],
            partition_leader_epoch=self.term,
        )

    def commit(self, records: Sequence[mr.MetadataRecord], batch: list[bytes] | bytes | None = None) -> int:
        """Append ``records`` atomically (one batch, ``batch`` if `build` made it already), fsync,
        then apply. Returns the first offset."""
        if not records:
            return self.log.log_end_offset
        if batch is None:
            batch = self.build(records)
        if self.raft is not None:
            if not isinstance(batch, list):
                raise TypeError("a Raft commit takes build()'s framed records, not a record batch")
            try:
                last = self.raft.commit_now(batch, on_append=self._applied_on_append(records))
            except NotLeaderError:
                raise ControllerError(ErrorCode.NOT_CONTROLLER, "This node is not the active controller.") from None
            except Exception:
                if self._uncommitted:
                    self.revert()  # appended, applied, but not committed
                raise
            return last - len(batch) + 1
        own = self._own_log
        assert own is not None  # no Raft driver: the controller's own log
        if not isinstance(batch, bytes):
            raise TypeError("the controller's own log takes build()'s record batch, not framed records")
        info = own.append(batch, leader_epoch=self.term)
        own.high_watermark = own.log_end_offset
        for i, record in enumerate(records):
            self.image.apply(record, info.first_offset + i)
            if self.committed is not None:
                self.committed.apply(record, info.first_offset + i)
        return info.first_offset

    async def write(self, records: Sequence[mr.MetadataRecord], batch: list[bytes] | bytes | None = None) -> int:
        """Commit ``records`` (``batch``: `build`'s encoding of them, if made already) and return the
        first offset once they are committed and applied to the image. Raises ControllerError
        NOT_CONTROLLER on a node that is not the active controller."""
        if self.raft is None or self.raft.node is None or self.raft.node.voters == frozenset({self.node_id}):
            return self.commit(records, batch)
        activation = self._activation
        if activation is not None and not activation.done():
            await asyncio.shield(activation)
        return await self._propose(records, batch)

    async def _propose(self, records: Sequence[mr.MetadataRecord], batch: list[bytes] | bytes | None) -> int:
        assert self.raft is not None
        if not records:
            return self.log.log_end_offset
        if self.raft.is_leader and not self.is_active():
            # a new leader that has not applied what was committed before its epoch: its image
            # would take these records ahead of older ones
            raise ControllerError(ErrorCode.NOT_CONTROLLER, "This node is not the active controller yet.")
        if batch is None:
            batch = self.build(records)
        try:
            last = await self.raft.propose(batch, on_append=self._applied_on_append(records))
        except NotLeaderError:
            raise ControllerError(ErrorCode.NOT_CONTROLLER, "This node is not the active controller.") from None
        return last - len(batch) + 1

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Run one controller operation (read the image, decide, `write`) alone, as Kafka's
        controller event queue does, so that no other operation decides on the image it is
        about to change."""
        async with self._operation_lock:
            yield

    # -- bootstrap and registration ------------------------------------------------------------

    def bootstrap_if_empty(self, records: Sequence[mr.MetadataRecord] | None = None) -> None:
        """Write the bootstrap records (``bootstrap.checkpoint``'s, else Kafka's default levels)
        to an empty metadata log."""
        if self.image.features:
            return
        self.commit(records or [mr.FeatureLevelRecord(name=name, feature_level=level)
                                for name, level in bootstrap_levels().items()])

    def register_broker(self, endpoints: Iterable[tuple[str, str, int] | tuple[str, str, int, int]],
                        rack: str | None = None, log_dirs: Iterable[uuid.UUID] = ()) -> int:
        """The sole voter registers its own broker: ``endpoints`` are (listener, host, port[, security
        protocol id]) (PLAINTEXT when not given); ``log_dirs`` the directory ids of its log.dirs,
        recorded from metadata.version 17 (IBP_3_7_IV2, directory assignment) as cluster control
        records a remote registration's."""
        from kbroker.metadata.directories import MV_DIRECTORY_ASSIGNMENT

        if self.image.features.get(METADATA_VERSION, 0) < MV_DIRECTORY_ASSIGNMENT:
            log_dirs = ()
        epoch = self.log.log_end_offset
        record = mr.RegisterBrokerRecord(
            broker_id=self.node_id,
            incarnation_id=uuid.uuid4(),
            broker_epoch=epoch,
            end_points=[
                mr.RegisterBrokerRecord.BrokerEndpoint(name=e[0], host=e[1], port=e[2],
                                                       security_protocol=e[3] if len(e) > 3 else 0)
                for e in endpoints
            ],
            log_dirs=sorted(log_dirs),
            features=[
                mr.RegisterBrokerRecord.BrokerFeature(
                    name=name, min_supported_version=lo, max_supported_version=hi
                )
                for name, (lo, hi) in SUPPORTED_FEATURES.items()
            ],
            rack=rack,
            fenced=False,
        )
        self.commit([record])
        return epoch

    # -- features -------------------------------------------------------------------------

    def finalized_features(self) -> dict[str, int]:
        """Finalized levels in the controller's image: the FeatureLevelRecords plus kraft.version
        from the Raft layer when above 0."""
        return self.image.finalized_features()

    async def update_features(self, updates: list[tuple[str, int, int]], validate_only: bool,
                        voter_endpoints: Iterable[tuple[str, str, int]] = (), directory_id: uuid.UUID | None = None
                        ) -> None:
        """Apply (feature, level, upgrade type) updates atomically as FeatureLevelRecords, or raise
        FeatureUpdateError (features.py) for the first one Kafka would refuse; nothing is written then.
        A kraft.version upgrade is written as Kafka's Raft layer writes it (see upgrade_kraft_version),
        with this voter's endpoints and directory id."""
        from kbroker.controller.feature_support import cluster_support, static_quorum_ids

        planned = plan_feature_updates(self.node_id, self.finalized_features(), updates,
                                       cluster_support(self.image, self.node_id, static_quorum_ids(self.raft)))
        upgrades = [r for r in planned if isinstance(r, KRaftVersionUpgrade)]
        if not self.commits_synchronously and upgrades and self.raft is not None:
            # a quorum of several voters: the Raft layer upgrades with the voters it has heard from
            # (Kafka's LeaderState.maybeAppendUpgradedKRaftVersion; kbroker/raft/kraft_upgrade.py)
            from kbroker.raft.kraft_upgrade import KRaftUpgradeError, local_voter, upgrade

            local = local_voter(self.raft, directory_id if directory_id != uuid.UUID(int=0) else None)
            try:
                await upgrade(self.raft, upgrades[0].level, local, validate_only=True)
                if not validate_only:
                    others = [r for r in planned if not isinstance(r, KRaftVersionUpgrade)]
                    if others:
                        await self.write(others)
                    await upgrade(self.raft, upgrades[0].level, local, validate_only=False)
            except KRaftUpgradeError as exc:
                raise FeatureUpdateError(exc.message, ErrorCode(exc.code)) from None
            return
        if validate_only:
            return
        records = [r for r in planned if not isinstance(r, KRaftVersionUpgrade)]
        for r in records:
            log.info("Finalizing feature %s at level %d", r.name, r.feature_level)
        await self.write(records)
        for planned_record in planned:
            if isinstance(planned_record, KRaftVersionUpgrade):
                self.upgrade_kraft_version(planned_record.level, voter_endpoints, directory_id or uuid.UUID(int=0))

    def upgrade_kraft_version(self, level: int, endpoints: Iterable[tuple[str, str, int]],
                              directory_id: uuid.UUID) -> None:
        """One control batch holding a KRaftVersionRecord and the VotersRecord of this single voter,
        as Kafka's LeaderState appends them when kraft.version is upgraded (static to dynamic quorum)."""
        now = int(time.time() * 1000)
        Voter = VotersRecord.Voter
        voters = VotersRecord(version=0, voters=[Voter(
            voter_id=self.node_id, voter_directory_id=directory_id,
            endpoints=[Voter.Endpoint(name=name, host=host, port=port) for name, host, port in endpoints],
            kraft_version_feature=Voter.KRaftVersionFeature(min_supported_version=SUPPORTED_FEATURES[KRAFT_VERSION][0],
                                                            max_supported_version=SUPPORTED_FEATURES[KRAFT_VERSION][1]),
        )])
        if self.raft is not None:
            # control entries of the Raft log; on_commit applies the KRaftVersionRecord
            entries = [ControlRecord(ControlType.KRAFT_VERSION,
                                     bytes(KRaftVersionRecord(version=0, kraft_version=level).encode(0))),
                       ControlRecord(ControlType.KRAFT_VOTERS, bytes(voters.encode(0)))]
            try:
                self.raft.commit_now(entries, control=True)
            except NotLeaderError:
                raise ControllerError(ErrorCode.NOT_CONTROLLER, "This node is not the active controller.") from None
            log.info("Upgraded kraft.version to %d", level)
            return
        batch = build_batch([
            Record(key=CONTROL_KEY.pack(0, ControlType.KRAFT_VERSION),
                   value=bytes(KRaftVersionRecord(version=0, kraft_version=level).encode(0)), timestamp=now),
            Record(key=CONTROL_KEY.pack(0, ControlType.KRAFT_VOTERS), value=bytes(voters.encode(0)), timestamp=now),
        ], control=True, partition_leader_epoch=self.term)
        own = self._own_log
        assert own is not None  # no Raft driver: the controller's own log
        info = own.append(batch, leader_epoch=self.term)
        own.high_watermark = own.log_end_offset
        log.info("Upgraded kraft.version to %d", level)
        self.image.apply_kraft_version(level, info.first_offset)
        if self.committed is not None:
            self.committed.image.apply_kraft_version(level, info.first_offset)

    # -- topics ---------------------------------------------------------------------------

    def plan_topic(self, topic: NewTopic, default_partitions: int, default_replication: int) -> list[mr.MetadataRecord]:
        """Validate ``topic`` and return the records that create it (raises ControllerError)."""
        return plan_topic(self.image, topic, default_partitions, default_replication)

    def delete_topic_records(self, topic_id: uuid.UUID) -> list[mr.RemoveTopicRecord]:
        return [mr.RemoveTopicRecord(topic_id=topic_id)]

    def plan_partitions(self, name: str, count: int, assignments: list[list[int]] | None) -> list[mr.PartitionRecord]:
        """Validate adding partitions to ``name`` up to ``count`` (Kafka's checks, in Kafka's order:
        ``validate_create_partitions``) and return the PartitionRecords; raises ControllerError."""
        return plan_partitions(self.image, name, count, assignments)

    def config_records(self, resource_type: int, resource_name: str, changes: dict[str, str | None]
                       ) -> list[mr.ConfigRecord]:
        assert resource_type in (RESOURCE_TOPIC, RESOURCE_BROKER, RESOURCE_GROUP)
        return [
            mr.ConfigRecord(resource_type=resource_type, resource_name=resource_name, name=k, value=v)
            for k, v in sorted(changes.items())
        ]

    async def allocate_producer_ids(self, broker_id: int, broker_epoch: int,
                                    count: int = PRODUCER_ID_BLOCK_SIZE) -> tuple[int, int]:
        """Reserve a block of producer ids durably for ``broker_id``; returns (first id, block size).

        As Kafka's ProducerIdControlManager: a broker that is not registered, or names an epoch
        other than its registration's, is refused (STALE_BROKER_EPOCH) and nothing is written."""
        async with self.exclusive():
            broker = self.image.brokers.get(broker_id)
            if broker is None:
                raise ControllerError(ErrorCode.STALE_BROKER_EPOCH,
                                      f"No broker registration found for broker id {broker_id}")
            if broker.epoch != broker_epoch:
                raise ControllerError(ErrorCode.STALE_BROKER_EPOCH,
                                      f"Expected broker epoch {broker.epoch}, but got broker epoch {broker_epoch}")
            start = self.image.next_producer_id
            await self.write([
                mr.ProducerIdsRecord(broker_id=broker_id, broker_epoch=broker_epoch, next_producer_id=start + count)
            ])
            return start, count


CONTROL_KEY = struct.Struct(">hh")  # control record key: version, type


def iter_kraft_versions(batch: memoryview) -> Iterator[tuple[int, int]]:
    """Yield (offset, kraft.version level) for each KRaftVersionRecord of one control batch."""
    for record in iter_records(batch):
        if parse_control_record(record).type == ControlType.KRAFT_VERSION and record.value is not None:
            value = memoryview(record.value)
            assert record.offset is not None  # a decoded record carries its offset
            yield record.offset, KRaftVersionRecord.decode(value, 0).kraft_version


def iter_metadata_records(batch: memoryview, header: BatchHeader) -> Iterator[tuple[int, mr.MetadataRecord]]:
    """Yield (offset, record) for each metadata record in one batch."""
    if header.is_control:
        return
    for record in iter_records(batch):
        if record.value is None:
            continue
        assert record.offset is not None  # a decoded record carries its offset
        yield record.offset, mr.decode_frame(record.value)
