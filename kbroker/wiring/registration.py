"""This broker's registration in the metadata: the listeners and log directories it registers,
and, in a quorum of several nodes, the lifecycle manager that registers and heartbeats with the
active controller over a channel of its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping

from kbroker.config import SECURITY_PROTOCOL_IDS, BrokerConfig
from kbroker.metadata.broker_lifecycle import BrokerLifecycleManager, LifecycleMachine
from kbroker.metadata.channel import ControllerChannel, channel_timeouts
from kbroker.metadata.features import SUPPORTED_FEATURES
from kbroker.raft.io import RaftDriver
from kbroker.storage import StorageError, read_meta_properties, uuid_from_str


def registration_listeners(config: BrokerConfig,
                           endpoints: list[tuple[str, str, int]]) -> list[tuple[str, str, int, int]]:
    """(name, host, port, security protocol id) of each advertised listener, from
    listener.security.protocol.map, as a BrokerRegistration lists them."""
    protocols = {e.listener: e.security_protocol for e in config.listeners}
    return [(name, host, port, SECURITY_PROTOCOL_IDS.get(protocols.get(name, "PLAINTEXT"), 0))
            for name, host, port in endpoints]


def log_directory_ids(config: BrokerConfig) -> list[uuid.UUID]:
    """The directory ids of log.dirs that format wrote (Kafka's registration lists them)."""
    directory_ids = []
    for d in config.log_dirs:
        try:
            props = read_meta_properties(d) or {}
        except StorageError:
            continue  # an offline log dir (logged when it failed): only online dirs are listed
        if props.get("directory.id"):
            directory_ids.append(uuid_from_str(props["directory.id"]))
    return directory_ids


Opener = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
"""Opens a connection to a controller (``kbroker.security.internode``'s, or asyncio's)."""


def build_lifecycle(config: BrokerConfig, node_id: int, cluster_id: str, raft: RaftDriver,
                    metadata_offset: Callable[[], int], listeners: list[tuple[str, str, int, int]],
                    directory_ids: list[uuid.UUID], open_connection: Opener | None = None
                    ) -> tuple[ControllerChannel, BrokerLifecycleManager]:
    """The heartbeat channel to the active controller (wherever the quorum says it is) and the
    BrokerLifecycleManager that registers this broker over it (cluster-control's, Kafka's);
    ``open_connection`` sets up the channel's connections (TLS/SASL of the controller listener:
    kbroker.security.internode), plain TCP when None."""
    machine = LifecycleMachine(node_id, cluster_id, listeners=listeners, features=SUPPORTED_FEATURES,
                               rack=config["broker.rack"], log_dirs=directory_ids, heartbeat_interval_ms=config["broker.heartbeat.interval.ms"],
                               initial_registration_timeout_ms=config["initial.broker.registration.timeout.ms"])
    controllers: Mapping[int, tuple[str, int]] | Callable[[], Mapping[int, tuple[str, int]]] = (
        dict(config.quorum_voters) or (lambda: raft.addresses))
    channel = ControllerChannel(lambda: raft.leader_id if raft.leader_id >= 0 else None, controllers,
                                client_id=f"broker-{node_id}-heartbeat", open_connection=open_connection,
                                **channel_timeouts(config))
    lifecycle = BrokerLifecycleManager(machine, channel, metadata_offset,
                                       send_timeout_ms=config["broker.session.timeout.ms"] // 2)
    return channel, lifecycle
