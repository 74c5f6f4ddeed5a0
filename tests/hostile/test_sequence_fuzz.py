"""A short, seeded run of the sequence fuzzer (``kbroker.testing.sequence_fuzz``; the long run is
``scripts/fuzz_sequences.py``): classic and KIP-848 group conversations, transactions and fetch
sessions with mutated, repeated, skipped and replayed steps. The broker must answer or close
within the deadline, send responses that decode, never close on a step sent as built, keep serving
a clean client after every sequence and after a restart on what the fuzzing left on disk, and log
no traceback (nor any ERROR) for any of it.

The last two tests check that the harness does catch a failing handler and a stuck one."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from kbroker.api.registry import HANDLERS
from kbroker.testing import BrokerThread
from kbroker.testing.sequence_fuzz import SEQUENCES, SequenceFuzzer
from kbroker_protocol.errors import ErrorCode

E = ErrorCode
CONFIG = {
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "100",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
}


class ErrorLog(logging.Handler):
    """Every record the broker logs with a traceback or at ERROR and above."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)

    def report(self) -> list[str]:
        return [self.format(r) for r in self.records]


@pytest.fixture
def error_log():
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture(scope="module")
def broker():
    with BrokerThread(config=CONFIG) as b:
        yield b


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mutated_sequences_leave_the_broker_sound(broker, error_log, seed):
    fuzzer = SequenceFuzzer(broker.bootstrap_servers, seed, wait_cap_ms=500, deadline_s=15)
    fuzzer.setup()
    stats = fuzzer.run(120)
    assert [str(f) for f in stats.findings] == []
    assert error_log.report() == []
    assert stats.sequences == 120 and stats.mutated > 100 and stats.closed > 0
    # The conversations got somewhere: each kind reached its later steps successfully.
    for api_key in (11, 14, 12, 8, 13, 68, 22, 24, 0, 25, 28, 26, 1):
        assert stats.outcomes[(api_key, E.NONE)] > 0, api_key


def test_every_sequence_runs_clean_without_mutations(broker, error_log):
    outcomes = {}
    for seed, name in enumerate(sorted(SEQUENCES)):
        fuzzer = SequenceFuzzer(broker.bootstrap_servers, seed, wait_cap_ms=500, deadline_s=15, mutation_rate=0.0)
        fuzzer.setup()
        fuzzer.run_sequence(name)
        assert fuzzer.clean_client_works(name)
        assert [str(f) for f in fuzzer.stats.findings] == []
        outcomes[name] = {(key, code) for key, code in fuzzer.stats.outcomes}
    assert error_log.report() == []
    # Unmutated, every step of these conversations succeeds (the first JoinGroup asks for a member
    # id; a session may fetch a partition from an offset past its end).
    for name in ("classic_group", "transaction", "idempotent_produce", "consumer_group"):
        assert {code for _key, code in outcomes[name]} <= {E.NONE, E.MEMBER_ID_REQUIRED}, (name, outcomes[name])
    assert {code for _key, code in outcomes["fetch_session"]} <= {E.NONE, E.OFFSET_OUT_OF_RANGE}
    # A topic's life: all succeeds until it is deleted, then Produce and Metadata do not know it and
    # the fetch session's partition is an unknown topic id.
    assert outcomes["topic_lifecycle"] - {(k, E.NONE) for k in (19, 0, 1, 37, 21, 2, 23, 44, 20)} <= {
        (0, E.UNKNOWN_TOPIC_OR_PARTITION), (3, E.UNKNOWN_TOPIC_OR_PARTITION), (1, E.UNKNOWN_TOPIC_ID),
        (21, E.POLICY_VIOLATION)}  # (DeleteRecords on a compacted topic)
    assert {(0, E.UNKNOWN_TOPIC_OR_PARTITION), (3, E.UNKNOWN_TOPIC_OR_PARTITION)} <= outcomes["topic_lifecycle"]


def test_a_restart_after_fuzzing_serves(tmp_path, error_log):
    data = str(tmp_path / "data")
    with BrokerThread(config=CONFIG, data_dir=data) as b:
        fuzzer = SequenceFuzzer(b.bootstrap_servers, 7, wait_cap_ms=500, deadline_s=15, mutation_rate=0.5)
        fuzzer.setup()
        fuzzer.run(80)
    with BrokerThread(config=CONFIG, data_dir=data) as b:
        fuzzer.bootstrap = b.bootstrap_servers
        assert fuzzer.clean_client_works("restart")
        fuzzer.run(10)
    assert [str(f) for f in fuzzer.stats.findings] == []
    assert error_log.report() == []


def _replace_handler(monkeypatch, api_key: int, handler) -> None:
    monkeypatch.setitem(HANDLERS, api_key, dataclasses.replace(HANDLERS[api_key], handler=handler))


def test_the_harness_sees_a_handler_traceback(broker, error_log, monkeypatch):
    def broken(ctx, request):
        raise RuntimeError("planted")

    _replace_handler(monkeypatch, 12, broken)  # Heartbeat
    fuzzer = SequenceFuzzer(broker.bootstrap_servers, 5, deadline_s=15, mutation_rate=0.0)
    fuzzer.setup()
    fuzzer.run_sequence("classic_group")
    assert any("planted" in line for line in error_log.report())


def test_the_harness_reports_a_stuck_request(broker, monkeypatch):
    release = asyncio.Event()

    async def stuck(ctx, request):
        await release.wait()

    _replace_handler(monkeypatch, 12, stuck)
    fuzzer = SequenceFuzzer(broker.bootstrap_servers, 6, deadline_s=1, mutation_rate=0.0)
    fuzzer.setup()
    try:
        fuzzer.run_sequence("classic_group")
    finally:
        broker.call(release.set)
    assert [f.kind for f in fuzzer.stats.findings] == ["hang"]
