"""The raw requests of scripts/bench_metrics_ab.py: Produce (v9) and Fetch (v12) frames built with the
generated codec, small ones and pipelined 64-record batches of 1 KiB records read back 16 batches at a
time."""

from __future__ import annotations

import struct

from kbroker_protocol.api import encode_request
from kbroker_protocol.messages import REQUESTS, RequestHeader
from kbroker_protocol.records import Record, build_batch

PRODUCE_VERSION = 9

FETCH_VERSION = 12

RAW_RECORDS = 64  # records of 1 KiB per pipelined Produce batch

RAW_PER_FETCH = 16  # batches per pipelined Fetch

RECORD = 1024


def frame(request: object, key: int, version: int, cid: int = 0) -> bytes:
    header = RequestHeader(request_api_key=key, request_api_version=version, correlation_id=cid,
                           client_id="bench-metrics-ab")
    payload = encode_request(header, request)
    return struct.pack(">i", len(payload)) + payload


def produce_frame(topic: str, records: list[Record]) -> bytes:
    P = REQUESTS[0]
    return frame(P(transactional_id=None, acks=1, timeout_ms=30000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=build_batch(records))])]),
        0, PRODUCE_VERSION)


def fetch_frame(topic: str, offset: int, max_bytes: int) -> bytes:
    F = REQUESTS[1]
    part = F.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=offset, last_fetched_epoch=-1,
                                       log_start_offset=-1, partition_max_bytes=max_bytes)
    return frame(F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, isolation_level=0, session_id=0,
                   session_epoch=-1, topics=[F.FetchTopic(topic=topic, partitions=[part])], forgotten_topics_data=[],
                   rack_id=""), 1, FETCH_VERSION)
