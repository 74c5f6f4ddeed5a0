"""The broker's own HTTP listener (``kbroker.http.listeners``): Prometheus text at ``/metrics``.

Off unless ``kbroker.http.listeners`` names at least one ``host:port`` (``http://`` prefix
allowed, port 0 for an ephemeral one); the no-argument dev start turns it on at
``http://127.0.0.1:9644``. Read-only, so unlike the control endpoint it may listen on any address.
It never shares a Kafka listener's port. Every other path is the web console
(:mod:`kbroker.console`): ``/`` and ``/static/*`` its pages, ``/api/*`` its JSON endpoints.

While it runs, the broker counts requests (``broker.request_metrics``) and measures its event
loop's lag (how late a timer set every half second fires); everything else is read from the
broker's state when scraped (:mod:`kbroker.metrics.collector`). Process metrics (RSS, CPU, open
files) and Python's GC and platform come from prometheus-client's own collectors.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from kbroker.console.web import Console
from kbroker.metrics.collector import BrokerCollector
from kbroker.metrics.requests import RequestStats
from kbroker.server.http import HttpError, HttpService, Response, is_loopback

log = logging.getLogger("kbroker.metrics")

LAG_INTERVAL = 0.5


class MetricsServer(HttpService):
    key = "kbroker.http.listeners"
    name = "metrics"

    def __init__(self, registry: CollectorRegistry, listeners: list[str], console: Console | None = None) -> None:
        super().__init__(listeners)
        self.registry = registry
        self.console = console

    async def respond_with_headers(self, method: str, target: str, headers: dict[str, str],
                                   body: bytes) -> Response:
        path = urlsplit(target).path
        if path != "/metrics":
            if self.console is None:
                raise HttpError(404, f"no such endpoint: {path}")
            return await self.console.respond(method, target, headers, body)
        if method != "GET":
            raise HttpError(405, f"{method} not allowed on {path}: the endpoint is read-only")
        return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)

    def error(self, status: int, message: str, field: str | None = None) -> Response:
        if self.console is not None:
            return self.console.error(status, message, field)
        return super().error(status, message, field)


class MetricsService:
    """A broker service: off unless kbroker.http.listeners is set."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.registry: CollectorRegistry | None = None
        self.requests: RequestStats | None = None
        self.http: MetricsServer | None = None
        self.console: Console | None = None
        self._lag_task: asyncio.Task | None = None

    def _listeners(self) -> list[str]:
        return list(self.broker.config.get("kbroker.http.listeners") or [])

    async def start(self) -> None:
        listeners = self._listeners()
        if not listeners:
            return
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
        self.http = MetricsServer(registry, listeners)
        await self.http.start(kafka_ports)
        if self.broker.config["kbroker.console.enable"]:
            self.console = Console(self.broker, collector.traffic_totals,
                                   all(is_loopback(host) for host, _ in self.http.bound))
            self.http.console = self.console
            self.console.throughput.start()
        self.broker.request_metrics = self.requests
        self._lag_task = asyncio.get_running_loop().create_task(self._measure_lag(lag))

    async def stop(self) -> None:
        self.broker.request_metrics = None
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
