"""Per-request counting on the dispatcher's hot path: a count and latency histograms per API.

Kafka's RequestMetrics split a request's time into parts; the dispatcher (``KafkaConnection``)
takes the same points when metrics are on and calls :meth:`RequestStats.request_done` once per
answered request, when its response was handed to the socket:

- ``received``: the frame's bytes came in (the start of ``data_received``);
- ``started``: decoded, its handler called. ``started - received`` is the **request queue** time
  (behind the frames before it in the same read, and its decoding);
- ``busy``: time the event loop spent running the handler (its synchronous call, then each step
  of its task): the **local** time. Handling time that is not ``busy`` is the **remote** time:
  waiting on something else (a long-polling Fetch, acks=all replication, a rebalance, the disk
  off the event loop, other requests' work between its steps);
- ``ready``: its response encoded. From ``ready`` to ``flushed`` is the **response queue** time
  (held behind an earlier response, responses leave in request order, or a stalled socket);
- ``flushed`` to ``sent``: the **response send** time, handing the bytes to the socket (the
  transport's write or sendfile; bytes the kernel has not taken yet are not waited for).

The **total** is ``sent - received``. Nothing here takes a lock or builds an object per request:
list lookups, bisects and additions. The collector turns the counts into Prometheus families.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

# Upper bounds (ms) of the request latency buckets (Prometheus ``le``), then +Inf.
BOUNDS_MS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
                                1000.0, 2500.0, 5000.0, 10000.0, 30000.0)
# Coarser buckets for the parts of the total (dashboards chart their means, sum / count): a
# scrape stays small and each request's bisects short.
PART_BOUNDS_MS: tuple[float, ...] = (0.5, 1.0, 5.0, 25.0, 100.0, 500.0, 2500.0, 10000.0)
# The parts of a request's time, as Kafka's RequestMetrics names them (metric name suffixes).
PARTS = ("totaltimems", "requestqueuetimems", "localtimems", "remotetimems", "responsequeuetimems",
         "responsesendtimems")
PART_BOUNDS = (BOUNDS_MS,) + (PART_BOUNDS_MS,) * (len(PARTS) - 1)


# Offsets of each part's buckets in ApiStats.counts (one flat list: the total's buckets, then each
# part's): one list subscript per update instead of two.
OFFSETS: tuple[int, ...] = tuple(sum(len(b) + 1 for b in PART_BOUNDS[:i]) for i in range(len(PARTS)))
_O1, _O2, _O3, _O4, _O5 = OFFSETS[1:]


class ApiStats:
    __slots__ = ("counts", "sums", "failed")

    def __init__(self) -> None:
        # Per-bucket counts (not cumulative; each part's last bucket is +Inf), every part's in one
        # flat list (a part's start: OFFSETS), and per part the sum in ms.
        self.counts = [0] * sum(len(bounds) + 1 for bounds in PART_BOUNDS)
        self.sums = [0.0] * len(PARTS)
        self.failed = 0

    def buckets(self, part: int) -> list[int]:
        """The per-bucket counts of one part (an index into PARTS)."""
        start = OFFSETS[part]
        return self.counts[start:start + len(PART_BOUNDS[part]) + 1]

    @property
    def count(self) -> int:
        return sum(self.buckets(0))


class RequestStats:
    def __init__(self) -> None:
        self.apis: dict[int, ApiStats] = {}

    def _api(self, api_key: int) -> ApiStats:
        stats = self.apis.get(api_key)
        if stats is None:
            stats = self.apis[api_key] = ApiStats()
        return stats

    def request_done(self, api_key: int, received: float, started: float, busy: float, ready: float,
                     flushed: float, sent: float, _bisect: Callable[[tuple[float, ...], float], int] = bisect_left,
                     _total: tuple[float, ...] = BOUNDS_MS, _part: tuple[float, ...] = PART_BOUNDS_MS) -> None:
        """A request was answered: its ``time.perf_counter()`` points (see the module doc).

        Unrolled, the bisect and bounds bound as defaults (fast locals), the counts in one flat
        list: this runs once per request."""
        stats = self.apis.get(api_key)
        if stats is None:
            stats = self._api(api_key)
        c, s = stats.counts, stats.sums
        ms = (sent - received) * 1000.0
        c[_bisect(_total, ms)] += 1
        s[0] += ms
        ms = (started - received) * 1000.0
        if ms < 0.0:
            ms = 0.0
        c[_O1 + _bisect(_part, ms)] += 1
        s[1] += ms
        handling = ready - started
        if handling < 0.0:
            handling = 0.0
        local = busy if busy < handling else handling
        ms = local * 1000.0
        c[_O2 + _bisect(_part, ms)] += 1
        s[2] += ms
        ms = (handling - local) * 1000.0
        c[_O3 + _bisect(_part, ms)] += 1
        s[3] += ms
        ms = (flushed - ready) * 1000.0
        if ms < 0.0:
            ms = 0.0
        c[_O4 + _bisect(_part, ms)] += 1
        s[4] += ms
        ms = (sent - flushed) * 1000.0
        if ms < 0.0:
            ms = 0.0
        c[_O5 + _bisect(_part, ms)] += 1
        s[5] += ms

    def handler_failed(self, api_key: int) -> None:
        """A handler raised (answered with the API's error response, or the connection closed)."""
        self._api(api_key).failed += 1
