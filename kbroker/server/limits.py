"""Broker-wide bounds on what clients can make the broker hold, with Kafka's keys.

- ``max.connections.per.ip`` (+ ``max.connections.per.ip.overrides``, ``host:count,host:count``):
  a connection from an address that already has its maximum is accepted and closed at once, as
  Kafka's ``ConnectionQuotas`` does ("Rejected connection from ..., address already has the
  configured maximum of N connections.").
- ``max.connections``: at the limit the broker stops accepting (Kafka's acceptor blocks in
  ``waitForConnectionSlot``); new connections wait in the listen backlog until one closes.
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

import ctypes
import ctypes.util
import ipaddress
import logging
import socket
from typing import Any, Protocol

from kbroker.config import BrokerConfig, parse_ip_overrides

log = logging.getLogger(__name__)

_TRIM_AFTER_BYTES = 16 * 1024 * 1024


def _ip(address: str) -> str:
    """Normal form of an address, an IPv4-mapped IPv6 address as IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _resolve(host: str) -> list[str]:
    """The addresses a host name in the overrides stands for (an address stands for itself)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return [_ip(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        log.warning("max.connections.per.ip.overrides: cannot resolve %s (%s); override ignored", host, exc)
        return []
    return sorted({_ip(str(info[4][0])) for info in infos})


class Waiter(Protocol):
    """A connection that stopped reading until a broker-wide budget has room."""

    def limits_changed(self) -> None: ...


class _Trimmer:
    """Hands freed heap memory back to the system (glibc ``malloc_trim``): request buffers are
    allocated in pieces that glibc would otherwise keep after they are freed."""

    def __init__(self) -> None:
        self._trim: Any = None
        name = ctypes.util.find_library("c")
        if name:
            try:
                self._trim = ctypes.CDLL(name).malloc_trim
            except (OSError, AttributeError):
                self._trim = None

    def __call__(self) -> None:
        if self._trim is not None:
            self._trim(0)


class ConnectionLimits:
    """Counts connections, request bytes and requests in flight; tells connections when to stop
    and resume reading. One per broker, used on the event loop only."""

    def __init__(self, config: BrokerConfig) -> None:
        self.max_connections: int = config["max.connections"]
        self.max_per_ip: int = config["max.connections.per.ip"]
        self.ip_overrides: dict[str, int] = {}
        for host, count in parse_ip_overrides(config["max.connections.per.ip.overrides"] or "").items():
            for address in _resolve(host):
                self.ip_overrides[address] = count
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
        self.on_slot_free: list[Any] = []  # callbacks: a connection closed below max.connections

    # -- connections --------------------------------------------------------------------------

    def limit_for(self, address: str) -> int:
        return self.ip_overrides.get(address, self.max_per_ip)

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; False when that address is at its limit
        (the connection is then not counted and must be closed)."""
        address = _ip(address)
        count = self.per_ip.get(address, 0)
        limit = self.limit_for(address)
        if count >= limit:
            log.info("Rejected connection from %s, address already has the configured maximum of %d "
                     "connections.", address, limit)
            return False
        self.per_ip[address] = count + 1
        self.total += 1
        return True

    def release_connection(self, address: str) -> None:
        address = _ip(address)
        count = self.per_ip.get(address, 0)
        if count <= 1:
            self.per_ip.pop(address, None)
        else:
            self.per_ip[address] = count - 1
        self.total -= 1
        if self.total < self.max_connections:
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
