"""Log directory ids (KIP-858, JBOD in KRaft), as Kafka's ``DirectoryId`` and the directory reads
of ``BrokerRegistration`` / ``PartitionRegistration``.

Each log dir has a ``directory.id`` (meta.properties); a broker registers its dirs' ids
(``LogDirs``), a partition records the dir of each replica (``Directories``). Ids whose high 64 bits
are zero and low bits below 100 are reserved: UNASSIGNED (0, the broker has not said yet), LOST
(1), MIGRATING (2). A replica counts as in an online dir when its dir is UNASSIGNED or MIGRATING,
when the broker registered no dirs (before metadata.version 17), or when its dir is among the
broker's online ``LogDirs`` (the controller drops offline dirs from that list,
``dir_control.handle_directories_offline``).

New replicas (CreateTopics, CreatePartitions, a reassignment's added replicas) get the broker's
default dir (``default_dir``, Kafka's ClusterControlManager.defaultDir): its only log dir when it
registered one, MIGRATING when it registered none, UNASSIGNED when it registered several (the broker
then says where the replica is with AssignReplicasToDirs). Below metadata.version 17 partitions
record no directories (PartitionRecord v0).

KIP-1066 (metadata.version 30, IBP_4_3_IV0): a broker reports its cordoned dirs
(``cordoned.log.dirs``) in its heartbeats; a broker whose registered dirs are all cordoned gets no
new replica (``has_uncordoned_dirs``, Kafka's BrokerRegistration.hasUncordonedDirs).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from kbroker.metadata.features import METADATA_VERSION
from kbroker.metadata.image import DIR_UNASSIGNED, BrokerRegistration, MetadataImage, PartitionState

# MetadataVersion.IBP_3_7_IV2: registrations carry log directories, partitions their replicas' dirs.
MV_DIRECTORY_ASSIGNMENT = 17

# MetadataVersion.IBP_4_3_IV0: brokers report their cordoned log dirs (KIP-1066).
MV_CORDONED_LOG_DIRS = 30

DIR_LOST = uuid.UUID(int=1)
DIR_MIGRATING = uuid.UUID(int=2)


def is_online(directory: uuid.UUID, online_dirs: list[uuid.UUID]) -> bool:
    """Kafka's DirectoryId.isOnline."""
    if directory in (DIR_UNASSIGNED, DIR_MIGRATING):
        return True
    if directory == DIR_LOST:
        return False
    if not online_dirs:  # a registration from before directory assignment (KAFKA-16162)
        return True
    return directory in online_dirs


def replica_directory(p: PartitionState, broker_id: int) -> uuid.UUID:
    """Kafka's PartitionRegistration.directory: the dir of ``broker_id``'s replica of ``p``
    (MIGRATING when the partition records no directories)."""
    if not p.directories or len(p.directories) != len(p.replicas):
        return DIR_MIGRATING
    try:
        return p.directories[p.replicas.index(broker_id)]
    except ValueError:
        return DIR_UNASSIGNED


def has_online_dir(image: MetadataImage, broker_id: int, p: PartitionState) -> bool:
    """Whether ``broker_id``'s replica of ``p`` lives in one of its online log dirs
    (ClusterControlManager.hasOnlineDir)."""
    reg = image.brokers.get(broker_id)
    return reg is not None and is_online(replica_directory(p, broker_id), reg.log_dirs)


def directory_assignment_supported(image: MetadataImage) -> bool:
    """MetadataVersion.isDirectoryAssignmentSupported for the image's finalized metadata.version."""
    return image.features.get(METADATA_VERSION, 0) >= MV_DIRECTORY_ASSIGNMENT


def default_dir(image: MetadataImage, broker_id: int) -> uuid.UUID:
    """The dir a new replica on ``broker_id`` is recorded in (ClusterControlManager.defaultDir):
    the broker's only registered dir, MIGRATING when it registered none, UNASSIGNED when it
    registered several or is not registered."""
    reg = image.brokers.get(broker_id)
    if reg is None:
        return DIR_UNASSIGNED
    if not reg.log_dirs:
        return DIR_MIGRATING
    if len(reg.log_dirs) == 1:
        return reg.log_dirs[0]
    return DIR_UNASSIGNED


def default_dir_provider(image: MetadataImage) -> Callable[[int], uuid.UUID] | None:
    """``default_dir`` on ``image`` when its metadata.version records directories, else None
    (the controller's KRaftClusterDescriber.defaultDir)."""
    if not directory_assignment_supported(image):
        return None
    return lambda broker_id: default_dir(image, broker_id)


def new_partition_directories(image: MetadataImage, replicas: Sequence[int]) -> list[uuid.UUID]:
    """``Directories`` of a new partition's PartitionRecord: each replica's default dir, or none
    below metadata.version 17 (ReplicationControlManager.buildPartitionRegistration, toRecord)."""
    if not directory_assignment_supported(image):
        return []
    return [default_dir(image, b) for b in replicas]


def cordoned_dirs_supported(image: MetadataImage) -> bool:
    """MetadataVersion.isCordonedLogDirsSupported for the image's finalized metadata.version."""
    return image.features.get(METADATA_VERSION, 0) >= MV_CORDONED_LOG_DIRS


def has_uncordoned_dirs(reg: BrokerRegistration) -> bool:
    """Kafka's BrokerRegistration.hasUncordonedDirs: true unless every registered dir is
    cordoned (true when the broker registered no dirs or has not reported its cordoned ones)."""
    if not reg.log_dirs or reg.cordoned_log_dirs is None:
        return True
    return any(d not in reg.cordoned_log_dirs for d in reg.log_dirs)
