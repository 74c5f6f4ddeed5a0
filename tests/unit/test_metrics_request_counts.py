"""RequestStats.requests_sent (unrolled, the first bucket taken without a bisect, one call per write)
counts exactly what a plain per-request, per-part count of the same clock points gives."""

from __future__ import annotations

import random
from bisect import bisect_left

import pytest

from kbroker.metrics.requests import PART_BOUNDS, PARTS, RequestStats
from kbroker.server.slots import Slot, SyntheticHeader

Points = tuple[float, float, float, float, float, float]  # received, started, busy, ready, flushed, sent


class Reference:
    """Each request's parts (kbroker.metrics.requests' module doc) in ms, each counted by a bisect
    into its bounds (``le``: a time equal to a bound is in that bound's bucket), a negative part as
    0 (the total as it is)."""

    def __init__(self) -> None:
        self.buckets = [[0] * (len(bounds) + 1) for bounds in PART_BOUNDS]
        self.sums = [0.0] * len(PARTS)

    def add(self, received: float, started: float, busy: float, ready: float, flushed: float,
            sent: float) -> None:
        handling = max(0.0, ready - started)
        local = min(busy, handling)
        times = [(sent - received) * 1000.0, max(0.0, (started - received) * 1000.0), local * 1000.0,
                 (handling - local) * 1000.0, max(0.0, (flushed - ready) * 1000.0),
                 max(0.0, (sent - max(flushed, ready)) * 1000.0)]
        for part, ms in enumerate(times):
            self.buckets[part][bisect_left(PART_BOUNDS[part], ms)] += 1
            self.sums[part] += ms


def answer(stats: RequestStats, api_key: int, writes: list[list[Points]]) -> None:
    for write in writes:
        slots = []
        for received, started, busy, ready, _flushed, _sent in write:
            slot = Slot(SyntheticHeader(api_key, 0, 0))
            slot.received, slot.started, slot.busy, slot.ready = received, started, busy, ready
            slots.append(slot)
        stats.requests_sent(slots, write[0][4], write[0][5])


def random_writes(rng: random.Random, requests: int) -> list[list[Points]]:
    """Requests answered a few per write, their parts spread over every bucket (and some clock
    points out of order: negative parts)."""
    scale = (0.0, 1e-4, 1e-3, 3e-3, 0.02, 0.2, 3.0, 40.0)
    writes: list[list[Points]] = []
    now = 1000.0
    while requests > 0:
        n = min(requests, rng.randint(1, 8))
        requests -= n
        flushed = now + rng.choice(scale) * rng.random()
        sent = flushed + rng.choice(scale) * rng.random()
        write = []
        for _ in range(n):
            received = now - rng.choice(scale) * rng.random()
            started = received + rng.choice(scale) * rng.random() * rng.choice((1, 1, 1, -1))
            ready = started + rng.choice(scale) * rng.random() * rng.choice((1, 1, 1, -1))
            busy = rng.choice(scale) * rng.random()
            write.append((received, started, busy, ready, flushed, sent))
        writes.append(write)
        now = sent + rng.random() * 0.01
    return writes


@pytest.mark.parametrize("requests", [1, 7, 300])
def test_counts_are_those_of_counting_each_part_of_each_request(requests):
    rng = random.Random(requests)
    writes = random_writes(rng, requests)
    stats = RequestStats()
    answer(stats, 1, writes)
    reference = Reference()
    for write in writes:
        for points in write:
            reference.add(*points)
    api = stats.apis[1]
    assert api.count == requests
    for part in range(len(PARTS)):
        assert api.buckets(part) == reference.buckets[part], PARTS[part]
        assert sum(api.buckets(part)) == requests
        assert api.sums[part] == pytest.approx(reference.sums[part], rel=1e-12, abs=1e-12), PARTS[part]


def test_apis_are_counted_apart():
    stats = RequestStats()
    answer(stats, 0, random_writes(random.Random(1), 30))
    answer(stats, 1, random_writes(random.Random(2), 12))
    assert (stats.apis[0].count, stats.apis[1].count) == (30, 12)
    stats.handler_failed(1)
    assert (stats.apis[0].failed, stats.apis[1].failed) == (0, 1)
