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

The **total** is ``sent - received``. Nothing here takes a lock; per request, the six times are
noted in a list, and counted into the histograms in bulk (:meth:`ApiStats.fold`). The collector
turns the counts into Prometheus families.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
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
# part's).
OFFSETS: tuple[int, ...] = tuple(sum(len(b) + 1 for b in PART_BOUNDS[:i]) for i in range(len(PARTS)))
# How many answered requests an API holds noted before they are counted into its histograms (at a
# scrape, or when this many have piled up).
FOLD_AT = 512
_NOTED = FOLD_AT * len(PARTS)


class ApiStats:
    """One API's request counts and times.

    On the hot path a request only has its six times (ms, the parts in PARTS' order) appended to
    ``pending`` (:meth:`RequestStats.requests_sent`); they are counted into the histograms in
    bulk (:meth:`fold`: per part a slice, a sort, a bisect per bucket bound and a sum, all C loops)
    before anything reads them (a scrape, the collector) and whenever FOLD_AT requests have piled
    up. The counts are those of counting each request as it is answered."""

    __slots__ = ("_counts", "_sums", "failed", "pending")

    def __init__(self) -> None:
        # Per-bucket counts (not cumulative; each part's last bucket is +Inf), every part's in one
        # flat list (a part's start: OFFSETS), and per part the sum in ms.
        self._counts = [0] * sum(len(bounds) + 1 for bounds in PART_BOUNDS)
        self._sums = [0.0] * len(PARTS)
        self.failed = 0
        # the six times of each request answered since the last fold, one request after the other
        self.pending: list[float] = []

    def fold(self) -> None:
        """Count the pending requests into the histograms. A part's negative time (clock points
        taken in another order) counts as 0: in the first bucket, nothing added to the sum (the
        total is counted as it is)."""
        pending = self.pending
        if not pending:
            return
        self.pending = []
        counts, sums = self._counts, self._sums
        width = len(PARTS)
        for part in range(width):
            values = pending[part::width]
            values.sort()
            start = OFFSETS[part]
            below = 0
            for i, bound in enumerate(PART_BOUNDS[part]):
                upto = bisect_right(values, bound)  # values <= bound: Prometheus' ``le``
                counts[start + i] += upto - below
                below = upto
            counts[start + len(PART_BOUNDS[part])] += len(values) - below
            sums[part] += sum(values[bisect_left(values, 0.0):] if part else values)

    @property
    def sums(self) -> list[float]:
        """Per part, the sum of its times in ms."""
        self.fold()
        return self._sums

    def buckets(self, part: int) -> list[int]:
        """The per-bucket counts of one part (an index into PARTS)."""
        self.fold()
        start = OFFSETS[part]
        return self._counts[start:start + len(PART_BOUNDS[part]) + 1]

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

    def requests_sent(self, slots: Iterable[Slot], flushed: float, sent: float) -> None:
        """Requests answered by one write: each slot's ``time.perf_counter()`` points (see the
        module doc), ``flushed`` when the write started, ``sent`` when it returned.

        The per-request cost: six subtractions, a dict lookup and one list extend; the counting
        into buckets is done in bulk (:meth:`ApiStats.fold`)."""
        apis = self.apis
        for slot in slots:
            api_key = slot.header.request_api_key
            stats = apis.get(api_key)
            if stats is None:
                stats = self._api(api_key)
            received, started, ready = slot.received, slot.started, slot.ready
            # the handling time (negative: 0) split into local, at most all of it, and remote
            handling = ready - started
            local = slot.busy
            if local > handling:
                local = handling if handling > 0.0 else 0.0
            pending = stats.pending
            pending += ((sent - received) * 1000.0, (started - received) * 1000.0, local * 1000.0,
                        (handling - local) * 1000.0,
                        (flushed - ready) * 1000.0,  # flushed before ready: the response went out at once
                        (sent - (flushed if flushed > ready else ready)) * 1000.0)
            if len(pending) >= _NOTED:
                stats.fold()

    def handler_failed(self, api_key: int) -> None:
        """A handler raised (answered with the API's error response, or the connection closed)."""
        self._api(api_key).failed += 1
