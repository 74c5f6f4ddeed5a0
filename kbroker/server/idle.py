"""Closing connections the broker should no longer hold: those over max.connections, idle ones
(connections.max.idle.ms) and those trickling a request in (kbroker.request.receive.timeout.ms)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection

from kbroker.server.connection import KafkaConnection
from kbroker.server.limits import ConnectionLimits

log = logging.getLogger(__name__)


def close_excess_connections(connections: Collection[KafkaConnection], limits: ConnectionLimits) -> None:
    """Kafka's Processor.closeExcessConnections: while the broker is over max.connections (its
    protected inter-broker listener may take it over, or the limit was lowered), the least
    recently active connections of the other listeners are closed."""
    excess = limits.total - limits.max_connections
    if excess <= 0:
        return
    candidates = sorted((c for c in connections if not c.closed and not limits.protected(c.endpoint.listener)),
                        key=lambda c: c.last_active)
    for conn in candidates[:excess]:
        log.info("closing connection from %s on %s: the broker is over max.connections (%d)",
                 conn.peer, conn.endpoint.listener, limits.max_connections)
        conn.close()


async def close_idle_connections(connections: Collection[KafkaConnection], limits: ConnectionLimits,
                                 idle_ms: int) -> None:
    """Close connections idle for connections.max.idle.ms (Kafka: any byte restarts the
    timer), and those whose partly received request has been arriving for longer than
    kbroker.request.receive.timeout.ms (so trickling bytes cannot hold a connection and its
    buffered bytes for ever). Runs until cancelled."""
    receive_ms = limits.receive_timeout_ms
    bounds = [ms for ms in (idle_ms, receive_ms) if ms > 0]
    if not bounds:
        return
    period = max(0.05, min(min(bounds) / 1000 / 4, 30.0))
    while True:
        await asyncio.sleep(period)
        now = time.monotonic()
        for conn in list(connections):
            if conn.closed:
                continue
            if receive_ms > 0 and conn.decoder.buffered and now - conn.frame_started > receive_ms / 1000:
                log.info("closing connection from %s: a request of %s bytes not received in full within "
                         "%d ms (kbroker.request.receive.timeout.ms), %d bytes in", conn.peer,
                         conn.decoder.expected, receive_ms, conn.decoder.buffered)
                conn.close()
            elif idle_ms > 0 and conn.idle and now - conn.last_active > idle_ms / 1000:
                log.info("closing idle connection from %s", conn.peer)
                conn.close()
