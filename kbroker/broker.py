"""The broker: lifecycle and the state every API handler reaches through ``ctx.broker``.

Start-up: lock and identify the log dirs (``meta.properties``), load and recover the partition
logs, replay the metadata log into the images (the broker's, ``image``, of committed records; the
controller's, ``controller.image``), bind the listeners, register this broker in the
metadata log, then start serving. Shut-down reverses it: stop accepting, let in-flight requests
finish, close connections, flush and mark the logs clean.

What is built follows ``process.roles`` (docs/architecture.md, "Building a node"): a node with the
controller role gets a ``QuorumController``, its controller listener and timers; a broker-only node
gets none of them (``controller`` stays None): it observes the metadata quorum, applies the committed
log to its image and forwards metadata changes to the active controller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import IO, TYPE_CHECKING, Any, Protocol

from kbroker.api import install_handlers
from kbroker.config import BrokerConfig, ConfigError, Endpoint
from kbroker.control.clock import ManualClock, make_clock
from kbroker.control.plane import ControlPlane
from kbroker.controller.operations.delegation_tokens import TokenExpiry
from kbroker.controller.operations.local import LocalControllerClient
from kbroker.controller.quorum import QuorumController, RaftLogView
from kbroker.errors import StartupError
from kbroker.log import LogConfig, LogManager, PartitionLog
from kbroker.metadata.client import ControllerClient, ControllerUnavailable, ForwardingOperations, Requester
from kbroker.metadata.image import METADATA_TOPIC, MetadataImage
from kbroker.metadata.loader import MetadataLoader
from kbroker.metadata.metadata_log import MetadataLog
from kbroker.metrics import MetricsService
from kbroker.raft.io import RaftDriver
from kbroker.replication.fetch_sessions import FetchSessionCache
from kbroker.replication.partition import Partition
from kbroker.replication.producer_ids import ProducerIdManager
from kbroker.replication.producer_manager import ProducerStateManager
from kbroker.replication.replica_manager import ReplicaManager
from kbroker.security.acls import Authorizer
from kbroker.security.internode import InterNodeSecurity
from kbroker.security.listeners import ListenerSecurity, build_listener_security
from kbroker.security.quotas import ClientQuotas
from kbroker.security.replication_quotas import ReplicationQuotas
from kbroker.security.scram import ScramCredentials
from kbroker.security.tokens import DelegationTokens
from kbroker.server.connection import KafkaConnection
from kbroker.server.idle import close_excess_connections, close_idle_connections
from kbroker.server.limits import ConnectionLimits
from kbroker.server.listener import Listener, ListenerWiring, SocketSettings
from kbroker.storage import read_bootstrap_records
from kbroker.wiring.coordinators import Coordinators
from kbroker.wiring.cordoned import apply_cordoned, watch_lifecycle
from kbroker.wiring.delayed import DelayedOnDemand
from kbroker.wiring.dir_halt import HaltAfterAnswers
from kbroker.wiring.endpoints import advertised_endpoints, bootstrap_servers, listener_endpoint
from kbroker.wiring.local_partitions import LocalPartitions
from kbroker.wiring.log_dirs import prepare_log_dirs, set_fd_budget
from kbroker.wiring.metadata_quorum import make_raft, wire_metadata
from kbroker.wiring.registration import build_lifecycle, log_directory_ids, registration_listeners
from kbroker_protocol.messages.allocate_producer_ids import AllocateProducerIdsResponse

if TYPE_CHECKING:
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.share_coordinator import ShareCoordinator
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator
    from kbroker.delayed import DelayedDelivery
    from kbroker.metadata.broker_lifecycle import BrokerLifecycleManager
    from kbroker.metadata.channel import ControllerChannel
    from kbroker.server.connection import RequestHooks, RequestMetrics

log = logging.getLogger(__name__)


def _log_failed_background_task(task: asyncio.Task[object]) -> None:
    """A background task (heartbeats, registration, voter update...) that ended on an exception
    says so: the tasks retry their failures, so one ending here is a bug that must not pass silently."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background task %s ended on an exception", task.get_name(), exc_info=exc)


class Service(Protocol):
    """A sub-system the broker starts after its logs and metadata load and stops before them
    (coordinators, control plane, metrics, delayed delivery); either may be a coroutine."""

    def start(self) -> object: ...

    def stop(self) -> object: ...


class Broker:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        # The broker's image of the committed metadata log (Kafka's MetadataLoader), never the
        # controller's: records reach it once committed (kbroker/metadata/loader.py).
        self.metadata_loader = MetadataLoader()
        self.image = self.metadata_loader.image
        self.local_partitions = LocalPartitions(self)  # this broker's replicas follow the metadata log
        self.image.listeners.append(self.local_partitions.on_metadata_record)
        # SCRAM credentials follow the metadata log's records (replay included); each listener's
        # TLS/SASL settings are built when the listeners are bound (kbroker/security).
        self.scram_credentials = ScramCredentials()
        self.image.listeners.append(self.scram_credentials.on_record)
        self.authorizer = Authorizer()  # ACLs from the metadata log; enabled by authorizer.class.name
        self.image.listeners.append(self.authorizer.on_record)
        self.client_quotas = ClientQuotas(config)  # client quotas from ClientQuotaRecords (kbroker/security/quotas.py)
        self.image.listeners.append(self.client_quotas.on_record)
        # replication throttles, read from the current (dynamic) config on each replica fetch
        self.replication_quotas = ReplicationQuotas(lambda: self.config.values, self.node_id)
        self.delegation_tokens = DelegationTokens(config)  # enabled by delegation.token.secret.key
        self.image.listeners.append(self.delegation_tokens.on_record)
        self.listener_security: dict[str, ListenerSecurity] = {}
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.connections: set[KafkaConnection] = set()
        self._halt_after_answers = HaltAfterAnswers(self.connections)
        self.limits = ConnectionLimits(config)
        self.servers: list[Listener] = []
        self.bound: dict[str, tuple[str, int]] = {}
        self.cluster_id = ""
        self.started_at = 0.0
        self._lock_files: list[IO[str]] = []
        # stop() has begun (after the controlled shutdown of a quorum node): long polls answer at
        # once, FindCoordinator says not available
        self.stopping = False
        self._stop_begun = False  # stop() called (the controlled shutdown may still be under way)
        self._idle_task: asyncio.Task[object] | None = None
        self.log_manager: LogManager | None = None
        # Topics whose creation is under way (partition logs being created off the event loop):
        # name with '.' as '_' -> name (see kbroker/controller/operations/topic_logs.py).
        self.creating_topics: dict[str, str] = {}
        # A node with the controller role (combined mode, a controller-only node, the single-node
        # start) builds a QuorumController in start(); a broker-only node never does: it observes the
        # metadata log, applies it to its image and forwards metadata changes to the active
        # controller, as Kafka's BrokerServer (no ControllerServer, no QuorumController there).
        self.runs_controller = not config.kraft_mode or "controller" in config.process_roles
        self.controller: QuorumController | None = None
        self.raft: RaftDriver | None = None
        self.internode_security = InterNodeSecurity()  # kbroker.security.internode, built in start()
        self._background: set[asyncio.Task[object]] = set()
        # called with each connection that closes (the share coordinator ends its share sessions)
        self.connection_listeners: list[Callable[[KafkaConnection], None]] = []
        self._channel: ControllerChannel | None = None
        self._heartbeat_channel: ControllerChannel | None = None
        self.lifecycle: BrokerLifecycleManager | None = None  # of a node in a multi-node quorum
        self.registered_locally = False  # the sole voter wrote its own registration (no heartbeats)
        # Metadata changes (admin APIs, producer-id blocks) go through this client: this node's own
        # controller here; a cluster node's client reaches the active controller.
        self.controller_client: ControllerClient = (
            LocalControllerClient(self) if self.runs_controller else _NotConnected())
        install_handlers()
        self.fetch_sessions = FetchSessionCache(config["max.incremental.fetch.session.cache.slots"])
        self.replica_manager = ReplicaManager(self)
        self.replica_manager.producer_state = ProducerStateManager()
        self.producer_ids = ProducerIdManager(self)
        # kbroker.clock=manual: the coordinators' time moves only when a test advances it.
        self.clock: ManualClock | None = make_clock(config["kbroker.clock"])

        # Coordinators etc.: objects with start()/stop(), started after logs and metadata load.
        # The group, share and transaction coordinators are built when first needed (at start
        # when the metadata holds their topics): group_coordinator, share_coordinator, txn_coordinator.
        self.coordinators = Coordinators(self)
        self.services: list[Service] = [self.coordinators]
        if self.runs_controller:
            self.services.append(TokenExpiry(self))  # the active controller removes expired tokens
        # Test controls (faults, pause, trace, reset): the dispatcher consults request_hooks when set.
        self.request_hooks: RequestHooks | None = None
        self.control = ControlPlane(self, self._set_request_hooks)
        self.services.append(self.control)
        # Metrics (kbroker.http.listeners): the dispatcher counts requests when this is set.
        self.request_metrics: RequestMetrics | None = None
        self.metrics = MetricsService(self, self._set_request_metrics)
        self.services.append(self.metrics)
        # kbroker-deliver-* headers (kbroker/delayed.py), built when first needed: broker.delayed
        self.delayed_delivery = DelayedOnDemand(self)
        self.services.append(self.delayed_delivery)

    # -- the coordinators (kbroker.wiring.coordinators: built on first use) -------------------------

    @property
    def group_coordinator(self) -> GroupCoordinator | None:
        return self.coordinators.group

    @property
    def share_coordinator(self) -> ShareCoordinator | None:
        return self.coordinators.share

    @property
    def txn_coordinator(self) -> TransactionCoordinator | None:
        return self.coordinators.txn

    @property
    def delayed(self) -> DelayedDelivery | None:
        return self.delayed_delivery.get()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        t0 = time.monotonic()
        phase = _PhaseTimer()  # each step's wall and CPU time, at debug level
        self.started_at = time.time()
        self.cluster_id = prepare_log_dirs(self.config, self.node_id, self._lock_files)
        set_fd_budget(self.config)
        # The authorizer before any listener opens (the controller listener opens before the node
        # has caught up): until the log is loaded only super users pass (Kafka's StandardAuthorizer,
        # AuthorizerNotReadyException before completeInitialLoad).
        try:
            self.listener_security = build_listener_security(self.config)
            self.authorizer.configure(self.config)
        except ConfigError as exc:
            raise StartupError(str(exc)) from None
        self.authorizer.begin_initial_load()
        # kbroker.clock=manual: logs age on the manual clock and retention runs on its advances.
        self.log_manager = LogManager(self.config.log_dirs, self.default_log_config(),
                                      exclude_topics=frozenset({METADATA_TOPIC}),
                                      clock=time.time if self.clock is None else self.clock.time,
                                      retention_in_rounds=self.clock is None,
                                      recovery_threads=self.config["num.recovery.threads.per.data.dir"])
        # Every log dir failed at run time (a full disk...): halt, as Kafka (kbroker/log/dir_failure.py),
        # once the requests in flight (the failing produce among them) are answered (wiring/dir_halt.py).
        self.log_manager.on_all_dirs_failed = self._halt_after_answers
        self._halt_after_answers.bind(asyncio.get_running_loop())
        self.log_manager.cordoned_dirs = frozenset(self.config.cordoned_log_dirs)  # KIP-1066
        self.raft = make_raft(self.config, self.node_id, self.cluster_id)
        try:  # TLS/SASL of the inter-broker and controller connections (issue 17)
            self.internode_security = InterNodeSecurity.from_config(self.config)
        except ConfigError as exc:
            raise StartupError(str(exc)) from None
        self.internode_security.secure_raft(self.raft, self.scram_credentials)
        phase("log dirs, security, log manager, raft driver")
        if self.runs_controller:
            # the controller's own image, fed from the same log (kbroker/controller/quorum.py)
            self.controller = QuorumController(self.node_id, None, MetadataImage(), raft=self.raft,
                                               committed=self.metadata_loader)
            self.controller.bootstrap_records = read_bootstrap_records(self.config.metadata_log_dir)
        wire_metadata(self.raft, self.metadata_loader, self.controller)
        self.metadata_loader.snapshot_max_bytes = self.config["metadata.log.max.record.bytes.between.snapshots"]
        self.metadata_loader.snapshot_max_interval_ms = self.config["metadata.log.max.snapshot.interval.ms"]
        if self.config.controller_listeners and self.runs_controller:
            endpoint = self.config.controller_listeners[0]
            try:
                await self.raft.listen()
            except OSError as exc:
                raise StartupError(f"cannot listen on {endpoint}: {exc.strerror}") from None
            self.bound[endpoint.listener] = (self.raft.host, self.raft.port)
            self._serve_controller_apis()
        phase("controller, metadata wiring, controller listener")
        # Partitions are opened from the image the whole log leads to, not record by record: a
        # topic deleted and created again under the same name has one directory, the newest's,
        # which replaying the old RemoveTopicRecord would delete. A sole voter replays its whole
        # log as it starts; a node of a larger quorum first catches up with the active controller.
        self.local_partitions.replaying = True
        try:
            self.raft.start()
            await self._catch_up()
        finally:
            self.local_partitions.replaying = False
        phase("raft start, metadata replay")
        self.local_partitions.open_replayed()
        phase("open replayed partitions")
        self.authorizer.complete_initial_load()  # the ACLs of the log caught up with are in place
        from kbroker.controller.operations.update_features import metadata_directory_id
        from kbroker.raft import voter_update

        voter_update.start(self, metadata_directory_id(self))  # KIP-853: this voter's endpoints and kraft.version to each leader
        sole = self.raft.node is not None and self.raft.node.voters == frozenset({self.node_id})
        if sole and self.controller is not None:
            self.controller.bootstrap_if_empty(self.controller.bootstrap_records)
        if not sole or self._dynamic_controller():
            # a dynamic quorum's first controller (format --standalone) will have others added
            # (KIP-853): its broker reaches the active controller as any other does
            self._use_remote_controller()
        phase("voter update, bootstrap records")
        await self._bind()
        phase("bind client listeners")
        await self._register()
        phase("register")
        for service in self.services:
            await _maybe_await(service.start())
            phase(f"start {type(service).__name__}")
        self.log_manager.start()
        self.replica_manager.start()  # producer-id expiration (kbroker/replication/producer_housekeeping.py)
        if self.clock is not None:
            self.clock.run_log_retention(self.log_manager, self.config["log.retention.check.interval.ms"])
        for server in self.servers:
            try:
                await server.start_serving()
            except OSError as exc:
                raise StartupError(f"cannot listen on {server.endpoint}: {exc.strerror}") from None
        loop = asyncio.get_running_loop()
        self._idle_task = loop.create_task(close_idle_connections(self.connections, self.limits,
                                                                  self.config["connections.max.idle.ms"]))
        phase("serve")
        log.info("started in %.0f ms", (time.monotonic() - t0) * 1000)

    # -- the metadata quorum ---------------------------------------------------------------

    def _dynamic_controller(self) -> bool:
        """A controller of a dynamic quorum (kraft.version 1, KIP-853) with a controller listener:
        its voter set may grow, so its broker registers and heartbeats like any other."""
        raft = self.raft
        return (raft is not None and raft.node is not None and raft.node.kraft_version >= 1 and bool(raft.port)
                and "broker" in self.config.process_roles and "controller" in self.config.process_roles)

    async def _catch_up(self) -> None:
        """Wait until the image holds what the quorum had committed when this node learned of its
        leader (Kafka's broker waits for its metadata to catch up before it registers)."""
        raft = self.raft
        assert raft is not None and raft.node is not None
        if raft.node.voters == frozenset({self.node_id}):
            return
        t0 = time.monotonic()
        logged = t0
        target: int | None = None
        while True:
            node = raft.node
            # A leader knows what is committed once an entry of its own epoch is (Raft): until
            # then its high watermark is what it held before, 0 after a restart, and an image of
            # nothing would have open_replayed delete every partition's log.
            known = node.high_watermark > (node.epoch_start_offset if raft.is_leader else 0)
            if node.leader_id != -1 and target is None and known:
                target = node.high_watermark
            if target is not None and node.committed_offset >= target and self._applied_up_to(target):
                break
            if time.monotonic() - logged >= 10:
                logged = time.monotonic()
                log.info("waiting for the metadata quorum (leader %d, epoch %d)", node.leader_id, node.epoch)
            await asyncio.sleep(0.01)
        log.info("metadata caught up to offset %d (leader %d, epoch %d) in %.0f ms", target,
                 raft.leader_id, raft.epoch, (time.monotonic() - t0) * 1000)

    def _applied_up_to(self, offset: int) -> bool:
        node = self.raft.node if self.raft is not None else None
        return node is not None and node.applied_offset >= offset

    def _use_remote_controller(self) -> None:
        """In a quorum of several nodes, metadata changes go to the active controller (wherever it
        is) in Envelopes over its controller listener (controller-seam's RemoteControllerClient), as
        Kafka's brokers forward them."""
        from kbroker.api.envelope import error_response_for
        from kbroker.metadata.channel import ControllerChannel, channel_timeouts
        from kbroker.metadata.remote import RemoteControllerClient

        raft = self.raft
        assert raft is not None
        controllers: Mapping[int, tuple[str, int]] | Callable[[], Mapping[int, tuple[str, int]]] = (
            dict(self.config.quorum_voters) or (lambda: raft.addresses))
        self._channel = ControllerChannel(lambda: raft.leader_id if raft.leader_id >= 0 else None, controllers,
                                          client_id=f"broker-{self.node_id}-forwarding",
                                          **channel_timeouts(self.config),
                                          open_connection=self.internode_security.controller_opener(
                                              f"broker-{self.node_id}-forwarding"))
        self.controller_client = RemoteControllerClient(self._channel, error_response_for)
        # ISR changes (AlterPartition) go to the active controller over the same channel.
        self.replica_manager.alter_partition_channel = self._channel

    async def _register(self) -> None:
        """Register this broker in the metadata (the active controller writes its registration)."""
        if self.config.kraft_mode and "broker" not in self.config.process_roles:
            return
        endpoints = self.advertised_endpoints()
        if self.controller is not None and self.raft is not None and self.raft.node is not None \
                and self.raft.node.voters == frozenset({self.node_id}) and not self._dynamic_controller():
            # as a remote registration: each listener's security protocol, the log directory ids
            self.controller.register_broker(registration_listeners(self.config, endpoints),
                                            rack=self.config["broker.rack"], log_dirs=log_directory_ids(self.config))
            self.registered_locally = True
            apply_cordoned(self)  # KIP-1066: no heartbeat carries them here
            return
        await self._register_remote(endpoints)

    async def _register_remote(self, endpoints: list[tuple[str, str, int]]) -> None:
        """Registration and heartbeats with the active controller (cluster-control's
        BrokerLifecycleManager, Kafka's BrokerLifecycleManager) over a channel of their own; start-up
        goes on once the controller has unfenced this broker (its metadata caught up)."""
        from kbroker.metadata.broker_lifecycle import BrokerState

        raft = self.raft
        assert raft is not None
        self._heartbeat_channel, self.lifecycle = build_lifecycle(
            self.config, self.node_id, self.cluster_id, raft, lambda: self.image.offset,
            registration_listeners(self.config, endpoints), log_directory_ids(self.config),
            open_connection=self.internode_security.controller_opener(f"broker-{self.node_id}-heartbeat"))
        machine = self.lifecycle.machine
        watch_lifecycle(self)  # KIP-1066: cordoned log dirs in the heartbeats
        self.run_in_background(self.lifecycle.run(), "broker-lifecycle")
        # KIP-858: replica dirs (and, with several log dirs, failed dirs) to the controller
        from kbroker.wiring.jbod import start_jbod_agent
        start_jbod_agent(self)
        # the logs are open and the metadata caught up: the controller may unfence us
        self.lifecycle.set_ready_to_unfence()
        await self.lifecycle.wait_for(lambda m: m.unfenced or m.state == BrokerState.SHUTTING_DOWN)
        if self.lifecycle.state == BrokerState.SHUTTING_DOWN:
            raise StartupError(f"the broker lifecycle shut down: {machine.shutdown_reason}")
        while True:  # this node's image shows the unfenced registration
            reg = self.image.brokers.get(self.node_id)
            if reg is not None and not reg.fenced and reg.epoch == self.lifecycle.broker_epoch:
                break
            await asyncio.sleep(0.01)
        log.info("registered with the active controller (broker epoch %d), unfenced", self.lifecycle.broker_epoch)

    async def _run_controller_timers(self) -> None:
        """The active controller's session timer (Kafka's fence-stale-broker task, every second)."""
        from kbroker.controller.cluster_runtime import fence_stale_brokers

        while True:
            await asyncio.sleep(1.0)
            try:
                await fence_stale_brokers(self)
            except Exception as exc:  # a lost leadership, a stopped raft node: the next round retries
                log.debug("fencing stale brokers failed: %s", exc)

    def _serve_controller_apis(self) -> None:
        from kbroker.api.controller_apis import install
        from kbroker.api.controller_registration import register_self

        install(self)
        # this controller's registration (Kafka's ControllerRegistrationManager)
        self.run_in_background(register_self(self), "controller-registration")
        self.run_in_background(self._run_controller_timers(), "controller-timers")

    def _set_request_hooks(self, hooks: RequestHooks | None) -> None:
        self.request_hooks = hooks

    def _set_request_metrics(self, metrics: RequestMetrics | None) -> None:
        self.request_metrics = metrics

    def run_in_background(self, work: Coroutine[object, None, object], name: str) -> asyncio.Task[object]:
        """Run ``work`` until it ends or the broker stops (stop() cancels and awaits it)."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failed_background_task)
        return task

    @property
    def active_controller_id(self) -> int:
        """The active controller as clients see it (Metadata, DescribeCluster: Kafka 4.x reports
        the KRaft leader), from the Raft layer as Kafka's broker reads it rather than from this
        node's QuorumController; -1 before start."""
        return -1 if self.raft is None else self.raft.leader_id

    @property
    def metadata_log(self) -> PartitionLog | RaftLogView | None:
        """The metadata log under the Raft log, its high watermark following the commits (the
        controller's view of it on a controller; the log itself on a broker-only node); None
        before start."""
        if self.controller is not None:
            return self.controller.log
        raft = self.raft
        if raft is None:
            return None
        return raft.log.partition_log if isinstance(raft.log, MetadataLog) else RaftLogView(raft)

    async def stop(self, timeout: float = 5.0) -> None:
        """Controlled shutdown, then stop accepting, answer in-flight requests, then close
        connections, services and logs.

        A node of a multi-node quorum first asks the controller to move its leaderships away and
        waits until it lets it go (or ``timeout``), still serving every request meanwhile, as
        Kafka's BrokerServer.shutdown does before it stops its socket server: a batch appended as
        leader until then is acknowledged once the followers have it, or answered
        NOT_LEADER_OR_FOLLOWER when the leadership moves first (Kafka's DelayedProduce). Then
        long-polling fetches are woken and answer with what they have; requests parked longer
        (a JoinGroup waiting for its rebalance) get ``timeout`` seconds before their connections
        close, as Kafka's shutdown expires delayed operations.
        """
        if self.stopping or self._stop_begun:
            return
        self._stop_begun = True
        if self.lifecycle is not None:
            try:
                await self.lifecycle.controlled_shutdown(timeout_ms=int(timeout * 1000))
            except Exception as exc:
                log.info("controlled shutdown: %s", exc)
        self.stopping = True
        for server in self.servers:
            server.close()
        if self._idle_task is not None:
            self._idle_task.cancel()
        for partition in self.partitions.values():
            partition.notify_hw()  # long polls answer; acks=all produces answer NOT_LEADER_OR_FOLLOWER
        deadline = time.monotonic() + timeout
        while any(not c.idle for c in self.connections) and time.monotonic() < deadline:
            tasks = [t for c in self.connections for t in c.tasks]
            if not tasks:
                break
            await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        for conn in list(self.connections):
            conn.close()
        for service in reversed(self.services):
            await _maybe_await(service.stop())
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for channel in (self._channel, self._heartbeat_channel):
            if channel is not None:
                await _maybe_await(channel.close())
        if self.raft is not None:
            await self.raft.stop(graceful=True)
            try:
                self.raft.log.flush()
                close = getattr(self.raft.log, "close", None)
                if close is not None:
                    close()
            except Exception:
                log.exception("closing the metadata log failed")
        self.replica_manager.close()
        for server in self.servers:
            await server.wait_closed()
        if self.log_manager is not None:
            self.log_manager.close()
        for f in self._lock_files:
            f.close()
        self._lock_files.clear()
        log.info("stopped")

    def topic_settings(self, overrides: dict[str, str] | None = None) -> dict[str, Any]:
        """Effective topic-level config values (typed) for a topic with these overrides."""
        return self.config.topic_config(overrides or {})

    def default_log_config(self, overrides: dict[str, str] | None = None) -> LogConfig:
        return LogConfig.from_topic_values(self.topic_settings(overrides))

    # -- listeners --------------------------------------------------------------------------

    async def _bind(self) -> None:
        for endpoint in self.config.client_listeners:
            security = self.listener_security.get(endpoint.listener)
            wiring = ListenerWiring(self.limits, self.client_quotas.ip,
                                    security.ssl_context if security is not None else None,
                                    self._new_connection, self.close_excess_connections,
                                    SocketSettings.of(self.config))
            try:
                server = await Listener.bind(endpoint, wiring)
            except OSError as exc:
                raise StartupError(f"cannot listen on {endpoint}: {exc.strerror}") from None
            self.servers.append(server)
            # a configured port opens once the broker serves (Listener.bind); port 0 is open now
            self.bound[endpoint.listener] = (endpoint.host, server.port)
        self.limits.on_slot_free.append(self._resume_accepting)

    def _new_connection(self, endpoint: Endpoint, admitted: str) -> KafkaConnection:
        return KafkaConnection(self, endpoint, admitted=admitted)

    def close_excess_connections(self) -> None:
        close_excess_connections(self.connections, self.limits)

    def _resume_accepting(self) -> None:
        for server in self.servers:
            server.slot_freed()

    def advertised_endpoints(self) -> list[tuple[str, str, int]]:
        """(listener name, host, port) this broker advertises to clients."""
        return advertised_endpoints(self.config, self.bound)

    @property
    def bootstrap_servers(self) -> str:
        return bootstrap_servers(self.advertised_endpoints())

    def listener_endpoint(self, listener: str) -> tuple[str, int]:
        return listener_endpoint(self.advertised_endpoints(), listener)

    def partition(self, topic: str, index: int) -> Partition | None:
        return self.partitions.get((topic, index))


class _NotConnected(ForwardingOperations):
    """A broker-only node's controller client until start() connects it to the active controller
    (it has no controller of its own to run an operation on)."""

    async def forward(self, api_key: int, request: Any, version: int, requester: Requester | None = None) -> Any:
        raise ControllerUnavailable("not connected to the metadata quorum yet")

    async def allocate_producer_ids(self, broker_id: int, broker_epoch: int) -> AllocateProducerIdsResponse:
        raise ControllerUnavailable("not connected to the metadata quorum yet")


class _PhaseTimer:
    """Logs (debug) the wall and CPU time of each start-up step since the previous one, and at
    construction the process's CPU time so far (its imports and construction)."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        log.debug("start: process CPU before start %.1f ms", self._cpu * 1000)

    def __call__(self, step: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        log.debug("start: %s: %.1f ms (CPU %.1f ms)", step, (wall - self._wall) * 1000, (cpu - self._cpu) * 1000)
        self._wall, self._cpu = wall, cpu


async def _maybe_await(value: object) -> object:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value
