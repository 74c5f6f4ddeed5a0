"""Golden bytes: real request frames recorded from kafka-python, aiokafka and confluent-kafka.

Fixtures are written by scripts/record_golden.py (see its docstring). For each frame:
decode it and compare with the recorded JSON, re-encode and compare bytes exactly, and check the
decoded values against what the client was configured to send. The Produce frames' batches must
validate (CRC), use the configured codec (snappy: raw from librdkafka) and hold the configured
records.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from golden_recorder import to_jsonable  # the recorder's own JSON view of a decoded message

from kbroker_protocol.api import decode_request, encode_request
from kbroker_protocol.compression import Codec, is_xerial_snappy
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import HEADER_SIZE, validate_batch
from kbroker_protocol.records import check_produce_records, decode_batch

GOLDEN = Path(__file__).parent / "golden"
CLIENTS = {"kafka-python", "aiokafka", "confluent-kafka"}
FIXTURES = sorted(p for client in CLIENTS for p in (GOLDEN / client).glob("*.bin"))  # java/: batches only
TOPIC_ID = uuid.UUID("8a3c5b9e-1d2f-4c6a-9b7e-0f1e2d3c4b5a")  # the recorder's topic id


def _load(path: Path) -> tuple[bytes, dict[str, Any]]:
    return path.read_bytes(), json.loads(path.with_suffix(".json").read_text())


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def test_every_client_recorded_the_core_apis() -> None:
    by_client: dict[str, set[str]] = {}
    for path in FIXTURES:
        by_client.setdefault(path.parent.name, set()).add(path.stem.rsplit("_v", 1)[0])
    assert set(by_client) == CLIENTS
    for client, apis in by_client.items():
        missing = {
            "api_versions",
            "metadata",
            "produce",
            "fetch",
            "join_group",
            "sync_group",
            "offset_commit",
        } - apis
        assert not missing, f"{client} lacks {missing}"


@pytest.mark.parametrize("path", FIXTURES, ids=_id)
def test_decode_matches_json_and_reencodes_exactly(path: Path) -> None:
    frame, doc = _load(path)
    header, body = decode_request(frame)
    assert (header.request_api_key, header.request_api_version) == (doc["api_key"], doc["api_version"])
    assert path.stem == path.stem.rsplit("_v", 1)[0] + f"_v{doc['api_version']}"
    assert to_jsonable(header) == doc["header"]
    assert to_jsonable(body) == doc["body"]
    assert encode_request(header, body) == frame


@pytest.mark.parametrize("path", FIXTURES, ids=_id)
def test_values_are_what_the_client_was_told_to_send(path: Path) -> None:
    frame, doc = _load(path)
    header, body = decode_request(frame)
    cfg = doc["configured"]
    assert cfg["client"] == path.parent.name
    assert header.client_id in (cfg["producer_client_id"], cfg["consumer_client_id"])
    api = path.stem.rsplit("_v", 1)[0]
    version = doc["api_version"]
    if api in ("join_group", "sync_group", "heartbeat", "offset_commit", "leave_group"):
        assert body.group_id == cfg["group_id"]
        assert header.client_id == cfg["consumer_client_id"]
    if api == "offset_fetch":
        groups = [g.group_id for g in body.groups] if version >= 8 else [body.group_id]
        assert groups == [cfg["group_id"]]
    if api == "find_coordinator":
        keys = body.coordinator_keys if version >= 4 else [body.key]
        assert keys == [cfg["group_id"]] and body.key_type == 0
    if api == "join_group":
        assert body.protocol_type == "consumer"
        assert body.protocols and all(cfg["topic"].encode() in bytes(p.metadata) for p in body.protocols)
    if api in ("offset_commit", "list_offsets"):
        assert [t.name for t in body.topics] == [cfg["topic"]]
    if api == "fetch":
        topic = body.topics[0]
        assert (topic.topic_id == TOPIC_ID) if version >= 13 else (topic.topic == cfg["topic"])
        assert [p.partition for p in topic.partitions] == [0]
    if api == "produce":
        assert header.client_id == cfg["producer_client_id"]
        assert body.acks == cfg["acks"]
        assert [t.name for t in body.topic_data] == [cfg["topic"]]


@pytest.mark.parametrize("path", [p for p in FIXTURES if p.stem.startswith("produce_")], ids=_id)
def test_produced_batch_holds_the_configured_records(path: Path) -> None:
    frame, doc = _load(path)
    _header, body = decode_request(frame)
    cfg = doc["configured"]
    (partition,) = body.topic_data[0].partition_data
    records = bytes(partition.records)
    assert check_produce_records(doc["api_version"], records) == ErrorCode.NONE
    header = validate_batch(records)
    assert header.size == len(records)
    assert header.compression == cfg["codec_id"] != Codec.NONE
    if header.compression == Codec.SNAPPY:
        # librdkafka writes raw snappy, the others the xerial framing.
        assert is_xerial_snappy(records[HEADER_SIZE:]) == (cfg["client"] != "confluent-kafka")
    decoded = decode_batch(records)
    got = [
        {
            "key": r.key.decode(),
            "value": r.value.decode(),
            "headers": [[k, v.decode()] for k, v in r.headers],
        }
        for r in decoded.records
    ]
    assert got == cfg["records"]
    assert [r.offset for r in decoded.records] == [0, 1, 2]
