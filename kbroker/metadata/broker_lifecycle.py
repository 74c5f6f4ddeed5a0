"""The broker's side of its lifecycle with the controller quorum, as Kafka 4.4's
``BrokerLifecycleManager`` (server/.../BrokerLifecycleManager.java).

The broker registers (BrokerRegistration, retried every ``broker.heartbeat.interval.ms`` until the
controller accepts it, giving up after ``initial.broker.registration.timeout.ms``), then
heartbeats every ``broker.heartbeat.interval.ms`` with its metadata offset. Its state moves as in
Kafka:

- STARTING: registered, catching up with the metadata log; a heartbeat answered IsCaughtUp moves
  it to RECOVERY (and the next heartbeat goes out 10 ms later).
- RECOVERY: caught up, still fenced until the broker says it is ready (``set_ready_to_unfence``:
  WantFence becomes false) and the controller unfences it; then RUNNING.
- RUNNING until ``controlled_shutdown()``: PENDING_CONTROLLED_SHUTDOWN heartbeats WantShutDown
  (every 50 ms until the first answer, then at the interval) until the controller answers
  ShouldShutDown, having moved the broker's leaderships away; then SHUTTING_DOWN.

A failed exchange (``ControllerUnavailable`` from the channel, or an error code) is retried after
the interval; a heartbeat error does not re-register (Kafka re-registers only when the broker's
metadata shows its registration gone: ``resend_registration``).

The cordoned log dirs (KIP-1066, ``cordoned.log.dirs``) go in every heartbeat once the broker has
caught up and the metadata.version supports them; a change (``propagate_directory_cordoned``) sends
a heartbeat at once.

A log dir failing while others remain (``propagate_directory_failure``) is named in every
heartbeat's ``OfflineLogDirs`` from then on, the next heartbeat going out at once; if no heartbeat
naming it has been answered within ``log.dir.failure.timeout.ms`` the machine shuts down ("couldn't
communicate offline log dir", Kafka's OfflineDirBrokerFailureEvent).

:class:`LifecycleMachine` is the state machine with no IO (times in ms in, requests out);
:class:`BrokerLifecycleManager` drives it over the node-to-controller channel
(``async send(api_key, request) -> response``) with an injectable clock.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from kbroker.config import BROKER_DEFAULTS
from kbroker.metadata.channel import ControllerVersionMismatch
from kbroker.metadata.client import ControllerUnavailable
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.broker_heartbeat import BrokerHeartbeatRequest
from kbroker_protocol.messages.broker_registration import BrokerRegistrationRequest

log = logging.getLogger(__name__)

BROKER_REGISTRATION = 62
BROKER_HEARTBEAT = 63
DEFAULT_HEARTBEAT_INTERVAL_MS: int = BROKER_DEFAULTS["broker.heartbeat.interval.ms"]
DEFAULT_INITIAL_REGISTRATION_TIMEOUT_MS: int = BROKER_DEFAULTS["initial.broker.registration.timeout.ms"]
STARTING_HEARTBEAT_DELAY_MS = 10
PENDING_SHUTDOWN_HEARTBEAT_DELAY_MS = 50
DEFAULT_LOG_DIR_FAILURE_TIMEOUT_MS: int = BROKER_DEFAULTS["log.dir.failure.timeout.ms"]
OFFLINE_DIR_TIMEOUT = "couldn't communicate offline log dir"


class BrokerState(enum.IntEnum):
    """Kafka's BrokerState (its values are the broker's ``BrokerState`` metric)."""

    NOT_RUNNING = 0
    STARTING = 1
    RECOVERY = 2
    RUNNING = 3
    PENDING_CONTROLLED_SHUTDOWN = 6
    SHUTTING_DOWN = 7
    UNKNOWN = 127


class LifecycleMachine:
    """Registration and heartbeat scheduling with no IO: ask :meth:`poll` what to send at ``now``,
    report the outcome with :meth:`on_response` or :meth:`on_failure`."""

    def __init__(self, node_id: int, cluster_id: str, *, listeners: list[tuple[str, str, int, int]],
                 features: dict[str, tuple[int, int]], rack: str | None = None,
                 log_dirs: list[uuid.UUID] | None = None, incarnation_id: uuid.UUID | None = None,
                 previous_broker_epoch: int = -1, heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS,
                 initial_registration_timeout_ms: int = DEFAULT_INITIAL_REGISTRATION_TIMEOUT_MS) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.listeners = listeners  # (name, host, port, security protocol id)
        self.features = features
        self.rack = rack
        self.log_dirs = sorted(log_dirs or [])
        self.incarnation_id = incarnation_id or uuid.uuid4()
        self.previous_broker_epoch = previous_broker_epoch
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.initial_registration_timeout_ms = initial_registration_timeout_ms
        self.state = BrokerState.NOT_RUNNING
        self.broker_epoch = -1
        self.registered = False
        self.initial_registration_succeeded = False
        self.ready_to_unfence = False
        self.caught_up = False  # Kafka's initialCatchUpFuture
        self.unfenced = False  # Kafka's initialUnfenceFuture
        self.got_controlled_shutdown_response = False
        self.in_flight = False
        self.next_immediate = False
        self.next_at: int | None = None
        self.registration_deadline: int | None = None
        self.shutdown_reason: str | None = None
        # offline log dir -> (whether a heartbeat naming it was answered, deadline for that in ms)
        self.offline_dirs: dict[uuid.UUID, tuple[bool, int]] = {}
        self._sent_offline_dirs: list[uuid.UUID] = []
        # The broker's highest applied metadata offset (the driver sets the broker's provider).
        self.metadata_offset: Callable[[], int] = lambda: -1
        # KIP-1066: the ids of the cordoned log dirs, None until the broker has caught up (then
        # read from ``cordoned_provider``, its cordoned.log.dirs); sent in heartbeats while the
        # metadata.version supports them (``cordoned_supported``; the broker sets both).
        self.cordoned_log_dirs: list[uuid.UUID] | None = None
        self.cordoned_provider: Callable[[], list[uuid.UUID]] = list
        self.cordoned_supported: Callable[[], bool] = lambda: False

    # -- events ---------------------------------------------------------------------------

    def start(self, now: int) -> None:
        self.state = BrokerState.STARTING
        self.registration_deadline = now + self.initial_registration_timeout_ms
        self.next_at = now
        log.info("Incarnation %s of broker %d in cluster %s is now STARTING.", self.incarnation_id, self.node_id,
                 self.cluster_id)

    def _schedule(self, now: int, delay_ms: int) -> None:
        delay = 0 if self.next_immediate else delay_ms
        self.next_immediate = False
        self.next_at = now + delay

    def _schedule_now(self, now: int) -> None:
        if self.in_flight:
            self.next_immediate = True  # send as soon as the exchange in flight completes
        else:
            self.next_at = now

    def _after_failure(self, now: int) -> None:
        self.next_immediate = False  # never immediately again after a failure
        self._schedule(now, self.heartbeat_interval_ms)

    def set_ready_to_unfence(self, now: int) -> None:
        self.ready_to_unfence = True
        self._schedule_now(now)

    def resend_registration(self, now: int) -> None:
        self.registered = False
        self._schedule_now(now)

    def propagate_directory_failure(self, directory: uuid.UUID, now: int, timeout_ms: int) -> None:
        """The log dir ``directory`` failed: tell the controller at the next heartbeat (at once)."""
        if directory in self.offline_dirs:
            return
        self.offline_dirs[directory] = (False, now + timeout_ms)
        if self.registered:
            self._schedule_now(now)

    def propagate_directory_cordoned(self, directories: list[uuid.UUID], now: int) -> None:
        """The cordoned log dirs changed (cordoned.log.dirs altered): tell the controller at the next
        heartbeat, at once (Kafka's propagateDirectoryCordoned)."""
        if not self.cordoned_supported():
            return
        self.cordoned_log_dirs = sorted(directories)
        if self.registered:
            self._schedule_now(now)

    def _offline_dir_timed_out(self, now: int) -> uuid.UUID | None:
        for d, (acked, deadline) in self.offline_dirs.items():
            if not acked and now >= deadline:
                return d
        return None

    def begin_controlled_shutdown(self, now: int) -> None:
        if self.state == BrokerState.PENDING_CONTROLLED_SHUTDOWN:
            log.info("Attempted to enter pending controlled shutdown state, but we are already in that state.")
        elif self.state == BrokerState.RUNNING:
            log.info("Beginning controlled shutdown.")
            self.state = BrokerState.PENDING_CONTROLLED_SHUTDOWN
            self._schedule_now(now)
        else:
            log.info("Skipping controlled shutdown because we are in state %s.", self.state.name)
            self.begin_shutdown("controlled shutdown skipped")

    def begin_shutdown(self, reason: str) -> None:
        if self.state != BrokerState.SHUTTING_DOWN:
            log.info("Transitioning from %s to SHUTTING_DOWN (%s).", self.state.name, reason)
        self.state = BrokerState.SHUTTING_DOWN
        self.shutdown_reason = self.shutdown_reason or reason
        self.next_at = None

    # -- exchanges ------------------------------------------------------------------------

    def next_wakeup(self) -> int | None:
        """When :meth:`poll` next has something to do (ms), or None."""
        if self.state == BrokerState.SHUTTING_DOWN:
            return None
        times = [t for t in (self.next_at,) if t is not None and not self.in_flight]
        times += [deadline for acked, deadline in self.offline_dirs.values() if not acked]
        if not self.initial_registration_succeeded and self.registration_deadline is not None:
            times.append(self.registration_deadline)
        return min(times) if times else None

    def poll(self, now: int) -> tuple[int, BrokerRegistrationRequest | BrokerHeartbeatRequest] | None:
        """The (api key, request) to send now, or None. Marks it in flight."""
        if self.state == BrokerState.SHUTTING_DOWN:
            return None
        if (not self.initial_registration_succeeded and self.registration_deadline is not None
                and now >= self.registration_deadline):
            log.error("Shutting down because we were unable to register with the controller quorum.")
            self.begin_shutdown("registration timeout")
            return None
        lost = self._offline_dir_timed_out(now)
        if lost is not None:
            log.error("Shutting down because couldn't communicate offline log dir %s with controllers", lost)
            self.begin_shutdown(OFFLINE_DIR_TIMEOUT)
            return None
        if self.in_flight or self.next_at is None or now < self.next_at:
            return None
        self.in_flight = True
        self.next_at = None
        if not self.registered:
            return BROKER_REGISTRATION, self.registration_request()
        return BROKER_HEARTBEAT, self.heartbeat_request()

    def registration_request(self) -> BrokerRegistrationRequest:
        R = BrokerRegistrationRequest
        return R(
            broker_id=self.node_id, cluster_id=self.cluster_id, incarnation_id=self.incarnation_id,
            listeners=[R.Listener(name=n, host=h, port=p, security_protocol=sp) for n, h, p, sp in self.listeners],
            features=[R.Feature(name=n, min_supported_version=lo, max_supported_version=hi)
                      for n, (lo, hi) in sorted(self.features.items())],
            rack=self.rack, is_migrating_zk_broker=False, log_dirs=list(self.log_dirs),
            previous_broker_epoch=self.previous_broker_epoch,
        )

    def heartbeat_request(self) -> BrokerHeartbeatRequest:
        self._sent_offline_dirs = sorted(self.offline_dirs)
        cordoned = None
        if self.caught_up and self.cordoned_log_dirs is not None and self.cordoned_supported():
            cordoned = list(self.cordoned_log_dirs)
        return BrokerHeartbeatRequest(
            offline_log_dirs=list(self._sent_offline_dirs), cordoned_log_dirs=cordoned,
            broker_id=self.node_id, broker_epoch=self.broker_epoch, current_metadata_offset=self.metadata_offset(),
            want_fence=not self.ready_to_unfence,
            want_shut_down=self.state == BrokerState.PENDING_CONTROLLED_SHUTDOWN,
        )

    def on_failure(self, api_key: int, now: int, reason: str) -> None:
        self.in_flight = False
        what = "register" if api_key == BROKER_REGISTRATION else "send a heartbeat"
        log.warning("Unable to %s for broker %d: %s", what, self.node_id, reason)
        if self.state != BrokerState.SHUTTING_DOWN:
            self._after_failure(now)

    def on_response(self, api_key: int, response: Any, now: int) -> None:
        self.in_flight = False
        if self.state == BrokerState.SHUTTING_DOWN:
            log.info("The broker is SHUTTING_DOWN. Ignoring the controller's response.")
            return
        error = ErrorCode(response.error_code)
        if api_key == BROKER_REGISTRATION:
            if error == ErrorCode.NONE:
                self.broker_epoch = response.broker_epoch
                self.registered = True
                self.initial_registration_succeeded = True
                log.info("Successfully registered broker %d with broker epoch %d", self.node_id, self.broker_epoch)
                self._schedule(now, 0)  # heartbeat at once
            else:
                log.info("Unable to register broker %d because the controller returned error %s", self.node_id,
                         error.name)
                self._after_failure(now)
            return
        if error != ErrorCode.NONE:
            log.warning("Broker %d sent a heartbeat request but received error %s.", self.node_id, error.name)
            self._after_failure(now)
            return
        for d in self._sent_offline_dirs:
            self.offline_dirs[d] = (True, self.offline_dirs[d][1])
        if self.state == BrokerState.STARTING:
            if response.is_caught_up:
                log.info("The broker has caught up. Transitioning from STARTING to RECOVERY.")
                self.state = BrokerState.RECOVERY
                self.caught_up = True
                # caught up, the broker's configs are current: its cordoned dirs go in the heartbeats
                self.cordoned_log_dirs = sorted(self.cordoned_provider())
            self._schedule(now, STARTING_HEARTBEAT_DELAY_MS)
        elif self.state == BrokerState.RECOVERY:
            if not response.is_fenced:
                log.info("The broker has been unfenced. Transitioning from RECOVERY to RUNNING.")
                self.unfenced = True
                self.state = BrokerState.RUNNING
            self._schedule(now, self.heartbeat_interval_ms)
        elif self.state == BrokerState.RUNNING:
            self._schedule(now, self.heartbeat_interval_ms)
        elif self.state == BrokerState.PENDING_CONTROLLED_SHUTDOWN:
            if not response.should_shut_down:
                log.info("The broker is in PENDING_CONTROLLED_SHUTDOWN state, still waiting for the active "
                         "controller.")
                self._schedule(now, self.heartbeat_interval_ms if self.got_controlled_shutdown_response
                               else PENDING_SHUTDOWN_HEARTBEAT_DELAY_MS)
            else:
                log.info("The controller has asked us to exit controlled shutdown.")
                self.begin_shutdown("controlled shutdown complete")
            self.got_controlled_shutdown_response = True
        else:
            log.error("Unexpected broker state %s", self.state.name)
            self._schedule(now, self.heartbeat_interval_ms)


# -- the driver ----------------------------------------------------------------------------------


class Channel(Protocol):
    async def send(self, api_key: int, request: Any, *, timeout_ms: int | None = None) -> Any: ...


class Clock(Protocol):
    def now(self) -> int:
        """Milliseconds."""

    async def wait(self, event: asyncio.Event, timeout_ms: int | None) -> None:
        """Return once ``event`` is set or ``timeout_ms`` has passed (None: no timeout)."""


class MonotonicClock:
    def now(self) -> int:
        return int(time.monotonic() * 1000)

    async def wait(self, event: asyncio.Event, timeout_ms: int | None) -> None:
        if timeout_ms is None:
            await event.wait()
            return
        try:
            await asyncio.wait_for(event.wait(), max(timeout_ms, 0) / 1000)
        except TimeoutError:
            pass


class BrokerLifecycleManager:
    """Runs a :class:`LifecycleMachine` over ``channel``: :meth:`run` until SHUTTING_DOWN, or
    :meth:`step` for one exchange (tests drive it with their own clock)."""

    def __init__(self, machine: LifecycleMachine, channel: Channel, metadata_offset: Callable[[], int],
                 clock: Clock | None = None, send_timeout_ms: int | None = None) -> None:
        """``send_timeout_ms``: how long one exchange may retry inside the channel; Kafka gives its
        heartbeat channel half the session timeout (KAFKA-14392), so a broker notices a lost
        controller before its session ends. None: the channel's own default."""
        self.machine = machine
        self.channel = channel
        self.send_timeout_ms = send_timeout_ms
        self.clock = clock or MonotonicClock()
        machine.metadata_offset = metadata_offset
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()

    @property
    def state(self) -> BrokerState:
        return self.machine.state

    @property
    def broker_epoch(self) -> int:
        return self.machine.broker_epoch

    def start(self) -> None:
        self.machine.start(self.clock.now())
        self._wake.set()

    def set_ready_to_unfence(self) -> None:
        self.machine.set_ready_to_unfence(self.clock.now())
        self._wake.set()

    def resend_registration(self) -> None:
        self.machine.resend_registration(self.clock.now())
        self._wake.set()

    def propagate_directory_failure(self, directory: uuid.UUID,
                                    timeout_ms: int = DEFAULT_LOG_DIR_FAILURE_TIMEOUT_MS) -> None:
        """Kafka's propagateDirectoryFailure (call on the event loop)."""
        self.machine.propagate_directory_failure(directory, self.clock.now(), timeout_ms)
        self._wake.set()

    def propagate_directory_cordoned(self, directories: list[uuid.UUID]) -> None:
        """Kafka's propagateDirectoryCordoned (call on the event loop)."""
        self.machine.propagate_directory_cordoned(directories, self.clock.now())
        self._wake.set()

    async def step(self) -> bool:
        """Send what is due now and handle the answer; False when nothing was due."""
        m = self.machine
        request = m.poll(self.clock.now())
        if request is None:
            self._notify()
            return False
        api_key, body = request
        try:
            if self.send_timeout_ms is None:
                response = await self.channel.send(api_key, body)
            else:
                response = await self.channel.send(api_key, body, timeout_ms=self.send_timeout_ms)
        except ControllerUnavailable as exc:
            m.on_failure(api_key, self.clock.now(), f"controller unavailable: {exc}")
        except ControllerVersionMismatch as exc:
            m.on_failure(api_key, self.clock.now(), f"API version problem: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug: logged, and the exchange is retried as a failed one
            # (Kafka's event queue logs a failed event and goes on; a lifecycle task ended here would
            # stop the heartbeats silently, and the controller fence the broker for good)
            log.exception("broker %d: sending api %d to the controller failed", m.node_id, api_key)
            m.on_failure(api_key, self.clock.now(), f"{type(exc).__name__}: {exc}")
        else:
            m.on_response(api_key, response, self.clock.now())
        self._notify()
        return True

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def run(self) -> None:
        """Register and heartbeat until the machine shuts down."""
        if self.machine.state == BrokerState.NOT_RUNNING:
            self.start()
        while self.machine.state != BrokerState.SHUTTING_DOWN:
            if await self.step():
                continue
            wakeup = self.machine.next_wakeup()
            self._wake.clear()
            timeout = None if wakeup is None else max(wakeup - self.clock.now(), 0)
            await self.clock.wait(self._wake, timeout)
        self._notify()

    async def wait_for(self, predicate: Callable[[LifecycleMachine], bool]) -> None:
        """Wait until ``predicate(machine)`` holds (checked after each exchange)."""
        while not predicate(self.machine):
            await self._changed.wait()

    async def controlled_shutdown(self, timeout_ms: int | None = None) -> bool:
        """Ask the controller to move our leaderships away and wait until it lets us go (or until
        ``timeout_ms``); True when the controller granted the shutdown. The machine is
        SHUTTING_DOWN afterwards either way."""
        self.machine.begin_controlled_shutdown(self.clock.now())
        self._wake.set()
        done = asyncio.Event()

        async def watch() -> None:
            await self.wait_for(lambda m: m.state == BrokerState.SHUTTING_DOWN)
            done.set()

        watcher = asyncio.ensure_future(watch())
        try:
            await self.clock.wait(done, timeout_ms)
        finally:
            watcher.cancel()
        granted = self.machine.shutdown_reason == "controlled shutdown complete"
        if not granted:
            self.machine.begin_shutdown("controlled shutdown timed out")
            self._wake.set()
        return granted
