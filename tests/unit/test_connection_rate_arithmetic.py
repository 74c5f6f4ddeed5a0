"""max.connection.creation.rate (broker-wide and per listener) and per-listener max.connections, as
Kafka's ConnectionQuotas computes them, on a fake clock (kbroker/server/limits.py)."""

from __future__ import annotations

import pytest

from kbroker.config import BrokerConfig, ConfigError
from kbroker.server.limits import INT_MAX, ConnectionLimits

TWO_LISTENERS = {
    "listeners": "PLAINTEXT://:0,EXTERNAL://:0",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "inter.broker.listener.name": "PLAINTEXT",
}


class FakeClock:
    def __init__(self) -> None:
        self.ms = 0.0

    def __call__(self) -> float:
        return self.ms


def _limits(props: dict[str, str]) -> tuple[ConnectionLimits, FakeClock]:
    clock = FakeClock()
    return ConnectionLimits(BrokerConfig(props, warn=False), clock=clock), clock


def test_broker_rate_delays_the_connection_that_takes_it_over_the_bound():
    # 11 samples of 1 s: the rate is counted over at least 10 s, so 50 connections at once are
    # 5/s and the 51st makes 5.1/s: held (5.1 - 5) / 5 * 10 s = 200 ms
    limits, _ = _limits({"max.connection.creation.rate": "5"})
    assert [limits.record_connection("PLAINTEXT") for _ in range(50)] == [0] * 50
    assert limits.record_connection("PLAINTEXT") == 200
    assert limits.listeners["PLAINTEXT"].delayed == 1


def test_delay_is_at_most_one_quota_window():
    limits, _ = _limits({"max.connection.creation.rate": "2", "quota.window.size.seconds": "1"})
    delays = [limits.record_connection("PLAINTEXT") for _ in range(23)]
    assert delays[:20] == [0] * 20
    assert delays[20:] == [500, 1000, 1000]  # the delayed ones still count (Kafka's Sensor.record)


def test_rate_falls_as_the_samples_expire():
    limits, clock = _limits({"max.connection.creation.rate": "2"})
    for _ in range(20):
        assert limits.record_connection("PLAINTEXT") == 0
    assert limits.record_connection("PLAINTEXT") > 0
    clock.ms = 11_000  # every sample older than quota.window.num windows: purged
    assert [limits.record_connection("PLAINTEXT") for _ in range(20)] == [0] * 20


def test_unrecorded_connection_leaves_the_rate_as_it_was():
    limits, _ = _limits({"max.connection.creation.rate": "2"})
    for _ in range(20):
        assert limits.record_connection("PLAINTEXT") == 0
        limits.unrecord_connection("PLAINTEXT")  # refused by its ip's connection_creation_rate
    assert [limits.record_connection("PLAINTEXT") for _ in range(20)] == [0] * 20
    assert limits.record_connection("PLAINTEXT") == 500


def test_listener_rate_and_the_longer_of_the_two_delays():
    limits, _ = _limits({**TWO_LISTENERS, "listener.name.external.max.connection.creation.rate": "3",
                         "max.connection.creation.rate": "4"})
    assert [limits.record_connection("EXTERNAL") for _ in range(30)] == [0] * 30
    # listener: 3.1/s against 3 -> 333 ms; broker-wide: 3.1/s against 4 -> none
    assert limits.record_connection("EXTERNAL") == 333
    # the other listener has no rate of its own; the broker-wide rate counts both (31 + 9 = 40)
    assert [limits.record_connection("PLAINTEXT") for _ in range(9)] == [0] * 9
    # EXTERNAL: 3.2/s -> 667 ms; broker-wide: 4.1/s against 4 -> 250 ms; the longer one
    assert limits.record_connection("EXTERNAL") == 667


def test_inter_broker_listener_is_exempt_from_the_broker_wide_limits():
    limits, _ = _limits({**TWO_LISTENERS, "max.connection.creation.rate": "1", "max.connections": "2"})
    assert [limits.record_connection("PLAINTEXT") for _ in range(30)] == [0] * 30
    assert limits.broker_rate.rate.measure(0) == 0  # not recorded in the broker-wide rate
    assert [limits.record_connection("EXTERNAL") for _ in range(10)] == [0] * 10
    assert limits.record_connection("EXTERNAL") == 1000
    for port in range(3):
        assert limits.admit(f"10.0.0.{port}", "PLAINTEXT")
    assert not limits.slot_available("EXTERNAL")  # 3 connections >= max.connections
    assert limits.slot_available("PLAINTEXT")  # protected


def test_single_listener_is_not_protected():
    # Kafka protects the inter-broker listener only when the broker has other listeners
    limits, _ = _limits({"max.connection.creation.rate": "1", "max.connections": "1"})
    assert [limits.record_connection("PLAINTEXT") for _ in range(10)] == [0] * 10
    assert limits.record_connection("PLAINTEXT") == 1000
    assert limits.admit("10.0.0.1", "PLAINTEXT")
    assert not limits.slot_available("PLAINTEXT")


def test_listener_max_connections_counts_that_listener_only():
    limits, _ = _limits({**TWO_LISTENERS, "listener.name.external.max.connections": "2"})
    assert limits.listeners["EXTERNAL"].max_connections == 2
    assert limits.listeners["PLAINTEXT"].max_connections == INT_MAX
    limits.admit("10.0.0.1", "EXTERNAL")
    limits.admit("10.0.0.2", "PLAINTEXT")
    assert limits.slot_available("EXTERNAL")
    limits.admit("10.0.0.3", "EXTERNAL")
    assert not limits.slot_available("EXTERNAL")
    assert limits.slot_available("PLAINTEXT")
    limits.release_connection("10.0.0.1", "EXTERNAL")
    assert limits.slot_available("EXTERNAL")
    assert limits.listeners["EXTERNAL"].count == 1 and limits.total == 2


def test_reconfigure_applies_dynamic_values_and_wakes_the_acceptors():
    config = BrokerConfig({"max.connection.creation.rate": "1", "max.connections": "1"}, warn=False)
    limits = ConnectionLimits(config, clock=FakeClock())
    woken: list[int] = []
    limits.on_slot_free.append(lambda: woken.append(1))
    limits.admit("10.0.0.1", "PLAINTEXT")
    assert not limits.slot_available("PLAINTEXT")
    limits.reconfigure(config.with_dynamic({"max.connections": "5"},
                                           {"max.connection.creation.rate": "100"}))
    assert limits.slot_available("PLAINTEXT") and woken
    assert limits.broker_rate.bound == 100
    assert [limits.record_connection("PLAINTEXT") for _ in range(1000)] == [0] * 1000


@pytest.mark.parametrize("props, key", [
    ({"max.connection.creation.rate": "-1"}, "max.connection.creation.rate"),
    ({"max.connection.creation.rate": "fast"}, "max.connection.creation.rate"),
    ({"listener.name.plaintext.max.connections": "-1"}, "listener.name.plaintext.max.connections"),
    ({"listener.name.plaintext.max.connection.creation.rate": "x"},
     "listener.name.plaintext.max.connection.creation.rate"),
])
def test_bad_values_stop_start_up_naming_the_key(props, key):
    with pytest.raises(ConfigError) as info:
        BrokerConfig(props, warn=False)
    assert info.value.key == key
    assert key in str(info.value)


def test_dynamic_listener_keys_override_the_static_ones():
    config = BrokerConfig({**TWO_LISTENERS, "listener.name.external.max.connections": "2"}, warn=False)
    dynamic = config.with_dynamic({"listener.name.external.max.connections": "5",
                                   "listener.name.external.max.connection.creation.rate": "9"},
                                  {"listener.name.external.max.connections": "7",
                                   "listener.name.external.max.connection.creation.rate": "x"})
    # this broker's layer over the cluster default over server.properties; a stored value that
    # no longer parses is ignored
    assert dynamic.listener_overrides[("EXTERNAL", "max.connections")] == 7
    assert dynamic.listener_overrides[("EXTERNAL", "max.connection.creation.rate")] == 9
    limits = ConnectionLimits(dynamic, clock=FakeClock())
    assert limits.listeners["EXTERNAL"].max_connections == 7
    assert limits.listeners["EXTERNAL"].rate.bound == 9
