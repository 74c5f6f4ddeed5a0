"""The versions Kafka 4.4 added, byte for byte: each frame below is written out field by field from
the 4.4 JSON specs (not produced by the codec), then decoded and re-encoded by the generated
codec; the Java 4.4 client's own ApiVersions v5 and TxnOffsetCommit v6 frames (golden/java-4.4/)
decode and re-encode exactly. Also: the registry's set of APIs whose newest version is unstable
matches the specs.
"""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path

import pytest

from kbroker.api.registry import LATEST_VERSION_UNSTABLE
from kbroker_protocol.api import decode_request, encode_request
from kbroker_protocol.interpreter import load_specs, version_range
from kbroker_protocol.messages import REQUESTS, RESPONSES

TOPIC_ID = uuid.UUID("8a3c5b9e-1d2f-4c6a-9b7e-0f1e2d3c4b5a")


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def uvarint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def cstr(s: str | None) -> bytes:
    """Compact (nullable) string: length + 1 as an unsigned varint, 0 for null."""
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def carray(items: list[bytes]) -> bytes:
    return uvarint(len(items) + 1) + b"".join(items)


NO_TAGS = uvarint(0)

# (class, version, bytes, fields to check after decoding)
CASES = [
    pytest.param(
        REQUESTS[18], 5,
        cstr("apache-kafka-java") + cstr("4.4.0") + cstr("Xu8Ue4YpQ1mEgVb0w7c3Wg") + i32(1) + NO_TAGS,
        {"client_software_name": "apache-kafka-java", "cluster_id": "Xu8Ue4YpQ1mEgVb0w7c3Wg", "node_id": 1},
        id="ApiVersionsRequest-v5",
    ),
    pytest.param(
        REQUESTS[18], 5,
        cstr("librdkafka") + cstr("2.12.0") + cstr(None) + i32(-1) + NO_TAGS,
        {"cluster_id": None, "node_id": -1},
        id="ApiVersionsRequest-v5-unchecked",
    ),
    pytest.param(
        REQUESTS[28], 6,
        cstr("tx-1") + cstr("group-1") + i64(4000) + i16(2) + i32(5) + cstr("member-1") + cstr(None)
        + carray([TOPIC_ID.bytes + carray([i32(0) + i64(10) + i32(-1) + cstr("") + NO_TAGS]) + NO_TAGS])
        + NO_TAGS,
        {"transactional_id": "tx-1", "generation_id_or_member_epoch": 5, "member_id": "member-1"},
        id="TxnOffsetCommitRequest-v6",
    ),
    pytest.param(
        RESPONSES[28], 6,
        i32(0) + carray([TOPIC_ID.bytes + carray([i32(0) + i16(100) + NO_TAGS]) + NO_TAGS]) + NO_TAGS,
        {"throttle_time_ms": 0},
        id="TxnOffsetCommitResponse-v6-unknown-topic-id",
    ),
    pytest.param(
        RESPONSES[42], 3,
        i32(0) + carray([cstr("g1") + i16(0) + cstr(None) + NO_TAGS,
                         cstr("g2") + i16(134) + cstr("share group state could not be deleted") + NO_TAGS])
        + NO_TAGS,
        {"throttle_time_ms": 0},
        id="DeleteGroupsResponse-v3",
    ),
    pytest.param(
        REQUESTS[57], 2,
        i32(60000) + carray([cstr("group.version") + i16(0) + i8(2) + NO_TAGS]) + i8(1) + NO_TAGS,
        {"timeout_ms": 60000, "validate_only": True},
        id="UpdateFeaturesRequest-v2",
    ),
    pytest.param(
        RESPONSES[57], 2,
        i32(0) + i16(95) + cstr("The update failed for all features since ...") + NO_TAGS,
        {"error_code": 95, "results": []},
        id="UpdateFeaturesResponse-v2",
    ),
    pytest.param(
        RESPONSES[57], 1,
        i32(0) + i16(0) + cstr(None) + carray([cstr("group.version") + i16(0) + cstr("NONE") + NO_TAGS]) + NO_TAGS,
        {"error_code": 0, "error_message": None},
        id="UpdateFeaturesResponse-v1",
    ),
    pytest.param(
        REQUESTS[74], 1, carray([i8(2), i8(4)]) + NO_TAGS, {"resource_types": [2, 4]},
        id="ListConfigResourcesRequest-v1",
    ),
    pytest.param(
        RESPONSES[74], 1,
        i32(0) + i16(0) + carray([cstr("1") + i8(4) + NO_TAGS, cstr("orders") + i8(2) + NO_TAGS]) + NO_TAGS,
        {"error_code": 0},
        id="ListConfigResourcesResponse-v1",
    ),
    pytest.param(
        RESPONSES[74], 0, i32(0) + i16(0) + carray([cstr("metrics-1") + NO_TAGS]) + NO_TAGS, {"error_code": 0},
        id="ListConfigResourcesResponse-v0",
    ),
]


@pytest.mark.parametrize("cls,version,data,fields", CASES)
def test_spec_bytes_decode_and_reencode(cls, version, data, fields):
    msg = cls.decode(data, version)
    for name, value in fields.items():
        assert getattr(msg, name) == value
    assert bytes(msg.encode(version)) == data


def test_new_version_fields_as_written():
    txn = REQUESTS[28].decode(CASES[2].values[2], 6)
    topic = txn.topics[0]
    assert (topic.topic_id, [(p.partition_index, p.committed_offset) for p in topic.partitions]) == (TOPIC_ID, [(0, 10)])
    deleted = RESPONSES[42].decode(CASES[4].values[2], 3)
    assert [(r.group_id, r.error_code, r.error_message) for r in deleted.results] == [
        ("g1", 0, None), ("g2", 134, "share group state could not be deleted")]
    listed = RESPONSES[74].decode(CASES[9].values[2], 1)
    assert [(r.resource_type, r.resource_name) for r in listed.config_resources] == [(4, "1"), (2, "orders")]
    # v0 has no ResourceType on the wire; it reads as the spec default, CLIENT_METRICS (16).
    assert RESPONSES[74].decode(CASES[10].values[2], 0).config_resources[0].resource_type == 16


def test_older_versions_leave_the_new_fields_off_the_wire():
    """ApiVersions v4 carries no ClusterId/NodeId; DeleteGroups v2 no ErrorMessage; TxnOffsetCommit
    v5 names topics and carries no id."""
    req = REQUESTS[18](client_software_name="a", client_software_version="1", cluster_id="c", node_id=3)
    assert bytes(req.encode(4)) == cstr("a") + cstr("1") + NO_TAGS
    resp = RESPONSES[42](results=[RESPONSES[42].DeletableGroupResult(group_id="g", error_code=69, error_message="x")])
    assert bytes(resp.encode(2)) == i32(0) + carray([cstr("g") + i16(69) + NO_TAGS]) + NO_TAGS
    T = RESPONSES[28].TxnOffsetCommitResponseTopic
    resp = RESPONSES[28](topics=[T(name="in", topic_id=TOPIC_ID, partitions=[
        T.TxnOffsetCommitResponsePartition(partition_index=0, error_code=0)])])
    assert bytes(resp.encode(5)) == i32(0) + carray([cstr("in") + carray([i32(0) + i16(0) + NO_TAGS]) + NO_TAGS]) \
        + NO_TAGS


def test_unstable_registry_matches_the_specs():
    """kbroker.api.registry.LATEST_VERSION_UNSTABLE is every request spec whose newest version is
    marked latestVersionUnstable (Kafka 4.4: InitProducerId v6), so ApiVersions honours it for every API."""
    unstable = {
        spec["apiKey"] for spec in load_specs().values()
        if spec.get("type") == "request" and spec.get("latestVersionUnstable")
    }
    assert unstable == LATEST_VERSION_UNSTABLE == {22}
    for key in unstable:
        spec = next(s for s in load_specs().values() if s.get("apiKey") == key and s["type"] == "request")
        assert version_range(spec["validVersions"])[1] == REQUESTS[key].MAX_VERSION


# -- golden frames of the Java 4.4 client (scripts/record_golden_java44.py) -------------------------

GOLDEN = Path(__file__).parent / "golden" / "java-4.4"
JAVA_FRAMES = sorted(GOLDEN.glob("*.bin"))


def _jsonable(value):
    if hasattr(value, "_FIELDS"):
        return {name: _jsonable(getattr(value, name)) for name in value._FIELDS}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def test_java_frames_recorded():
    assert [p.stem for p in JAVA_FRAMES] == ["api_versions_v5", "api_versions_v5_cluster_id", "txn_offset_commit_v6"]


@pytest.mark.parametrize("path", JAVA_FRAMES, ids=lambda p: p.stem)
def test_java_44_frame_decodes_and_reencodes_exactly(path):
    frame = path.read_bytes()
    doc = json.loads(path.with_suffix(".json").read_text())
    header, body = decode_request(frame)
    assert (header.request_api_key, header.request_api_version) == (doc["api_key"], doc["api_version"])
    assert _jsonable(header) == doc["header"] and _jsonable(body) == doc["body"]
    assert encode_request(header, body) == frame
    conf = doc["configured"]
    if header.request_api_key == 18:
        assert (body.client_software_name, body.client_software_version) == (
            conf["client_software_name"], conf["client_software_version"]) == ("apache-kafka-java", "4.4.0")
        # KIP-1242: the bootstrap connection does not know the cluster yet; later ones name it.
        expected = (None, -1) if path.stem == "api_versions_v5" else (conf["cluster_id"], conf["node_id"])
        assert (body.cluster_id, body.node_id) == expected
    else:
        # sendOffsetsToTransaction at v6: the consumed topic by id, no name on the wire.
        [topic] = body.topics
        assert topic.name == "" and str(topic.topic_id) in conf["topics"]
        assert [(p.partition_index, p.committed_offset) for p in topic.partitions] == [(0, 10)]
        assert body.generation_id_or_member_epoch >= 1 and body.member_id.startswith("consumer-")
