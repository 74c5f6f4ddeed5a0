"""A long-polling Fetch is woken by an append that comes before its wait has begun.

The fetch handler reads the partitions at once and, when there is not enough data, answers from a
task (the long poll) that the loop starts a turn later. A produce handled in between (here the next
request on the same connection, read with the fetch) appends and wakes the fetches waiting on the
partition: the long poll must be one of them, as Kafka's DelayedFetch is (``tryCompleteElseWatch``
checks again once it watches the partitions). On a manual clock a missed wake-up never ends (the
fetch's 10 minutes do not pass); on a real one it costs the fetch its whole max wait.
"""

from __future__ import annotations

import struct

from wire import Wire, create_topic

from kbroker_protocol.api import encode_request
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.records import Record, build_batch


def _fetch(topic: str):
    F = REQUESTS[1]
    part = F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0, log_start_offset=-1,
                                       partition_max_bytes=1 << 20)
    return F(replica_id=-1, max_wait_ms=600_000, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
             session_id=0, session_epoch=-1, forgotten_topics_data=[], rack_id="",
             topics=[F.FetchTopic(topic=topic, partitions=[part])])


def _produce(topic: str, count: int):
    P = REQUESTS[0]
    batch = build_batch([Record(key=None, value=b"v%d" % i, timestamp=1_700_000_000_000 + i) for i in range(count)])
    return P(transactional_id=None, acks=1, timeout_ms=10000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=batch)])])


def send_together(wire: Wire, *requests: tuple[object, int]) -> None:
    """The requests in one write, so that the broker reads them in one go."""
    data = b""
    for request, version in requests:
        cid = next(Wire._ids)
        header = RequestHeader(request_api_key=request.API_KEY, request_api_version=version, correlation_id=cid,
                               client_id=wire.client_id)
        payload = encode_request(header, request)
        data += struct.pack(">i", len(payload)) + payload
        wire.sent.append((cid, request.API_KEY, version))
    wire.sock.sendall(data)


def test_a_long_poll_is_woken_by_an_append_read_with_it(kbroker_factory):
    b = kbroker_factory(clock="manual")
    wire = Wire(b.bootstrap_servers, timeout=60)
    try:
        create_topic(wire, "woken")
        send_together(wire, (_fetch("woken"), 12), (_produce("woken", 3), 9))
        fetched = wire.receive()
        part = fetched.responses[0].partitions[0]
        assert (fetched.error_code, part.error_code, part.high_watermark) == (ErrorCode.NONE, ErrorCode.NONE, 3)
        assert part.records
        produced = wire.receive().responses[0].partition_responses[0]
        assert (produced.error_code, produced.base_offset) == (ErrorCode.NONE, 0)
    finally:
        wire.close()
