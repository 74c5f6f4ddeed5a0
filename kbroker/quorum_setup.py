"""What a node's Raft driver starts from: its voters, kraft.version, directory id and bootstrap
servers, read from the configuration and the metadata directory (KIP-853).

- A static quorum (``controller.quorum.voters``): the voter ids and addresses, kraft.version 0.
- A dynamic quorum (``format --standalone`` / ``--initial-controllers``): the bootstrap checkpoint's
  VotersRecord (ids, directory ids, endpoints) at its kraft.version (1); the voter set then follows
  the log (AddRaftVoter / RemoveRaftVoter).
- ``controller.quorum.bootstrap.servers`` without voters (a broker, or a controller formatted with
  ``--no-initial-controllers`` that is to be added): no voter known at start; the node fetches from
  the bootstrap servers as an observer, learns the leader from their answers and the voter set from
  the log.

The metadata directory's ``directory.id`` (meta.properties) is the replica's directory id, sent in
every Fetch, as Kafka's ``ReplicaKey``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kbroker.errors import StartupError
from kbroker.raft.log import Snapshot
from kbroker.raft.voters import Voter, control_of
from kbroker.storage import (
    BOOTSTRAP_SNAPSHOT,
    StorageError,
    read_meta_properties,
    read_snapshot_file,
    uuid_from_str,
)

if TYPE_CHECKING:
    import uuid

    from kbroker.config import BrokerConfig

METADATA_PARTITION_DIR = "__cluster_metadata-0"


@dataclass
class RaftSetup:
    voters: dict[int, Voter]
    addresses: dict[int, tuple[str, int]]
    kraft_version: int = 0
    directory_id: uuid.UUID | None = None
    bootstrap_servers: list[tuple[str, int]] = field(default_factory=list)
    listener_name: str = "CONTROLLER"

    @property
    def dynamic(self) -> bool:
        return self.kraft_version >= 1 or not self.voters


def read_setup(cfg: BrokerConfig, node_id: int) -> RaftSetup:
    """The Raft start of a node in KRaft mode (``process.roles`` set)."""
    listener = cfg.controller_listeners[0].listener if cfg.controller_listeners else "CONTROLLER"
    names = [n for n in (cfg.raw.get("controller.listener.names") or "").split(",") if n.strip()]
    if names:
        listener = names[0].strip()
    directory_id = None
    try:
        props = read_meta_properties(cfg.metadata_log_dir) or {}
    except StorageError:
        props = {}
    if props.get("directory.id"):
        directory_id = uuid_from_str(props["directory.id"])
    bootstrap = list(cfg.quorum_bootstrap_servers)
    static = dict(cfg.quorum_voters)
    if static:
        return RaftSetup({v: Voter(v) for v in static}, static, 0, directory_id, bootstrap, listener)
    path = Path(cfg.metadata_log_dir) / METADATA_PARTITION_DIR / BOOTSTRAP_SNAPSHOT
    voters: dict[int, Voter] = {}
    kraft_version = 0
    if path.exists():
        content = read_snapshot_file(path)
        kraft_version = content.kraft_version
        if content.voters is not None:
            for v in content.voters.voters:
                feature = v.kraft_version_feature
                voters[v.voter_id] = Voter(
                    v.voter_id, v.voter_directory_id if v.voter_directory_id and v.voter_directory_id.int else None,
                    tuple((e.name, e.host, e.port) for e in v.endpoints),
                    feature.min_supported_version if feature else 0, feature.max_supported_version if feature else 0)
    if not voters and not bootstrap:
        raise StartupError("controller.quorum.voters is not set and the metadata directory holds no initial voters "
                           "(kbroker format --standalone or --initial-controllers); set controller.quorum.voters or "
                           "controller.quorum.bootstrap.servers")
    if not voters:
        kraft_version = max(kraft_version, 1)  # learnt from the log
    addresses = {}
    for voter in voters.values():
        address = voter.address(listener)
        if address is not None:
            addresses[voter.node_id] = address
    return RaftSetup(voters, addresses, kraft_version, directory_id, bootstrap, listener)


def checkpoint_controls(snapshot: Snapshot) -> tuple[dict[int, Voter] | None, int | None]:
    """The voter set and kraft.version of a ``MetadataLog`` snapshot (``.checkpoint`` bytes)."""
    from kbroker.metadata.metadata_log import decode_snapshot

    data = snapshot.data
    if not isinstance(data, bytes | bytearray | memoryview):
        from kbroker.raft.voters import snapshot_controls

        return snapshot_controls(snapshot)
    voters: dict[int, Voter] | None = None
    level: int | None = None
    for record in decode_snapshot(data).control_records:
        v, k = control_of(record)
        voters = v if v is not None else voters
        level = k if k is not None else level
    return voters, level
