"""A topic name's legality, one check for both sides: the broker's handlers (DescribeProducers,
DescribeTopicPartitions) call ``kbroker.metadata.new_topic.topic_name_error`` and the controller's
topic plans raise it as INVALID_TOPIC_EXCEPTION, with Kafka's messages
(ReplicationControlManager.validateNewTopicNames)."""

from __future__ import annotations

import pytest

from kbroker.controller.errors import ControllerError
from kbroker.controller.topic_plans import validate_topic_name
from kbroker.metadata.new_topic import topic_name_error
from kbroker_protocol.errors import ErrorCode

ILLEGAL = [
    ("", "Topic name is illegal, it can't be empty"),
    (".", 'Topic name cannot be "." or ".."'),
    ("..", 'Topic name cannot be "." or ".."'),
    ("a" * 250, "Topic name is illegal, it can't be longer than 249 characters, topic name: " + "a" * 250),
    ("a b", "Topic name a b is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"),
    ("é", "Topic name é is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"),
]


@pytest.mark.parametrize(("name", "message"), ILLEGAL)
def test_an_illegal_name_is_refused_with_kafkas_message_on_both_sides(name: str, message: str) -> None:
    assert topic_name_error(name) == message
    with pytest.raises(ControllerError) as refused:
        validate_topic_name(name)
    assert refused.value.code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert refused.value.message == message


@pytest.mark.parametrize("name", ["a", "A.b_c-9", "a" * 249, "..."])
def test_a_legal_name_passes(name: str) -> None:
    assert topic_name_error(name) is None
    validate_topic_name(name)
