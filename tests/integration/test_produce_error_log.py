"""A refused append is logged as Kafka's ReplicaManager.appendToLocalLog logs it: "Error processing
append operation on partition <tp>" (at WARNING, Kafka ERROR; INFO for INVALID_PRODUCER_EPOCH as in
Kafka), except the failures Kafka answers without a log line (unknown partition, not the leader, too large, corrupt,
storage error, unknown topic id). A fault run's node logs then show why a producer was refused, as
a Kafka node's do (an OUT_OF_ORDER_SEQUENCE_NUMBER makes librdkafka bump its epoch)."""

from __future__ import annotations

import logging

import pytest

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from tests.integration.transactions_helpers import (
    RawClient,
    create_topic,
    data_batch,
    ensure_find_coordinator,
    init_producer_id,
    new_name,
    produce,
)

LOGGER = "kbroker.api.produce"


@pytest.fixture(scope="module")
def broker():
    ensure_find_coordinator()
    with BrokerThread() as b:
        yield b


def _lines(caplog: pytest.LogCaptureFixture, topic: str) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER and topic in r.getMessage()]


def test_sequence_and_epoch_refusals_are_logged(broker, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    topic = new_name("errlog")
    create_topic(broker.bootstrap_servers, topic)
    raw = RawClient(broker.bootstrap_servers)
    try:
        pid = init_producer_id(raw).producer_id
        assert produce(raw, topic, 0, data_batch(pid, 0, 0, [b"a"])).error_code == 0
        assert _lines(caplog, topic) == []
        gap = produce(raw, topic, 0, data_batch(pid, 0, 5, [b"gap"]))
        assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(raw, topic, 0, data_batch(pid, 1, 0, [b"b"])).error_code == 0
        old = produce(raw, topic, 0, data_batch(pid, 0, 1, [b"old"]))
        assert old.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    finally:
        raw.close()
    lines = _lines(caplog, topic)
    assert [level for level, _ in lines] == [logging.WARNING, logging.INFO]
    assert lines[0][1].startswith(f"Error processing append operation on partition {topic}-0: "
                                  "OUT_OF_ORDER_SEQUENCE_NUMBER")
    assert lines[1][1].startswith(f"Error processing append operation on partition {topic}-0: "
                                  "INVALID_PRODUCER_EPOCH")


def test_a_corrupt_batch_is_refused_without_a_log_line(broker, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    topic = new_name("errlog-quiet")
    create_topic(broker.bootstrap_servers, topic)
    raw = RawClient(broker.bootstrap_servers)
    try:
        batch = bytearray(data_batch(-1, -1, -1, [b"payload"]))
        batch[-1] ^= 0xFF  # the CRC no longer matches
        assert produce(raw, topic, 0, bytes(batch)).error_code == ErrorCode.CORRUPT_MESSAGE
    finally:
        raw.close()
    assert _lines(caplog, topic) == []
