"""Per-request counting on the dispatcher's hot path: a count and latency histograms per API.

Kafka's RequestMetrics split a request's time into parts; the dispatcher (``KafkaConnection``)
takes the same points when metrics are on and calls :meth:`RequestStats.requests_sent` once per
write with the requests it answered, when their responses were handed to the socket:

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
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kbroker.server.slots import Slot

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

    def requests_sent(self, slots: Iterable[Slot], flushed: float, sent: float,
                      _bisect: Callable[[tuple[float, ...], float], int] = bisect_left,
                      _total: tuple[float, ...] = BOUNDS_MS, _part: tuple[float, ...] = PART_BOUNDS_MS) -> None:
        """Requests answered by one write: each slot's ``time.perf_counter()`` points (see the
        module doc), ``flushed`` when the write started, ``sent`` when it returned.

        One call per write rather than per request, unrolled, the bisect and bounds bound as
        defaults (fast locals), each API's counts in one flat list: this is the per-request cost."""
        apis = self.apis
        first = _part[0]
        for slot in slots:
            api_key = slot.header.request_api_key
            stats = apis.get(api_key)
            if stats is None:
                stats = self._api(api_key)
            c, s = stats.counts, stats.sums
            received, started, ready = slot.received, slot.started, slot.ready
            ms = (sent - received) * 1000.0
            c[_bisect(_total, ms)] += 1
            s[0] += ms
            # The parts are mostly under the first bound (queue, response queue and send times
            # of a small request): that bucket without a bisect call; a negative time (clock
            # points taken in another order) counts as 0.
            ms = (started - received) * 1000.0
            if ms <= first:
                c[_O1] += 1
                if ms > 0.0:
                    s[1] += ms
            else:
                c[_O1 + _bisect(_part, ms)] += 1
                s[1] += ms
            handling = ready - started
            if handling < 0.0:
                handling = 0.0
            local = slot.busy
            if local > handling:
                local = handling
            ms = local * 1000.0
            if ms <= first:
                c[_O2] += 1
            else:
                c[_O2 + _bisect(_part, ms)] += 1
            s[2] += ms
            ms = (handling - local) * 1000.0
            if ms <= first:
                c[_O3] += 1
            else:
                c[_O3 + _bisect(_part, ms)] += 1
            s[3] += ms
            ms = (flushed - ready) * 1000.0  # flushed before ready: the response went out at once
            if ms <= first:
                c[_O4] += 1
                if ms > 0.0:
                    s[4] += ms
            else:
                c[_O4 + _bisect(_part, ms)] += 1
                s[4] += ms
            ms = (sent - (flushed if flushed > ready else ready)) * 1000.0
            if ms <= first:
                c[_O5] += 1
                if ms > 0.0:
                    s[5] += ms
            else:
                c[_O5 + _bisect(_part, ms)] += 1
                s[5] += ms

    def handler_failed(self, api_key: int) -> None:
        """A handler raised (answered with the API's error response, or the connection closed)."""
        self._api(api_key).failed += 1
