"""The common Fetch answer (kbroker/api/fetch_answer.py) encodes to the generic encoder's bytes at
every version, for answers of every kind the fast path writes (several partitions and topics,
errors, read_committed's aborted transactions, records absent, small, large or a file slice, a
preferred read replica, throttle time, the top-level error and session), leaves to the generic
encoder what it does not write (a diverging epoch, a current leader), reads as the response it
encodes, and a version whose fast path disagrees with the codec answers generically."""

from __future__ import annotations

import uuid

import pytest

from kbroker.api import fetch, fetch_answer
from kbroker.api.fetch_answer import FetchAnswer, Shape, shape, write_answer
from kbroker.replication.fetch_sessions import CachedPartition
from kbroker_protocol.api import encode_response
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.fetch import FetchResponse
from kbroker_protocol.wire_write import Writer

PartData = FetchResponse.FetchableTopicResponse.PartitionData
Aborted = PartData.AbortedTransaction
VERSIONS = range(FetchResponse.MIN_VERSION, FetchResponse.MAX_VERSION + 1)
T1 = ("t", uuid.UUID(int=0x1234))
T2 = ("tópico-ü." * 20, uuid.UUID(int=(1 << 128) - 1))


class Slice:
    """An external records object (a segment's file slice stands for itself in the parts)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def _read(partition: int, topic: tuple[str | None, uuid.UUID] = T1, *, error: ErrorCode = ErrorCode.NONE,
          records: object = b"", aborted: list[Aborted] | None = None, preferred: int = -1,
          diverging: tuple[int, int] | None = None, hw: int = 10, lso: int = 9, start: int = 0) -> fetch._Read:
    name, topic_id = topic
    cached = CachedPartition(topic=name, topic_id=topic_id, partition=partition, fetch_offset=5, max_bytes=1 << 20,
                             current_leader_epoch=0, log_start_offset=-1, last_fetched_epoch=-1)
    want = fetch._Want(cached, name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    size = len(records)  # type: ignore[arg-type]
    return fetch._Read(want, error, records, size, hw, lso, start, aborted, diverging, preferred)  # type: ignore[arg-type]


def _generic(reads: list[fetch._Read], session_id: int, error: int = 0, throttle: int = 0) -> FetchResponse:
    """The answer as the generated messages, each partition with its own fresh structs."""
    topics: list[FetchResponse.FetchableTopicResponse] = []
    by_topic: dict[tuple[str | None, uuid.UUID], FetchResponse.FetchableTopicResponse] = {}
    for r in reads:
        c = r.want.cached
        tr = by_topic.get((c.topic, c.topic_id))
        if tr is None:
            tr = by_topic[(c.topic, c.topic_id)] = FetchResponse.FetchableTopicResponse(
                topic=c.topic or "", topic_id=c.topic_id, partitions=[])
            topics.append(tr)
        pd = PartData(partition_index=c.partition, error_code=r.error, high_watermark=r.high_watermark,
                      last_stable_offset=r.last_stable_offset, log_start_offset=r.log_start_offset,
                      aborted_transactions=None if r.aborted is None else [
                          Aborted(producer_id=a.producer_id, first_offset=a.first_offset) for a in r.aborted],
                      preferred_read_replica=r.preferred, records=r.records)
        if r.diverging is not None:
            pd.diverging_epoch = PartData.EpochEndOffset(epoch=r.diverging[0], end_offset=r.diverging[1])
        tr.partitions.append(pd)
    return FetchResponse(throttle_time_ms=throttle, error_code=error, session_id=session_id, responses=topics)


def _parts(version: int, response: object) -> list[object]:
    return encode_response(31, 1, version, response)


ABORTED = [Aborted(producer_id=1000, first_offset=7), Aborted(producer_id=2**63 - 1, first_offset=-(2**63))]
ANSWERS: dict[str, list[fetch._Read]] = {
    # librdkafka's read_committed Fetch woken by an append: one partition with records, three without
    "read_committed, one with a file slice": [
        _read(0, aborted=[]), _read(1, aborted=[], records=Slice(1100), hw=500, lso=500, start=3),
        _read(2, aborted=[]), _read(3, aborted=[])],
    "read_uncommitted, small and large bytes": [
        _read(0, records=b"r" * 70), _read(1), _read(2, records=b"R" * 5000, hw=2**63 - 1, lso=-(2**63), start=-1)],
    "aborted transactions in range": [
        _read(0, aborted=ABORTED, records=b"x" * 90), _read(1, aborted=ABORTED[:1], records=Slice(3000)),
        _read(2, aborted=[])],
    "errors": [
        _read(0, error=ErrorCode.OFFSET_OUT_OF_RANGE, hw=-1, lso=-1, start=-1),
        _read(1, error=ErrorCode.NOT_LEADER_OR_FOLLOWER, hw=-1, lso=-1, start=-1),
        _read(2, error=ErrorCode.FENCED_LEADER_EPOCH, hw=-1, lso=-1, start=-1),
        _read(2**31 - 1, (None, uuid.UUID(int=0)), error=ErrorCode.UNKNOWN_TOPIC_ID, hw=-1, lso=-1, start=-1),
        _read(4, error=ErrorCode.TOPIC_AUTHORIZATION_FAILED, hw=-1, lso=-1, start=-1),
        # another unknown topic id: a topic of its own, though no name either
        _read(0, (None, uuid.UUID(int=77)), error=ErrorCode.UNKNOWN_TOPIC_ID, hw=-1, lso=-1, start=-1),
        _read(5, (None, uuid.UUID(int=0)), error=ErrorCode.UNKNOWN_TOPIC_ID, hw=-1, lso=-1, start=-1)],
    "preferred read replica": [_read(0, preferred=3), _read(1, preferred=2**31 - 1, aborted=[]), _read(2)],
    "two topics interleaved": [
        _read(0, T1, records=Slice(200)), _read(0, T2, aborted=[]), _read(1, T1), _read(1, T2, records=b"y")],
    "many partitions": [_read(i, records=b"z" * (i % 3), aborted=[] if i % 2 else None) for i in range(200)],
    "none": [],
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", list(ANSWERS))
def test_the_fast_answer_is_the_generic_encoders_bytes(version: int, case: str) -> None:
    assert shape(version) is not None  # (its check against the codec passed: the fast path serves it)
    reads = ANSWERS[case]
    for session_id, error, throttle in ((0, ErrorCode.NONE, 0), (123456, ErrorCode.NONE, 250),
                                        (-1, ErrorCode.FETCH_SESSION_ID_NOT_FOUND, 0)):
        answer = fetch._build(version, reads, session_id, error)
        assert isinstance(answer, FetchAnswer)
        answer.throttle_time_ms = throttle  # (as client quotas set it)
        assert _parts(version, answer) == _parts(version, _generic(reads, session_id, error, throttle))
        assert answer._reads is not None  # encoded from the reads, not through the messages
        # the writer alone, without the check at first use
        fast, generic = Writer(), Writer()
        write_answer(fast, Shape(version), throttle, error, session_id, reads)
        _generic(reads, session_id, error, throttle).encode_into(generic, version)
        assert fast.parts() == generic.parts()


@pytest.mark.parametrize("version", VERSIONS)
def test_what_the_fast_path_does_not_write_is_answered_generically(version: int) -> None:
    reads = [_read(0, records=b"r" * 70), _read(1, diverging=(4, 17)), _read(2, aborted=[])]
    answer = fetch._build(version, reads, 5)
    assert not isinstance(answer, FetchAnswer)
    assert answer.responses[0].partitions[1].diverging_epoch.end_offset == 17
    assert _parts(version, answer) == _parts(version, _generic(reads, 5))


def test_it_reads_as_the_response_it_encodes_and_a_change_through_the_messages_is_sent() -> None:
    reads = ANSWERS["two topics interleaved"]
    answer = fetch._build(16, reads, 9)
    assert answer == _generic(reads, 9)
    assert _generic(reads, 9) == answer
    assert answer != _generic(reads, 10)
    assert [(t.topic, [p.partition_index for p in t.partitions]) for t in answer.responses] == [
        (T1[0], [0, 1]), (T2[0], [0, 1])]
    answer.responses[0].partitions[0].high_watermark = 77
    changed = _generic(reads, 9)
    changed.responses[0].partitions[0].high_watermark = 77
    assert _parts(16, answer) == _parts(16, changed)
    replaced = fetch._build(16, reads, 9)
    replaced.responses = []
    assert _parts(16, replaced) == _parts(16, FetchResponse(session_id=9, responses=[]))


def test_node_endpoints_set_on_it_are_encoded_generically() -> None:
    reads = ANSWERS["errors"]
    answer = fetch._build(16, reads, 0)
    answer.node_endpoints = [FetchResponse.NodeEndpoint(node_id=2, host="h", port=9, rack=None)]
    expected = _generic(reads, 0)
    expected.node_endpoints = [FetchResponse.NodeEndpoint(node_id=2, host="h", port=9, rack=None)]
    assert _parts(16, answer) == _parts(16, expected)


def test_a_version_whose_fast_answer_disagrees_with_the_codec_is_answered_generically(monkeypatch) -> None:
    def wrong(w, found, throttle_time_ms, error_code, session_id, reads):
        write_answer(w, found, throttle_time_ms, error_code, session_id, reads)
        w.buf += b"\x00"

    monkeypatch.setattr(fetch_answer, "write_answer", wrong)
    monkeypatch.setattr(fetch_answer, "_shapes", {})
    assert shape(16) is None
    reads = ANSWERS["read_committed, one with a file slice"]
    assert _parts(16, fetch._build(16, reads, 3)) == _parts(16, _generic(reads, 3))
