"""scripts/grafana/kbroker-dashboard.json queries only metrics the broker serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from kbroker.testing import BrokerThread
from tests.integration.test_metrics import get
from tests.integration.waiting import wait_until

DASHBOARD = Path(__file__).resolve().parents[2] / "scripts" / "grafana" / "kbroker-dashboard.json"
METRIC = re.compile(r"\b((?:kafka|kbroker|process|python)_[a-z0-9_]+)\b")


def queried_metrics(dashboard: dict) -> set[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return {m for e in exprs for m in METRIC.findall(e)}


def test_every_metric_the_dashboard_queries_is_served():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"] and all(p["targets"] for p in dashboard["panels"])
    wanted = queried_metrics(dashboard)
    assert "kafka_consumergroup_lag" in wanted and "kafka_network_requestmetrics_remotetimems_sum" in wanted
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
        status, _, text = get(b.broker.metrics.http.url + "/metrics")
        assert status == 200
    served = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    missing = sorted(wanted - served)
    assert missing == [], f"the dashboard queries metrics the broker does not serve: {missing}"
