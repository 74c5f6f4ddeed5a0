"""scripts/grafana/kbroker-dashboard.json queries only metrics the broker serves, with the labels
they carry."""

from __future__ import annotations

import json
import re
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from tests.integration.metrics_http import get
from tests.integration.waiting import wait_until
from tests.integration.wire import Wire, produce

DASHBOARD = Path(__file__).resolve().parents[2] / "scripts" / "grafana" / "kbroker-dashboard.json"
METRIC = re.compile(r"\b((?:kafka|kbroker|process|python)_[a-z0-9_]+)\b")
SELECTOR = re.compile(r"\b((?:kafka|kbroker|process|python)_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
BY = re.compile(r"\bby\s*\(([^)]*)\)")
AGGREGATION = re.compile(r"\b(?:sum|min|max|avg|count)\s*\(")
LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
LABEL_VALUES = re.compile(r"label_values\(\s*([a-z0-9_]+)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)")
# Labels Prometheus itself adds to every scraped sample.
TARGET_LABELS = {"instance", "job"}
AReq = REQUESTS[49]


def targets(dashboard: dict) -> list[dict]:
    return [t for p in dashboard["panels"] for t in p["targets"]]


def queried_metrics(dashboard: dict) -> set[str]:
    exprs = [t["expr"] for t in targets(dashboard)]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return {m for e in exprs for m in METRIC.findall(e)}


def label_problems(dashboard: dict, labels: dict[str, set[str]]) -> list[str]:
    """Labels a query selects on, groups by or shows in its legend that its metrics do not carry
    (``labels``: each served sample name's label names)."""
    problems = []

    def carried(metric: str) -> set[str]:
        return labels.get(metric, set()) | TARGET_LABELS

    for t in targets(dashboard):
        expr = t["expr"]
        metrics = METRIC.findall(expr)
        for metric, matchers in SELECTOR.findall(expr):
            problems += [f"{metric} has no label {label!r} ({expr})"
                         for label in MATCHER.findall(matchers) if label not in carried(metric)]
        grouped: set[str] = set()
        for by in BY.findall(expr):
            grouped |= {label.strip() for label in by.split(",") if label.strip()}
        problems += [f"{metric} has no label {label!r} to group by ({expr})"
                     for metric in metrics for label in grouped if label not in carried(metric)]
        # What the legend can show: the grouping's labels, none after an aggregation without
        # one, or with no aggregation the metrics' own.
        if BY.search(expr):
            shown = grouped
        elif AGGREGATION.search(expr):
            shown = set()
        else:
            shown = set().union(*(carried(m) for m in metrics))
        problems += [f"legend {t['legendFormat']!r} shows {label!r}, not in the result of {expr}"
                     for label in LEGEND.findall(t.get("legendFormat", "")) if label not in shown]
    for v in dashboard["templating"]["list"]:
        for metric, label in LABEL_VALUES.findall(v.get("definition", "")):
            if label not in carried(metric):
                problems.append(f"variable {v['name']}: {metric} has no label {label!r}")
    return problems


def throttle_a_produce(bootstrap: str, topic: str) -> None:
    """A producer_byte_rate quota for the wire client's client id, and one Produce over it: the
    broker counts one throttle of the Produce quota for that client id."""
    wire = Wire(bootstrap)
    try:
        resp = wire.call(49, 1, validate_only=False, entries=[AReq.EntryData(
            entity=[AReq.EntryData.EntityData(entity_type="client-id", entity_name="wire-test")],
            ops=[AReq.EntryData.OpData(key="producer_byte_rate", value=100.0, remove=False)])])
        assert resp.entries[0].error_code == ErrorCode.NONE, resp.entries[0].error_message
        produce(wire, topic, 0, 10, pad=b"p" * 1000)  # ~10 kB against 100 B/s
    finally:
        wire.close()


def test_every_metric_the_dashboard_queries_is_served_with_its_labels():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"] and all(p["targets"] for p in dashboard["panels"])
    wanted = queried_metrics(dashboard)
    assert {"kafka_consumergroup_lag", "kafka_network_requestmetrics_remotetimems_sum",
            "kbroker_quota_throttle_time_ms_total", "kbroker_quota_throttled_responses_total",
            "kafka_server_quota_throttle_time"} <= wanted
    with BrokerThread({"kbroker.http.listeners": "http://127.0.0.1:0", "offsets.topic.num.partitions": "1"}) as b:
        bootstrap = b.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("dash", 1, 1)])["dash"].result(30)
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce("dash", value=b"x")
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "dash-group",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        try:
            consumer.subscribe(["dash"])
            wait_until(lambda: (m := consumer.poll(0.2)) is not None and not m.error(), message="a record")
            consumer.commit(asynchronous=False)
        finally:
            consumer.close()
        throttle_a_produce(bootstrap, "dash")
        status, _, text = get(b.broker.metrics.http.url + "/metrics")
        assert status == 200
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels.setdefault(s.name, set()).update(s.labels)
    missing = sorted(wanted - set(labels))
    assert missing == [], f"the dashboard queries metrics the broker does not serve: {missing}"
    assert label_problems(dashboard, labels) == []


def test_a_label_the_metric_does_not_carry_is_caught():
    """The label check itself: a selector, a grouping and a legend naming labels the metric lacks."""
    labels = {"kafka_x_total": {"topic"}}
    panel = {"targets": [{"expr": 'sum by (topic, user) (rate(kafka_x_total{client_id="c"}[1m]))',
                          "legendFormat": "{{topic}} {{partition}}"},
                         {"expr": "sum(kafka_x_total)", "legendFormat": "{{topic}}"},
                         {"expr": 'kafka_x_total{topic=~"$topic", instance=~"$instance"}',
                          "legendFormat": "{{topic}} {{instance}}"}]}
    problems = label_problems({"panels": [panel], "templating": {"list": [
        {"name": "t", "definition": "label_values(kafka_x_total, topic)"},
        {"name": "p", "definition": "label_values(kafka_x_total, partition)"}]}}, labels)
    assert len(problems) == 5, problems
    assert [p for p in problems if "'client_id'" in p and "no label" in p]
    assert [p for p in problems if "'user' to group by" in p]
    assert [p for p in problems if "shows 'partition'" in p]
    assert [p for p in problems if "shows 'topic'" in p and "sum(kafka_x_total)" in p]
    assert [p for p in problems if p.startswith("variable p:")]
