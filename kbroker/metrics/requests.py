"""Per-request counting on the dispatcher's hot path: a count and latency histograms per API.

Kafka's RequestMetrics split a request's time into parts; the dispatcher (``KafkaConnection``)
takes the same points when metrics are on and calls :meth:`RequestStats.requests_sent` once per
write with the requests it answered, when their responses were handed to the socket:

- ``received``: the frame's bytes came in (the start of ``data_received``: one clock reading
  shared by every frame of that read);
- ``started``: decoded, its handler called. ``started - received`` is the **request queue** time
  (behind the frames before it in the same read, and its decoding);
- ``busy``: for a handler that returned an awaitable, the time the event loop spent running it
  (its synchronous call, then each step of its task): the **local** time. Handling time that is
  not ``busy`` is the **remote** time: waiting on something else (a long-polling Fetch, acks=all
  replication, a rebalance, the disk off the event loop, other requests' work between its steps).
  A request answered in its handler's call (``busy`` left negative: nothing timed apart) spent
  all its handling locally and none remotely, as Kafka counts a response sent before
  ``KafkaApis.handle`` returns (``RequestChannel.sendResponse`` sets ``apiLocalCompleteTimeNanos``
  to the response's completion when the handler has not);
- ``ready``: its response encoded (``ready - started``: the handling, local plus remote). From
  ``ready`` to ``flushed`` is the **response queue** time (held behind an earlier response,
  responses leave in request order, or a stalled socket);
- ``flushed`` to ``sent``: the **response send** time, handing the bytes to the socket (the
  transport's write or sendfile; bytes the kernel has not taken yet are not waited for): the
  write's, the same for each request it carries.

The **total** is ``sent - received``; the parts add up to it. The points are
``time.monotonic()`` readings taken in that order, so no part is negative; one that
were (points out of order) would count in its first bucket, and in its sum as it is. Nothing here
takes a lock or builds an object per request: list lookups, comparisons, a bisect for a time past
a part's fourth bound (25 ms), additions, and for the queue, local and response queue times one
folded bucket update (``ApiStats.folded``). Times are kept in seconds (the bounds divided once,
the sums multiplied at scrape time). What follows from the rest is not counted per request but
taken at scrape time: the response queue time's sum (the total less the send, queue and handling
times) and the remote time's first bucket for the requests answered in their handler's call (the
count less the requests timed apart). The collector turns the counts into Prometheus families.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
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


# The bounds in seconds, as the request times are taken: no multiplication per time.
BOUNDS_S: tuple[float, ...] = tuple(b / 1000.0 for b in BOUNDS_MS)
PART_BOUNDS_S: tuple[float, ...] = tuple(b / 1000.0 for b in PART_BOUNDS_MS)


# A request's queue, local and response queue buckets folded into one index of ApiStats.folded
# (queue * 81 + local * 9 + response queue: 9 buckets each): one list update per request for the
# three, its parts' counts taken apart at scrape time.
_PART_BUCKETS = len(PART_BOUNDS_MS) + 1
_FQ, _FL = _PART_BUCKETS * _PART_BUCKETS, _PART_BUCKETS
FOLDED = {1: _FQ, 2: _FL, 4: 1}  # part -> its weight in a folded index
assert (_FQ, _FL) == (81, 9), "requests_sent's literals"


class ApiStats:
    __slots__ = ("counts", "folded", "seconds", "failed")

    def __init__(self) -> None:
        # Per-bucket counts (not cumulative; each part's last bucket is +Inf), every part's in one
        # flat list (a part's start: OFFSETS), the queue, local and response queue times' in
        # ``folded`` instead (FOLDED), and the remote time's of the requests timed apart only (a
        # request answered in its handler's call has none: its 0 in the first bucket is the count
        # less those, at scrape time). The sums in seconds (SECONDS): the response queue's and
        # the local time's are taken from them at scrape time (``sums``).
        self.counts = [0] * sum(len(bounds) + 1 for bounds in PART_BOUNDS)
        self.folded = [0] * _PART_BUCKETS ** 3
        self.seconds = [0.0] * len(SECONDS)
        self.failed = 0

    def buckets(self, part: int) -> list[int]:
        """The per-bucket counts of one part (an index into PARTS)."""
        start = OFFSETS[part]
        counts = self.counts[start:start + len(PART_BOUNDS[part]) + 1]
        weight = FOLDED.get(part)
        if weight is not None:
            for index, n in enumerate(self.folded):
                if n:
                    counts[index // weight % _PART_BUCKETS] += n
        elif part == 3:  # remote: the requests answered in their handler's call, 0 each
            counts[0] += self.count - sum(counts)
        return counts

    @property
    def sums(self) -> list[float]:
        """Each part's sum, in ms (the histograms' unit). A request's queue, handling and response
        queue times add up to its total less its send time, whatever its points' order: the
        response queue's sum is what that leaves of the others'."""
        total, queue, handling, remote, send = self.seconds
        return [t * 1000.0 for t in (total, queue, handling - remote, remote, total - send - queue - handling, send)]

    @property
    def count(self) -> int:
        return sum(self.counts[:_O1])


# ApiStats.seconds: the sums kept per request (seconds), from which ``sums`` gives each part's.
SECONDS = ("total", "queue", "handling", "remote", "send")

_NO_STATS = ApiStats()  # requests_sent's run before the first: empty, never added to


def _add_run(stats: ApiStats, n: int, total: float, send: float, send_at: int, queued: float, handled: float,
             remote: float, _first: float = BOUNDS_S[0], _second: float = BOUNDS_S[1],
             _third: float = BOUNDS_S[2]) -> None:
    """Adds a run of ``n`` requests of one API (see :meth:`RequestStats.requests_sent`) to its
    stats: the total's and send time's buckets (``send_at`` already bisected: the same for every run
    of the write) and the sums (``handled``: the run's handling, local plus remote). Neither the
    remote time of the requests answered in the handler's call (0, their count known from the
    total's) nor the response queue time's sum is added per run (ApiStats.buckets and sums). A
    total under the third bound (1 ms) is bucketed without a bisect call."""
    c = stats.counts
    c[0 if total <= _first else 1 if total <= _second else 2 if total <= _third else bisect_left(BOUNDS_S, total)] += n
    c[send_at] += n
    s = stats.seconds
    s[0] += n * total
    s[1] += queued
    s[2] += handled
    s[3] += remote
    s[4] += n * send


class RequestStats:
    def __init__(self) -> None:
        self.apis: dict[int, ApiStats] = {}

    def _api(self, api_key: int) -> ApiStats:
        stats = self.apis.get(api_key)
        if stats is None:
            stats = self.apis[api_key] = ApiStats()
        return stats

    def requests_sent(self, slots: Sequence[Slot], flushed: float, sent: float,
                      _bisect: Callable[[tuple[float, ...], float], int] = bisect_left,
                      _part: tuple[float, ...] = PART_BOUNDS_S, first: float = PART_BOUNDS_S[0],
                      second: float = PART_BOUNDS_S[1], third: float = PART_BOUNDS_S[2],
                      fourth: float = PART_BOUNDS_S[3], _total: tuple[float, ...] = BOUNDS_S) -> None:
        """Requests answered by one write: each slot's ``time.monotonic()`` points, in order (see
        the module doc), ``flushed`` when the write started, ``sent`` when it returned.

        This is the per-request cost, so: one call per write rather than per request, unrolled,
        the bisect and the bounds bound as defaults (fast locals), and what a run of requests
        shares counted once for the run. A run: consecutive requests of one API from one read
        (pipelined requests answered together), so of one total time, and the write's send time.
        Per request: the buckets of its queue, local and response queue times (a time under the
        fourth bound without a bisect call) folded into one index, one list update, its queue and
        handling times added to the run's sums in local variables, and for a request timed apart
        (a handler that returned an awaitable) its remote time's bucket and sum; per run
        (``_add_run``): the total's and send time's buckets, and the sums. A write of one request (a
        client that waits for each answer: most consumers) takes the same steps inlined, without
        the loop and the run's bookkeeping."""
        send = sent - flushed
        send_at = _O5 if send <= first else _O5 + _bisect(_part, send)
        if len(slots) == 1:  # a client waiting on each answer: the loop below for one request, inlined
            slot = slots[0]
            received = slot.received
            stats = self.apis.get(slot.header.request_api_key) or self._api(slot.header.request_api_key)
            c = stats.counts
            started = slot.started
            queue = started - received
            k = (0 if queue <= first else 81 if queue <= second else 162 if queue <= third else 243 if queue <= fourth
                 else 81 * _bisect(_part, queue))
            ready = slot.ready
            handling = ready - started
            t = slot.busy
            s = stats.seconds
            if t < 0.0 or t >= handling:
                t = handling
            else:
                s[3] += handling - t
                c[_O3 if handling - t <= first else _O3 + _bisect(_part, handling - t)] += 1
            k += 0 if t <= first else 9 if t <= second else 18 if t <= third else 27 if t <= fourth else 9 * _bisect(
                _part, t)
            t = flushed - ready
            stats.folded[k + (0 if t <= first else 1 if t <= second else 2 if t <= third else 3 if t <= fourth
                              else _bisect(_part, t))] += 1
            t = sent - received
            c[0 if t <= _total[0] else 1 if t <= _total[1] else 2 if t <= _total[2] else _bisect(BOUNDS_S, t)] += 1
            c[send_at] += 1
            s[0] += t
            s[1] += queue
            s[2] += handling
            s[4] += send
            return
        api = -1
        received = -1.0
        stats = _NO_STATS
        c = []
        folded: list[int] = []
        n = 0  # the run's requests
        queued = handled = remote = 0.0  # the run's sums: queue, handling, remote
        for slot in slots:
            if slot.received != received or slot.header.request_api_key != api:
                if n:  # the run before this request's (the same as after the loop)
                    _add_run(stats, n, sent - received, send, send_at, queued, handled, remote)
                    n = 0
                    queued = handled = remote = 0.0
                received = slot.received
                api = slot.header.request_api_key
                stats = self.apis.get(api) or self._api(api)
                c, folded = stats.counts, stats.folded
            n += 1
            started = slot.started
            t = started - received
            queued += t
            k = (0 if t <= first else 81 if t <= second else 162 if t <= third else 243 if t <= fourth
                 else 81 * _bisect(_part, t))
            ready = slot.ready
            handling = ready - started
            handled += handling
            t = slot.busy
            if t < 0.0 or t >= handling:  # answered in the handler's call: all local, no remote time
                t = handling
            else:
                handling -= t
                remote += handling
                c[_O3 if handling <= first else _O3 + _bisect(_part, handling)] += 1
            k += 0 if t <= first else 9 if t <= second else 18 if t <= third else 27 if t <= fourth else 9 * _bisect(
                _part, t)
            t = flushed - ready
            folded[k + (0 if t <= first else 1 if t <= second else 2 if t <= third else 3 if t <= fourth
                        else _bisect(_part, t))] += 1
        if n:
            _add_run(stats, n, sent - received, send, send_at, queued, handled, remote)

    def handler_failed(self, api_key: int) -> None:
        """A handler raised (answered with the API's error response, or the connection closed)."""
        self._api(api_key).failed += 1

