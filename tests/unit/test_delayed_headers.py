"""The delay headers of kbroker's delayed delivery (kbroker/delayed.py): values and due times,
and the walk's count of header keys with the delay prefix (protocol/record_walk.py)."""

from __future__ import annotations

import pytest

from kbroker.delayed import _due
from kbroker_protocol import record_walk
from kbroker_protocol.record_batch import parse_header
from kbroker_protocol.record_validation import Policy, validate_records
from kbroker_protocol.records import Record, build_batch

NOW = 1_800_000_000_000
MAX = 604_800_000


def rec(*headers: tuple[str, bytes | None]) -> Record:
    return Record(value=b"v", timestamp=NOW, headers=headers)


def test_relative_and_absolute_due_times():
    assert _due(rec(("kbroker-deliver-after-ms", b"1500")), NOW, MAX) == (NOW + 1500, None, True)
    assert _due(rec(("kbroker-deliver-at", str(NOW + 9).encode())), NOW, MAX) == (NOW + 9, None, True)
    assert _due(rec(("other", b"1")), NOW, MAX) == (NOW, None, False)
    assert _due(rec(("kbroker-deliver-after-ms", b"0")), NOW, MAX) == (NOW, None, True)
    assert _due(rec(("kbroker-deliver-after-ms", str(MAX).encode())), NOW, MAX)[1] is None


def test_absolute_time_in_the_past_is_due_at_once_by_the_caller():
    due, error, has = _due(rec(("kbroker-deliver-at", b"5")), NOW, MAX)
    assert (due, error, has) == (5, None, True)  # divert() raises it to the produce time


@pytest.mark.parametrize("headers, words", [
    ((("kbroker-deliver-after-ms", b"12s"),), "non-negative decimal integer"),
    ((("kbroker-deliver-after-ms", b"+5"),), "non-negative decimal integer"),
    ((("kbroker-deliver-after-ms", None),), "got 'null'"),
    ((("kbroker-deliver-after-ms", "٣".encode()),), "non-negative decimal integer"),  # not ASCII digits
    ((("kbroker-deliver-after-ms", b"1" * 20),), "non-negative decimal integer"),
    ((("kbroker-deliver-after-ms", str(MAX + 1).encode()),), "above kbroker.delayed.max.delay.ms"),
    ((("kbroker-deliver-at", str(NOW + MAX + 1).encode()),), "above kbroker.delayed.max.delay.ms"),
    ((("kbroker-deliver-after-ms", b"1"), ("kbroker-deliver-at", b"1")), "only one of"),
])
def test_bad_values(headers, words):
    _due_time, error, has = _due(rec(*headers), NOW, MAX)
    assert has and error is not None and words in error


@pytest.mark.parametrize("codec", [0, 1, 4])
def test_the_validation_walk_counts_delay_header_keys_only(codec):
    policy = Policy(topic_partition="t-0", now_ms=NOW, max_message_bytes=1 << 20)

    def seen(records: list[Record]) -> int:
        batch = build_batch(records, compression=codec)
        before = record_walk.delay_headers_seen
        validate_records(batch, parse_header(batch), policy)
        return record_walk.delay_headers_seen - before

    assert seen([rec(), rec(("trace-id-of-request", b"x"))]) == 0
    assert seen([rec(("x", b"kbroker-deliver-after-ms"))]) == 0  # in a value: not a key
    assert seen([rec(), rec(("kbroker-deliver-after-ms", b"5")), rec(("kbroker-deliver-at", b"5"))]) == 2


def test_the_remote_delivery_request_encodes_and_decodes():
    """The Produce a scheduler sends a target's leader on another broker (the cluster path)."""
    from kbroker.delayed import PRODUCE_VERSION, produce_request
    from kbroker_protocol.api import decode_request, encode_request
    from kbroker_protocol.messages import RequestHeader
    from kbroker_protocol.records import iter_records

    batch = build_batch([Record(key=b"k", value=b"v", timestamp=NOW)])
    header = RequestHeader(request_api_key=0, request_api_version=PRODUCE_VERSION, correlation_id=1,
                           client_id="t")
    _h, body = decode_request(encode_request(header, produce_request("orders", 3, batch)))
    assert body.acks == -1
    (t,) = body.topic_data
    (p,) = t.partition_data
    assert (t.name, p.index) == ("orders", 3)
    assert [(r.key, r.value) for r in iter_records(bytes(p.records))] == [(b"k", b"v")]


def test_plan_and_progress_records_round_trip_and_bad_ones_are_skipped():
    """What a scheduler writes to __kbroker_delayed before (a plan) and after (progress) a step
    reads back the same; a damaged one reads as None (logged), never as something else."""
    from kbroker.delayed_records import H_PLAN, H_PROGRESS, Plan, decode_stored, progress_record

    plan = Plan(producer_id=7, epoch=0, time=NOW, watermark=(NOW + 5, 42),
                sequences={("orders", 3): 10, ("ünïcode", 0): -1})
    back = decode_stored(plan.encode(NOW))
    assert isinstance(back, Plan)
    assert (back.producer_id, back.epoch, back.time, back.watermark, back.sequences) == (
        7, 0, NOW, (NOW + 5, 42), {("orders", 3): 10, ("ünïcode", 0): -1})
    assert decode_stored(progress_record((NOW, 9), NOW)) == (NOW, 9)
    for headers, value in (((H_PLAN, b""),), b"{not json"), (((H_PLAN, b""),), b'{"pid": 1}'), (
            ((H_PROGRESS, b""),), b"12"), (((H_PROGRESS, b""),), b"a,b"):
        assert decode_stored(Record(value=value, timestamp=NOW, headers=headers, offset=3)) is None
