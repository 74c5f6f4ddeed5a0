"""The console's JSON endpoints against a broker holding data (issue 21)."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Consumer, Producer

from kbroker.console.records import murmur2
from kbroker_protocol.records import Record
from tests.console.helpers import PAGE_HEADERS, call, consume_and_commit, get, post, produce_raw
from tests.integration.waiting import wait_until

SCRIPT = "<script>alert(1)</script>"


def test_overview_names_the_cluster_and_this_broker(broker, base):
    o = get(base, "/api/overview")
    assert o["cluster_id"] == broker.broker.cluster_id
    assert [b["id"] for b in o["brokers"]] == [broker.broker.node_id]
    assert o["controller_id"] == broker.broker.node_id
    assert o["features"]["metadata.version"] > 0
    assert o["version"]
    q = o["quorum"]  # DescribeQuorum, forwarded to the controller
    assert q["leader_id"] == broker.broker.node_id and q["high_watermark"] > 0
    assert [(r["id"], r["role"]) for r in q["replicas"]] == [(broker.broker.node_id, "leader")]


def test_create_describe_alter_delete_a_topic(base):
    created = post(base, "/api/topics", {"name": "cfg-topic", "partitions": 3, "configs": {"retention.ms": "120000"}})
    assert created == {"name": "cfg-topic", "partitions": 3, "replication_factor": 1}
    t = get(base, "/api/topics/cfg-topic")
    assert [p["partition"] for p in t["partitions"]] == [0, 1, 2]
    assert all(p["leader"] == 1 and p["isr"] == [1] for p in t["partitions"])
    configs = {c["name"]: c for c in t["configs"]}
    assert configs["retention.ms"]["value"] == "120000"
    assert configs["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert configs["cleanup.policy"]["source"] == "DEFAULT_CONFIG"

    post(base, "/api/topics/cfg-topic/configs", {"set": {"segment.ms": "3600000"}, "delete": ["retention.ms"]})
    configs = {c["name"]: c for c in get(base, "/api/topics/cfg-topic")["configs"]}
    assert configs["segment.ms"]["value"] == "3600000"
    assert configs["retention.ms"]["source"] == "DEFAULT_CONFIG"

    status, data, _ = call(base + "/api/topics/cfg-topic/configs", "POST", {"set": {"retention.ms": "soon"}})
    assert status == 400 and data["code"] == "INVALID_CONFIG"

    listed = {t["name"] for t in get(base, "/api/topics")["topics"]}
    assert "cfg-topic" in listed
    post(base, "/api/topics/cfg-topic/delete", {})
    status, data, _ = call(base + "/api/topics/cfg-topic")
    assert status == 404 and "cfg-topic" in data["error"]


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "bad name!"}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 250}, "name"),
    ({"name": "ok", "partitions": 0}, "partitions"),
    ({"name": "ok", "partitions": "many"}, "partitions"),
    ({"name": "ok", "replication_factor": 0}, "replication_factor"),
    ({"name": "ok", "configs": ["a=b"]}, "configs"),
])
def test_create_topic_rejects_bad_input_naming_the_field(base, body, field):
    status, data, _ = call(base + "/api/topics", "POST", body)
    assert status == 400 and data["field"] == field, data
    assert "ok" not in {t["name"] for t in get(base, "/api/topics")["topics"]}


def test_create_topic_that_exists_is_kafkas_error(base):
    post(base, "/api/topics", {"name": "twice"})
    status, data, _ = call(base + "/api/topics", "POST", {"name": "twice"})
    assert status == 400 and data["code"] == "TOPIC_ALREADY_EXISTS"


def test_produce_then_browse_newest_first_with_every_kind_of_bytes(broker, base):
    post(base, "/api/topics", {"name": "browse", "partitions": 2})
    first = post(base, "/api/topics/browse/produce", {"partition": 0, "key": "k-json", "value": '{"b": [1, 2]}',
                                                      "headers": [{"key": "trace", "value": "abc"}]})
    assert first == {"topic": "browse", "partition": 0, "offset": 0}
    post(base, "/api/topics/browse/produce", {"partition": 0, "key": None, "value": SCRIPT})
    produce_raw(broker.bootstrap_servers, "browse", 1,
                [Record(key=b"\x00\xff", value=b"\x01\x02bin\xfe", headers=(("h", None),), timestamp=int(time.time() * 1000) + 1000)])

    rows = get(base, "/api/topics/browse/messages")["records"]
    assert [(r["partition"], r["offset"]) for r in rows] == [(1, 0), (0, 1), (0, 0)]
    binary, script, js = rows
    assert binary["key"]["kind"] == "binary" and binary["key"]["text"] == "00 ff"
    assert binary["value"]["text"] == "01 02 62 69 6e fe" and binary["value"]["escaped"] == "\\x01\\x02bin\\xfe"
    assert binary["headers"] == [{"key": "h", "value": {"kind": "null", "text": None, "size": 0}}]
    assert script["value"] == {"kind": "text", "text": SCRIPT, "size": len(SCRIPT), "truncated": False}
    assert script["key"]["kind"] == "null"
    assert js["value"]["kind"] == "json" and json.loads(js["value"]["pretty"]) == {"b": [1, 2]}
    assert js["value"]["pretty"] == '{\n  "b": [\n    1,\n    2\n  ]\n}'
    assert js["headers"][0]["key"] == "trace" and js["headers"][0]["value"]["text"] == "abc"

    one = get(base, "/api/topics/browse/messages?partition=0&limit=1")["records"]
    assert [(r["partition"], r["offset"]) for r in one] == [(0, 1)]
    from_offset = get(base, "/api/topics/browse/messages?partition=0&offset=1")["records"]
    assert [r["offset"] for r in from_offset] == [1]
    filtered = get(base, "/api/topics/browse/messages?filter=TRACE")["records"]
    assert [(r["partition"], r["offset"]) for r in filtered] == [(0, 0)]
    filtered = get(base, "/api/topics/browse/messages?filter=alert(1)")["records"]
    assert [(r["partition"], r["offset"]) for r in filtered] == [(0, 1)]

    # By timestamp: the record stamped a second ahead is the first at or after its timestamp.
    ts = binary["timestamp"]
    by_ts = get(base, f"/api/topics/browse/messages?timestamp={ts}")["records"]
    assert [(r["partition"], r["offset"]) for r in by_ts] == [(1, 0)]


def test_keyed_records_go_where_kafkas_default_partitioner_puts_them(base):
    post(base, "/api/topics", {"name": "keyed", "partitions": 5})
    for key in ("alpha", "beta", "gamma", "delta"):
        r = post(base, "/api/topics/keyed/produce", {"key": key, "value": "v"})
        assert r["partition"] == (murmur2(key.encode()) & 0x7FFFFFFF) % 5


def test_murmur2_matches_kafkas_known_values():
    # Kafka's UtilsTest.testMurmur2 cases.
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829,
             b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107}
    for data, expected in cases.items():
        assert murmur2(data) == expected & 0xFFFFFFFF, data


def test_produce_rejects_bad_input(base):
    post(base, "/api/topics", {"name": "prod-bad"})
    for body, field in [({"partition": 7, "value": "x"}, "partition"), ({"value": 5}, "value"),
                        ({"value": "x", "headers": [{"key": "", "value": "v"}]}, "headers"),
                        ({"value": "x", "headers": "h"}, "headers")]:
        status, data, _ = call(base + "/api/topics/prod-bad/produce", "POST", body)
        assert status == 400 and data["field"] == field, (body, data)
    status, data, _ = call(base + "/api/topics/no-such-topic/produce", "POST", {"value": "x"})
    assert status == 400 and data["code"] == "UNKNOWN_TOPIC_OR_PARTITION"
    assert get(base, "/api/topics/prod-bad/messages")["records"] == []


def test_tail_returns_what_came_after_the_positions(base):
    post(base, "/api/topics", {"name": "tailing"})
    start = get(base, "/api/topics/tailing/messages")["positions"]
    assert start == {"0": 0}
    empty = get(base, "/api/topics/tailing/tail?positions=0:0&wait_ms=0")
    assert empty["records"] == [] and empty["positions"] == {"0": 0}
    post(base, "/api/topics/tailing/produce", {"value": "one"})
    post(base, "/api/topics/tailing/produce", {"value": "two"})
    got = get(base, "/api/topics/tailing/tail?positions=0:0&wait_ms=1000")
    assert [r["value"]["text"] for r in got["records"]] == ["two", "one"]
    assert got["positions"] == {"0": 2}
    status, data, _ = call(base + "/api/topics/tailing/tail?positions=9:0")
    assert status == 400 and data["field"] == "positions"


def test_tail_of_every_partition_in_one_fetch(base):
    post(base, "/api/topics", {"name": "tail-many", "partitions": 3})
    start = get(base, "/api/topics/tail-many/messages")["positions"]
    assert start == {"0": 0, "1": 0, "2": 0}
    post(base, "/api/topics/tail-many/produce", {"partition": 2, "value": "to two"})
    post(base, "/api/topics/tail-many/produce", {"partition": 0, "value": "to zero"})
    got = get(base, "/api/topics/tail-many/tail?positions=0:0,1:0,2:0&wait_ms=1000")
    assert sorted((r["partition"], r["value"]["text"]) for r in got["records"]) == [(0, "to zero"), (2, "to two")]
    assert got["positions"] == {"0": 1, "1": 0, "2": 1}
    filtered = get(base, "/api/topics/tail-many/tail?positions=0:0,1:0,2:0&wait_ms=0&filter=ZERO")
    assert [r["partition"] for r in filtered["records"]] == [0]


def test_group_lag_and_reset_offsets_only_while_inactive(broker, base):
    bootstrap = broker.bootstrap_servers
    post(base, "/api/topics", {"name": "lagging", "partitions": 1})
    for i in range(10):
        post(base, "/api/topics/lagging/produce", {"value": f"m{i}"})
    consume_and_commit(bootstrap, "lag-group", "lagging", 10)
    for i in range(4):
        post(base, "/api/topics/lagging/produce", {"value": f"n{i}"})

    listed = {g["group_id"]: g for g in get(base, "/api/groups")["groups"]}
    assert listed["lag-group"]["state"] == "Empty" and listed["lag-group"]["protocol_type"] == "consumer"
    g = get(base, "/api/groups/lag-group")
    assert g["state"] == "Empty" and g["members"] == []
    assert g["offsets"] == [{"topic": "lagging", "partition": 0, "committed": 10, "end_offset": 14, "lag": 4,
                             "member": None}]
    assert g["total_lag"] == 4

    post(base, "/api/groups/lag-group/reset-offsets", {"to": "earliest", "topic": "lagging"})
    assert get(base, "/api/groups/lag-group")["total_lag"] == 14
    r = post(base, "/api/groups/lag-group/reset-offsets", {"to": "offset", "offset": 99})
    assert r["offsets"] == [{"topic": "lagging", "partition": 0, "offset": 14}]  # clamped to the end
    post(base, "/api/groups/lag-group/reset-offsets", {"to": "offset", "offset": 6})
    assert get(base, "/api/groups/lag-group")["offsets"][0]["committed"] == 6
    records = get(base, "/api/topics/lagging/messages?partition=0&offset=12&limit=1")["records"]
    post(base, "/api/groups/lag-group/reset-offsets", {"to": "timestamp", "timestamp": records[0]["timestamp"]})
    assert get(base, "/api/groups/lag-group")["offsets"][0]["committed"] <= 12
    post(base, "/api/groups/lag-group/reset-offsets", {"to": "latest"})
    assert get(base, "/api/groups/lag-group")["total_lag"] == 0

    status, data, _ = call(base + "/api/groups/lag-group/reset-offsets", "POST", {"to": "somewhere"})
    assert status == 400 and data["field"] == "to"

    # A group with a live member: refused, as kafka-consumer-groups refuses.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "live-group", "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe(["lagging"])
        wait_until(lambda: consumer.poll(0.2) is not None and consumer.assignment(), message="an assignment")
        live = get(base, "/api/groups/live-group")
        assert live["state"] == "Stable" and len(live["members"]) == 1
        assert live["members"][0]["assignment"] == [{"topic": "lagging", "partitions": [0]}]
        status, data, _ = call(base + "/api/groups/live-group/reset-offsets", "POST", {"to": "earliest"})
        assert status == 409 and "inactive" in data["error"] and "Stable" in data["error"]
    finally:
        consumer.close()
    status, data, _ = call(base + "/api/groups/nobody-here")
    assert status == 404


def test_transactions_and_producers(broker, base):
    post(base, "/api/topics", {"name": "txn-topic"})
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "transactional.id": "console-txn"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce("txn-topic", value=b"in a transaction", partition=0)
    producer.flush(30)
    try:
        txns = {t["transactional_id"]: t for t in get(base, "/api/transactions")["transactions"]}
        t = txns["console-txn"]
        assert t["state"] == "Ongoing"
        assert t["partitions"] == [{"topic": "txn-topic", "partitions": [0]}]
        prods = [p for p in get(base, "/api/producers")["producers"] if p["topic"] == "txn-topic"]
        assert len(prods) == 1 and prods[0]["producer_id"] == t["producer_id"]
        assert prods[0]["txn_start_offset"] == 0
    finally:
        producer.commit_transaction(30)
    txns = {t["transactional_id"]: t for t in get(base, "/api/transactions")["transactions"]}
    assert txns["console-txn"]["state"] == "CompleteCommit"
    # The commit marker is a control record: the browser leaves it out.
    assert [r["value"]["text"] for r in get(base, "/api/topics/txn-topic/messages")["records"]] == ["in a transaction"]


# -- safety -----------------------------------------------------------------------------------


def test_changes_need_post_json_and_the_console_header(base):
    url = base + "/api/topics"
    body = json.dumps({"name": "csrf"}).encode()
    assert call(url, "POST", raw=body, headers={"Content-Type": "application/json"})[0] == 403
    assert call(url, "POST", raw=body, headers={"X-Kbroker-Console": "1", "Content-Type": "text/plain"})[0] == 415
    assert call(url, "POST", raw=body, headers={**PAGE_HEADERS, "Origin": "http://evil.example"})[0] == 403
    assert call(url, "POST", raw=body, headers={**PAGE_HEADERS, "Sec-Fetch-Site": "cross-site"})[0] == 403
    assert call(url, "PUT", raw=body, headers=PAGE_HEADERS)[0] == 405
    assert call(url, "POST", raw=b"{not json", headers=PAGE_HEADERS)[0] == 400
    assert "csrf" not in {t["name"] for t in get(base, "/api/topics")["topics"]}
    origin = base  # the page's own origin is accepted
    assert call(url, "POST", raw=body, headers={**PAGE_HEADERS, "Origin": origin, "Sec-Fetch-Site": "same-origin"})[0] == 200


def test_a_foreign_host_name_is_refused_on_loopback(base):
    status, _, _ = call(base + "/api/overview", headers={"Host": "attacker.example:9644"})
    assert status == 403
    assert call(base + "/api/overview", headers={"Host": "localhost:9644"})[0] == 200


def test_pages_are_static_and_sent_with_a_strict_content_security_policy(base):
    status, text, headers = call(base + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert 'src="/static/app.js"' in text and 'href="/metrics"' in text
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    status, js, headers = call(base + "/static/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js
    assert call(base + "/static/../web.py")[0] == 404
    assert call(base + "/static/nothing.js")[0] == 404
    assert call(base + "/api/nothing")[0] == 404


def test_console_off_leaves_metrics_alone():
    from kbroker.testing import BrokerThread

    with BrokerThread({"kbroker.http.listeners": "http://127.0.0.1:0", "kbroker.console.enable": "false"}) as b:
        url = b.broker.metrics.http.url
        assert b.broker.metrics.console is None
        assert call(url + "/api/overview")[0] == 404
        assert call(url + "/")[0] == 404
        status, text, _ = call(url + "/metrics")
        assert status == 200 and "kafka_server_replicamanager_partitioncount" in text


def test_the_console_reconnects_after_the_broker_closed_its_idle_connection():
    from kbroker.testing import BrokerThread

    with BrokerThread({"kbroker.http.listeners": "http://127.0.0.1:0", "connections.max.idle.ms": "200"}) as b:
        url = b.broker.metrics.http.url
        assert get(url, "/api/overview")["brokers"]
        conns = b.broker.connections
        wait_until(lambda: not conns, message="the idle console connection closed by the broker")
        assert get(url, "/api/overview")["brokers"]


def test_a_kip848_consumer_group_is_described_with_consumer_group_describe(broker, base):
    post(base, "/api/topics", {"name": "k848-topic", "partitions": 2})
    post(base, "/api/topics/k848-topic/produce", {"partition": 1, "value": "one"})
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "k848-group",
                         "group.protocol": "consumer", "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe(["k848-topic"])
        wait_until(lambda: consumer.poll(0.2) is not None and len(consumer.assignment()) == 2,
                   message="both partitions assigned")
        consumer.commit(asynchronous=False)
        g = get(base, "/api/groups/k848-group")
        assert g["type"] == "consumer" and g["state"] == "Stable" and g["protocol_type"] == "consumer"
        assert g["protocol"]  # the server-side assignor's name
        assert len(g["members"]) == 1
        assigned = {(a["topic"], p) for a in g["members"][0]["assignment"] for p in a["partitions"]}
        assert assigned == {("k848-topic", 0), ("k848-topic", 1)}
        rows = {(r["topic"], r["partition"]): r for r in g["offsets"]}
        assert rows[("k848-topic", 1)]["committed"] == 1 and rows[("k848-topic", 1)]["lag"] == 0
        assert all(r["member"] == g["members"][0]["member_id"] for r in rows.values())
        status, data, _ = call(base + "/api/groups/k848-group/reset-offsets", "POST", {"to": "earliest"})
        assert status == 409 and "Stable" in data["error"]
    finally:
        consumer.close()
    wait_until(lambda: get(base, "/api/groups/k848-group")["state"] == "Empty", message="the group empty")
    post(base, "/api/groups/k848-group/reset-offsets", {"to": "earliest", "topic": "k848-topic"})
    g = get(base, "/api/groups/k848-group")
    assert {(r["partition"], r["committed"]) for r in g["offsets"]} == {(0, 0), (1, 0)} and g["total_lag"] == 1


def test_the_console_reaches_its_own_broker_whatever_it_advertises():
    from kbroker.testing import BrokerThread

    with BrokerThread({"kbroker.http.listeners": "http://127.0.0.1:0",
                       "advertised.listeners": "PLAINTEXT://broker-1.invalid:9092"}) as b:
        url = b.broker.metrics.http.url
        assert get(url, "/api/overview")["brokers"][0]["host"] == "broker-1.invalid"
        post(url, "/api/topics", {"name": "adv"})
        assert post(url, "/api/topics/adv/produce", {"value": "v"})["offset"] == 0
        assert [r["value"]["text"] for r in get(url, "/api/topics/adv/messages")["records"]] == ["v"]
