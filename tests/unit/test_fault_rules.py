"""Fault rules: validation, matching by request contents, and when a matching rule fires."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from kbroker.control.faults import FaultInjector, FaultRule, RequestTargets, RuleError
from kbroker.control.http import is_loopback, parse_listener
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS


def ctx(api_key: int, client_id: str = "c", peer: str = "127.0.0.1:5000", broker=None):
    header = SimpleNamespace(request_api_key=api_key, request_api_version=9, correlation_id=1, client_id=client_id)
    return SimpleNamespace(header=header, connection=SimpleNamespace(peer=peer), broker=broker, api_version=9)


def produce(*targets: tuple[str, int]):
    R = REQUESTS[0]
    return R(acks=-1, topic_data=[R.TopicProduceData(name=t, partition_data=[
        R.TopicProduceData.PartitionProduceData(index=p, records=b"")]) for t, p in targets])


def test_rule_validation_names_the_field():
    cases = {
        "api": {"api": "Nope", "error": "NONE"},
        "error": {"api": "Produce", "error": 12345},
        "count": {"api": "Produce", "error": "NONE", "count": 0},
        "seed": {"api": "Produce", "error": "NONE", "seed": 3},
        "throttle_ms": {"api": "Produce", "action": "drop", "throttle_ms": 5},
        "duration_ms": {"api": "Produce", "error": "NONE", "duration_ms": -1},
        "topic": {"api": "Produce", "error": "NONE", "topic": ""},
    }
    for field, spec in cases.items():
        with pytest.raises(RuleError) as info:
            FaultRule(1, spec, 0.0)
        assert info.value.field == field, spec


def test_names_and_numbers_and_case():
    rule = FaultRule(1, {"api": "produce", "error": "not_leader_or_follower"}, 0.0)
    assert (rule.api_key, rule.error_code, rule.action) == (0, ErrorCode.NOT_LEADER_OR_FOLLOWER, "error")
    rule = FaultRule(2, {"api": 3, "error": 6}, 0.0)
    assert (rule.api_key, rule.error_code) == (3, 6)


def test_add_many_is_all_or_nothing():
    faults = FaultInjector()
    with pytest.raises(RuleError):
        faults.add_many([{"api": "Produce", "error": "NONE"}, {"api": "Produce"}])
    assert faults.rules == {}
    assert [r.id for r in faults.add_many([{"api": "Fetch", "action": "drop"}] * 2)] == [1, 2]


def test_topic_partition_group_and_client_matching():
    rule = FaultRule(1, {"api": "Produce", "error": "NONE", "topic": "a", "partition": 1}, 0.0)
    assert rule.matches(0, ctx(0), produce(("b", 0), ("a", 1)))
    assert not rule.matches(0, ctx(0), produce(("a", 0)))
    assert not rule.matches(1, ctx(1), produce(("a", 1)))
    rule = FaultRule(2, {"api": "JoinGroup", "error": "NOT_COORDINATOR", "group": "g", "client_id": "x"}, 0.0)
    join = REQUESTS[11](group_id="g")
    assert rule.matches(11, ctx(11, client_id="x"), join)
    assert not rule.matches(11, ctx(11, client_id="y"), join)
    rule = FaultRule(3, {"action": "close", "connection": "127.0.0.1:7"}, 0.0)
    assert rule.matches(18, ctx(18, peer="127.0.0.1:7"), None)
    assert not rule.matches(18, ctx(18, peer="127.0.0.1:8"), None)


def test_targets_of_other_request_shapes():
    R = REQUESTS[10]
    assert RequestTargets(R(key_type=0, coordinator_keys=["g1", "g2"])).groups == {"g1", "g2"}
    assert RequestTargets(R(key_type=1, coordinator_keys=["tx"])).transactional_ids == {"tx"}
    assert RequestTargets(REQUESTS[15](groups=["a", "b"])).groups == {"a", "b"}
    assert RequestTargets(REQUESTS[20](topic_names=["t"])).topics == {"t": None}
    # Fetch v13+ names topics by id: resolved through the metadata image
    topic_id = uuid.uuid4()
    F = REQUESTS[1]
    fetch = F(topics=[F.FetchTopic(topic_id=topic_id, partitions=[F.FetchTopic.FetchPartition(partition=2)])])
    image = SimpleNamespace(topic_by_id=lambda i: SimpleNamespace(name="named") if i == topic_id else None)
    targets = RequestTargets(fetch, image)
    assert targets.has_partition("named", 2) and not targets.has_partition("named", 1)


def test_count_every_probability_and_window():
    rule = FaultRule(1, {"api": "Produce", "error": "NONE", "count": 2, "every": 2}, 0.0)
    assert [rule.fires(0.0) for _ in range(6)] == [False, True, False, True, False, False]
    assert rule.exhausted and rule.fired == 2

    def pattern(seed: int) -> list[bool]:
        r = FaultRule(1, {"api": "Produce", "error": "NONE", "probability": 0.5, "seed": seed}, 0.0)
        return [r.fires(0.0) for _ in range(40)]

    assert pattern(11) == pattern(11)  # seeded: reproducible
    assert pattern(11) != pattern(12)
    assert 5 < sum(pattern(11)) < 35
    rule = FaultRule(1, {"api": "Produce", "error": "NONE", "after_ms": 1000, "duration_ms": 500}, 10.0)
    assert [rule.fires(t) for t in (10.5, 11.0, 11.4, 11.5)] == [False, True, True, False]


def test_first_firing_rule_wins_and_is_recorded():
    faults = FaultInjector(clock=lambda: 0.0)
    faults.add({"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": 1})
    faults.add({"api": "Produce", "error": "KAFKA_STORAGE_ERROR"})
    c = ctx(0)
    assert [faults.select(c, produce(("a", 0))).id for _ in range(3)] == [1, 2, 2]
    assert [e["error"] for e in faults.history] == ["NOT_LEADER_OR_FOLLOWER", "KAFKA_STORAGE_ERROR",
                                                    "KAFKA_STORAGE_ERROR"]


def test_injected_error_response_sets_every_partition():
    faults = FaultInjector()
    rule = faults.add({"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "throttle_ms": 50})
    body = produce(("a", 0), ("a", 1))
    handler = faults.wrap(rule, ctx(0), body, lambda c, b: pytest.fail("the handler must not run"))
    response = handler(ctx(0), body)
    parts = response.responses[0].partition_responses
    assert [(p.index, p.error_code) for p in parts] == [(0, 6), (1, 6)]
    assert response.throttle_time_ms == 50


def test_control_listener_parsing():
    assert parse_listener("http://127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listener("[::1]:9644") == ("::1", 9644)
    with pytest.raises(ValueError):
        parse_listener("https://127.0.0.1:1")
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("0.0.0.0")


def test_a_rule_for_several_apis():
    rule = FaultRule(1, {"api": ["Heartbeat", "JoinGroup"], "error": "NOT_COORDINATOR"}, 0.0)
    assert rule.matches(12, ctx(12), REQUESTS[12](group_id="g"))
    assert rule.matches(11, ctx(11), REQUESTS[11](group_id="g"))
    assert not rule.matches(3, ctx(3), REQUESTS[3]())
    assert rule.describe()["api"] == ["Heartbeat", "JoinGroup"]
    with pytest.raises(RuleError) as info:
        FaultRule(2, {"api": [], "error": "NOT_COORDINATOR"}, 0.0)
    assert info.value.field == "api"
    with pytest.raises(RuleError) as info:
        FaultRule(3, {"api": ["Heartbeat", "Nope"], "error": "NOT_COORDINATOR"}, 0.0)
    assert info.value.field == "api"


def test_control_endpoint_refuses_a_remote_peer_unless_allowed():
    import asyncio

    from kbroker.control.http import ControlServer

    class Writer:
        def __init__(self, peer):
            self.peer, self.data, self.closed = peer, b"", False

        def get_extra_info(self, name):
            return self.peer if name == "peername" else None

        def write(self, data):
            self.data += data

        async def drain(self):
            pass

        def close(self):
            self.closed = True

        def is_closing(self):
            return self.closed

    plane = SimpleNamespace(status=lambda: {"ok": True})

    async def serve(peer, allow_remote):
        reader = asyncio.StreamReader()
        reader.feed_data(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        reader.feed_eof()
        writer = Writer(peer)
        await ControlServer(plane, [], allow_remote=allow_remote)._serve(reader, writer)
        assert writer.closed
        return writer.data.split(b"\r\n", 1)[0]

    assert asyncio.run(serve(("10.1.2.3", 5555), False)) == b"HTTP/1.1 403 Forbidden"
    assert asyncio.run(serve(("127.0.0.1", 5555), False)) == b"HTTP/1.1 200 OK"
    assert asyncio.run(serve(("10.1.2.3", 5555), True)) == b"HTTP/1.1 200 OK"
