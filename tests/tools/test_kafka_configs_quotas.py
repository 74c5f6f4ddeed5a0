"""``kafka-configs.sh`` (Kafka 4.4's ConfigCommand) setting and describing client quotas on kbroker:
``--entity-type clients/users`` with names and ``--entity-default``, ``--add-config`` and
``--delete-config``. The expected lines are what the same commands print against Apache Kafka 4.4
(checked by running them against ``scripts/reference_kafka.py``'s broker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import reference_kafka

from kbroker.testing import BrokerThread


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerThread]:
    with BrokerThread({}, data_dir=str(tmp_path_factory.mktemp("quotas") / "data")) as b:
        yield b


def configs(b: BrokerThread, *args: str, ok: bool = True) -> str:
    res = reference_kafka.run_tool("org.apache.kafka.tools.ConfigCommand",
                                   ["--bootstrap-server", b.bootstrap_servers, *args])
    if ok:
        assert res.returncode == 0, f"{args} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_kafka_configs_alters_and_describes_client_and_user_quotas(broker):
    assert configs(broker, "--alter", "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048",
                   "--entity-type", "clients", "--entity-name", "X").strip() == "Completed updating config for client X."
    assert configs(broker, "--alter", "--add-config", "request_percentage=50", "--entity-type", "users",
                   "--entity-default").strip() == "Completed updating default config for users in the cluster."
    assert configs(broker, "--alter", "--add-config", "producer_byte_rate=4096", "--entity-type", "users",
                   "--entity-name", "alice", "--entity-type", "clients",
                   "--entity-default").strip() == "Completed updating config for user alice."
    assert configs(broker, "--describe", "--entity-type", "clients").strip() == \
        "Quota configs for client-id 'X' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0"
    assert configs(broker, "--describe", "--entity-type", "users").strip() == \
        "Quota configs for the default user-principal are request_percentage=50.0"
    assert configs(broker, "--describe", "--entity-type", "users", "--entity-name", "alice", "--entity-type",
                   "clients").strip() == \
        "Quota configs for user-principal 'alice', the default client-id are producer_byte_rate=4096.0"
    assert configs(broker, "--alter", "--add-config", "connection_creation_rate=20", "--entity-type", "ips",
                   "--entity-default").strip() == "Completed updating default config for ips in the cluster."
    assert configs(broker, "--describe", "--entity-type", "ips").strip() == \
        "Quota configs for the default ip are connection_creation_rate=20.0"
    # the quotas reach the quota managers
    quotas = broker.broker.client_quotas
    assert quotas.produce.quota("bob", "X") == 1024.0
    assert quotas.produce.quota("alice", "any") == 4096.0
    assert quotas.request.quota("bob", "Y") == 50.0
    assert quotas.ip.limit("10.9.8.7") == 20
    configs(broker, "--alter", "--delete-config", "consumer_byte_rate", "--entity-type", "clients", "--entity-name", "X")
    assert broker.broker.image.client_quotas[(("client-id", "X"),)] == {"producer_byte_rate": 1024.0}
    assert quotas.fetch.quota("bob", "X") is None
