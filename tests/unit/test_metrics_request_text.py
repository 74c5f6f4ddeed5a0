"""The request-time histograms' text (kbroker.metrics.request_text): what prometheus-client writes
for the whole families, with each API's chunk formatted again only when its count moved."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from kbroker.metrics.request_text import NAMES, PART_HELP, RequestHistogramText, cumulative
from kbroker.metrics.requests import PART_BOUNDS, PARTS, RequestStats
from kbroker.server.slots import Slot, SyntheticHeader


class Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def answer(stats: RequestStats, api_key: int, ms: float) -> None:
    slot = Slot(SyntheticHeader(api_key, 0, 0))
    slot.received, slot.started, slot.busy, slot.ready = 0.0, ms / 4000, ms / 4000, ms / 2000
    stats.requests_sent([slot], ms / 1500, ms / 1000)


def whole_families(stats: RequestStats) -> bytes:
    """The families as one generate_latest of them all would write them."""
    names = {0: "Produce", 1: "Fetch", 3: "Metadata"}
    families = []
    for i in range(len(PARTS)):
        family = HistogramMetricFamily(NAMES[i], PART_HELP[i], labels=["request"])
        for api_key, api in sorted(stats.apis.items()):
            family.add_metric([names[api_key]], cumulative(PART_BOUNDS[i], api.buckets(i)), api.sums[i])
        families.append(family)
    return generate_latest(Families(families))


def test_the_text_is_what_prometheus_client_writes_for_the_whole_families():
    stats = RequestStats()
    text = RequestHistogramText(stats)
    assert text.text() == whole_families(stats)  # no API yet: the headers alone
    for api_key, ms in ((0, 3.0), (1, 700.0), (0, 0.1), (3, 40.0)):
        answer(stats, api_key, ms)
    assert text.text() == whole_families(stats)
    parsed = {f.name: f for f in text_string_to_metric_families(text.text().decode())}
    assert set(parsed) == set(NAMES)
    total = {(s.name, s.labels.get("request"), s.labels.get("le")): s.value for s in parsed[NAMES[0]].samples}
    assert total[(NAMES[0] + "_count", "Produce", None)] == 2
    assert total[(NAMES[0] + "_bucket", "Produce", "0.25")] == 1
    assert total[(NAMES[0] + "_bucket", "Fetch", "500.0")] == 0
    assert total[(NAMES[0] + "_bucket", "Fetch", "1000.0")] == 1


def test_an_api_is_formatted_again_only_when_its_count_moved():
    stats = RequestStats()
    text = RequestHistogramText(stats)
    answer(stats, 0, 1.0)
    answer(stats, 1, 1.0)
    text.text()
    assert text.formatted == 2
    text.text()
    assert text.formatted == 2  # nothing answered since: both reused
    answer(stats, 1, 30.0)
    assert text.text() == whole_families(stats)
    assert text.formatted == 3  # Fetch alone


def test_each_part_is_counted_in_its_bucket_and_a_negative_time_in_the_first():
    """requests_sent's parts, the first bucket taken without a bisect included: a time equal to a
    bound is in that bound's bucket (``le``), one just over it in the next, a negative one
    (clock points out of order, which the dispatcher does not take) in the first bucket, and its
    sum as it is (the parts' sums stay those of the points: they add up to the total's)."""
    stats = RequestStats()

    def send(queue: float, local: float, remote: float, response_queue: float, send_ms: float) -> None:
        slot = Slot(SyntheticHeader(1, 0, 0))
        slot.received = 0.0
        slot.started = queue / 1000
        slot.busy = local / 1000
        slot.ready = slot.started + (local + remote) / 1000
        flushed = slot.ready + response_queue / 1000
        stats.requests_sent([slot], flushed, flushed + send_ms / 1000)  # the send time: the write's

    first = PART_BOUNDS[1][0]
    send(first, first, 0.0, first, first)
    send(first * 1.01, 3.0, 40.0, 0.0, 0.0)
    send(-1.0, 0.0, 0.0, -2.0, 0.0)
    api = stats.apis[1]
    for part, expected in ((1, [2, 1]), (2, [2, 0, 1]), (3, [2, 0, 0, 0, 1]), (4, [3]), (5, [3])):
        got = api.buckets(part)
        assert got[:len(expected)] == expected and sum(got) == 3, (PARTS[part], got)
    assert api.sums[1] == pytest.approx(first + first * 1.01 - 1.0, rel=1e-12)
    assert api.sums[4] == pytest.approx(first - 2.0, rel=1e-12)
    assert sum(api.sums[1:]) == pytest.approx(api.sums[0], rel=1e-12)
