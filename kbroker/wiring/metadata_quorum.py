"""The Raft node of the metadata log, built from the broker's configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from kbroker.config import BrokerConfig
from kbroker.errors import StartupError
from kbroker.metadata.loader import MetadataLoader
from kbroker.metadata.metadata_log import MetadataLog, MetadataLogError
from kbroker.quorum_setup import RaftSetup, checkpoint_controls, read_setup
from kbroker.raft.io import RaftDriver
from kbroker.raft.log import Entry, Snapshot
from kbroker.raft.node import RaftConfig
from kbroker.raft.state_store import FileQuorumStateStore
from kbroker.raft.voters import Voter
from kbroker.storage import METADATA_PARTITION_DIR

if TYPE_CHECKING:
    from kbroker.controller.quorum import QuorumController


def advertised_controller_endpoint(cfg: BrokerConfig) -> tuple[str, int] | None:
    """The controller endpoint this node advertises to the quorum (Kafka's
    ``effectiveAdvertisedControllerListeners``): its first controller listener as
    ``advertised.listeners`` names it, None when advertised.listeners does not (then the listener
    it binds is used, and a wildcard host stands for this host)."""
    names = {e.listener for e in cfg.controller_listeners}
    for e in cfg.advertised_listeners:
        if e.listener in names and e.host not in ("", "0.0.0.0", "::") and e.port:
            return e.host, e.port
    return None


def make_raft(cfg: BrokerConfig, node_id: int, cluster_id: str) -> RaftDriver:
    """The Raft node of the metadata log: a voter on controllers, an observer on brokers; the
    single-node start is a quorum of one voter without a controller listener."""
    meta_dir = cfg.metadata_log_dir / METADATA_PARTITION_DIR
    if cfg.kraft_mode:
        # static voters, or a dynamic quorum's bootstrap voter set / bootstrap servers (KIP-853)
        setup = read_setup(cfg, node_id)
        if "controller" in cfg.process_roles and node_id not in setup.voters and not setup.dynamic:
            raise StartupError(f"node {node_id} is not among the voters {sorted(setup.voters)} of the "
                               "metadata quorum")
    else:
        setup = RaftSetup({node_id: Voter(node_id)}, {node_id: ("127.0.0.1", 0)})
    voters = setup.addresses if not setup.dynamic else {v: setup.addresses.get(v, ("", 0)) for v in setup.voters}
    raft_config = RaftConfig(
        election_timeout_ms=cfg["controller.quorum.election.timeout.ms"],
        fetch_timeout_ms=cfg["controller.quorum.fetch.timeout.ms"],
        election_backoff_max_ms=cfg["controller.quorum.election.backoff.max.ms"],
        request_timeout_ms=cfg["controller.quorum.request.timeout.ms"],
        retry_backoff_ms=cfg["controller.quorum.retry.backoff.ms"],
        append_linger_ms=cfg["controller.quorum.append.linger.ms"],
    )
    host, port = "127.0.0.1", 0
    if cfg.controller_listeners:
        host, port = cfg.controller_listeners[0].host or "0.0.0.0", cfg.controller_listeners[0].port
    try:
        metadata_log = MetadataLog(meta_dir, voters=sorted(voters))
    except (OSError, ValueError, MetadataLogError) as exc:
        raise StartupError(f"cannot open the metadata log {meta_dir}: {exc}") from None
    initial: Sequence[int] | Mapping[int, Voter] = setup.voters if setup.dynamic else sorted(voters)
    raft = RaftDriver(node_id, initial, {v: a for v, a in voters.items() if a[1]}, metadata_log,
                      FileQuorumStateStore(meta_dir), config=raft_config, cluster_id=cluster_id,
                      host=host, port=port, kraft_version=setup.kraft_version,
                      directory_id=setup.directory_id, listener_name=setup.listener_name,
                      bootstrap_servers=setup.bootstrap_servers, read_snapshot_controls=checkpoint_controls)
    raft.advertised_endpoint = advertised_controller_endpoint(cfg)
    raft.fetch_snapshot_max_bytes = cfg["controller.quorum.fetch.snapshot.max.bytes"]
    raft.socket_send_buffer = cfg["socket.send.buffer.bytes"]
    raft.socket_receive_buffer = cfg["socket.receive.buffer.bytes"]
    raft.listen_backlog = cfg["socket.listen.backlog.size"]
    raft.connection_setup_timeout_ms = cfg["socket.connection.setup.timeout.ms"]
    raft.connection_setup_timeout_max_ms = cfg["socket.connection.setup.timeout.max.ms"]
    return raft


def wire_metadata(raft: RaftDriver, loader: MetadataLoader, controller: QuorumController | None) -> None:
    """Feed the node's images from the metadata log: each committed entry goes to the broker's
    MetadataLoader (which also writes the node's snapshots), then, on a node with the controller
    role, to its controller (which applied its own records when it appended them, and reverts to
    the loader's image when it stops leading). A broker-only node (``controller`` None: Kafka's
    BrokerServer, an observer of the quorum) keeps no controller state; the segment log's high
    watermark follows the commits there as the controller makes it follow them elsewhere."""
    plog = raft.log.partition_log if isinstance(raft.log, MetadataLog) else None

    def on_commit(offset: int, item: Entry | Snapshot) -> None:
        try:
            loader.on_commit(offset, item)
        finally:  # the controller's image gets every committed record, whatever the broker's did
            if controller is not None:
                controller.on_commit(offset, item)
            elif plog is not None and not isinstance(item, Snapshot):
                plog.high_watermark = min(raft.high_watermark, plog.log_end_offset)

    loader.raft = raft  # (its snapshots)
    raft.on_commit = on_commit
    raft.on_resign = None if controller is None else controller.on_resign
