"""Broker-wide bounds on what clients can make the broker hold, with Kafka's keys.

- ``max.connections.per.ip`` (+ ``max.connections.per.ip.overrides``, ``host:count,host:count``):
  a connection from an address that already has its maximum is accepted and closed at once, as
  Kafka's ``ConnectionQuotas`` does ("Rejected connection from ..., address already has the
  configured maximum of N connections.").
- ``max.connections``: at the limit the broker stops accepting (Kafka's acceptor blocks in
  ``waitForConnectionSlot``); new connections wait in the listen backlog until one closes. The
  inter-broker listener is exempt while the broker has more than one listener (Kafka's
  ``protectedListener``). ``listener.name.<l>.max.connections`` bounds one listener the same way.
- ``max.connection.creation.rate`` (broker-wide, the inter-broker listener exempt as above) and
  ``listener.name.<l>.max.connection.creation.rate``: each accepted connection is recorded in a
  Kafka ``Rate`` (``quota.window.num`` samples of ``quota.window.size.seconds``); a connection that
  takes a rate over its bound is not refused but delayed: the acceptor holds it for the throttle
  time ``(rate - bound) / bound * window`` (the longer of the two, at most one window) and accepts
  nothing else on that listener meanwhile, then serves it (Kafka's ``waitForConnectionSlot``).
  A connection then refused by its address's ``connection_creation_rate`` is taken back out of
  both rates, as Kafka's ``updateListenerMetrics`` does.
- ``queued.max.request.bytes``: request bytes held broker-wide. As in Kafka's memory pool
  (``SimpleMemoryPool``, non-strict), a frame takes its whole size from the budget as soon as its
  size prefix is in, if the budget is not used up, and gives it back once the request is answered;
  a frame begun when the budget is used up is not read further until there is room. Unlike Kafka,
  nothing is allocated up front: a frame's buffer grows as its bytes arrive, so a client that
  claims 100 MB and sends 10 bytes costs 10 bytes. Requests of at most 64 KiB are read whatever
  the budget, so clients sending ordinary requests keep being served while others hold it.
  Kafka's default is -1 (unbounded); kbroker's is 100 MiB, or ``socket.request.max.bytes`` if
  that is larger and ``queued.max.request.bytes`` is not set.
- ``queued.max.requests``: requests received and not yet answered, broker-wide. At the limit a
  connection with a request in flight is not read further; one with none in flight still is
  (Kafka's network threads hand one request per connection at a time to the request queue, and
  kbroker has no separate queue: a parked request, like a long-polling Fetch, counts here).
- ``kbroker.request.receive.timeout.ms``: the longest a request may take to arrive once its first
  byte is in. Kafka's ``connections.max.idle.ms`` timer restarts on any byte, so a client trickling
  one byte per interval holds a partial request (and its memory) for ever; this bound closes it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Protocol

from kbroker.config import BrokerConfig, parse_ip_overrides
from kbroker.config.addresses import normal_address
from kbroker.log.prealloc import libc
from kbroker.security.quota_rates import Clock, Rate, monotonic_ms, round_half_up

log = logging.getLogger(__name__)

_TRIM_AFTER_BYTES = 16 * 1024 * 1024


def _resolve(host: str) -> list[str]:
    """The addresses a host name in the overrides stands for (an address stands for itself)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return [normal_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        log.warning("max.connections.per.ip.overrides: cannot resolve %s (%s); override ignored", host, exc)
        return []
    return sorted({normal_address(str(info[4][0])) for info in infos})


class Waiter(Protocol):
    """A connection that stopped reading until a broker-wide budget has room."""

    def limits_changed(self) -> None: ...


class _Trimmer:
    """Hands freed heap memory back to the system (glibc ``malloc_trim``): request buffers are
    allocated in pieces that glibc would otherwise keep after they are freed."""

    def __init__(self) -> None:
        self._trim: Callable[[int], int] | None = None
        lib = libc()
        if lib is not None:
            try:
                self._trim = lib.malloc_trim
            except AttributeError:
                self._trim = None

    def __call__(self) -> None:
        if self._trim is not None:
            self._trim(0)


class ConnectionRate:
    """A connection creation rate and its bound (Kafka's connection rate sensor with its quota)."""

    __slots__ = ("rate", "bound")

    def __init__(self, samples: int, window_ms: float, bound: int) -> None:
        self.rate = Rate(samples, window_ms)
        self.bound = bound

    def record(self, now: float, max_throttle_ms: int) -> int:
        """Count one connection; the time to hold it (0: within the bound). Kafka's Sensor.record
        keeps the value recorded when the quota is violated."""
        self.rate.record(1.0, now)
        value, window = self.rate.rate_and_window(now)
        if value <= self.bound:
            return 0
        if self.bound <= 0:
            return max_throttle_ms
        return min(round_half_up((value - self.bound) / self.bound * window), max_throttle_ms)

    def unrecord(self, now: float) -> None:
        self.rate.record(-1.0, now)


class ListenerQuota:
    """One listener's count and its ``listener.name.<l>.max.connections`` and
    ``listener.name.<l>.max.connection.creation.rate`` (Kafka's ListenerConnectionQuota)."""

    __slots__ = ("count", "max_connections", "rate", "delayed")

    def __init__(self, samples: int, window_ms: float) -> None:
        self.count = 0
        self.max_connections = INT_MAX
        self.rate = ConnectionRate(samples, window_ms, INT_MAX)
        self.delayed = 0  # connections held for the creation rate (broker-wide or this listener's)


INT_MAX = 2**31 - 1


class ConnectionLimits:
    """Counts connections, request bytes and requests in flight; tells connections when to stop
    and resume reading. One per broker, used on the event loop only."""

    def __init__(self, config: BrokerConfig, clock: Clock = monotonic_ms) -> None:
        self.clock = clock
        samples, window = config["quota.window.num"], config["quota.window.size.seconds"]
        self.window_ms = window * 1000.0
        self.max_throttle_ms = int(self.window_ms)
        self.broker_rate = ConnectionRate(samples, self.window_ms, config["max.connection.creation.rate"])
        self.listeners: dict[str, ListenerQuota] = {}
        self.inter_broker_listener: str | None = getattr(config, "inter_broker_listener", None)
        for endpoint in getattr(config, "client_listeners", []):
            self.listeners[endpoint.listener.upper()] = ListenerQuota(samples, self.window_ms)
        self.max_connections: int = INT_MAX
        self.max_per_ip: int = INT_MAX
        self.ip_overrides: dict[str, int] = {}
        self._overrides_text: str | None = None
        queued = config["queued.max.request.bytes"]
        if not config.is_set("queued.max.request.bytes"):
            queued = max(queued, config["socket.request.max.bytes"])
        self.max_bytes: int = queued  # <= 0: unbounded
        self.max_requests: int = config["queued.max.requests"]
        self.receive_timeout_ms: int = config["kbroker.request.receive.timeout.ms"]
        self.total = 0
        self.per_ip: dict[str, int] = {}
        self.bytes_held = 0
        self.requests = 0
        self._waiting: set[Waiter] = set()
        self._released = 0
        self._trim = _Trimmer()
        self.on_slot_free: list[Callable[[], None]] = []  # callbacks: a connection closed, or a limit raised
        self.reconfigure(config)

    def reconfigure(self, config: BrokerConfig) -> None:
        """Apply the (possibly dynamically changed) connection keys, as Kafka's SocketServer and
        ListenerConnectionQuota reconfigure; a delayed connection keeps its original delay."""
        self.max_connections = config["max.connections"]
        self.max_per_ip = config["max.connections.per.ip"]
        text = config["max.connections.per.ip.overrides"] or ""
        if text != self._overrides_text:  # host names are resolved when the setting changes only
            overrides: dict[str, int] = {}
            for host, count in parse_ip_overrides(text).items():
                for address in _resolve(host):
                    overrides[address] = count
            self.ip_overrides = overrides
            self._overrides_text = text
        self.broker_rate.bound = config["max.connection.creation.rate"]
        for name, quota in self.listeners.items():
            found = getattr(config, "listener_overrides", {})
            quota.max_connections = found.get((name, "max.connections"), INT_MAX)
            quota.rate.bound = found.get((name, "max.connection.creation.rate"), INT_MAX)
        for callback in self.on_slot_free:
            callback()

    # -- connections --------------------------------------------------------------------------

    def limit_for(self, address: str) -> int:
        return self.ip_overrides.get(address, self.max_per_ip)

    def protected(self, listener: str | None) -> bool:
        """Kafka's protectedListener: the inter-broker listener, when the broker has others."""
        return listener is not None and listener.upper() == self.inter_broker_listener and len(self.listeners) > 1

    def slot_available(self, listener: str | None = None) -> bool:
        """Whether ``listener`` may accept a connection now (Kafka's connectionSlotAvailable)."""
        quota = self.listeners.get(listener.upper()) if listener is not None else None
        if quota is not None and quota.count >= quota.max_connections:
            return False
        if self.protected(listener):
            return True
        return self.total < self.max_connections

    def record_connection(self, listener: str | None = None, now: float | None = None) -> int:
        """A connection is being accepted on ``listener``: record it in the broker-wide (unless
        the listener is protected) and the listener's creation rates; the time to hold it before
        serving it, the longer of the two (Kafka's recordConnectionAndGetThrottleTimeMs)."""
        now = self.clock() if now is None else now
        throttle = 0 if self.protected(listener) else self.broker_rate.record(now, self.max_throttle_ms)
        quota = self.listeners.get(listener.upper()) if listener is not None else None
        if quota is not None:
            throttle = max(throttle, quota.rate.record(now, self.max_throttle_ms))
            if throttle > 0:
                quota.delayed += 1
        return throttle

    def unrecord_connection(self, listener: str | None = None, now: float | None = None) -> None:
        """A connection recorded by :meth:`record_connection` was refused by its address's
        connection_creation_rate: take it back out of the rates (Kafka's updateListenerMetrics)."""
        now = self.clock() if now is None else now
        if not self.protected(listener):
            self.broker_rate.unrecord(now)
        quota = self.listeners.get(listener.upper()) if listener is not None else None
        if quota is not None:
            quota.rate.unrecord(now)

    def admit(self, address: str, listener: str | None = None) -> bool:
        """Count a new connection from ``address``; False when that address is at its limit
        (the connection is then not counted and must be closed)."""
        address = normal_address(address)
        count = self.per_ip.get(address, 0)
        limit = self.limit_for(address)
        if count >= limit:
            log.info("Rejected connection from %s, address already has the configured maximum of %d "
                     "connections.", address, limit)
            return False
        self.per_ip[address] = count + 1
        self.total += 1
        quota = self.listeners.get(listener.upper()) if listener is not None else None
        if quota is not None:
            quota.count += 1
        return True

    def release_connection(self, address: str, listener: str | None = None) -> None:
        address = normal_address(address)
        count = self.per_ip.get(address, 0)
        if count <= 1:
            self.per_ip.pop(address, None)
        else:
            self.per_ip[address] = count - 1
        self.total -= 1
        quota = self.listeners.get(listener.upper()) if listener is not None else None
        if quota is not None and quota.count > 0:
            quota.count -= 1
        for callback in self.on_slot_free:
            callback()

    @property
    def accepting(self) -> bool:
        return self.total < self.max_connections

    # -- request bytes and requests -----------------------------------------------------------

    @property
    def bytes_exhausted(self) -> bool:
        return 0 < self.max_bytes <= self.bytes_held

    @property
    def requests_exhausted(self) -> bool:
        return self.requests >= self.max_requests

    def hold(self, delta: int) -> None:
        """Bytes held by connections changed by ``delta`` (negative: released)."""
        if not delta:
            return
        was = self.bytes_exhausted
        self.bytes_held += delta
        if delta < 0:
            self._released -= delta
            if was and not self.bytes_exhausted:
                self._wake()
            if self._released >= _TRIM_AFTER_BYTES and self.bytes_held < _TRIM_AFTER_BYTES:
                self._released = 0
                self._trim()

    def request_started(self) -> None:
        self.requests += 1

    def request_finished(self) -> None:
        was = self.requests_exhausted
        self.requests -= 1
        if was and not self.requests_exhausted:
            self._wake()

    def wait(self, conn: Waiter) -> None:
        """``conn`` stopped reading for a broker-wide reason: tell it when to look again."""
        self._waiting.add(conn)

    def forget(self, conn: Waiter) -> None:
        self._waiting.discard(conn)

    def _wake(self) -> None:
        waiting = list(self._waiting)
        self._waiting.clear()
        for conn in waiting:
            conn.limits_changed()
