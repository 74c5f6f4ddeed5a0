"""Replica placement for CreateTopics and CreatePartitions, as Kafka 4.4's ``StripedReplicaPlacer``
(metadata/.../placement/) and the partition registrations ``ReplicationControlManager`` builds from
its placements.

CreateTopics and CreatePartitions (``topic_plans.plan_topic`` and ``plan_partitions``, Kafka's
ReplicationControlManager.createTopic and createPartitions) place every partition without a manual
assignment here; this is kbroker's only replica placer.

Brokers are grouped by rack (no rack is a rack of its own, sorted first). Each partition's first
replica (its leader) comes from the next rack in turn that has an unfenced broker; the other
replicas stripe across the following racks, unfenced brokers first, a fenced broker only when a
rack has no unfenced one left this round. Brokers in controlled shutdown are not used, nor brokers
whose log dirs are all cordoned (KIP-1066). Racks and
brokers start at random offsets and are reshuffled every ``unfenced brokers`` partitions, so
leaders and followers spread evenly, as in Kafka (whose random source differs: the same seed
does not give Kafka's placement).

The ISR of a new partition is its replicas that are active (unfenced, not shutting down) and the
leader the first of them; leader and partition epochs start at 0; each replica's directory is its
broker's default dir (``directories.new_partition_directories``).
"""

from __future__ import annotations

import random as _random
import uuid

from kbroker.controller.replication_control import elr_enabled, is_active
from kbroker.metadata.directories import has_uncordoned_dirs, new_partition_directories
from kbroker.metadata.image import MetadataImage
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.metadata_records import PartitionRecord


class PlacementError(Exception):
    """INVALID_REPLICATION_FACTOR (or INVALID_REPLICA_ASSIGNMENT) with Kafka's message, ready for
    a CreateTopics/CreatePartitions result."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _BrokerList:
    def __init__(self) -> None:
        self.brokers: list[int] = []
        self.index = 0
        self.offset = 0
        self.epoch = 0

    def initialize(self, rng: _random.Random) -> None:
        if self.brokers:
            self.brokers.sort()
            self.offset = rng.randrange(len(self.brokers))

    def shuffle(self, rng: _random.Random) -> None:
        rng.shuffle(self.brokers)

    def next(self, epoch: int) -> int:
        if not self.brokers:
            return -1
        if self.epoch != epoch:
            self.epoch = epoch
            self.index = 0
            self.offset = (self.offset + 1) % len(self.brokers)
        if self.index >= len(self.brokers):
            return -1
        broker = self.brokers[(self.index + self.offset) % len(self.brokers)]
        self.index += 1
        return broker


class _Rack:
    def __init__(self) -> None:
        self.fenced = _BrokerList()
        self.unfenced = _BrokerList()

    def next(self, epoch: int) -> int:
        result = self.unfenced.next(epoch)
        return result if result >= 0 else self.fenced.next(epoch)


def _too_few(rf: int, total: int) -> str:
    return (f"The target replication factor of {rf} cannot be reached because only {total} broker(s) are "
            "registered or some brokers have all their log directories cordoned.")


ALL_FENCED = "All brokers are currently fenced, or have all their log directories cordoned."


class _RackList:
    def __init__(self, rng: _random.Random, brokers: list[tuple[int, str | None, bool]]) -> None:
        self.rng = rng
        self.racks: dict[str | None, _Rack] = {}
        self.rack_names: list[str | None] = []
        self.total = 0
        self.unfenced = 0
        for broker_id, rack_name, fenced in brokers:
            rack = self.racks.get(rack_name)
            if rack is None:
                rack = self.racks[rack_name] = _Rack()
                self.rack_names.append(rack_name)
            if fenced:
                rack.fenced.brokers.append(broker_id)
            else:
                rack.unfenced.brokers.append(broker_id)
                self.unfenced += 1
            self.total += 1
        for rack in self.racks.values():
            rack.fenced.initialize(rng)
            rack.unfenced.initialize(rng)
        self.rack_names.sort(key=lambda n: (n is not None, n or ""))  # no rack first
        self.epoch = 0
        self.offset = rng.randrange(len(self.rack_names)) if self.rack_names else 0

    def _shuffle(self) -> None:
        self.rng.shuffle(self.rack_names)
        for rack in self.racks.values():
            rack.fenced.shuffle(self.rng)
            rack.unfenced.shuffle(self.rng)

    def place(self, rf: int) -> list[int]:
        if self.epoch == self.unfenced and self.unfenced > 1:
            self._shuffle()
            self.epoch = 0
        if self.offset == len(self.rack_names):
            self.offset = 0
        out: list[int] = []
        first_rack = self.offset
        while True:
            result = self.racks[self.rack_names[first_rack]].unfenced.next(self.epoch)
            if result >= 0:
                out.append(result)
                break
            first_rack = (first_rack + 1) % len(self.rack_names)
        rack_index = self.offset
        for _ in range(1, rf):
            result = -1
            while result < 0:
                if rack_index == first_rack:
                    first_rack = -1
                else:
                    result = self.racks[self.rack_names[rack_index]].next(self.epoch)
                rack_index = (rack_index + 1) % len(self.rack_names)
            out.append(result)
        self.epoch += 1
        self.offset += 1
        return out


def usable_brokers(image: MetadataImage) -> list[tuple[int, str | None, bool]]:
    """(id, rack, fenced) of the brokers placement may use (Kafka's BrokerHeartbeatManager.
    usableBrokers): registered, not shutting down, and with a log dir not cordoned."""
    return [(b, reg.rack, reg.fenced) for b, reg in sorted(image.brokers.items())
            if not reg.in_controlled_shutdown and has_uncordoned_dirs(reg)]


def place_replicas(image: MetadataImage, num_partitions: int, replication_factor: int,
                   rng: _random.Random | None = None) -> list[list[int]]:
    """Replica lists for ``num_partitions`` new partitions (Kafka's StripedReplicaPlacer.place),
    or PlacementError(INVALID_REPLICATION_FACTOR) with the placer's message (CreateTopics prefixes
    it with "Unable to replicate the partition N time(s): ", CreatePartitions answers it as is)."""
    rng = rng or _random.Random()
    racks = _RackList(rng, usable_brokers(image))

    def fail(reason: str) -> PlacementError:
        return PlacementError(ErrorCode.INVALID_REPLICATION_FACTOR, reason)

    if replication_factor <= 0:
        raise fail(f"Invalid replication factor {replication_factor}: the replication factor must be positive.")
    if racks.unfenced == 0:
        raise fail(ALL_FENCED)
    if replication_factor > racks.total:
        raise fail(_too_few(replication_factor, racks.total))
    return [racks.place(replication_factor) for _ in range(num_partitions)]


def new_partition_record(image: MetadataImage, topic_id: uuid.UUID, partition_id: int, replicas: list[int],
                         isr: list[int]) -> PartitionRecord:
    """The PartitionRecord of a new partition (ReplicationControlManager.buildPartitionRegistration
    and toRecord): leader the first of ``isr``, epochs 0, each replica's default dir, empty ELR
    lists when eligible leader replicas are enabled."""
    elr = elr_enabled(image)
    return PartitionRecord(
        partition_id=partition_id, topic_id=topic_id, replicas=list(replicas), isr=list(isr),
        leader=isr[0], leader_epoch=0, partition_epoch=0,
        directories=new_partition_directories(image, replicas),
        eligible_leader_replicas=[] if elr else None, last_known_elr=[] if elr else None,
    )


def partition_records(image: MetadataImage, topic_id: uuid.UUID, start_partition: int,
                      assignments: list[list[int]]) -> list[PartitionRecord]:
    """PartitionRecords for new partitions placed on ``assignments``: the ISR is the active
    replicas, the leader the first of them (ReplicationControlManager.buildPartitionRegistration).
    Raises PlacementError(INVALID_REPLICATION_FACTOR) when a partition has no active replica."""
    records: list[PartitionRecord] = []
    for i, replicas in enumerate(assignments):
        isr = [r for r in replicas if is_active(image, r)]
        if not isr:
            raise PlacementError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {len(replicas)} time(s): All brokers are currently fenced "
                "or in controlled shutdown.")
        records.append(new_partition_record(image, topic_id, start_partition + i, replicas, isr))
    return records
