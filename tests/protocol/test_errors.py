"""Error-code table: values, retriability and messages checked against Kafka's Errors.java."""

from __future__ import annotations

import pytest

from kbroker_protocol.errors import MESSAGES, RETRIABLE, ErrorCode, default_message, error_name, is_retriable


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("UNKNOWN_SERVER_ERROR", -1),
        ("NONE", 0),
        ("OFFSET_OUT_OF_RANGE", 1),
        ("CORRUPT_MESSAGE", 2),
        ("UNKNOWN_TOPIC_OR_PARTITION", 3),
        ("NOT_LEADER_OR_FOLLOWER", 6),
        ("MESSAGE_TOO_LARGE", 10),
        ("NOT_COORDINATOR", 16),
        ("REBALANCE_IN_PROGRESS", 27),
        ("UNSUPPORTED_VERSION", 35),
        ("INVALID_PRODUCER_EPOCH", 47),
        ("OUT_OF_ORDER_SEQUENCE_NUMBER", 45),
        ("DUPLICATE_SEQUENCE_NUMBER", 46),
        ("UNSUPPORTED_FOR_MESSAGE_FORMAT", 43),
        ("FENCED_INSTANCE_ID", 82),
        ("MEMBER_ID_REQUIRED", 79),
        ("INVALID_RECORD", 87),
        ("UNKNOWN_TOPIC_ID", 100),
        ("FENCED_MEMBER_EPOCH", 110),
        ("TRANSACTION_ABORTABLE", 120),
        ("INVALID_REGULAR_EXPRESSION", 128),
        ("REBOOTSTRAP_REQUIRED", 129),
        ("SHARE_SESSION_LIMIT_REACHED", 133),
        ("POSITION_OUT_OF_RANGE", 99),
        ("CONTROLLER_ID_NOT_REGISTERED", 136),
    ],
)
def test_known_codes(name: str, code: int) -> None:
    assert ErrorCode[name] == code
    assert ErrorCode(code).name == name
    assert error_name(code) == name


def test_table_is_dense_through_kafka_4_4() -> None:
    assert sorted(int(c) for c in ErrorCode) == list(range(-1, 137))


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.CORRUPT_MESSAGE,
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_TOPIC_ID,
        ErrorCode.UNSTABLE_OFFSET_COMMIT,
    ],
)
def test_retriable(code: ErrorCode) -> None:
    assert is_retriable(code)
    assert code.retriable


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.NONE,
        ErrorCode.UNKNOWN_SERVER_ERROR,
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.INVALID_RECORD,
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
        ErrorCode.INVALID_PRODUCER_EPOCH,
        ErrorCode.MEMBER_ID_REQUIRED,
        ErrorCode.REBALANCE_IN_PROGRESS,
        ErrorCode.ILLEGAL_GENERATION,
        ErrorCode.TOPIC_AUTHORIZATION_FAILED,
        ErrorCode.REBOOTSTRAP_REQUIRED,
    ],
)
def test_not_retriable(code: ErrorCode) -> None:
    assert not is_retriable(code)
    assert not code.retriable


def test_unknown_code() -> None:
    assert not is_retriable(9999)
    assert error_name(9999) == "UNKNOWN(9999)"
    assert default_message(9999) == MESSAGES[ErrorCode.UNKNOWN_SERVER_ERROR]


def test_messages() -> None:
    assert default_message(0) is None
    assert ErrorCode.NONE.message is None
    assert default_message(35) == "The version of API is not supported."
    assert ErrorCode.MESSAGE_TOO_LARGE.message == (
        "The request included a message larger than the max message size the server will accept."
    )
    assert all(code in MESSAGES for code in ErrorCode if code != ErrorCode.NONE)
    assert RETRIABLE <= set(ErrorCode)
    assert len(RETRIABLE) == 32
    assert ErrorCode.SHARE_SESSION_LIMIT_REACHED in RETRIABLE
    assert ErrorCode.POSITION_OUT_OF_RANGE not in RETRIABLE
