"""The broker's metrics: Prometheus text on its own HTTP listener (``kbroker.http.listeners``)."""

from kbroker.metrics.service import MetricsService

__all__ = ["MetricsService"]
