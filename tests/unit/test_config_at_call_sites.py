"""Services read Kafka's settings from the broker's typed configuration (the key table's defaults
when unset), not from defaults re-declared where they are used."""

from __future__ import annotations

import uuid

from kbroker.config import BROKER_KEYS, BrokerConfig
from kbroker.controller.operations.reassignments import replication_settings
from kbroker.metadata.broker_lifecycle import (
    DEFAULT_HEARTBEAT_INTERVAL_MS,
    DEFAULT_INITIAL_REGISTRATION_TIMEOUT_MS,
)
from kbroker.security.quotas import ClientQuotas
from kbroker.security.replication_quotas import ReplicationQuotas
from kbroker.security.tokens import DelegationTokens
from kbroker.wiring.registration import build_lifecycle


def _config(**given: str) -> BrokerConfig:
    return BrokerConfig({k.replace("_", "."): v for k, v in given.items()}, warn=False)


def test_registration_timeout_is_a_broker_key_and_reaches_the_lifecycle():
    assert BROKER_KEYS["initial.broker.registration.timeout.ms"].default == "60000"  # KRaftConfigs
    assert (DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_INITIAL_REGISTRATION_TIMEOUT_MS) == (2000, 60000)

    class Raft:
        leader_id = -1
        addresses: dict[int, tuple[str, int]] = {}

    config = _config(initial_broker_registration_timeout_ms="1234", broker_heartbeat_interval_ms="700")
    _, lifecycle = build_lifecycle(config, 1, "c", Raft(), lambda: 0, [("PLAINTEXT", "localhost", 1, 0)],  # type: ignore[arg-type]
                                   [uuid.uuid4()])
    machine = lifecycle.machine
    assert (machine.initial_registration_timeout_ms, machine.heartbeat_interval_ms) == (1234, 700)


def test_client_quota_windows_come_from_the_config_or_the_key_table():
    defaults = ClientQuotas()
    assert (defaults.produce.samples, defaults.produce.window_ms) == (11, 1000.0)
    assert (defaults.controller_mutation.samples, defaults.controller_mutation.window_ms) == (11, 1000.0)
    q = ClientQuotas(_config(quota_window_num="4", quota_window_size_seconds="3", controller_quota_window_num="6",
                             controller_quota_window_size_seconds="2"))
    assert (q.produce.samples, q.produce.window_ms, q.ip.samples) == (4, 3000.0, 4)
    assert (q.controller_mutation.samples, q.controller_mutation.window_ms) == (6, 2000.0)


def test_replication_quota_windows_come_from_the_config():
    config = _config(replication_quota_window_num="5", replication_quota_window_size_seconds="2")
    quotas = ReplicationQuotas(lambda: config, 1)
    assert (quotas.leader.rate.samples, quotas.leader.rate.window_ms) == (5, 2000.0)
    assert not quotas.leader.enabled  # leader.replication.throttled.rate: Long.MAX_VALUE by default


def test_delegation_token_settings_come_from_the_config():
    tokens = DelegationTokens(_config())
    assert (tokens.max_lifetime_ms, tokens.expiry_time_ms, tokens.check_interval_ms) == (604800000, 86400000, 3600000)
    tokens = DelegationTokens(_config(delegation_token_max_lifetime_ms="5000", delegation_token_expiry_time_ms="4000",
                                      delegation_token_expiry_check_interval_ms="300"))
    assert (tokens.max_lifetime_ms, tokens.expiry_time_ms, tokens.check_interval_ms) == (5000, 4000, 300)


def test_replication_settings_without_cluster_control_read_the_config():
    class Node:
        controller = None
        config = _config(min_insync_replicas="2", unclean_leader_election_enable="true")

    settings = replication_settings(Node())  # type: ignore[arg-type]
    assert (settings.min_insync_replicas, settings.unclean_leader_election_enable) == (2, True)
    Node.config = _config()
    settings = replication_settings(Node())  # type: ignore[arg-type]
    assert (settings.min_insync_replicas, settings.unclean_leader_election_enable) == (1, False)
