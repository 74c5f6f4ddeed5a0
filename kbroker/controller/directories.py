"""Log directory ids (KIP-858, JBOD in KRaft), as Kafka's ``DirectoryId`` and the directory reads
of ``BrokerRegistration`` / ``PartitionRegistration``.

Each log dir has a ``directory.id`` (meta.properties); a broker registers its dirs' ids
(``LogDirs``), a partition records the dir of each replica (``Directories``). Ids whose high 64 bits
are zero and low bits below 100 are reserved: UNASSIGNED (0, the broker has not said yet), LOST
(1), MIGRATING (2). A replica counts as in an online dir when its dir is UNASSIGNED or MIGRATING,
when the broker registered no dirs (before metadata.version 17), or when its dir is among the
broker's online ``LogDirs`` (the controller drops offline dirs from that list,
``dir_control.handle_directories_offline``).
"""

from __future__ import annotations

import uuid

from kbroker.controller.image import DIR_UNASSIGNED, MetadataImage, PartitionState

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
