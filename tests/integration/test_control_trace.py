"""The protocol trace (requests with payloads summarised, filters, file-backed fetch records) and the
negotiation report of the test controls."""

from __future__ import annotations

import json

import pytest
from waiting import wait_until
from wire import Wire

from tests.integration.control_helpers import _no_faults_fixture, broker_fixture, http, metadata, topic  # noqa: F401 (fixtures)

# -- the trace -----------------------------------------------------------------------------------


def test_trace_records_requests_with_payloads_summarised_and_filters(broker, tmp_path):
    from kafka import KafkaProducer

    path = tmp_path / "trace.jsonl"
    name = topic()
    broker.start_trace(str(path))
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, client_id="traced", linger_ms=0)
    try:
        producer.send(name, b"x" * 100).get(timeout=30)
        rule = broker.add_fault(api="Produce", error="NOT_LEADER_OR_FOLLOWER", count=1, topic=name)
        producer.send(name, b"y" * 100).get(timeout=30)  # retried
    finally:
        producer.close()
    produces = broker.trace(api="Produce", client_id="traced")
    assert len(produces) == 3
    assert [p.get("fault") for p in produces] == [None, rule, None]
    assert [p["errors"] for p in produces] == [{}, {"NOT_LEADER_OR_FOLLOWER": 1}, {}]
    first = produces[0]
    assert first["api_key"] == 0 and first["client_id"] == "traced" and first["request_bytes"] > 100
    records = first["request"]["topic_data"][0]["partition_data"][0]["records"]
    assert records["batches"] == 1 and records["records"] == 1 and records["bytes"] > 100
    assert first["response"]["responses"][0]["partition_responses"][0]["base_offset"] == 0
    assert broker.trace(topic="no-such-topic") == []
    assert {r["api"] for r in broker.trace(topic=name)} >= {"Produce", "Metadata"}
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["correlation_id"] for r in lines if r["api"] == "Produce"] == [p["correlation_id"] for p in produces]
    status, out = http(broker, "GET", f"/trace?api=Produce&client_id=traced&topic={name}")
    assert status == 200 and len(out["records"]) == 3
    assert http(broker, "GET", "/trace?api=Bogus")[1]["field"] == "api"


def test_negotiation_report(broker):
    wire = Wire(broker.bootstrap_servers)
    broker.start_trace()
    try:
        # ApiVersions v5, then InitProducerId v6 (unstable: not served, the connection is closed);
        # then another connection with ApiVersions v3 and a Metadata.
        wire.call(18, 5, client_software_name="w", client_software_version="1")
        with pytest.raises(ConnectionError):
            wire.call(22, 6, transactional_id=None, transaction_timeout_ms=1000, producer_id=-1, producer_epoch=-1)
        wire.close()
        wire = Wire(broker.bootstrap_servers)
        wire.call(18, 3, client_software_name="wire-sw", client_software_version="9.9")
        metadata(wire, topic())
    finally:
        wire.close()
    clients = broker.negotiation("wire-test")
    assert len(clients) == 2
    refused, good = clients
    assert refused["refused"][0]["api"] == "InitProducerId" and refused["refused"][0]["version"] == 6
    assert [(a["asked"], a["error"]) for a in refused["api_versions"]] == [(5, "NONE")]
    assert good["client_software"] == {"name": "wire-sw", "version": "9.9"}
    assert good["api_versions"][0]["asked"] == 3 and good["api_versions"][0]["error"] == "NONE"
    assert good["used"]["Metadata"] == [12]
    assert good["used_below_offered_max"]["Metadata"]["used"] == 12
    status, out = http(broker, "GET", "/negotiation?client_id=wire-test")
    assert status == 200 and len(out["clients"]) == 2


def test_trace_of_fetches_summarises_file_backed_records(broker):
    from kafka import KafkaConsumer, KafkaProducer

    name = topic()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    for _ in range(20):
        producer.send(name, b"v" * 5000)
    producer.flush()
    producer.close()
    broker.start_trace(api="Fetch", topic=name)
    consumer = KafkaConsumer(name, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    try:
        got: list[bytes] = []
        wait_until(lambda: got.extend(r.value for rs in consumer.poll(200).values() for r in rs) or len(got) >= 20,
                   message="20 records")
    finally:
        consumer.close()
    assert got == [b"v" * 5000] * 20  # traced responses still reach the client intact
    served = [r for r in broker.trace(api="Fetch") if r["response"]["responses"]]
    summary = served[0]["response"]["responses"][0]["partitions"][0]["records"]
    assert set(summary) == {"bytes"} and summary["bytes"] > 100_000
    assert served[0]["response_bytes"] > summary["bytes"]
