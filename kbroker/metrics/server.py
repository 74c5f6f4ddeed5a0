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

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
)

from kbroker.console.web import Console
from kbroker.server.http import HttpError, HttpService, Response

log = logging.getLogger("kbroker.metrics")


class MetricsServer(HttpService):
    key = "kbroker.http.listeners"
    name = "metrics"

    def __init__(self, registry: CollectorRegistry, listeners: list[str], console: Console | None = None,
                 more_text: Callable[[], bytes] | None = None) -> None:
        super().__init__(listeners)
        self.registry = registry
        self.console = console
        # Families written apart from the registry (the request-time histograms, kept per API:
        # kbroker.metrics.request_text), appended to its text.
        self.more_text = more_text

    async def respond_with_headers(self, method: str, target: str, headers: dict[str, str],
                                   body: bytes) -> Response:
        path = urlsplit(target).path
        if path != "/metrics":
            if self.console is None:
                raise HttpError(404, f"no such endpoint: {path}")
            return await self.console.respond(method, target, headers, body)
        if method != "GET":
            raise HttpError(405, f"{method} not allowed on {path}: the endpoint is read-only")
        # On the event loop, collection and formatting both. Formatting on a worker thread was
        # tried (scripts/README.md, "Metrics cost"): it moved the CPU without removing any, and the
        # loaded machine's runs could not tell whether it cost more; the simpler way stays.
        text = generate_latest(self.registry)
        if self.more_text is not None:
            text += self.more_text()
        return 200, CONTENT_TYPE_LATEST, text

    def error(self, status: int, message: str, field: str | None = None) -> Response:
        if self.console is not None:
            return self.console.error(status, message, field)
        return super().error(status, message, field)
