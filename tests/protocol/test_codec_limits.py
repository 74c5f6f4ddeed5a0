"""The decoder's limits on what a frame may declare, as Kafka 4.4's generated readers have them.

Kafka checks an array's element count against the bytes left before allocating the collection
("Tried to allocate a collection of size N, but there are only M bytes remaining.",
MessageDataGenerator.generateVariableLengthReader) and reads a tagged-field section one field at a
time, with no limit on the count but the bytes that carry them. The generated codec checks the
count against the bytes left times the element's smallest encoding, and a tagged-field count
against two bytes a field: a frame that declares more than it carries is refused with
ProtocolError before anything is allocated; one that carries them decodes.
"""

from __future__ import annotations

import struct
import tracemalloc
import uuid

import pytest

from kbroker_protocol.api import decode_request, encode_request
from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.primitives import write_uvarint


def uvarint(n: int) -> bytes:
    out = bytearray()
    write_uvarint(out, n)
    return bytes(out)


def peak_allocation(fn) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def refused(frame: bytes, match: str) -> int:
    """Decoding ``frame`` raises ProtocolError matching ``match``; returns the peak allocation."""
    return peak_allocation(lambda: pytest.raises(ProtocolError, decode_request, frame).match(match))


def frame_of(body, version: int) -> bytes:
    header = RequestHeader(request_api_key=body.API_KEY, request_api_version=version, correlation_id=7,
                           client_id="c")
    return encode_request(header, body)


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1
    return data.replace(old, new)


MILLIONS = 2_000_000
TAGS = 20_000


def test_a_2_000_000_element_array_declared_in_a_small_frame_is_refused_unallocated():
    # Metadata v4 (int32 count): three topics carried, two million declared.
    frame = struct.pack(">hhih", 3, 4, 1, -1) + struct.pack(">i", MILLIONS) + b"\x00\x01t" * 3 + b"\x01"
    assert refused(frame, f"array of {MILLIONS} elements") < 64 * 1024
    # Metadata v12 (compact count, N+1).
    frame = struct.pack(">hhih", 3, 12, 1, -1) + b"\x00" + uvarint(MILLIONS + 1) + b"\x00" * 64
    assert refused(frame, f"array of {MILLIONS} elements") < 64 * 1024
    # A top-level array of strings (ListGroups v4's states filter, compact).
    frame = struct.pack(">hhih", 16, 4, 1, -1) + b"\x00" + uvarint(MILLIONS + 1) + b"\x02a" * 8 + b"\x00"
    assert refused(frame, f"array of {MILLIONS} elements") < 64 * 1024


def test_an_array_is_refused_as_soon_as_its_smallest_elements_cannot_fit():
    # Metadata v4 topics are strings, two bytes at least: 10 declared in 19 bytes cannot be there,
    # in 20 bytes they can.
    head = struct.pack(">hhih", 3, 4, 1, -1) + struct.pack(">i", 10)
    with pytest.raises(ProtocolError, match="array of 10 elements exceeds the 19 bytes left"):
        decode_request(head + b"\x00\x00" * 9 + b"\x01")
    _, body = decode_request(head + b"\x00\x00" * 10 + b"\x01")
    assert [t.name for t in body.topics] == [""] * 10


def test_20_000_tagged_fields_declared_in_a_small_frame_are_refused_unallocated():
    # The request's own tagged section (ApiVersions v3, no known tags: kept as unknown fields).
    frame = struct.pack(">hhih", 18, 3, 1, -1) + b"\x00" + b"\x02a\x02b" + uvarint(TAGS) + b"\x01\x00" * 16
    assert refused(frame, "tagged field count exceeds the bytes left") < 64 * 1024
    # A section with known tags (a Fetch v17 partition: tag 0 is its replica directory id).
    F = REQUESTS[1]
    partition = F.FetchTopic.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1,
                                             unknown_tagged_fields=[(9, b"x")])
    topic = F.FetchTopic(topic_id=uuid.UUID(int=1), partitions=[partition])
    frame = frame_of(F(max_wait_ms=1, min_bytes=1, max_bytes=1, topics=[topic], forgotten_topics_data=[],
                       rack_id=""), 17)
    hostile = replace_once(frame, b"\x01\x09\x01x", uvarint(TAGS) + b"\x09\x01x")
    assert refused(hostile, "tagged field count exceeds the bytes left") < 64 * 1024


def test_20_000_tagged_fields_that_are_carried_decode_as_in_kafka():
    # Kafka has no limit on the count itself: fields that are all there are read (and kept).
    fields = b"".join(uvarint(1000 + i) + b"\x00" for i in range(TAGS))
    frame = struct.pack(">hhih", 18, 3, 1, -1) + b"\x00" + b"\x02a\x02b" + uvarint(TAGS) + fields
    _, body = decode_request(frame)
    assert len(body.unknown_tagged_fields) == TAGS
    assert body.unknown_tagged_fields[-1] == (1000 + TAGS - 1, b"")
