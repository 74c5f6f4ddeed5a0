"""Restartable broker and read-everything consumer shared by the transaction tests (moved from test_transactions)."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition

from kbroker.testing import BrokerThread
from tests.integration.transactions_helpers import (
    ensure_find_coordinator,
)

FAST_TIMEOUTS = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "50"}


def consume_all(bootstrap: str, topic: str, isolation: str, expected_end: int, partitions: int = 1) -> list:
    """Every record of ``topic`` a kafka-python consumer returns until it reaches ``expected_end`` per partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    got = []
    deadline = time.monotonic() + 30
    while any(consumer.position(tp) < expected_end for tp in tps):
        assert time.monotonic() < deadline, f"consumer stuck at {[consumer.position(tp) for tp in tps]}"
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(records)
    consumer.close()
    return got


def _restartable(tmp_path, port):
    ensure_find_coordinator()
    config = dict(FAST_TIMEOUTS, listeners=f"PLAINTEXT://127.0.0.1:{port}")
    return BrokerThread(config=config, data_dir=str(tmp_path))
