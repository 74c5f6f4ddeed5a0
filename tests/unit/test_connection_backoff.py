"""Kafka's per-node connection timing (ClusterConnectionStates, ExponentialBackoff) and the keys
that set it: socket.connection.setup.timeout.ms / .max.ms, request.timeout.ms,
controller.socket.timeout.ms, with Kafka 4.4's defaults and its type-only validation."""

from __future__ import annotations

import pytest

from kbroker.config import BrokerConfig, ConfigError
from kbroker.config.connection_backoff import ConnectionBackoff, ExponentialBackoff


def _pinned(factor: float):  # the jitter draw, pinned: random(1 - jitter, 1 + jitter) -> factor
    def uniform(lo: float, hi: float) -> float:
        assert (round(lo, 9), round(hi, 9)) == (0.8, 1.2)
        return factor
    return uniform


def test_the_setup_timeout_doubles_per_consecutive_failed_attempt_up_to_the_max() -> None:
    states = ConnectionBackoff(10_000, 30_000, uniform=_pinned(1.0))
    seen = [states.setup_timeout_ms]
    for _ in range(4):
        states.connect_failed()
        seen.append(states.setup_timeout_ms)
    assert seen == [10_000, 20_000, 30_000, 30_000, 30_000]
    assert states.failed_connect_attempts == 4


@pytest.mark.parametrize(("factor", "expected"), [(0.8, [8_000, 16_000, 24_000, 24_000]),
                                                   (1.2, [12_000, 24_000, 30_000, 30_000])])
def test_the_jitter_is_twenty_percent_and_never_passes_the_max(factor: float, expected: list[int]) -> None:
    states = ConnectionBackoff(10_000, 30_000, uniform=_pinned(factor))
    seen = [states.setup_timeout_ms]
    for _ in range(3):
        states.connect_failed()
        seen.append(states.setup_timeout_ms)
    assert seen == expected


def test_a_ready_connection_resets_both_and_a_broken_one_grows_the_reconnect_backoff_only() -> None:
    states = ConnectionBackoff(100, 1_000, 50, 500, uniform=_pinned(1.0))
    assert (states.setup_timeout_ms, states.reconnect_backoff_ms) == (100, 50)
    # reconnect.backoff.ms * 2 ** (failures - 1): the first failure waits the base value
    backoffs = []
    for _ in range(6):
        states.connect_failed()
        backoffs.append(states.reconnect_backoff_ms)
    assert backoffs == [50, 100, 200, 400, 500, 500]
    states.connected()
    assert (states.setup_timeout_ms, states.reconnect_backoff_ms, states.failed_attempts) == (100, 50, 0)
    states.connect_failed()
    assert states.setup_timeout_ms == 200
    states.connected()
    states.disconnected()  # out of a connected state: the setup timeout is not grown
    states.disconnected()
    assert (states.setup_timeout_ms, states.reconnect_backoff_ms) == (100, 100)


def test_a_max_below_the_initial_value_is_a_constant_max_and_fixed_values_have_no_jitter() -> None:
    constant = ExponentialBackoff(10_000, 2, 5_000, 0.2, uniform=_pinned(1.2))
    assert [constant.backoff(n) for n in range(3)] == [5_000, 5_000, 5_000]
    fixed = ConnectionBackoff(10_000, 30_000, 50, 50, uniform=_pinned(0.8))  # Kafka's 50/50 channels
    fixed.connect_failed()
    fixed.connect_failed()
    assert fixed.reconnect_backoff_ms == 50
    fetcher = ConnectionBackoff(10_000, 30_000, 0, 0)  # BrokerBlockingSender: no reconnect backoff
    fetcher.connect_failed()
    assert fetcher.reconnect_backoff_ms == 0


def test_kafkas_defaults() -> None:
    config = BrokerConfig({}, warn=False)
    assert config["socket.connection.setup.timeout.ms"] == 10_000
    assert config["socket.connection.setup.timeout.max.ms"] == 30_000
    assert config["request.timeout.ms"] == 30_000
    assert config["controller.socket.timeout.ms"] == 30_000
    assert config["replica.socket.timeout.ms"] == 30_000
    assert config["controller.quorum.request.timeout.ms"] == 2_000


@pytest.mark.parametrize("key", ["socket.connection.setup.timeout.ms", "socket.connection.setup.timeout.max.ms",
                                 "request.timeout.ms", "controller.socket.timeout.ms"])
def test_a_value_that_is_not_a_number_stops_start_up_naming_the_key(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        BrokerConfig({key: "ten seconds"}, warn=False)
    assert key in str(info.value)
    assert BrokerConfig({key: "250"}, warn=False)[key] == 250


def test_reconnect_backoff_keys_are_not_broker_keys() -> None:
    """Kafka's broker has no reconnect.backoff.ms / .max.ms: its clients to the other nodes use fixed
    values (KafkaRaftManager 50 to 500 ms, NodeToControllerChannelManagerImpl and NetworkUtils 50 ms,
    BrokerBlockingSender 0), so a server.properties setting them is warned about and ignored."""
    config = BrokerConfig({"reconnect.backoff.ms": "20", "reconnect.backoff.max.ms": "200"}, warn=False)
    assert config.unknown == ["reconnect.backoff.ms", "reconnect.backoff.max.ms"]


def test_a_broker_to_broker_attempt_gets_the_jittered_setup_timeout_capped_at_the_max() -> None:
    from kbroker.replication.broker_connection import setup_timeout_s

    config = BrokerConfig({"socket.connection.setup.timeout.ms": "1000"}, warn=False)
    assert all(0.8 <= setup_timeout_s(config) <= 1.2 for _ in range(50))
    capped = BrokerConfig({"socket.connection.setup.timeout.ms": "1000",
                           "socket.connection.setup.timeout.max.ms": "500"}, warn=False)
    assert setup_timeout_s(capped) == 0.5


def test_replica_socket_timeout_below_the_fetch_wait_stops_start_up() -> None:
    """KafkaConfig.validateValues: replica.fetch.wait.max.ms <= replica.socket.timeout.ms."""
    with pytest.raises(ConfigError) as info:
        BrokerConfig({"replica.socket.timeout.ms": "400", "replica.fetch.wait.max.ms": "500"}, warn=False)
    assert str(info.value) == ("requirement failed: replica.socket.timeout.ms should always be at least "
                               "replica.fetch.wait.max.ms to prevent unnecessary socket timeouts")
    assert info.value.key == "replica.socket.timeout.ms"
    BrokerConfig({"replica.socket.timeout.ms": "500", "replica.fetch.wait.max.ms": "500"}, warn=False)
