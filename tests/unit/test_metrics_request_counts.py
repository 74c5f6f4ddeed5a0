"""RequestStats.requests_sent (unrolled, the first bucket taken without a bisect, one call per write,
what a run of requests shares counted once, times in seconds) counts exactly what a plain
per-request, per-part count of the same clock points gives, however the reads of the counts fall
between the writes."""

from __future__ import annotations

import random
from bisect import bisect_left

import pytest

from kbroker.metrics.requests import PART_BOUNDS, PARTS, RequestStats
from kbroker.server.slots import Slot, SyntheticHeader

Points = tuple[float, float, float, float, float, float]  # received, started, busy, ready, flushed, sent


class Reference:
    """Each request's parts (kbroker.metrics.requests' module doc) in ms, each counted by a bisect
    into its bounds (``le``: a time equal to a bound is in that bound's bucket; a negative time,
    clock points out of order, in the first). A negative ``busy``: answered in the handler's call,
    all its handling local (Kafka's apiLocalCompleteTimeNanos set when the response completes);
    a ``busy`` over the handling counts as the handling."""

    def __init__(self) -> None:
        self.buckets = [[0] * (len(bounds) + 1) for bounds in PART_BOUNDS]
        self.sums = [0.0] * len(PARTS)

    def add(self, received: float, started: float, busy: float, ready: float, flushed: float,
            sent: float) -> None:
        handling = ready - started
        local = handling if busy < 0.0 or busy >= handling else busy
        times = [(sent - received) * 1000.0, (started - received) * 1000.0, local * 1000.0,
                 (handling - local) * 1000.0, (flushed - ready) * 1000.0, (sent - flushed) * 1000.0]
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


def random_writes(rng: random.Random, requests: int, ordered: bool = False) -> list[list[Points]]:
    """Requests answered a few per write, some of a write from the same read (the same
    ``received``), their parts spread over every bucket, about half answered in the handler's call
    (``busy`` negative); unless ``ordered``, some clock points out of order (negative parts)."""
    scale = (0.0, 1e-4, 1e-3, 3e-3, 0.02, 0.2, 3.0, 40.0)
    signs = (1, 1, 1) if ordered else (1, 1, 1, -1)
    writes: list[list[Points]] = []
    now = 1000.0
    while requests > 0:
        n = min(requests, rng.randint(1, 8))
        requests -= n
        write = []
        received = now - rng.choice(scale) * rng.random()
        latest = received
        for _ in range(n):
            if rng.random() < 0.5:  # another read than the previous request's
                received = now - rng.choice(scale) * rng.random()
            started = received + rng.choice(scale) * rng.random() * rng.choice(signs)
            ready = started + rng.choice(scale) * rng.random() * rng.choice(signs)
            busy = rng.choice(scale) * rng.random() if rng.random() < 0.5 else -1.0
            latest = max(latest, ready)
            write.append([received, started, busy, ready])
        flushed = (latest if ordered else now) + rng.choice(scale) * rng.random()
        sent = flushed + rng.choice(scale) * rng.random()
        writes.append([(r, st, b, rd, flushed, sent) for r, st, b, rd in write])
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
        assert api.sums[part] == pytest.approx(reference.sums[part], rel=1e-9, abs=1e-9), PARTS[part]


@pytest.mark.parametrize("seed", [4, 5])
def test_writes_of_one_request_count_as_writes_of_several(seed):
    """A write answering one request (requests_sent's inlined path) counts what the reference does,
    and what the same requests give in writes of several (its loop)."""
    writes = random_writes(random.Random(seed), 300)
    singles = [[points] for write in writes for points in write]
    one, several = RequestStats(), RequestStats()
    answer(one, 1, singles)
    answer(several, 1, writes)
    reference = Reference()
    for points in (points for write in writes for points in write):
        reference.add(*points)
    for part in range(len(PARTS)):
        assert one.apis[1].buckets(part) == reference.buckets[part] == several.apis[1].buckets(part), PARTS[part]
        assert one.apis[1].sums[part] == pytest.approx(reference.sums[part], rel=1e-9, abs=1e-9), PARTS[part]


def test_apis_are_counted_apart():
    stats = RequestStats()
    answer(stats, 0, random_writes(random.Random(1), 30))
    answer(stats, 1, random_writes(random.Random(2), 12))
    assert (stats.apis[0].count, stats.apis[1].count) == (30, 12)
    stats.handler_failed(1)
    assert (stats.apis[0].failed, stats.apis[1].failed) == (0, 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_parts_add_up_to_the_total_when_the_points_are_in_order(seed):
    """The dispatcher takes the points in order (received, started, ready, flushed, sent): then
    each request's parts add up to its total exactly, as Kafka's do."""
    writes = random_writes(random.Random(seed), 200, ordered=True)
    stats = RequestStats()
    answer(stats, 3, writes)
    sums = stats.apis[3].sums
    assert sum(sums[1:]) == pytest.approx(sums[0], rel=1e-9)
    expected = sum((sent - received) * 1000.0 for write in writes for received, *_, sent in write)
    assert sums[0] == pytest.approx(expected, rel=1e-12)


def test_a_request_answered_in_its_handlers_call_spends_no_remote_time():
    """busy negative (no step timer: the handler returned the response): local is the whole
    handling, up to the encoded response; remote is 0, counted in its first bucket. A handler
    that returned an awaitable has the rest of its handling as remote time."""
    stats = RequestStats()
    # received, started, busy, ready, flushed, sent (seconds)
    answer(stats, 0, [[(10.0, 10.001, -1.0, 10.004, 10.005, 10.0052)]])
    api = stats.apis[0]
    assert api.sums == pytest.approx([5.2, 1.0, 3.0, 0.0, 1.0, 0.2])
    assert api.buckets(3)[0] == 1  # remote: 0 ms
    assert api.buckets(2) == [0, 0, 1, 0, 0, 0, 0, 0, 0]  # local: 3 ms, in (1, 5]
    answer(stats, 1, [[(10.0, 10.001, 0.0005, 10.004, 10.005, 10.0052)]])
    assert stats.apis[1].sums == pytest.approx([5.2, 1.0, 0.5, 2.5, 1.0, 0.2])


def test_bounds_are_the_histograms_bounds_in_seconds():
    """A time exactly on a bound (in ms) falls in that bound's bucket (``le``), though the times
    are compared in seconds."""
    for bound_ms in PART_BOUNDS[1]:
        stats = RequestStats()
        started = bound_ms / 1000.0
        answer(stats, 0, [[(0.0, started, -1.0, started, started, started)]])
        assert stats.apis[0].buckets(1)[PART_BOUNDS[1].index(bound_ms)] == 1, bound_ms


def test_counts_sums_and_buckets_after_n_requests_are_exact():
    """Times on a grid of 2**-16 s (~15 us: exact in binary floating point in seconds and in ms, their
    sums too): after N requests
    the scraped histograms (RequestHistogramText: the remote time's first bucket and the response
    queue time's sum taken at scrape time from what requests_sent kept) hold exactly each part's
    count, sum and cumulative buckets. Writes mix reads, APIs, and requests answered in the
    handler's call with requests timed apart."""
    from prometheus_client.parser import text_string_to_metric_families

    from kbroker.metrics.request_text import NAMES, RequestHistogramText

    grid = 2.0 ** -16  # seconds
    rng = random.Random(21)
    ticks = (0, 1, 16, 17, 33, 40, 300, 1500, 6000, 30_000, 160_000, 700_000, 2_000_000)
    stats = RequestStats()
    expected: dict[int, Reference] = {0: Reference(), 1: Reference()}
    now = 0
    n = 0
    for _ in range(120):
        slots = []
        received = now
        for _ in range(rng.randint(1, 6)):
            if rng.random() < 0.3:
                received = now = now + rng.choice(ticks)
            started = now = now + rng.choice(ticks)
            busy = -1.0 if rng.random() < 0.6 else rng.choice(ticks) * grid
            ready = now = now + rng.choice(ticks)
            api = rng.choice((0, 1))
            slot = Slot(SyntheticHeader(api, 0, 0))
            slot.received, slot.started, slot.busy, slot.ready = received * grid, started * grid, busy, ready * grid
            slots.append(slot)
        flushed = now = now + rng.choice(ticks)
        sent = now = now + rng.choice(ticks)
        stats.requests_sent(slots, flushed * grid, sent * grid)
        for slot in slots:
            expected[slot.header.request_api_key].add(slot.received, slot.started, slot.busy, slot.ready,
                                                       flushed * grid, sent * grid)
            n += 1
    assert sum(api.count for api in stats.apis.values()) == n
    samples = {(s.name, s.labels["request"], s.labels.get("le")): s.value
               for family in text_string_to_metric_families(RequestHistogramText(stats).text().decode())
               for s in family.samples}
    for api, name in ((0, "Produce"), (1, "Fetch")):
        reference = expected[api]
        count = sum(reference.buckets[0])
        assert count == stats.apis[api].count > 0
        for part, family in enumerate(NAMES):
            assert sum(reference.buckets[part]) == count
            assert samples[(family + "_count", name, None)] == count, family
            assert samples[(family + "_sum", name, None)] == reference.sums[part], family
            running = 0
            for bound, in_bucket in zip((*PART_BOUNDS[part], float("inf")), reference.buckets[part], strict=True):
                running += in_bucket
                le = "+Inf" if bound == float("inf") else repr(bound)
                assert samples[(family + "_bucket", name, le)] == running, (family, le)


def _same_counts(stats: RequestStats, reference: Reference, api: int = 1) -> None:
    counted = stats.apis[api]
    assert counted.count == sum(reference.buckets[0])
    for part in range(len(PARTS)):
        assert counted.buckets(part) == reference.buckets[part], PARTS[part]
        assert counted.sums[part] == pytest.approx(reference.sums[part], rel=1e-9, abs=1e-9), PARTS[part]


@pytest.mark.parametrize("seed", [6, 7])
def test_counts_read_between_writes_lose_and_double_nothing(seed):
    """The counts read (as a scrape reads them) after random writes, twice in a row, after a single
    write and after many, are each time those of every request answered so far: none lost, none
    counted twice."""
    rng = random.Random(seed)
    writes = random_writes(rng, 3000)
    stats = RequestStats()
    reference = Reference()
    reads = 0
    for i, write in enumerate(writes):
        answer(stats, 1, [write])
        for points in write:
            reference.add(*points)
        if i in (0, 3, 4, 100) or rng.random() < 0.002:
            _same_counts(stats, reference)
            reads += 1
    assert reads > 3
    _same_counts(stats, reference)
    _same_counts(stats, reference)  # a second read counts nothing again


def test_writes_mixing_apis_and_requests_timed_apart_count_each_api_apart():
    """One count of writes whose requests are of several APIs, some timed apart (busy >= 0), gives
    each API what its own requests give alone."""
    rng = random.Random(8)
    writes = random_writes(rng, 600)
    apis = [[rng.choice((0, 1, 3)) for _ in write] for write in writes]
    mixed = RequestStats()
    for write, keys in zip(writes, apis, strict=True):
        slots = []
        for (received, started, busy, ready, _f, _s), key in zip(write, keys, strict=True):
            slot = Slot(SyntheticHeader(key, 0, 0))
            slot.received, slot.started, slot.busy, slot.ready = received, started, busy, ready
            slots.append(slot)
        mixed.requests_sent(slots, write[0][4], write[0][5])
    for key in (0, 1, 3):
        reference = Reference()
        for write, keys in zip(writes, apis, strict=True):
            for points, k in zip(write, keys, strict=True):
                if k == key:
                    reference.add(*points)
        _same_counts(mixed, reference, key)


def test_a_connection_counts_each_answered_request_once():
    """The dispatcher hands each write's requests to the metrics: reads of one frame and of
    several, each answered in one write; every request is counted once, in every part, its
    points on the clock the connection reads for a read's arrival."""
    import struct
    from typing import Any

    from kbroker.api import install_handlers
    from kbroker.config import BrokerConfig, Endpoint
    from kbroker.server.connection import KafkaConnection
    from kbroker.server.limits import ConnectionLimits
    from kbroker_protocol.api import encode_request
    from kbroker_protocol.messages import REQUESTS, RequestHeader

    class Transport:
        written = 0

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return {"peername": ("127.0.0.1", 4242)}.get(name, default)

        def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
            pass

        def get_write_buffer_size(self) -> int:
            return 0

        def writelines(self, parts: list[Any]) -> None:
            self.written += 1

        def pause_reading(self) -> None:
            pass

        def resume_reading(self) -> None:
            pass

    class Host:
        def __init__(self, metrics: RequestStats) -> None:
            self.config = BrokerConfig({"node.id": "1"}, warn=False)
            self.limits = ConnectionLimits(self.config)
            self.request_hooks = None
            self.request_metrics = metrics
            self.listener_security: dict[str, Any] = {}
            self.client_quotas = None
            self.connections: set[KafkaConnection] = set()
            self.connection_listeners: list[Any] = []

    install_handlers()
    stats = RequestStats()
    conn = KafkaConnection(Host(stats), Endpoint("PLAINTEXT", "127.0.0.1", 0))  # type: ignore[arg-type]
    transport = Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    payload = encode_request(RequestHeader(request_api_key=18, request_api_version=0, correlation_id=1,
                                           client_id="t"), REQUESTS[18]())
    frame = struct.pack(">i", len(payload)) + payload
    for per_read in (1, 5, 1, 3):
        conn.data_received(frame * per_read)
    assert transport.written == 4
    api = stats.apis[18]
    assert api.count == 10
    assert [sum(api.buckets(part)) for part in range(len(PARTS))] == [10] * len(PARTS)
    assert api.sums[3] == 0.0  # answered in the handler's call: no remote time
    assert api.sums[0] > 0.0
    # a read's arrival is on the clock of the other points: no request started before it
    assert min(api.sums) >= 0.0 and api.sums[1] > 0.0
