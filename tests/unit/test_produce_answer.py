"""The single-partition and one-topic Produce answers (kbroker/api/produce_answer.py) encode to the
generic encoder's bytes at every version, and read as the responses they encode."""

from __future__ import annotations

import uuid

import pytest

from kbroker.api import produce_answer
from kbroker.api.produce_answer import SingleAnswer, TopicAnswer, many_template, template
from kbroker_protocol.api import encode_response
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.produce import ProduceResponse

PartResp = ProduceResponse.TopicProduceResponse.PartitionProduceResponse
VERSIONS = range(ProduceResponse.MIN_VERSION, ProduceResponse.MAX_VERSION + 1)
TOPICS = [("t", uuid.UUID(int=0)), ("a-topic." * 20, uuid.uuid4()), ("tópico-ü", uuid.UUID(int=(1 << 128) - 1))]
NUMBERS = [  # (index, error_code, base_offset, log_append_time_ms, log_start_offset)
    (0, 0, 0, -1, 0),
    (7, 0, 123_456_789, -1, 1_000),
    (2**31 - 1, ErrorCode.DUPLICATE_SEQUENCE_NUMBER, 2**63 - 1, 1_700_000_000_000, 2**63 - 1),
    (-(2**31), -(2**15), -(2**63), -(2**63), -1),
]


def generic(name: str, topic_id: uuid.UUID, numbers: tuple[int, ...]) -> ProduceResponse:
    index, error_code, base_offset, log_append_time_ms, log_start_offset = numbers
    part = PartResp(index=index, error_code=error_code, base_offset=base_offset, log_append_time_ms=log_append_time_ms,
                    log_start_offset=log_start_offset, record_errors=[], error_message=None)
    return ProduceResponse(responses=[ProduceResponse.TopicProduceResponse(
        name=name, topic_id=topic_id, partition_responses=[part])], throttle_time_ms=0)


def single(name: str, topic_id: uuid.UUID, numbers: tuple[int, ...]) -> SingleAnswer:
    index, error_code, base_offset, log_append_time_ms, log_start_offset = numbers
    return SingleAnswer(name, topic_id, (index, error_code, base_offset, log_append_time_ms, log_start_offset))


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_has_a_template_and_its_bytes_are_the_generic_encoders(version: int) -> None:
    for name, topic_id in TOPICS:
        assert template(version, name, topic_id) is not None
        for numbers in NUMBERS:
            answer = single(name, topic_id, numbers)
            expected = generic(name, topic_id, numbers)
            assert answer.encode(version) == expected.encode(version)
            assert encode_response(42, 0, version, answer) == encode_response(42, 0, version, expected)
            assert answer._numbers is not None  # (encoded from the template, not through the messages)


def test_it_reads_as_the_response_it_encodes() -> None:
    name, topic_id = TOPICS[1]
    numbers = NUMBERS[1]
    answer = single(name, topic_id, numbers)
    assert answer == generic(name, topic_id, numbers)
    assert generic(name, topic_id, numbers) == answer
    assert answer != generic(name, topic_id, NUMBERS[2])
    (topic,) = answer.responses
    assert (topic.name, topic.topic_id, topic.partition_responses[0].base_offset) == (name, topic_id, numbers[2])


@pytest.mark.parametrize("version", [3, 8, 9, 11, 13])
def test_a_change_through_the_messages_or_a_throttle_is_encoded(version: int) -> None:
    name, topic_id = TOPICS[0]
    changed = single(name, topic_id, NUMBERS[1])
    changed.responses[0].partition_responses[0].error_message = "changed"
    expected = generic(name, topic_id, NUMBERS[1])
    expected.responses[0].partition_responses[0].error_message = "changed"
    assert changed.encode(version) == expected.encode(version)

    replaced = single(name, topic_id, NUMBERS[1])
    replaced.responses = generic(name, topic_id, NUMBERS[2]).responses
    assert replaced.encode(version) == generic(name, topic_id, NUMBERS[2]).encode(version)

    throttled = single(name, topic_id, NUMBERS[1])
    throttled.throttle_time_ms = 250  # (client quotas, the fault rules)
    expected = generic(name, topic_id, NUMBERS[1])
    expected.throttle_time_ms = 250
    assert throttled.encode(version) == expected.encode(version)


def test_a_codec_the_template_cannot_follow_gets_no_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field written in a way other than fixed-width (here: the probes change the length)
    leaves the version without a template; the answer is then encoded the generic way."""
    real = produce_answer._encoded

    def varying(version: int, name: str, topic_id: uuid.UUID, value: int, field: str | None) -> bytes:
        data = real(version, name, topic_id, value, field)
        return data + b"\x00" if field == "base_offset" else data

    monkeypatch.setattr(produce_answer, "_encoded", varying)
    monkeypatch.setattr(produce_answer, "_templates", {})
    assert template(11, "t", uuid.UUID(int=0)) is None
    answer = single("t", uuid.UUID(int=0), NUMBERS[1])
    assert answer.encode(11) == generic("t", uuid.UUID(int=0), NUMBERS[1]).encode(11)


def generic_many(name: str, topic_id: uuid.UUID, numbers: list[tuple[int, int, int, int, int]]) -> ProduceResponse:
    parts = [PartResp(index=i, error_code=e, base_offset=b, log_append_time_ms=t, log_start_offset=s, record_errors=[],
                      error_message=None) for i, e, b, t, s in numbers]
    return ProduceResponse(responses=[ProduceResponse.TopicProduceResponse(
        name=name, topic_id=topic_id, partition_responses=parts)], throttle_time_ms=0)


def many(count: int) -> list[tuple[int, int, int, int, int]]:
    return [(i, *NUMBERS[i % len(NUMBERS)][1:]) for i in range(count)]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_topic_answer_of_any_number_of_partitions_is_the_generic_encoders(version: int) -> None:
    for name, topic_id in TOPICS:
        assert many_template(version, name, topic_id) is not None
        for count in (0, 1, 2, 16, 126, 127, 128, 300, 20_000):  # (the count's varint grows at 127 and 16,383)
            numbers = many(count)
            answer = TopicAnswer(name, topic_id, numbers)
            expected = generic_many(name, topic_id, numbers)
            assert encode_response(7, 0, version, answer) == encode_response(7, 0, version, expected)
            assert answer._numbers is not None  # (encoded from the template)


@pytest.mark.parametrize("version", [3, 8, 9, 13])
def test_a_topic_answer_reads_as_its_response_and_sends_changes_made_through_it(version: int) -> None:
    name, topic_id = TOPICS[2]
    numbers = many(5)
    answer = TopicAnswer(name, topic_id, numbers)
    assert answer == generic_many(name, topic_id, numbers)
    assert answer != generic_many(name, topic_id, many(4))
    assert [p.base_offset for p in answer.responses[0].partition_responses] == [n[2] for n in numbers]

    changed = TopicAnswer(name, topic_id, numbers)
    changed.responses[0].partition_responses[3].error_message = "changed"
    expected = generic_many(name, topic_id, numbers)
    expected.responses[0].partition_responses[3].error_message = "changed"
    assert changed.encode(version) == expected.encode(version)

    throttled = TopicAnswer(name, topic_id, numbers)
    throttled.throttle_time_ms = 250
    expected = generic_many(name, topic_id, numbers)
    expected.throttle_time_ms = 250
    assert throttled.encode(version) == expected.encode(version)


def test_a_codec_the_topic_template_cannot_follow_gets_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probes with three and 130 partitions disagree with what the template would write (here:
    the codec writes one more byte from the third partition on): no template, generic answers."""
    real = produce_answer._encoded_many

    def varying(version: int, name: str, topic_id: uuid.UUID, numbers: list[tuple[int, int, int, int, int]]) -> bytes:
        data = real(version, name, topic_id, numbers)
        return data + b"\x00" if len(numbers) > 2 else data

    monkeypatch.setattr(produce_answer, "_encoded_many", varying)
    monkeypatch.setattr(produce_answer, "_many_templates", {})
    assert many_template(13, "t", uuid.UUID(int=0)) is None
    answer = TopicAnswer("t", uuid.UUID(int=0), many(3))
    assert answer.encode(13) == generic_many("t", uuid.UUID(int=0), many(3)).encode(13)
