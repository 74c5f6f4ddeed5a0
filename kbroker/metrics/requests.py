"""Per-request counting on the dispatcher's hot path: a count and a latency histogram per API.

The dispatcher (``KafkaConnection``) calls :meth:`RequestStats.request_done` once per answered
request with the ``time.perf_counter()`` it was decoded at. Nothing here takes a lock or builds an
object per request: a list lookup, a bisect and two additions. The metrics collector turns the
counts into Prometheus families at scrape time.
"""

from __future__ import annotations

import time
from bisect import bisect_left

# Upper bounds (ms) of the request latency buckets (Prometheus ``le``), then +Inf.
BOUNDS_MS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
                                1000.0, 2500.0, 5000.0, 10000.0, 30000.0)


class ApiStats:
    __slots__ = ("buckets", "sum_ms", "failed")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BOUNDS_MS) + 1)  # per bucket, not cumulative; last is +Inf
        self.sum_ms = 0.0
        self.failed = 0

    @property
    def count(self) -> int:
        return sum(self.buckets)


class RequestStats:
    def __init__(self) -> None:
        self.apis: dict[int, ApiStats] = {}

    def _api(self, api_key: int) -> ApiStats:
        stats = self.apis.get(api_key)
        if stats is None:
            stats = self.apis[api_key] = ApiStats()
        return stats

    def request_done(self, api_key: int, started: float) -> None:
        """A request was answered (its response encoded and queued): from decode to now."""
        ms = (time.perf_counter() - started) * 1000.0
        stats = self.apis.get(api_key)
        if stats is None:
            stats = self._api(api_key)
        stats.buckets[bisect_left(BOUNDS_MS, ms)] += 1
        stats.sum_ms += ms

    def handler_failed(self, api_key: int) -> None:
        """A handler raised (answered with the API's error response, or the connection closed)."""
        self._api(api_key).failed += 1
