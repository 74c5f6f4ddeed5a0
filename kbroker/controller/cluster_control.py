"""Broker registrations, heartbeats, fencing and controlled shutdown on the active controller, as
Kafka 4.4's ``ClusterControlManager``, ``BrokerHeartbeatManager`` and the heartbeat half of
``ReplicationControlManager`` (metadata/.../controller/), sans IO.

Every operation reads the :class:`MetadataImage` and an injected ``now`` (milliseconds, any
monotonic clock) and returns ``(response, records)``: the caller commits the records (the
controller's ``write``) before it answers. Nothing here applies a record to the image.

Heartbeat state (last contact per broker epoch, reported metadata offsets, controlled-shutdown
offsets) lives in memory on the active controller only, as in Kafka: it is rebuilt by
:meth:`ClusterControl.activate` when a controller becomes active, every unfenced broker getting a
fresh session then. The image's listener hook (:meth:`ClusterControl.attach`) keeps it in step with
committed registration records, as Kafka's ``replay`` does.

Records written (as Kafka 4.4): ``RegisterBrokerRecord`` (a new registration starts fenced; the
broker epoch is the offset the controller will write it at), ``BrokerRegistrationChangeRecord``
for fencing, unfencing and entering controlled shutdown (Kafka no longer writes
``FenceBrokerRecord``/``UnfenceBrokerRecord``; the image still reads them), ``UnregisterBrokerRecord``,
and the ``PartitionChangeRecord``s that take a broker out of ISRs and move its leaderships
(``replication_control``).
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from kbroker.config import BROKER_DEFAULTS
from kbroker.controller.replication_control import (
    ReplicationSettings,
    elr_enabled,
    generate_leader_and_isr_updates,
    has_leaderships,
    partitions_with_broker_in_elr,
    partitions_with_broker_in_isr,
    partitions_with_no_leader,
)
from kbroker.metadata.directories import MV_DIRECTORY_ASSIGNMENT, cordoned_dirs_supported
from kbroker.metadata.features import METADATA_VERSION
from kbroker.metadata.image import (
    FENCING_FENCE,
    FENCING_UNFENCE,
    NO_LEADER,
    SHUTDOWN_CHANGE_IN_CONTROLLED_SHUTDOWN,
    MetadataImage,
)
from kbroker.metadata.metadata_records import MetadataRecord
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.broker_heartbeat import BrokerHeartbeatRequest, BrokerHeartbeatResponse
from kbroker_protocol.messages.broker_registration import (
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
)
from kbroker_protocol.messages.metadata_records import (
    BrokerRegistrationChangeRecord,
    FenceBrokerRecord,
    PartitionChangeRecord,
    RegisterBrokerRecord,
    UnfenceBrokerRecord,
    UnregisterBrokerRecord,
)
from kbroker_protocol.messages.unregister_broker import UnregisterBrokerRequest, UnregisterBrokerResponse

log = logging.getLogger(__name__)

DEFAULT_SESSION_TIMEOUT_MS: int = BROKER_DEFAULTS["broker.session.timeout.ms"]
KRAFT_VERSION = "kraft.version"


class ControlState(enum.Enum):
    """Kafka's BrokerControlState: (fenced, should shut down)."""

    FENCED = ("fenced", True, False)
    UNFENCED = ("unfenced", False, False)
    CONTROLLED_SHUTDOWN = ("controlled shutdown", False, False)
    SHUTDOWN_NOW = ("shutdown now", True, True)

    @property
    def fenced(self) -> bool:
        return self.value[1]

    @property
    def should_shut_down(self) -> bool:
        return self.value[2]


@dataclass(slots=True)
class HeartbeatState:
    broker_id: int
    fenced: bool
    metadata_offset: int = -1
    controlled_shutdown_offset: int = -1  # -1: not in controlled shutdown

    @property
    def shutting_down(self) -> bool:
        return self.controlled_shutdown_offset >= 0


class BrokerHeartbeatManager:
    """Kafka's BrokerHeartbeatManager with its BrokerHeartbeatTracker: last contact per
    (broker id, epoch), and each broker's fencing/shutdown state as the heartbeats move it."""

    def __init__(self, session_timeout_ms: int) -> None:
        self.session_timeout_ms = session_timeout_ms
        self.contact: dict[tuple[int, int], int] = {}  # (id, epoch) -> last contact ms, in insertion order
        self.brokers: dict[int, HeartbeatState] = {}

    # -- tracker --------------------------------------------------------------------------

    def update_contact(self, broker_id: int, epoch: int, now: int) -> None:
        self.contact[(broker_id, epoch)] = now

    def _expired(self, then: int, now: int) -> bool:
        return now > then and then + self.session_timeout_ms < now

    def has_valid_session(self, broker_id: int, epoch: int, now: int) -> bool:
        then = self.contact.get((broker_id, epoch))
        return then is not None and not self._expired(then, now)

    def remove_expired(self, now: int) -> tuple[int, int] | None:
        for key, then in self.contact.items():
            if self._expired(then, now):
                del self.contact[key]
                return key
        return None

    def next_expiry(self) -> int | None:
        """When the oldest session expires (ms, on the caller's clock), for the controller's timer."""
        if not self.contact:
            return None
        return min(self.contact.values()) + self.session_timeout_ms + 1

    # -- states ---------------------------------------------------------------------------

    def register(self, broker_id: int, fenced: bool) -> None:
        state = self.brokers.get(broker_id)
        metadata_offset = -1
        if state is None:
            state = self.brokers[broker_id] = HeartbeatState(broker_id, fenced)
        elif state.fenced != fenced:
            metadata_offset = state.metadata_offset
        self.touch(broker_id, fenced, metadata_offset)

    def touch(self, broker_id: int, fenced: bool, metadata_offset: int) -> None:
        state = self.brokers[broker_id]
        state.fenced = fenced
        state.metadata_offset = metadata_offset
        if fenced:
            state.controlled_shutdown_offset = -1  # a fenced broker leaves controlled shutdown

    def fence(self, broker_id: int) -> None:
        state = self.brokers.get(broker_id)
        if state is not None:
            state.fenced = True

    def remove(self, broker_id: int) -> None:
        self.brokers.pop(broker_id, None)

    def lowest_active_offset(self) -> int:
        active = [s.metadata_offset for s in self.brokers.values() if not s.fenced and not s.shutting_down]
        return min(active) if active else 2**63 - 1

    def update_controlled_shutdown_offset(self, broker_id: int, offset: int) -> None:
        state = self.brokers[broker_id]
        if state.fenced:
            raise RuntimeError("Fenced brokers cannot enter controlled shutdown.")
        if state.controlled_shutdown_offset < 0:
            state.controlled_shutdown_offset = offset

    def current_state(self, state: HeartbeatState) -> ControlState:
        if state.shutting_down:
            return ControlState.CONTROLLED_SHUTDOWN
        return ControlState.FENCED if state.fenced else ControlState.UNFENCED

    def next_state(self, broker_id: int, request: BrokerHeartbeatRequest, register_offset: int,
                   leads_partitions: Callable[[], bool]) -> tuple[ControlState, ControlState]:
        """Kafka's calculateNextBrokerState."""
        state = self.brokers[broker_id]
        current = self.current_state(state)
        if current == ControlState.FENCED:
            if request.want_shut_down:
                log.info("Fenced broker %d has requested and been granted an immediate shutdown.", broker_id)
                return current, ControlState.SHUTDOWN_NOW
            if not request.want_fence:
                if request.current_metadata_offset >= register_offset:
                    log.info("The request from broker %d to unfence has been granted because it has caught up "
                             "with the offset of its register broker record %d.", broker_id, register_offset)
                    return current, ControlState.UNFENCED
                log.debug("The request from broker %d to unfence cannot yet be granted: it is at offset %d, its "
                          "register broker record at %d.", broker_id, request.current_metadata_offset,
                          register_offset)
            return current, ControlState.FENCED
        if current == ControlState.UNFENCED:
            if request.want_fence:
                if request.want_shut_down:
                    log.info("Unfenced broker %d has requested and been granted an immediate shutdown.", broker_id)
                    return current, ControlState.SHUTDOWN_NOW
                log.info("Unfenced broker %d has requested and been granted fencing", broker_id)
                return current, ControlState.FENCED
            if request.want_shut_down:
                if leads_partitions():
                    log.info("Unfenced broker %d has requested and been granted a controlled shutdown.", broker_id)
                    return current, ControlState.CONTROLLED_SHUTDOWN
                log.info("Unfenced broker %d has requested and been granted an immediate shutdown.", broker_id)
                return current, ControlState.SHUTDOWN_NOW
            return current, ControlState.UNFENCED
        if current == ControlState.CONTROLLED_SHUTDOWN:
            if leads_partitions():
                return current, ControlState.CONTROLLED_SHUTDOWN
            lowest = self.lowest_active_offset()
            if state.controlled_shutdown_offset <= lowest:
                log.info("The request from broker %d to shut down has been granted since the lowest active offset "
                         "%d is now greater than the broker's controlled shutdown offset %d.", broker_id, lowest,
                         state.controlled_shutdown_offset)
                return current, ControlState.SHUTDOWN_NOW
            return current, ControlState.CONTROLLED_SHUTDOWN
        return current, ControlState.SHUTDOWN_NOW


class RegistrationError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _reserved_directory(d: uuid.UUID) -> bool:
    """Kafka's DirectoryId.reserved: the ids with all-zero high bits and low bits below 100
    (UNASSIGNED, LOST, MIGRATING and room for more)."""
    return d.int >> 64 == 0 and d.int & (2**64 - 1) < 100


class ClusterControl:
    """The controller's view of broker lifecycles. One instance per controller; the in-memory
    heartbeat state is only meaningful while this controller is active."""

    def __init__(self, cluster_id: str, session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
                 settings: ReplicationSettings | None = None) -> None:
        self.cluster_id = cluster_id
        self.session_timeout_ms = session_timeout_ms
        self.settings = settings or ReplicationSettings()
        self.heartbeats: BrokerHeartbeatManager | None = None
        # Brokers whose last heartbeat answer was "in controlled shutdown", until its batch commits.
        self._in_controlled_shutdown: set[int] = set()
        self.term: int | None = None  # the controller term the heartbeat state was built in (cluster_runtime)

    # -- activation -------------------------------------------------------------------------

    def activate(self, image: MetadataImage, now: int) -> None:
        """Become active: every registered broker gets heartbeat state, unfenced ones a session
        starting ``now`` (ClusterControlManager.activate)."""
        hb = self.heartbeats = BrokerHeartbeatManager(self.session_timeout_ms)
        for broker_id, reg in sorted(image.brokers.items()):
            hb.register(broker_id, reg.fenced)
            if not reg.fenced:
                hb.update_contact(broker_id, reg.epoch, now)

    def deactivate(self) -> None:
        self.heartbeats = None

    def renew_session(self, image: MetadataImage, broker_id: int, now: int) -> None:
        """Renew a broker's session without a BrokerHeartbeat: the sole voter's own broker, which
        registered itself in-process (``Broker._register``) and sends none. (Kafka's combined node
        heartbeats its own controller; without this the controller's timer fenced the node's own
        broker once broker.session.timeout.ms passed, leaving Metadata without a broker.)"""
        reg = image.brokers.get(broker_id)
        if self.heartbeats is not None and reg is not None and not reg.fenced:
            self.heartbeats.update_contact(broker_id, reg.epoch, now)

    def attach(self, image: MetadataImage) -> None:
        """Follow committed registration records (the image's listener hook), as Kafka's replay."""
        image.listeners.append(lambda record: self.replay(image, record))

    def replay(self, image: MetadataImage, record: object) -> None:
        hb = self.heartbeats
        if hb is None:
            return
        if isinstance(record, RegisterBrokerRecord):
            hb.remove(record.broker_id)
            hb.register(record.broker_id, record.fenced)
        elif isinstance(record, UnregisterBrokerRecord):
            hb.remove(record.broker_id)
        elif isinstance(record, BrokerRegistrationChangeRecord | FenceBrokerRecord | UnfenceBrokerRecord):
            broker_id = record.broker_id if isinstance(record, BrokerRegistrationChangeRecord) else record.id
            reg = image.brokers.get(broker_id)
            if reg is not None:
                hb.register(broker_id, reg.fenced)

    def _active(self, image: MetadataImage, now: int) -> BrokerHeartbeatManager:
        if self.heartbeats is None:
            self.activate(image, now)
        assert self.heartbeats is not None
        return self.heartbeats

    # -- BrokerRegistration (62) ------------------------------------------------------------

    def register_broker(self, image: MetadataImage, request: BrokerRegistrationRequest, api_version: int, now: int,
                        next_offset: int | None = None) -> tuple[BrokerRegistrationResponse, list[MetadataRecord]]:
        """BrokerRegistration as Kafka's ClusterControlManager.registerBroker. ``next_offset`` is
        the offset the controller's next write gets (the new broker epoch), by default the one
        after the image's."""
        hb = self._active(image, now)
        if next_offset is None:
            next_offset = image.offset + 1
        try:
            records, epoch = self._register(image, hb, request, api_version, now, next_offset)
        except RegistrationError as e:
            log.info("Rejecting the registration of broker %d: %s: %s", request.broker_id, e.code.name, e.message)
            return BrokerRegistrationResponse(error_code=e.code, broker_epoch=-1), []
        return BrokerRegistrationResponse(error_code=ErrorCode.NONE, broker_epoch=epoch), records

    def _finalized(self, image: MetadataImage) -> dict[str, int]:
        levels = dict(image.features)
        levels[KRAFT_VERSION] = image.kraft_version
        return levels

    @staticmethod
    def _check_feature(finalized: dict[str, int], name: str, lo: int, hi: int) -> None:
        level = finalized.get(name, 0)
        if not lo <= level <= hi:
            raise RegistrationError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"Unable to register because the broker does not support finalized version {level} of {name}. "
                f"The broker wants a version between {lo} and {hi}, inclusive.")

    def _register(self, image: MetadataImage, hb: BrokerHeartbeatManager, request: BrokerRegistrationRequest,
                  api_version: int,
                  now: int, next_offset: int) -> tuple[list[MetadataRecord], int]:
        if request.cluster_id != self.cluster_id:
            raise RegistrationError(ErrorCode.INCONSISTENT_CLUSTER_ID,
                                    f"Expected cluster ID {self.cluster_id}, but got cluster ID {request.cluster_id}")
        broker_id = request.broker_id
        existing = image.brokers.get(broker_id)
        prev_incarnation = existing.incarnation_id if existing is not None else None
        stored_epoch = existing.epoch if existing is not None else -2
        if existing is not None and hb.has_valid_session(broker_id, existing.epoch, now) \
                and request.incarnation_id != prev_incarnation:
            raise RegistrationError(
                ErrorCode.DUPLICATE_BROKER_REGISTRATION,
                "Another broker is registered with that broker id. If the broker was recently restarted this should "
                "self-resolve once the heartbeat manager expires the broker's session.")
        if request.is_migrating_zk_broker:
            raise RegistrationError(ErrorCode.BROKER_ID_NOT_REGISTERED,
                                    "Controller does not support registering ZK brokers.")
        mv = image.features.get(METADATA_VERSION, 0)
        directories = mv >= MV_DIRECTORY_ASSIGNMENT
        log_dirs = list(request.log_dirs or ())
        if directories:
            if not log_dirs:
                raise RegistrationError(ErrorCode.INVALID_REGISTRATION, "No directories specified in request")
            if any(_reserved_directory(d) for d in log_dirs):
                raise RegistrationError(ErrorCode.INVALID_REGISTRATION, "Reserved directory ID in request")
            if len(set(log_dirs)) != len(log_dirs):
                raise RegistrationError(ErrorCode.INVALID_REGISTRATION, "Duplicate directory ID in request")
            for d in log_dirs:
                for other_id, other in image.brokers.items():
                    if other_id != broker_id and d in other.log_dirs:
                        raise RegistrationError(ErrorCode.INVALID_REGISTRATION,
                                                f"Broker {other_id} is already registered with directory {d}")
        finalized = self._finalized(image)
        Feature = RegisterBrokerRecord.BrokerFeature
        features = []
        for f in request.features:
            self._check_feature(finalized, f.name, f.min_supported_version, f.max_supported_version)
            features.append(Feature(name=f.name, min_supported_version=f.min_supported_version,
                                    max_supported_version=f.max_supported_version))
        names = {f.name for f in request.features}
        if METADATA_VERSION not in names:
            raise RegistrationError(ErrorCode.INVALID_REGISTRATION,
                                    f"Request features do not contain '{METADATA_VERSION}'")
        for name, level in finalized.items():
            if level != 0 and name not in names:
                self._check_feature(finalized, name, 0, 0)
        record = RegisterBrokerRecord(
            broker_id=broker_id,
            is_migrating_zk_broker=False,
            incarnation_id=request.incarnation_id,
            rack=request.rack,
            end_points=[
                RegisterBrokerRecord.BrokerEndpoint(name=ep.name, host=ep.host, port=ep.port,
                                                    security_protocol=ep.security_protocol)
                for ep in request.listeners
            ],
            features=features,
            log_dirs=log_dirs if directories else [],
        )
        records: list[MetadataRecord] = []
        if request.incarnation_id != prev_incarnation:
            clean = api_version >= 3 and stored_epoch == request.previous_broker_epoch
            self._shutdown_records(image, broker_id, clean, records)
            if existing is None:
                log.info("No previous registration found for broker %d. New incarnation ID is %s. Generated %d "
                         "record(s) to clean up previous incarnations. New broker epoch is %d.", broker_id,
                         request.incarnation_id, len(records), next_offset)
            else:
                log.info("Registering a new incarnation of broker %d. Previous incarnation ID was %s; new "
                         "incarnation ID is %s. Generated %d record(s) to clean up previous incarnations. Broker "
                         "epoch will become %d.", broker_id, prev_incarnation, request.incarnation_id,
                         len(records), next_offset)
            record.broker_epoch = next_offset
            record.fenced = True
            hb.remove(broker_id)
        else:
            assert existing is not None
            log.info("Amending registration of broker %d, incarnation ID %s. Broker epoch remains %d.",
                     broker_id, request.incarnation_id, existing.epoch)
            record.fenced = existing.fenced
            record.in_controlled_shutdown = existing.in_controlled_shutdown
            record.broker_epoch = existing.epoch
        records.append(record)  # last: a controller failing over mid-way sees a re-registration
        hb.register(broker_id, record.fenced)
        return records, record.broker_epoch

    def _shutdown_records(self, image: MetadataImage, broker_id: int, clean: bool, records: list[MetadataRecord]) -> None:
        """Kafka's ReplicationControlManager.handleBrokerShutdown for a previous incarnation."""
        if elr_enabled(image) and not clean:
            self._isr_then_elr_updates(image, broker_id, (NO_LEADER, NO_LEADER, broker_id), records,
                                       "handleBrokerUncleanShutdown")
        else:
            generate_leader_and_isr_updates(image, self.settings, broker_id, NO_LEADER, NO_LEADER,
                                            partitions_with_broker_in_isr(image, broker_id), records,
                                            "handleBrokerShutdown")

    def _isr_then_elr_updates(self, image: MetadataImage, broker_id: int, change: tuple[int, int, int],
                              records: list[MetadataRecord], context: str) -> None:
        """Kafka's generateLeaderAndIsrUpdates over the partitions with ``broker_id`` in their ISR,
        then over those with it in their ELR that the first pass left alone; ``change`` is
        (broker to remove, broker to add, broker with an unclean shutdown)."""
        generate_leader_and_isr_updates(image, self.settings, *change, partitions_with_broker_in_isr(image, broker_id),
                                        records, context)
        # The ELR pass sees the partitions as the ISR pass left them.
        changed = {(r.topic_id, r.partition_id) for r in records if isinstance(r, PartitionChangeRecord)}
        generate_leader_and_isr_updates(image, self.settings, *change,
                                        [tp for tp in partitions_with_broker_in_elr(image, broker_id)
                                         if (tp[0].topic_id, tp[1].partition) not in changed],
                                        records, context)

    # -- fencing, unfencing, controlled shutdown --------------------------------------------

    def _fence_records(self, image: MetadataImage, broker_id: int, records: list[MetadataRecord]) -> None:
        reg = image.brokers[broker_id]
        generate_leader_and_isr_updates(image, self.settings, broker_id, NO_LEADER, NO_LEADER,
                                        partitions_with_broker_in_isr(image, broker_id), records,
                                        "handleBrokerFenced")
        records.append(BrokerRegistrationChangeRecord(broker_id=broker_id, broker_epoch=reg.epoch,
                                                      fenced=FENCING_FENCE))

    def _unfence_records(self, image: MetadataImage, broker_id: int, epoch: int, records: list[MetadataRecord]) -> None:
        records.append(BrokerRegistrationChangeRecord(broker_id=broker_id, broker_epoch=epoch,
                                                      fenced=FENCING_UNFENCE))
        # Partitions without a leader may elect the returning broker (still fenced in the image).
        generate_leader_and_isr_updates(image, self.settings, NO_LEADER, broker_id, NO_LEADER,
                                        partitions_with_no_leader(image), records, "handleBrokerUnfenced")

    def _controlled_shutdown_records(self, image: MetadataImage, broker_id: int, epoch: int,
                                     records: list[MetadataRecord]) -> None:
        if not image.brokers[broker_id].in_controlled_shutdown:
            records.append(BrokerRegistrationChangeRecord(
                broker_id=broker_id, broker_epoch=epoch,
                in_controlled_shutdown=SHUTDOWN_CHANGE_IN_CONTROLLED_SHUTDOWN))
        generate_leader_and_isr_updates(image, self.settings, broker_id, NO_LEADER, NO_LEADER,
                                        partitions_with_broker_in_isr(image, broker_id), records,
                                        f"enterControlledShutdown[{broker_id}]")

    # -- BrokerHeartbeat (63) ---------------------------------------------------------------

    def heartbeat(self, image: MetadataImage, request: BrokerHeartbeatRequest, now: int
                  ) -> tuple[BrokerHeartbeatResponse, list[MetadataRecord]]:
        """BrokerHeartbeat as Kafka's QuorumController/ReplicationControlManager.processBrokerHeartbeat.
        After committing the records the caller reports the batch's last offset to
        :meth:`heartbeat_committed` (the controlled-shutdown offset)."""
        hb = self._active(image, now)
        broker_id, epoch = request.broker_id, request.broker_epoch
        hb.update_contact(broker_id, epoch, now)  # before anything else, as Kafka's trackBrokerHeartbeat
        reg = image.brokers.get(broker_id)
        if reg is None:
            log.info("Receive a heartbeat from broker %d before registration", broker_id)
            return BrokerHeartbeatResponse(error_code=ErrorCode.STALE_BROKER_EPOCH, is_fenced=True), []
        if reg.epoch != epoch:
            log.info("Rejecting a heartbeat of broker %d: expected broker epoch %d, but got broker epoch %d",
                     broker_id, reg.epoch, epoch)
            return BrokerHeartbeatResponse(error_code=ErrorCode.STALE_BROKER_EPOCH, is_fenced=True), []
        if broker_id not in hb.brokers:
            hb.register(broker_id, reg.fenced)
        current, nxt = hb.next_state(broker_id, request, reg.register_offset,
                                     lambda: has_leaderships(image, broker_id))
        records: list[MetadataRecord] = []
        if current != nxt:
            if nxt in (ControlState.FENCED, ControlState.SHUTDOWN_NOW):
                self._fence_records(image, broker_id, records)
            elif nxt == ControlState.UNFENCED:
                self._unfence_records(image, broker_id, epoch, records)
            elif nxt == ControlState.CONTROLLED_SHUTDOWN:
                self._controlled_shutdown_records(image, broker_id, epoch, records)
        hb.touch(broker_id, nxt.fenced, request.current_metadata_offset)
        if image.features.get(METADATA_VERSION, 0) >= MV_DIRECTORY_ASSIGNMENT:
            from kbroker.controller.dir_control import handle_directories_offline
            handle_directories_offline(image, self.settings, broker_id, epoch, list(request.offline_log_dirs or ()),
                                       records)
        if cordoned_dirs_supported(image):
            from kbroker.controller.dir_control import handle_directories_cordoned
            handle_directories_cordoned(image, broker_id, epoch, request.cordoned_log_dirs, records)
        if nxt == ControlState.CONTROLLED_SHUTDOWN:
            self._in_controlled_shutdown.add(broker_id)
        else:
            self._in_controlled_shutdown.discard(broker_id)
        return BrokerHeartbeatResponse(
            error_code=ErrorCode.NONE,
            is_caught_up=request.current_metadata_offset >= reg.register_offset,
            is_fenced=nxt.fenced,
            should_shut_down=nxt.should_shut_down,
        ), records

    def heartbeat_committed(self, broker_id: int, last_offset: int) -> None:
        """The heartbeat's batch ended at ``last_offset`` (committed): a broker entering controlled
        shutdown may shut down once every active broker has caught up to it (Kafka's
        processBatchEndOffset)."""
        if broker_id not in self._in_controlled_shutdown or self.heartbeats is None:
            return
        self._in_controlled_shutdown.discard(broker_id)
        state = self.heartbeats.brokers.get(broker_id)
        if state is not None and not state.fenced:
            self.heartbeats.update_controlled_shutdown_offset(broker_id, last_offset)

    # -- session expiry -------------------------------------------------------------------

    def fence_stale_broker(self, image: MetadataImage, now: int) -> tuple[bool, list[MetadataRecord]]:
        """Kafka's maybeFenceOneStaleBroker: fence at most one broker whose session expired;
        (whether an expired session was found, records). Call again while it returns True,
        committing each batch first, so each fencing sees the one before."""
        hb = self._active(image, now)
        expired = hb.remove_expired(now)
        if expired is None:
            return False, []
        broker_id, epoch = expired
        reg = image.brokers.get(broker_id)
        if reg is None:
            log.info("Removing heartbeat tracker entry for unknown broker %d at epoch %d.", broker_id, epoch)
            hb.remove(broker_id)
            return True, []
        if reg.epoch != epoch:
            log.info("Removing heartbeat tracker entry for broker %d at previous epoch %d. Current epoch is %d",
                     broker_id, epoch, reg.epoch)
            return True, []
        log.info("Fencing broker %d at epoch %d because its session has timed out.", broker_id, epoch)
        records: list[MetadataRecord] = []
        self._fence_records(image, broker_id, records)
        hb.fence(broker_id)
        return True, records

    def fence_expired(self, image: MetadataImage, now: int) -> list[MetadataRecord]:
        """One stale broker's fencing records (empty when none is due), for the controller's
        timer; see :meth:`fence_stale_broker` to drain several."""
        while True:
            found, records = self.fence_stale_broker(image, now)
            if records or not found:
                return records

    def next_expiry(self) -> int | None:
        return self.heartbeats.next_expiry() if self.heartbeats is not None else None

    # -- UnregisterBroker (64) -------------------------------------------------------------

    def unregister_broker(self, image: MetadataImage, request: UnregisterBrokerRequest, now: int
                          ) -> tuple[UnregisterBrokerResponse, list[MetadataRecord]]:
        """UnregisterBroker as Kafka's ReplicationControlManager.unregisterBroker."""
        self._active(image, now)
        broker_id = request.broker_id
        reg = image.brokers.get(broker_id)
        if reg is None:
            message = f"Broker ID {broker_id} is not currently registered"
            return UnregisterBrokerResponse(error_code=ErrorCode.BROKER_ID_NOT_REGISTERED, error_message=message), []
        records: list[MetadataRecord] = []
        self._isr_then_elr_updates(image, broker_id, (broker_id, NO_LEADER, NO_LEADER), records,
                                   "handleBrokerUnregistered")
        records.append(UnregisterBrokerRecord(broker_id=broker_id, broker_epoch=reg.epoch))
        return UnregisterBrokerResponse(error_code=ErrorCode.NONE, error_message=None), records
