"""The codec's public API: class shape, framing, header versions, zero-copy records."""

from __future__ import annotations

import uuid

import pytest
from kafka.protocol.consumer import FetchResponse as KpFetchResponse
from kafka.protocol.metadata import ApiVersionsResponse as KpApiVersionsResponse
from kafka.protocol.producer import ProduceRequest as KpProduceRequest

from kbroker_protocol.api import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    request_header_version,
    response_header_version,
)
from kbroker_protocol.exceptions import ProtocolError, UnsupportedVersionError
from kbroker_protocol.messages import API_NAMES, REQUESTS, RESPONSES, RequestHeader, ResponseHeader
from kbroker_protocol.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kbroker_protocol.messages.fetch import FetchRequest, FetchResponse
from kbroker_protocol.messages.metadata import MetadataRequest
from kbroker_protocol.messages.produce import ProduceRequest, ProduceResponse
from kbroker_protocol.primitives import Writer

TopicData = ProduceRequest.TopicProduceData
PartitionData = ProduceRequest.TopicProduceData.PartitionProduceData


def produce(version_records: bytes = b"batch-bytes") -> ProduceRequest:
    return ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout_ms=1500,
        topic_data=[
            TopicData(name="orders", partition_data=[PartitionData(index=3, records=version_records)])
        ],
    )


# -- class shape ---------------------------------------------------------------------------


def test_class_constants_and_registry():
    assert ProduceRequest.API_KEY == 0
    assert (ProduceRequest.MIN_VERSION, ProduceRequest.MAX_VERSION) == (3, 13)
    assert ProduceRequest.FLEXIBLE_MIN_VERSION == 9
    assert REQUESTS[0] is ProduceRequest and RESPONSES[0] is ProduceResponse
    assert API_NAMES[0] == "Produce" and API_NAMES[18] == "ApiVersions"
    assert REQUESTS[18] is ApiVersionsRequest
    assert 4 not in REQUESTS  # LeaderAndIsr: "validVersions": "none"
    from kbroker_protocol.messages.sasl_handshake import SaslHandshakeRequest

    assert SaslHandshakeRequest.FLEXIBLE_MIN_VERSION is None
    assert (RequestHeader.MIN_VERSION, RequestHeader.MAX_VERSION) == (0, 2)
    assert (ResponseHeader.MIN_VERSION, ResponseHeader.MAX_VERSION) == (0, 1)


def test_nested_class_names_and_snake_case_attributes():
    part = ProduceResponse.TopicProduceResponse.PartitionProduceResponse()
    assert part.log_append_time_ms == -1 and part.error_message is None
    assert part.current_leader == part.LeaderIdAndEpoch(leader_id=-1, leader_epoch=-1)
    req = ApiVersionsRequest()
    assert req.client_software_name == "" and req.client_software_version == ""
    assert ProduceRequest().topic_data == []
    assert not hasattr(ProduceRequest(), "__dict__")  # __slots__


def test_array_defaults_are_fresh_lists():
    a, b = ProduceRequest(), ProduceRequest()
    a.topic_data.append(TopicData())
    assert b.topic_data == [] and a.unknown_tagged_fields is not b.unknown_tagged_fields


def test_defaults_from_spec_strings_hex_and_null():
    fetch = FetchRequest()
    assert fetch.max_bytes == 0x7FFFFFFF and fetch.isolation_level == 0 and fetch.cluster_id is None
    assert fetch.replica_id == -1 and fetch.session_epoch == -1
    meta = MetadataRequest()
    assert meta.allow_auto_topic_creation is True and meta.topics == []


def test_common_structs_are_module_level_and_attributes_of_users():
    from kbroker_protocol.messages import add_partitions_to_txn as m

    assert m.AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult is m.AddPartitionsToTxnTopicResult
    assert m.AddPartitionsToTxnTopicResult.AddPartitionsToTxnPartitionResult is m.AddPartitionsToTxnPartitionResult
    nested = m.AddPartitionsToTxnResponse.AddPartitionsToTxnResult
    assert nested.AddPartitionsToTxnTopicResult is m.AddPartitionsToTxnTopicResult


def test_eq_and_repr():
    assert produce() == produce()
    assert produce() != produce(b"other")
    text = repr(produce())
    assert text.startswith("ProduceRequest(transactional_id=None, acks=-1")
    assert "TopicProduceData(name='orders'" in text


# -- header versions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "version", "request_hv", "response_hv"),
    [
        (0, 8, 1, 0),  # Produce v8: last non-flexible
        (0, 9, 2, 1),
        (3, 8, 1, 0),
        (3, 9, 2, 1),
        (18, 2, 1, 0),
        (18, 3, 2, 0),  # ApiVersions responses always use header v0
        (18, 4, 2, 0),
        (17, 1, 1, 0),  # SaslHandshake never flexible
    ],
)
def test_header_versions(api_key, version, request_hv, response_hv):
    assert request_header_version(api_key, version) == request_hv
    assert response_header_version(api_key, version) == response_hv


def test_controlled_shutdown_v0_uses_request_header_v0():
    assert request_header_version(7, 0) == 0


# -- requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 8, 9, 12])
def test_decode_request_reads_kafka_python_frames(version):
    kp = KpProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout_ms=1500,
        topic_data=[
            KpProduceRequest.TopicProduceData(
                name="orders",
                partition_data=[KpProduceRequest.TopicProduceData.PartitionProduceData(index=3, records=b"xyz")],
            )
        ],
        version=version,
    )
    kp.with_header(correlation_id=77, client_id="kp-client")
    frame = bytes(kp.encode(header=True))
    header, body = decode_request(frame)
    assert (header.request_api_key, header.request_api_version) == (0, version)
    assert header.correlation_id == 77 and header.client_id == "kp-client"
    assert body == produce(b"xyz")
    assert encode_request(header, body) == frame


def test_decode_request_roundtrip_and_zero_copy_records():
    header = RequestHeader(request_api_key=0, request_api_version=9, correlation_id=5, client_id=None)
    frame = encode_request(header, produce(b"R" * 100))
    data = bytearray(frame)
    got_header, body = decode_request(data)
    assert got_header == header
    records = body.topic_data[0].partition_data[0].records
    assert isinstance(records, memoryview) and records.obj is data and records == b"R" * 100
    data[-50] ^= 0xFF  # mutating the frame shows through the slice: no copy was made
    assert records != b"R" * 100


def test_trailing_bytes_after_a_request_are_ignored():
    header = RequestHeader(request_api_key=18, request_api_version=3, correlation_id=1, client_id="c")
    body = ApiVersionsRequest(client_software_name="kbroker-test", client_software_version="1.0")
    got = decode_request(encode_request(header, body) + b"\x00garbage")
    assert got == (header, body)


def test_unknown_api_version_exposes_correlation_id_and_header():
    frame = RequestHeader(request_api_key=18, request_api_version=99, correlation_id=4242, client_id="cli").encode(2)
    with pytest.raises(UnsupportedVersionError) as info:
        decode_request(frame + b"\x00\x00\x00")
    err = info.value
    assert (err.api_key, err.api_version, err.correlation_id) == (18, 99, 4242)
    assert err.header.client_id == "cli"


def test_unknown_api_key_and_undecodable_header():
    with pytest.raises(UnsupportedVersionError) as info:
        decode_request(b"\x03\xe7\x00\x00\x00\x00\x00\x09\x00")  # key 999, client id cut short
    assert info.value.correlation_id == 9 and info.value.header is None
    with pytest.raises(UnsupportedVersionError):
        decode_request(b"\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff")  # Produce v1 is not valid any more


@pytest.mark.parametrize("frame", [b"", b"\x00\x12", b"\x00\x12\x00\x03\x00\x00"])
def test_short_frames_are_protocol_errors(frame):
    with pytest.raises(ProtocolError):
        decode_request(frame)


# -- responses -----------------------------------------------------------------------------


def test_api_versions_response_uses_header_v0_even_when_flexible():
    body = ApiVersionsResponse(
        error_code=0,
        api_keys=[ApiVersionsResponse.ApiVersion(api_key=18, min_version=0, max_version=4)],
    )
    parts = encode_response(9, 18, 3, body)
    frame = b"".join(parts)
    assert frame[:4] == b"\x00\x00\x00\x09" and frame[4:6] == b"\x00\x00"  # no tag byte after the id
    kp = KpApiVersionsResponse.decode(frame, version=3, header=True)
    assert kp.header.correlation_id == 9 and kp.api_keys[0].max_version == 4
    header, back = decode_response(frame, 18, 3)
    assert header.correlation_id == 9 and back == body


def fetch_response(records) -> FetchResponse:
    part = FetchResponse.FetchableTopicResponse.PartitionData(partition_index=0, high_watermark=10, records=records)
    return FetchResponse(responses=[FetchResponse.FetchableTopicResponse(topic="t", partitions=[part])])


class FileSlice:
    """Stands in for the server's sendfile-able records object."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __len__(self) -> int:
        return len(self.payload)


@pytest.mark.parametrize("version", [11, 12, 16])
def test_external_records_become_their_own_part(version):
    payload = b"\x01" * 300
    external = FileSlice(payload)
    parts = encode_response(3, 1, version, fetch_response(external))
    # v11 is not flexible: the records are the last bytes; v12+ end with tagged-field counts.
    assert [type(p) for p in parts] == ([bytes, FileSlice] if version < 12 else [bytes, FileSlice, bytes])
    assert parts[1] is external
    joined = b"".join(p.payload if p is external else p for p in parts)
    assert joined == b"".join(encode_response(3, 1, version, fetch_response(payload)))
    header, body = decode_response(joined, 1, version)
    assert body.responses[0].partitions[0].records == payload
    kp = KpFetchResponse.decode(joined, version=version, header=True)
    assert bytes(kp.responses[0].partitions[0].records) == payload


def test_writer_getvalue_refuses_external_parts_and_encode_parts_keeps_them():
    resp = fetch_response(FileSlice(b"abc"))
    w = Writer()
    resp.encode_into(w, 12)
    with pytest.raises(TypeError):
        w.getvalue()
    assert len(w) == sum(len(p) for p in resp.encode_parts(12))
    with pytest.raises(TypeError):
        resp.encode(12)


def test_records_accept_bytes_like_and_null():
    for value in (b"abc", bytearray(b"abc"), memoryview(b"abc")):
        assert FetchResponse.decode(fetch_response(value).encode(12), 12) == fetch_response(b"abc")
    null = FetchResponse.decode(fetch_response(None).encode(4), 4)
    assert null.responses[0].partitions[0].records is None


def test_uuid_fields_and_versions_without_them():
    tid = uuid.uuid4()
    req = ProduceRequest(topic_data=[TopicData(topic_id=tid, partition_data=[])])
    assert ProduceRequest.decode(req.encode(13), 13).topic_data[0].topic_id == tid
    assert ProduceRequest.decode(req.encode(12), 12).topic_data[0].topic_id == uuid.UUID(int=0)


def test_unsupported_version_on_encode_and_decode():
    with pytest.raises(UnsupportedVersionError):
        produce().encode(2)
    with pytest.raises(UnsupportedVersionError):
        ProduceRequest.decode(b"", 14)
    with pytest.raises(UnsupportedVersionError):
        ProduceRequest.decode(b"", -1)


def test_struct_defaults_left_unset_by_decoders_are_fresh_and_stick():
    # Fetch v11 has no DivergingEpoch/CurrentLeader: decoding leaves them to be built on access.
    data = fetch_response(b"abc").encode(11)
    a = FetchResponse.decode(data, 11).responses[0].partitions[0]
    b = FetchResponse.decode(data, 11).responses[0].partitions[0]
    assert a.current_leader == FetchResponse.FetchableTopicResponse.PartitionData.LeaderIdAndEpoch()
    assert a.current_leader is not b.current_leader
    a.current_leader.leader_id = 7
    assert a.current_leader.leader_id == 7 and b.current_leader.leader_id == -1
    with pytest.raises(AttributeError):
        _ = a.no_such_field


def test_tagged_struct_at_default_is_omitted_and_otherwise_sent():
    part = FetchResponse.FetchableTopicResponse.PartitionData
    plain = fetch_response(b"abc")
    tagged = fetch_response(b"abc")
    tagged.responses[0].partitions[0].current_leader = part.LeaderIdAndEpoch(leader_id=2, leader_epoch=5)
    assert len(tagged.encode(12)) == len(plain.encode(12)) + 1 + 1 + 8 + 1  # tag, size, 2 x int32, tags
    back = FetchResponse.decode(tagged.encode(12), 12).responses[0].partitions[0]
    assert (back.current_leader.leader_id, back.current_leader.leader_epoch) == (2, 5)
    assert tagged.encode(11) == plain.encode(11)  # not in v11 at all


def test_unknown_tagged_fields_are_kept_and_re_emitted_in_tag_order():
    body = ApiVersionsRequest(client_software_name="a", client_software_version="b")
    body.unknown_tagged_fields = [(5, b"\x01\x02"), (9, b"")]
    data = body.encode(3)
    assert data.endswith(b"\x02\x05\x02\x01\x02\x09\x00")
    back = ApiVersionsRequest.decode(data, 3)
    assert back.unknown_tagged_fields == [(5, b"\x01\x02"), (9, b"")] and back.encode(3) == data


def test_tagged_nullable_struct_uses_a_varint_presence_marker():
    from kbroker_protocol.messages.coordinator import ConsumerGroupMemberMetadataValue as Value

    meta = Value.ClassicMemberMetadata(session_timeout_ms=45000, supported_protocols=[])
    value = Value(client_id="c", client_host="h", classic_member_metadata=meta)
    data = value.encode(0)
    struct_bytes = meta.encode(0)
    # tagged section: 1 field, tag 0, size = marker + struct, marker 1 (Kafka: unsigned varint).
    assert data.endswith(b"\x01\x00" + bytes([len(struct_bytes) + 1]) + b"\x01" + struct_bytes)
    assert Value.decode(data, 0) == value
    # A null written the Kafka way (marker varint 0) decodes to None.
    null = Value.decode(Value(client_id="c", client_host="h").encode(0)[:-1] + b"\x01\x00\x01\x00", 0)
    assert null.classic_member_metadata is None


def test_read_advances_a_reader_over_consecutive_messages():
    from kbroker_protocol.messages.coordinator import OffsetCommitKey
    from kbroker_protocol.primitives import Reader

    a = OffsetCommitKey(group="g1", topic="t", partition=3)
    b = OffsetCommitKey(group="g2", topic="u", partition=4)
    reader = Reader(a.encode(0) + b.encode(0))
    assert OffsetCommitKey.read(reader, 0) == a
    assert OffsetCommitKey.read(reader, 0) == b
    assert reader.remaining == 0
    with pytest.raises(ProtocolError):
        OffsetCommitKey.read(reader, 0)


def test_internal_record_registries():
    from kbroker_protocol.messages import coordinator, metadata_records, raft

    assert coordinator.COORDINATOR_KEY_BY_API_KEY[1].__name__ == "OffsetCommitKey"
    assert coordinator.COORDINATOR_VALUE_BY_API_KEY[1].__name__ == "OffsetCommitValue"
    assert metadata_records.METADATA_BY_API_KEY[2].__name__ == "TopicRecord"
    assert "QuorumStateData" in raft.CLASSES


def test_decoded_messages_copy_and_pickle():
    import copy
    import pickle

    decoded = FetchResponse.decode(fetch_response(b"abc").encode(11), 11)  # lazy fields unset
    decoded.responses[0].partitions[0].records = bytes(decoded.responses[0].partitions[0].records)
    assert copy.deepcopy(decoded) == decoded
    assert pickle.loads(pickle.dumps(decoded)) == decoded


@pytest.mark.parametrize(
    "body",
    [
        ProduceRequest(acks=70000),  # int16 out of range
        ProduceRequest(topic_data=[TopicData(name=None)]),  # not nullable
        ProduceRequest(topic_data=None),  # not nullable
    ],
)
def test_unencodable_values_raise_value_error_naming_the_message(body):
    with pytest.raises(ValueError, match=r"ProduceRequest v9"):
        body.encode(9)
