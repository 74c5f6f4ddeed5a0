"""Group configs (GROUP resources) as Kafka 4.4's GroupConfig: each key's own validator, then the
broker's group.<kind>.min/max bounds, the cross-key checks, and the cap applied to stored values
when the broker's bounds have changed since."""

from __future__ import annotations

import pytest

from kbroker.config import (
    BROKER_KEYS,
    GROUP_KEYS,
    BrokerConfig,
    ConfigError,
    describe_group_configs,
    group_value,
    validate_group_configs,
)


def _broker(**given: str) -> BrokerConfig:
    return BrokerConfig({k.replace("_", "."): v for k, v in given.items()}, warn=False)


def _refusal(config: BrokerConfig, new: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_group_configs(config, new)
    return str(exc.value)


def test_every_bound_is_a_broker_key():
    for key in GROUP_KEYS.values():
        for broker_key in (key.synonym, key.lowest, key.highest):
            assert broker_key is None or broker_key in BROKER_KEYS, (key.name, broker_key)


@pytest.mark.parametrize("name, lo, hi", [
    ("consumer.session.timeout.ms", 45000, 60000),
    ("consumer.heartbeat.interval.ms", 5000, 15000),
    ("consumer.assignment.interval.ms", 0, 15000),
    ("share.session.timeout.ms", 45000, 60000),
    ("share.heartbeat.interval.ms", 5000, 15000),
    ("share.record.lock.duration.ms", 15000, 60000),
    ("share.delivery.count.limit", 2, 10),
    ("share.partition.max.record.locks", 100, 4000),
    ("share.assignment.interval.ms", 0, 15000),
    ("streams.session.timeout.ms", 45000, 60000),
    ("streams.heartbeat.interval.ms", 5000, 15000),
    ("streams.assignment.interval.ms", 0, 15000),
])
def test_values_must_lie_within_the_brokers_bounds(name, lo, hi):
    config = _broker()
    for inside in (lo, hi):
        assert validate_group_configs(config, {name: str(inside)}) == {name: inside}
    assert _refusal(config, {name: str(hi + 1)}) == f"{name} must be in the range {lo} to {hi} inclusive."
    if lo > GROUP_KEYS[name].spec.minimum:  # below the key's own atLeast, its validator answers first
        assert _refusal(config, {name: str(lo - 1)}) == f"{name} must be in the range {lo} to {hi} inclusive."


def test_the_bounds_follow_the_brokers_settings():
    config = _broker(group_share_min_record_lock_duration_ms="2000", group_share_max_record_lock_duration_ms="90000",
                     group_share_max_delivery_count_limit="20", group_streams_max_standby_replicas="1")
    assert validate_group_configs(config, {"share.record.lock.duration.ms": "2000"})
    assert validate_group_configs(config, {"share.delivery.count.limit": "20"})
    assert _refusal(config, {"share.record.lock.duration.ms": "90001"}) == (
        "share.record.lock.duration.ms must be in the range 2000 to 90000 inclusive.")
    assert _refusal(config, {"streams.num.standby.replicas": "2"}) == (
        "streams.num.standby.replicas must be less than or equal to 1")


def test_the_keys_own_validator_comes_first():
    config = _broker(group_share_min_record_lock_duration_ms="1000")
    assert _refusal(config, {"share.record.lock.duration.ms": "999"}) == (
        "Invalid value 999 for configuration share.record.lock.duration.ms: Value must be at least 1000")
    assert _refusal(config, {"share.delivery.count.limit": "1"}) == (
        "Invalid value 1 for configuration share.delivery.count.limit: Value must be at least 2")
    assert _refusal(config, {"share.partition.max.record.locks": "99"}) == (
        "Invalid value 99 for configuration share.partition.max.record.locks: Value must be at least 100")
    assert _refusal(config, {"consumer.session.timeout.ms": "soon"}) == (
        "Invalid value soon for configuration consumer.session.timeout.ms: Not a number of type INT")
    # every value is parsed before any bound is checked (Kafka's CONFIG_DEF.parse, then validateValues)
    assert _refusal(config, {"share.delivery.count.limit": "50", "share.isolation.level": "dirty"}) == (
        "Invalid value dirty for configuration share.isolation.level: String must be one of: read_committed, "
        "read_uncommitted")


def test_session_timeout_must_exceed_heartbeat_interval():
    config = _broker(group_share_min_session_timeout_ms="6000", group_share_max_heartbeat_interval_ms="20000")
    assert validate_group_configs(config, {"share.session.timeout.ms": "6000", "share.heartbeat.interval.ms": "5000"})
    assert _refusal(config, {"share.session.timeout.ms": "6000", "share.heartbeat.interval.ms": "6000"}) == (
        "share.session.timeout.ms must be greater than share.heartbeat.interval.ms")
    # against the broker's own value of the key not given
    assert _refusal(config, {"share.heartbeat.interval.ms": "20000", "share.session.timeout.ms": "20000"}) == (
        "share.session.timeout.ms must be greater than share.heartbeat.interval.ms")
    config = _broker(group_share_min_session_timeout_ms="6000", group_share_session_timeout_ms="6000",
                     group_share_heartbeat_interval_ms="5000", group_share_max_heartbeat_interval_ms="20000")
    assert _refusal(config, {"share.heartbeat.interval.ms": "7000"}) == (
        "share.session.timeout.ms must be greater than share.heartbeat.interval.ms")


def test_streams_keys():
    config = _broker()
    assert _refusal(config, {"streams.assignor.name": "balanced"}) == (
        "streams.assignor.name 'balanced' is not a registered task assignor. Registered assignors are: [sticky].")
    assert validate_group_configs(config, {"streams.assignor.name": "sticky"})
    assert _refusal(config, {"streams.rack.aware.assignment.tags": "zone, rack,zone"}) == (
        "streams.rack.aware.assignment.tags must not contain duplicate tag keys.")
    assert validate_group_configs(config, {"streams.rack.aware.assignment.tags": "zone,rack"}) == {
        "streams.rack.aware.assignment.tags": ["zone", "rack"]}



def test_streams_task_offset_interval_and_acceptable_recovery_lag():
    """Kafka's GroupConfig: streams.task.offset.interval.ms at least the broker's
    group.streams.min.task.offset.interval.ms (validateIntMin; clampToMin when stored), and
    streams.acceptable.recovery.lag a LONG atLeast(0) without broker bounds."""
    config = _broker()
    assert validate_group_configs(config, {"streams.task.offset.interval.ms": "15000"}) == {
        "streams.task.offset.interval.ms": 15000}
    assert _refusal(config, {"streams.task.offset.interval.ms": "14999"}) == (
        "streams.task.offset.interval.ms must be greater than or equal to 15000")
    assert group_value(_broker(group_streams_min_task_offset_interval_ms="20000"),
                       {"streams.task.offset.interval.ms": "15000"}, "streams.task.offset.interval.ms") == 20000
    assert group_value(config, {}, "streams.task.offset.interval.ms") == 60000
    assert validate_group_configs(config, {"streams.acceptable.recovery.lag": str(2**40)}) == {
        "streams.acceptable.recovery.lag": 2**40}
    assert _refusal(config, {"streams.acceptable.recovery.lag": "-1"}) == (
        "Invalid value -1 for configuration streams.acceptable.recovery.lag: Value must be at least 0")
    assert group_value(config, {}, "streams.acceptable.recovery.lag") == 10000


def test_stored_values_are_capped_to_bounds_changed_since():
    stored = {"share.record.lock.duration.ms": "60000", "share.delivery.count.limit": "2",
              "share.auto.offset.reset": "earliest"}
    assert group_value(_broker(), stored, "share.record.lock.duration.ms") == 60000
    narrower = _broker(group_share_max_record_lock_duration_ms="40000", group_share_min_delivery_count_limit="3")
    assert group_value(narrower, stored, "share.record.lock.duration.ms") == 40000
    assert group_value(narrower, stored, "share.delivery.count.limit") == 3
    assert group_value(narrower, stored, "share.auto.offset.reset") == "earliest"
    # without an override: the broker's value
    assert group_value(_broker(group_share_record_lock_duration_ms="20000"), {}, "share.record.lock.duration.ms") == 20000
    assert group_value(_broker(), {}, "share.isolation.level") == "read_uncommitted"


def test_describe_lists_defaults_from_the_broker():
    config = _broker(group_streams_session_timeout_ms="50000")
    entries = {e.name: e for e in describe_group_configs(config, {"share.delivery.count.limit": "3"})}
    assert sorted(entries) == sorted(GROUP_KEYS)
    assert (entries["streams.session.timeout.ms"].value, entries["streams.session.timeout.ms"].source) == ("50000", 5)
    assert (entries["share.delivery.count.limit"].value, entries["share.delivery.count.limit"].source) == ("3", 8)
    assert list(entries["share.delivery.count.limit"].synonyms) == [
        ("share.delivery.count.limit", "3", 8), ("share.delivery.count.limit", "5", 5)]
    assert entries["streams.assignor.name"].value == "sticky"
    assert entries["share.renew.acknowledge.enable"].value == "true"
