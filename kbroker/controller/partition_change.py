"""One partition's next state, as Kafka 4.4's ``PartitionChangeBuilder`` (metadata/.../controller/),
sans IO: the builder reads a :class:`PartitionState` and the targets set on it and returns the
``PartitionChangeRecord`` that moves the partition there, or None when nothing changes. The
record becomes partition state in one place, :func:`kbroker.metadata.image.apply_partition_change`
(the image applies it; :func:`merge` previews it on a copy).

Epoch rules, eligible leader replicas and reassignment completion: see
``kbroker/controller/replication_control.py``, which drives the builder.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable, Iterable

from kbroker.metadata.directories import replica_directory
from kbroker.metadata.image import (
    LEADER_RECOVERY_UNCHANGED,
    LEADER_UNCHANGED,
    NO_LEADER,
    PartitionState,
    apply_partition_change,
    copy_partition,
)
from kbroker_protocol.messages.metadata_records import PartitionChangeRecord

log = logging.getLogger(__name__)

RECOVERED, RECOVERING = 0, 1
LEADER_RECOVERY_NO_CHANGE = LEADER_RECOVERY_UNCHANGED


class Election(enum.Enum):
    PREFERRED = 0  # elect the first replica if it may lead, else keep the partition online
    ONLINE = 1  # keep the partition online from the ISR (or ELR)
    UNCLEAN = 2  # as ONLINE, then any live replica (data loss possible)


def _contains_all(a: Iterable[int], b: Iterable[int]) -> bool:
    return set(b) <= set(a)


class PartitionChangeBuilder:
    """One partition's next state from its current one and the targets set on it; ``build`` gives
    the PartitionChangeRecord or None when nothing changes. Kafka's PartitionChangeBuilder."""

    def __init__(self, partition: PartitionState, topic_id: uuid.UUID, partition_id: int,
                 is_acceptable_leader: Callable[[int], bool], min_isr: int, elr_enabled: bool,
                 default_dir: Callable[[int], uuid.UUID] | None = None) -> None:
        """``default_dir``: the dir of a replica the partition does not have yet (Kafka's
        DefaultDirProvider, ``directories.default_dir_provider``); None below metadata.version 17,
        where partitions record no directories."""
        self.partition = partition
        self.default_dir = default_dir
        self.topic_id = topic_id
        self.partition_id = partition_id
        self.is_acceptable_leader = is_acceptable_leader
        self.min_isr = min_isr
        self.elr_enabled = elr_enabled
        self.target_isr = list(partition.isr)
        self.target_replicas = list(partition.replicas)
        self.target_removing = list(partition.removing_replicas)
        self.target_adding = list(partition.adding_replicas)
        self.target_elr = list(partition.elr)
        self.target_last_known_elr = list(partition.last_known_elr)
        self.target_leader_recovery_state = partition.leader_recovery_state
        self.unclean_shutdown_replicas: list[int] | None = None
        self.election = Election.ONLINE
        self.use_last_known_leader = True

    # -- election -------------------------------------------------------------------------

    def _valid_new_leader(self, replica: int) -> bool:
        in_isr = replica in self.target_isr or (not self.target_isr and replica in self.target_elr)
        return in_isr and self.is_acceptable_leader(replica)

    def _can_elect_last_known_leader(self) -> bool:
        if not self.elr_enabled or not self.use_last_known_leader:
            return False
        if self.target_elr or self.target_isr:
            return False
        if len(self.partition.last_known_elr) != 1:
            return False
        return self.is_acceptable_leader(self.partition.last_known_elr[0])

    def elect_leader(self) -> tuple[int, bool]:
        """(node, unclean) as Kafka's electLeader."""
        p = self.partition
        if self.election == Election.PREFERRED:
            preferred = self.target_replicas[0]
            if self._valid_new_leader(preferred):
                return preferred, False
            if self._valid_new_leader(p.leader):
                return p.leader, False
            for r in self.target_replicas[1:]:
                if self._valid_new_leader(r):
                    return r, False
            if self._can_elect_last_known_leader():
                return p.last_known_elr[0], True
            return NO_LEADER, False
        if self._valid_new_leader(p.leader):
            return p.leader, False
        for r in self.target_replicas:
            if self._valid_new_leader(r):
                return r, False
        if self._can_elect_last_known_leader():
            return p.last_known_elr[0], True
        if self.election == Election.UNCLEAN:
            for r in self.target_replicas:
                if self.is_acceptable_leader(r):
                    return r, True
        return NO_LEADER, False

    def _try_election(self, record: PartitionChangeRecord) -> None:
        node, unclean = self.elect_leader()
        if node == self.partition.leader:
            return
        if node in self.target_elr:
            self.target_isr = [node]
            self.target_elr = [r for r in self.target_elr if r != node]
            log.info("Setting new leader for topicId %s, partition %d to %d using ELR",
                     self.topic_id, self.partition_id, node)
        elif unclean:
            log.info("Setting new leader for topicId %s, partition %d to %d using an unclean election",
                     self.topic_id, self.partition_id, node)
        record.leader = node
        if unclean:
            # An unclean election makes the new leader the whole ISR: data loss is possible.
            record.isr = [node]
            if self.partition.leader_recovery_state != RECOVERING:
                record.leader_recovery_state = RECOVERING

    # -- ELR ------------------------------------------------------------------------------

    def _populate_target_elr(self) -> None:
        if not self.elr_enabled:
            return
        if len(self.target_isr) >= self.min_isr:
            self.target_elr = []
            self.target_last_known_elr = []
            return
        isr = set(self.target_isr)
        unclean = set(self.unclean_shutdown_replicas or ())
        # Kafka unions into a HashSet; sorted keeps the records deterministic.
        candidates = set(self.target_elr) | set(self.partition.isr)
        self.target_elr = sorted(r for r in candidates if r not in isr and r not in unclean)
        candidates |= set(self.target_last_known_elr)
        self.target_last_known_elr = sorted(r for r in candidates if r not in isr and r not in self.target_elr)

    def _update_record_elr(self, record: PartitionChangeRecord) -> None:
        clean = record.isr is None
        if not clean or not self.elr_enabled:
            self.target_elr = []
            self.target_last_known_elr = []
        if self.target_elr != list(self.partition.elr):
            record.eligible_leader_replicas = list(self.target_elr)
        p = self.partition
        if self.use_last_known_leader and len(p.last_known_elr) == 1 and (
                record.leader == NO_LEADER or (record.leader == LEADER_UNCHANGED and p.leader == NO_LEADER)):
            self.target_last_known_elr = list(p.last_known_elr)
        if self.use_last_known_leader:
            return
        if self.target_last_known_elr != list(p.last_known_elr):
            record.last_known_elr = list(self.target_last_known_elr)

    def _update_last_known_leader(self, record: PartitionChangeRecord) -> None:
        if not self.use_last_known_leader or not self.elr_enabled:
            return
        p = self.partition
        if record.leader == NO_LEADER and not p.last_known_elr:
            record.last_known_elr = [p.leader]  # the first time the partition becomes leaderless
        elif record.leader >= 0 and p.last_known_elr:
            record.last_known_elr = []

    # -- reassignment ---------------------------------------------------------------------

    def _complete_reassignment_if_needed(self) -> None:
        """Kafka's PartitionReassignmentReplicas.maybeCompleteReassignment: once every adding
        replica is in the target ISR, the removing replicas leave the replicas and the ISR."""
        removing, adding = self.target_removing, self.target_adding
        if not removing and not adding:
            return
        new_isr = list(self.target_isr)
        new_replicas = list(self.target_replicas)
        if removing:
            new_isr = [r for r in self.target_isr if r not in removing]
            if not new_isr:
                return
            new_replicas = [r for r in self.target_replicas if r not in removing]
            if not new_replicas:
                return
        if not _contains_all(new_isr, adding):
            return
        # Shrinking the replication factor waits for every remaining replica to be in sync.
        if len(adding) < len(removing) and not _contains_all(new_isr, new_replicas):
            return
        self.target_isr = new_isr
        self.target_replicas = new_replicas
        self.target_removing = []
        self.target_adding = []

    # -- build ----------------------------------------------------------------------------

    def _set_directories(self, record: PartitionChangeRecord) -> None:
        """Kafka's setAssignmentChanges: the target replicas keep their dirs, a new one gets its
        broker's default dir; the record carries them when they differ from the partition's."""
        if self.default_dir is None or not self.target_replicas:
            return
        current = _current_directories(self.partition)
        kept = dict(zip(self.partition.replicas, current, strict=False))
        target = [kept[r] if r in kept else self.default_dir(r) for r in self.target_replicas]
        if target != current:
            record.directories = target

    def build(self) -> PartitionChangeRecord | None:
        p = self.partition
        record = PartitionChangeRecord(topic_id=self.topic_id, partition_id=self.partition_id)
        self._complete_reassignment_if_needed()
        self._populate_target_elr()
        self._try_election(record)
        # A reassignment dropping a replica bumps the leader epoch (leader field set, unchanged).
        if record.leader == LEADER_UNCHANGED and not _contains_all(self.target_replicas, p.replicas):
            record.leader = p.leader
        self._update_record_elr(record)
        if record.isr is None and (self.target_isr or self.elr_enabled) and self.target_isr != list(p.isr):
            record.isr = list(self.target_isr)
        # No leader epoch bump on an ISR shrink: only metadata.version < 3.6-IV0 did (KAFKA-15021),
        # and kbroker supports 3.3-IV3 at the oldest only for reading logs; new records are >= 3.6.
        self._update_last_known_leader(record)
        self._set_directories(record)
        if self.target_replicas and self.target_replicas != list(p.replicas):
            record.replicas = list(self.target_replicas)
        if self.target_removing != list(p.removing_replicas):
            record.removing_replicas = list(self.target_removing)
        if self.target_adding != list(p.adding_replicas):
            record.adding_replicas = list(self.target_adding)
        if self.target_leader_recovery_state != p.leader_recovery_state:
            record.leader_recovery_state = self.target_leader_recovery_state
        if is_no_op(record):
            return None
        return record


def _current_directories(p: PartitionState) -> list[uuid.UUID]:
    return [replica_directory(p, r) for r in p.replicas]


def is_no_op(record: PartitionChangeRecord) -> bool:
    return (record.isr is None and record.eligible_leader_replicas is None and record.last_known_elr is None
            and record.leader == LEADER_UNCHANGED and record.replicas is None
            and record.removing_replicas is None and record.adding_replicas is None
            and record.leader_recovery_state == LEADER_RECOVERY_NO_CHANGE and record.directories is None)


def merge(p: PartitionState, r: PartitionChangeRecord) -> PartitionState:
    """The partition after ``r``, as the image will apply it (PartitionRegistration.merge)."""
    out = copy_partition(p)
    apply_partition_change(out, r)
    return out
