"""Kafka's per-node connection timing of a client (``ClusterConnectionStates`` with its two
``ExponentialBackoff``), for kbroker's outgoing connections to the other nodes.

- The **connection setup timeout** (``socket.connection.setup.timeout.ms``, 10000, growing to
  ``socket.connection.setup.timeout.max.ms``, 30000): how long an attempt may stay connecting
  (TCP, then TLS and SASL) before the client abandons it. Each consecutive failed attempt doubles
  it, with +/-20% jitter, capped at the max; an established connection resets it
  (``updateConnectionSetupTimeout`` / ``resetConnectionSetupTimeout``).
- The **reconnect backoff**: how long after a failure (a failed attempt or a broken connection)
  the client waits before it connects again, ``reconnect.backoff.ms * 2**(failures - 1)`` with
  +/-20% jitter up to the max, reset by an established connection (``updateReconnectBackoff`` /
  ``resetReconnectBackoff``). The broker's clients have fixed values, not keys: the Raft client
  50 growing to 500 ms (KafkaRaftManager), the broker-to-controller channels and the other
  broker-to-broker clients 50 ms (NodeToControllerChannelManagerImpl, NetworkUtils), the replica
  fetcher none (BrokerBlockingSender: 0; its thread backs off replica.fetch.backoff.ms instead).
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable

__all__ = ["EXP_BASE", "JITTER", "ConnectionBackoff", "ExponentialBackoff"]

EXP_BASE = 2  # ClusterConnectionStates.RECONNECT_BACKOFF_EXP_BASE, CONNECTION_SETUP_TIMEOUT_EXP_BASE
JITTER = 0.2  # ClusterConnectionStates.RECONNECT_BACKOFF_JITTER, CONNECTION_SETUP_TIMEOUT_JITTER


class ExponentialBackoff:
    """Kafka's ExponentialBackoff: ``random(1 - jitter, 1 + jitter) * initial * multiplier **
    attempts``, never above ``max_ms``; a max below the initial value gives a constant max.
    ``uniform`` draws the jitter factor (``random.uniform`` unless given: tests pin it)."""

    def __init__(self, initial_ms: int, multiplier: int, max_ms: int, jitter: float,
                 uniform: Callable[[float, float], float] | None = None) -> None:
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, but got {jitter}")
        self.initial_ms = min(max_ms, initial_ms)
        self.multiplier = multiplier
        self.max_ms = max_ms
        self.jitter = jitter
        self._uniform = uniform or random.uniform
        self._exp_max = (math.log(max_ms / max(self.initial_ms, 1)) / math.log(multiplier)
                         if max_ms > self.initial_ms else 0.0)

    def backoff(self, attempts: int) -> int:
        """The interval after ``attempts`` attempts, in ms."""
        if self._exp_max == 0:
            return self.initial_ms
        term = self.initial_ms * self.multiplier ** min(float(attempts), self._exp_max)
        factor = 1.0 if self.jitter < sys.float_info.min else self._uniform(1 - self.jitter, 1 + self.jitter)
        return min(int(factor * term), self.max_ms)


class ConnectionBackoff:
    """One node's connection timing, as Kafka's ClusterConnectionStates keeps it per node:
    ``setup_timeout_ms`` bounds the next (or current) attempt, ``reconnect_backoff_ms`` is the wait
    after the last failure. Call :meth:`connect_failed` when an attempt fails or times out,
    :meth:`connected` when a connection is ready, :meth:`disconnected` when a ready connection
    breaks (or is closed for a request timeout)."""

    def __init__(self, setup_timeout_ms: int, setup_timeout_max_ms: int, reconnect_backoff_ms: int = 0,
                 reconnect_backoff_max_ms: int = 0, uniform: Callable[[float, float], float] | None = None) -> None:
        self._reconnect = ExponentialBackoff(reconnect_backoff_ms, EXP_BASE, reconnect_backoff_max_ms, JITTER,
                                             uniform)
        self._setup = ExponentialBackoff(setup_timeout_ms, EXP_BASE, setup_timeout_max_ms, JITTER, uniform)
        self.failed_attempts = 0  # failures since the last ready connection (the reconnect backoff's)
        self.failed_connect_attempts = 0  # consecutive failed attempts (the setup timeout's)
        self.reconnect_backoff_ms = self._reconnect.backoff(0)
        self.setup_timeout_ms = self._setup.backoff(0)

    def connect_failed(self) -> None:
        """An attempt failed (refused, unreachable, timed out, TLS or SASL failed): Kafka's
        ``disconnected`` in the CONNECTING state."""
        self._update_reconnect_backoff()
        self.failed_connect_attempts += 1
        self.setup_timeout_ms = self._setup.backoff(self.failed_connect_attempts)

    def connected(self) -> None:
        """The connection is ready (Kafka's ``ready``; ``checkingApiVersions`` resets the setup
        timeout alone, which comes to the same for the next attempt)."""
        self.failed_attempts = 0
        self.reconnect_backoff_ms = self._reconnect.backoff(0)
        self._reset_setup_timeout()

    def disconnected(self) -> None:
        """A ready connection broke or was closed: Kafka's ``disconnected`` out of a connected
        state."""
        self._update_reconnect_backoff()
        self._reset_setup_timeout()

    def _update_reconnect_backoff(self) -> None:
        self.reconnect_backoff_ms = self._reconnect.backoff(self.failed_attempts)
        self.failed_attempts += 1

    def _reset_setup_timeout(self) -> None:
        self.failed_connect_attempts = 0
        self.setup_timeout_ms = self._setup.backoff(0)
