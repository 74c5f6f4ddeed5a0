"""A Fetch that Kafka's ``DelayedFetch.tryComplete`` answers at once (case F), however short of
``MinBytes`` it is: its fetch offset past the end offset it reads to, or on an older segment than it.

The broker runs on a manual clock that the tests never advance: the fetches' ``MaxWaitMs`` of ten
minutes never passes, so a fetch answered at all was answered without waiting (a fetch held until
its expiry would leave the test's read to the socket's timeout and fail it).
"""

from __future__ import annotations

from confluent_kafka import Producer as CKProducer

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.fetch import FetchResponse
from kbroker_protocol.records import Record, build_batch
from tests.integration.transactions_helpers import RawClient, create_topic, produce

MIN_BYTES = 1 << 20  # more than any of these logs holds


def client(bootstrap: str) -> RawClient:
    raw = RawClient(bootstrap)
    raw.sock.settimeout(60)  # (a fetch held to its expiry fails the test on this timeout)
    return raw


def fetch(wire: RawClient, topic: str, offset: int, isolation: int):
    F = REQUESTS[1]
    part = F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=offset,
                                       log_start_offset=-1, partition_max_bytes=1 << 20)
    request = F(replica_id=-1, max_wait_ms=600_000, min_bytes=MIN_BYTES, max_bytes=1 << 20, isolation_level=isolation,
                session_id=0, session_epoch=-1, forgotten_topics_data=[], rack_id="",
                topics=[F.FetchTopic(topic=topic, partitions=[part])])
    response = wire.call(request, FetchResponse, 12)
    assert response.error_code == ErrorCode.NONE
    return response.responses[0].partitions[0]


def past_lso(bootstrap: str) -> tuple[int, int, int, bool]:
    """An open transaction holds the last stable offset at 0; a read_committed fetch at the log
    end (1) is past it: (error, high watermark, last stable offset, records?) of its answer."""
    create_topic(bootstrap, "past-lso")
    producer = CKProducer({"bootstrap.servers": bootstrap, "transactional.id": "past-lso-tx"})
    wire = client(bootstrap)
    try:
        producer.init_transactions(60)
        producer.begin_transaction()
        producer.produce("past-lso", b"open", partition=0)
        assert producer.flush(30) == 0
        part = fetch(wire, "past-lso", 1, isolation=1)
        return part.error_code, part.high_watermark, part.last_stable_offset, bool(part.records)
    finally:
        wire.close()
        producer.abort_transaction(30)


def test_a_read_committed_fetch_past_the_last_stable_offset_is_answered_at_once(kbroker_factory):
    """Kafka's case F: ``fetchOffset.messageOffset > endOffset.messageOffset``, the end offset
    of a read_committed fetch being the last stable offset."""
    b = kbroker_factory(clock="manual")
    assert past_lso(b.bootstrap_servers) == (ErrorCode.NONE, 1, 0, False)


def test_a_fetch_on_an_older_segment_than_the_high_watermark_is_answered_at_once(kbroker_factory):
    """Records at 0-2 on the first segment, 3-5 on the next: a fetch at 0 finds far less than
    MinBytes, and its offset is on an older segment than the high watermark (case F)."""
    b = kbroker_factory(clock="manual")
    wire = client(b.bootstrap_servers)
    try:
        create_topic(b.bootstrap_servers, "older")
        for first in (0, 3):
            if first:
                b.call(lambda: b.broker.partition("older", 0).log.roll())
            records = build_batch([Record(value=b"v%d" % i, timestamp=1_700_000_000_000)
                                   for i in range(first, first + 3)])
            assert produce(wire, "older", 0, records).base_offset == first
        assert b.call(lambda: [s.base_offset for s in b.broker.partition("older", 0).log._segments]) == [0, 3]
        part = fetch(wire, "older", 0, isolation=0)
        assert (part.error_code, part.high_watermark) == (ErrorCode.NONE, 6)
        assert part.records
    finally:
        wire.close()


def test_a_read_committed_fetch_past_the_last_stable_offset_as_kafka(tmp_path):
    """The same fetch on Apache Kafka 4.4 (scripts/reference_kafka.py, real time: its ten minutes
    would fail the read too): answered at once, as kbroker answers it."""
    import reference_kafka

    handle = reference_kafka.start_reference_kafka(tmp_path / "kafka")
    try:
        assert past_lso(handle.bootstrap) == (ErrorCode.NONE, 1, 0, False)
    finally:
        handle.stop()
