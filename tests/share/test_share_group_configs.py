"""Group configs (ConfigResource GROUP) for share groups: share.auto.offset.reset and the per-group
share.* settings, set by IncrementalAlterConfigs and read back by DescribeConfigs."""

from __future__ import annotations

import uuid

import pytest
from share_wire import E, ShareClient, acquired, topic_id
from wire import create_topic, produce

from kbroker_protocol.messages import REQUESTS

GROUP = 32


def alter(wire, group: str, **configs: str | None):
    Req = REQUESTS[44]
    res = Req.AlterConfigsResource(resource_type=GROUP, resource_name=group, configs=[
        Req.AlterConfigsResource.AlterableConfig(name=k.replace("_", "."), config_operation=0 if v is not None else 1,
                                                 value=v)
        for k, v in configs.items()])
    return wire.call(44, 1, resources=[res], validate_only=False).responses[0]


def describe(wire, group: str) -> dict[str, tuple[str, int]]:
    Req = REQUESTS[32]
    resp = wire.call(32, 4, resources=[Req.DescribeConfigsResource(resource_type=GROUP, resource_name=group,
                                                                   configuration_keys=None)],
                     include_synonyms=False, include_documentation=False)
    r = resp.results[0]
    assert r.error_code == E.NONE
    return {c.name: (c.value, c.config_source) for c in r.configs}


def test_earliest_delivers_what_was_produced_before(wire):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    tid = topic_id(wire, topic)
    produce(wire, topic, 0, 3)
    assert alter(wire, group, share_auto_offset_reset="earliest").error_code == E.NONE
    c = ShareClient(wire, group)
    c.join([topic])
    assert acquired(c.fetch(tid)) == [(0, 2, 1)]


def test_latest_is_the_default(wire):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    tid = topic_id(wire, topic)
    produce(wire, topic, 0, 3)
    c = ShareClient(wire, group)
    c.join([topic])
    resp = c.fetch(tid)
    assert resp.error_code == E.NONE and resp.responses == []
    produce(wire, topic, 0, 1)
    assert acquired(c.fetch(tid)) == [(3, 3, 1)]


def test_per_group_lock_duration_and_limits(broker, wire):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    tid = topic_id(wire, topic)
    r = alter(wire, group, **{"share.record.lock.duration.ms": "15000", "share.auto.offset.reset": "earliest",
                              "share.delivery.count.limit": "2"})
    assert r.error_code == E.NONE, r.error_message
    produce(wire, topic, 0, 1)
    c = ShareClient(wire, group)
    c.join([topic])
    resp = c.fetch(tid)
    assert resp.acquisition_lock_timeout_ms == 15000 and acquired(resp) == [(0, 0, 1)]
    broker.advance(15_000)
    assert acquired(c.fetch(tid)) == [(0, 0, 2)]
    broker.advance(15_000)  # the second delivery was the last
    c.heartbeat()
    again = c.fetch(tid)
    assert again.responses == [] or again.responses[0].partitions[0].acquired_records == []
    seen = describe(wire, group)
    assert seen["share.record.lock.duration.ms"] == ("15000", 8)
    assert seen["share.auto.offset.reset"] == ("earliest", 8)
    assert seen["share.heartbeat.interval.ms"] == ("5000", 5)


def test_invalid_group_configs(wire):
    group = f"sg-{uuid.uuid4().hex[:8]}"
    r = alter(wire, group, **{"no.such.key": "1"})
    assert (r.error_code, r.error_message) == (E.INVALID_CONFIG, "Unknown group config name: no.such.key")
    r = alter(wire, group, **{"share.record.lock.duration.ms": "5000"})
    assert (r.error_code, r.error_message) == (
        E.INVALID_CONFIG, "share.record.lock.duration.ms must be in the range 15000 to 60000 inclusive.")
    r = alter(wire, group, **{"share.auto.offset.reset": "sometimes"})
    assert r.error_code == E.INVALID_CONFIG
    r = alter(wire, group, **{"share.auto.offset.reset": "by_duration:PT1H"})
    assert r.error_code == E.NONE
    assert describe(wire, group)["share.auto.offset.reset"] == ("by_duration:PT1H", 8)
    assert alter(wire, group, **{"share.auto.offset.reset": None}).error_code == E.NONE
    assert describe(wire, group)["share.auto.offset.reset"] == ("latest", 5)


def _transactions(bootstrap: str, topic: str) -> None:
    """Committed 0-1, aborted 3-4, committed 6 (markers at 2, 5 and 7)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex[:8]}"})
    p.init_transactions(30)
    for values, commit in (([b"a", b"b"], True), ([b"x", b"y"], False), ([b"c"], True)):
        p.begin_transaction()
        for v in values:
            p.produce(topic, v, partition=0)
        assert p.flush(30) == 0
        (p.commit_transaction if commit else p.abort_transaction)(30)


@pytest.mark.parametrize("isolation, expected", [
    ("read_committed", [(0, 1, 1), (6, 6, 1)]),
    ("read_uncommitted", [(0, 1, 1), (3, 4, 1), (6, 6, 1)]),
])
def test_share_isolation_level(broker, wire, isolation, expected):
    group, topic = f"sg-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    tid = topic_id(wire, topic)
    _transactions(broker.bootstrap_servers, topic)
    r = alter(wire, group, **{"share.auto.offset.reset": "earliest", "share.isolation.level": isolation})
    assert r.error_code == E.NONE, r.error_message
    c = ShareClient(wire, group)
    c.join([topic])
    got = []
    for _ in range(4):  # the transactions' batches come in several fetches
        resp = c.fetch(tid)
        if resp.responses:
            got += acquired(resp)
    assert got == expected


def test_list_config_resources_lists_groups_with_configs(wire):
    group = f"sg-{uuid.uuid4().hex[:8]}"
    assert alter(wire, group, **{"share.auto.offset.reset": "earliest"}).error_code == E.NONE
    listed = wire.call(74, 1, resource_types=[32])
    assert (group, 32) in [(r.resource_name, r.resource_type) for r in listed.config_resources]
    assert alter(wire, group, **{"share.auto.offset.reset": None}).error_code == E.NONE
    listed = wire.call(74, 1, resource_types=[32])
    assert group not in [r.resource_name for r in listed.config_resources]


def test_group_configs_are_bounded_by_the_brokers_settings(wire):
    # Kafka 4.4's GroupConfig.validateValues: the broker's group.<kind>.min/max settings bound
    # every group's consumer, share and streams keys; nothing is stored when one is out of bounds.
    group = f"sg-{uuid.uuid4().hex[:8]}"
    r = alter(wire, group, **{"consumer.session.timeout.ms": "1000"})
    assert (r.error_code, r.error_message) == (
        E.INVALID_CONFIG, "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive.")
    r = alter(wire, group, **{"streams.num.standby.replicas": "3"})
    assert (r.error_code, r.error_message) == (E.INVALID_CONFIG, "streams.num.standby.replicas must be less than or equal to 2")
    r = alter(wire, group, **{"share.delivery.count.limit": "1"})
    assert (r.error_code, r.error_message) == (
        E.INVALID_CONFIG, "Invalid value 1 for configuration share.delivery.count.limit: Value must be at least 2")
    seen = describe(wire, group)
    assert seen["consumer.session.timeout.ms"] == ("45000", 5) and seen["share.delivery.count.limit"] == ("5", 5)
    assert alter(wire, group, **{"consumer.session.timeout.ms": "50000"}).error_code == E.NONE
    assert describe(wire, group)["consumer.session.timeout.ms"] == ("50000", 8)
