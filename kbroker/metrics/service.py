"""The metrics service: off unless ``kbroker.http.listeners`` is set.

The HTTP listener, prometheus-client, the collectors and the web console (:mod:`kbroker.metrics.server`)
are imported when a listener is configured, so a broker without one does not load them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Histogram

    from kbroker.console.sessions import ConsoleBroker
    from kbroker.console.web import Console
    from kbroker.metrics.collector import CollectedBroker
    from kbroker.metrics.requests import RequestStats
    from kbroker.metrics.server import MetricsServer
    from kbroker.server.slots import RequestMetrics

    class MetricsHost(CollectedBroker, ConsoleBroker, Protocol):
        """What the metrics service hands on: the collector's view of the broker and the
        console's (type-only: those modules load prometheus-client and the console, which a
        broker without an HTTP listener never imports)."""

log = logging.getLogger("kbroker.metrics")

LAG_INTERVAL = 0.5


class MetricsService:
    """A broker service: off unless kbroker.http.listeners is set."""

    def __init__(self, broker: MetricsHost, set_request_metrics: Callable[[RequestMetrics | None], None]) -> None:
        """``set_request_metrics``: the composition root's, to make the dispatcher count requests
        into these metrics (or stop counting: None)."""
        self.broker = broker
        self._set_request_metrics = set_request_metrics
        self.registry: CollectorRegistry | None = None
        self.requests: RequestStats | None = None
        self.http: MetricsServer | None = None
        self.console: Console | None = None
        self._lag_task: asyncio.Task[None] | None = None

    def _listeners(self) -> list[str]:
        return list(self.broker.config.get("kbroker.http.listeners") or [])

    async def start(self) -> None:
        listeners = self._listeners()
        if not listeners:
            return
        from prometheus_client import (
            GC_COLLECTOR,
            PLATFORM_COLLECTOR,
            CollectorRegistry,
            Histogram,
            ProcessCollector,
        )

        from kbroker.console.web import Console
        from kbroker.metrics.collector import BrokerCollector
        from kbroker.metrics.request_text import RequestHistogramText
        from kbroker.metrics.requests import RequestStats
        from kbroker.metrics.server import MetricsServer
        from kbroker.server.http import is_loopback

        registry = CollectorRegistry(auto_describe=False)
        self.requests = RequestStats()
        collector = BrokerCollector(self.broker, self.requests)
        registry.register(collector)
        ProcessCollector(registry=registry)
        registry.register(GC_COLLECTOR)
        registry.register(PLATFORM_COLLECTOR)
        lag = Histogram("kbroker_eventloop_lag_seconds",
                        "How late the event loop ran a timer set every half second.",
                        buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
                        registry=registry)
        self.registry = registry
        kafka_ports = {port for _host, port in self.broker.bound.values()}
        self.http = MetricsServer(registry, listeners, more_text=RequestHistogramText(self.requests).text)
        await self.http.start(kafka_ports)
        if self.broker.config["kbroker.console.enable"]:
            self.console = Console(self.broker, collector.traffic_totals,
                                   all(is_loopback(host) for host, _ in self.http.bound))
            self.http.console = self.console
            self.console.throughput.start()
        self._set_request_metrics(self.requests)
        self._lag_task = asyncio.get_running_loop().create_task(self._measure_lag(lag))

    async def stop(self) -> None:
        self._set_request_metrics(None)
        if self.console is not None:
            await self.console.stop()
            self.console = None
        if self._lag_task is not None:
            self._lag_task.cancel()
            self._lag_task = None
        if self.http is not None:
            await self.http.stop()
            self.http = None

    async def _measure_lag(self, histogram: Histogram) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            histogram.observe(max(0.0, loop.time() - due))
