"""The overview's throughput series: rates between samples of the broker's counters."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kbroker.console.web import Throughput
from tests.console.helpers import get, post
from tests.integration.metrics_http import get as http_get


def test_rates_between_samples_and_since_the_last():
    counters = {"bytes_in": 0.0, "bytes_out": 0.0, "messages_in": 0.0}
    t = Throughput(lambda: dict(counters))
    now = time.time()
    t.samples.append((now - 20, {"bytes_in": 0.0, "bytes_out": 0.0, "messages_in": 0.0}))
    t.samples.append((now - 10, {"bytes_in": 1000.0, "bytes_out": 500.0, "messages_in": 10.0}))
    t.samples.append((now - 5, {"bytes_in": 1000.0, "bytes_out": 400.0, "messages_in": 10.0}))  # a topic deleted
    counters.update(bytes_in=1500.0, bytes_out=400.0, messages_in=15.0)
    series = t.series()
    assert [p["bytes_in"] for p in series["points"]] == [100.0, 0.0]
    assert [p["bytes_out"] for p in series["points"]] == [50.0, 0.0]  # never negative
    assert series["current"]["bytes_in"] == pytest.approx(100.0, rel=0.05)
    assert series["current"]["messages_in"] == pytest.approx(1.0, rel=0.05)
    assert series["totals"] == counters


def test_totals_are_what_the_metrics_endpoint_counts(base):
    post(base, "/api/topics", {"name": "counted"})
    for i in range(3):
        post(base, "/api/topics/counted/produce", {"value": "x" * (10 + i)})
    get(base, "/api/topics/counted/messages")
    totals = get(base, "/api/throughput")["totals"]
    _, _, text = http_get(base + "/metrics")
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("kafka_server_brokertopicmetrics_") and s.name.endswith("_total"):
                sums[s.name] = sums.get(s.name, 0.0) + s.value
    assert totals["bytes_in"] == sums["kafka_server_brokertopicmetrics_bytesin_total"] > 0
    assert totals["bytes_out"] == sums["kafka_server_brokertopicmetrics_bytesout_total"] > 0
    assert totals["messages_in"] == sums["kafka_server_brokertopicmetrics_messagesin_total"] >= 3
