"""The request-time histograms' exposition text, kept per API while that API's count is unchanged.

The six ``kafka_network_requestmetrics_*timems`` histograms are most of a scrape: each API a broker
has answered has 17 + 5 x 9 buckets, a sum and a count in them, ~76 lines, and prometheus-client
takes a few microseconds a line to format. Between two scrapes only the APIs that answered
requests change (Produce and Fetch under load; the others stay as they were): an API's six chunks
of text are formatted when its count moved and reused otherwise. Every line is still written by
prometheus-client (``generate_latest`` of a one-series family); this module only puts each family's
header once and its APIs' chunks after it, as the text format wants a family's lines together.
An API's count moves with every request answered (:meth:`RequestStats.requests_sent` adds to
every part and bucket of each request at once), so an unchanged count is unchanged text.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kbroker.metrics.requests import PART_BOUNDS, PARTS, ApiStats, RequestStats
from kbroker_protocol.messages import API_NAMES

PART_HELP = (
    "Time from a request's bytes arriving to its response being handed to the socket, in ms, by API.",
    "Time from a request's bytes arriving to its handler starting (queued behind earlier frames of "
    "the same read, and decoding), in ms, by API.",
    "Time the event loop spent running a request's handler, in ms, by API.",
    "Time a request's handling waited on something else (long polls, replication, rebalances, the "
    "disk off the event loop, other work), in ms, by API.",
    "Time from a response being ready to being written (held behind earlier responses or a full "
    "socket), in ms, by API.",
    "Time handing a response to the socket, in ms, by API.",
)
NAMES = tuple(f"kafka_network_requestmetrics_{part}" for part in PARTS)


class _One(Collector):
    """A collector of one family, for generate_latest."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> Iterator[Metric]:
        yield self.family


def _family(part: int) -> HistogramMetricFamily:
    return HistogramMetricFamily(NAMES[part], PART_HELP[part], labels=["request"])


def _split_header(text: bytes, part: int) -> tuple[bytes, bytes]:
    """(the ``# HELP`` and ``# TYPE`` lines, the sample lines) of one family's text."""
    help_end = text.index(b"\n") + 1
    type_end = text.index(b"\n", help_end) + 1
    header = text[:type_end]
    if not (header.startswith(b"# HELP " + NAMES[part].encode()) and b"# TYPE " in header):
        raise ValueError(f"unexpected exposition text for {NAMES[part]}: {header[:200]!r}")
    return header, text[type_end:]


def cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last one +Inf) as Prometheus' cumulative ``le`` buckets."""
    out: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip((*bounds, float("inf")), counts, strict=True):
        running += n
        out.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return out


class RequestHistogramText:
    def __init__(self, requests: RequestStats) -> None:
        self.requests = requests
        self.headers = tuple(_split_header(generate_latest(_One(_family(i))), i)[0] for i in range(len(PARTS)))
        # api key -> (its count when formatted, its six chunks of sample lines)
        self._chunks: dict[int, tuple[int, tuple[bytes, ...]]] = {}
        self.formatted = 0  # APIs formatted (not reused), for tests and benchmarks

    def text(self) -> bytes:
        parts: list[list[bytes]] = [[header] for header in self.headers]
        for api_key, stats in sorted(self.requests.apis.items()):
            count = stats.count
            cached = self._chunks.get(api_key)
            if cached is None or cached[0] != count:
                cached = (count, self._format(api_key, stats))
                self._chunks[api_key] = cached
                self.formatted += 1
            for lines, chunk in zip(parts, cached[1], strict=True):
                lines.append(chunk)
        return b"".join(b"".join(lines) for lines in parts)

    @staticmethod
    def _format(api_key: int, stats: ApiStats) -> tuple[bytes, ...]:
        name = API_NAMES.get(api_key, str(api_key))
        chunks = []
        sums = stats.sums
        for i in range(len(PARTS)):
            family = _family(i)
            family.add_metric([name], cumulative(PART_BOUNDS[i], stats.buckets(i)), sums[i])
            chunks.append(_split_header(generate_latest(_One(family)), i)[1])
        return tuple(chunks)
