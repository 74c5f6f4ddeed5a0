"""The node's image of the committed metadata log (Kafka's ``MetadataLoader``), and its snapshots.

Every node (broker, controller or both) has one. It applies a record only once the Raft layer
delivers it committed (``RaftDriver.on_commit``), whole proposals at a time, and a snapshot by
replacing its image; its listeners (the broker's partitions, SCRAM credentials, ACLs, quotas,
delegation tokens, ...) are Kafka's metadata publishers. It is never shared with the controller,
whose image (``QuorumController.image``) runs ahead of it on the active controller by the records
appended but not yet committed.

It also takes the node's snapshots (Kafka's ``SnapshotGenerator``, a publisher of the loader):
from its image, so that a snapshot holds committed records only.
"""

from __future__ import annotations

import logging
import time

from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import MetadataImage
from kbroker.raft.io import RaftDriver
from kbroker.raft.log import ControlRecord, Entry, Snapshot
from kbroker_protocol.messages.data.kraft_version_record import KRaftVersionRecord
from kbroker_protocol.records import ControlType

log = logging.getLogger(__name__)


def kraft_version_of(item: Entry) -> int | None:
    """The kraft.version a committed control entry sets (a KRaftVersionRecord), else None."""
    value = item.value
    if isinstance(value, ControlRecord) and value.type == ControlType.KRAFT_VERSION:
        return KRaftVersionRecord.decode(memoryview(value.value), 0).kraft_version
    return None


class MetadataLoader:
    """The committed image (``image``), fed by ``on_commit``; see the module's docstring."""

    def __init__(self, image: MetadataImage | None = None) -> None:
        self.image = MetadataImage() if image is None else image
        self.raft: RaftDriver | None = None  # set when the node's Raft driver is built (snapshots)
        # Snapshots: once this many record bytes were committed since the last one, or this long
        # after the first record since it (metadata.log.max.record.bytes.between.snapshots /
        # metadata.log.max.snapshot.interval.ms)
        self.snapshot_max_bytes = 20 * 1024 * 1024
        self.snapshot_max_interval_ms = 3_600_000
        self._bytes_since_snapshot = 0
        self._first_since_snapshot: float | None = None

    def on_commit(self, offset: int, item: Entry | Snapshot) -> None:
        """``RaftDriver.on_commit``: apply one committed entry (or load a snapshot)."""
        if isinstance(item, Snapshot):
            self.load_snapshot(item)
            return
        if item.control:
            level = kraft_version_of(item)
            if level is not None:
                self.image.apply_kraft_version(level, offset)
            return
        self.image.apply(mr.decode_frame(item.value), offset)
        # RaftNode.poll_committed delivers whole proposals only, and the driver applies them in one
        # step of the event loop: no other task sees part of one. A snapshot is taken only at the
        # end of a proposal (Kafka snapshots at batch boundaries).
        if self.raft is not None:
            self._bytes_since_snapshot += len(item.value)
            if self._first_since_snapshot is None:
                self._first_since_snapshot = time.monotonic()
            if item.batch_end and (self._bytes_since_snapshot >= self.snapshot_max_bytes or (
                    self.snapshot_max_interval_ms > 0
                    and (time.monotonic() - self._first_since_snapshot) * 1000 >= self.snapshot_max_interval_ms)):
                self.take_snapshot()

    def apply(self, record: mr.MetadataRecord, offset: int) -> None:
        """A record committed on a controller's own log (no Raft driver: appended and fsynced)."""
        self.image.apply(record, offset)

    def take_snapshot(self) -> Snapshot | None:
        """Write the committed image as a snapshot of the log up to it (the log drops the prefix;
        a replica that needs it fetches the snapshot instead). None when there is nothing new."""
        from kbroker.metadata.snapshot import image_to_snapshot

        raft = self.raft
        assert raft is not None
        end = self.image.offset + 1
        if end <= raft.log.start_offset:
            return None
        data = image_to_snapshot(self.image)
        if raft.node is not None:
            # a dynamic quorum's voter set at that point (KIP-853: a snapshot holds it, as Kafka's)
            data += [c for c in raft.node.voters_control_at(end) if c.type == ControlType.KRAFT_VOTERS]
        try:
            snap = raft.snapshot(end, data)
        except (ValueError, OSError) as exc:
            log.warning("could not write a metadata snapshot at offset %d: %s", end, exc)
            return None
        self._bytes_since_snapshot = 0
        self._first_since_snapshot = None
        log.info("wrote the metadata snapshot ending at offset %d (epoch %d)", snap.end_offset, snap.epoch)
        return snap

    def load_snapshot(self, snap: Snapshot) -> None:
        """Replace the image by a snapshot's (Kafka's handleLoadSnapshot): after a restart whose
        log starts at a snapshot, or a snapshot fetched from the leader while running. The image's
        listeners first get the records that remove what the snapshot no longer has
        (`snapshot_removals`: topics, configs, SCRAM credentials, ACLs, features, brokers), then
        the image is emptied and the snapshot's records applied to it, so that every listener
        ends in the snapshot's state (Kafka's MetadataDelta to the publishers)."""
        from kbroker.metadata.snapshot import load_snapshot, snapshot_removals

        new = load_snapshot(snap.data, snap.end_offset)
        removals = snapshot_removals(self.image, new)
        for record in removals:
            self.image.apply(record, snap.end_offset - 1)
        if removals:
            log.info("the metadata snapshot ending at offset %d removes %d items from the image",
                     snap.end_offset, len(removals))
        self.image.replace_with(MetadataImage())
        load_snapshot(snap.data, snap.end_offset, self.image)
        self._bytes_since_snapshot = 0
        self._first_since_snapshot = None
        log.info("loaded the metadata snapshot ending at offset %d (epoch %d)", snap.end_offset, snap.epoch)
