"""Decoded UUIDs come from a bounded cache (kbroker_protocol.wire_read.uuid_from_bytes): equal to a
fresh uuid.UUID of the same bytes, one object per value while cached, never more than the bound."""

from __future__ import annotations

import os
import uuid

from kbroker_protocol import wire_read
from kbroker_protocol.messages.fetch import FetchRequest


def test_a_decoded_uuid_equals_a_fresh_one_and_repeats_are_one_object():
    raw = os.urandom(16)
    first = wire_read.uuid_from_bytes(raw)
    assert first == uuid.UUID(bytes=raw) and first.bytes == raw
    assert wire_read.uuid_from_bytes(bytes(raw)) is first
    topic_id = uuid.UUID(bytes=raw)
    request = FetchRequest(topics=[FetchRequest.FetchTopic(topic_id=topic_id, partitions=[])])
    for _ in range(2):
        assert FetchRequest.decode(request.encode(16), 16).topics[0].topic_id is first


def test_the_cache_is_bounded():
    for _ in range(wire_read._UUID_CACHE_SIZE + 10):
        raw = os.urandom(16)
        assert wire_read.uuid_from_bytes(raw) == uuid.UUID(bytes=raw)
        assert len(wire_read._UUID_CACHE) <= wire_read._UUID_CACHE_SIZE
