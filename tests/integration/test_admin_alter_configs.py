"""AlterConfigs and IncrementalAlterConfigs at the wire: replace vs. per-key operations,
validateOnly, and the per-resource errors."""

from __future__ import annotations

import pytest

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_configs import AlterConfigsRequest, AlterConfigsResponse
from kbroker_protocol.messages.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from tests.integration.transactions_helpers import RawClient, create_topic

TOPIC, BROKER, GROUP = 2, 4, 32
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
E = ErrorCode


@pytest.fixture
def raw(bootstrap):
    client = RawClient(bootstrap)
    yield client
    client.close()


def overrides(broker, name: str) -> dict[str, str]:
    return broker.call(lambda: dict(broker.broker.image.topic(name).configs))


def incremental(raw, name: str, *ops: tuple[str, str | None, int], validate_only: bool = False):
    R = IncrementalAlterConfigsRequest.AlterConfigsResource
    request = IncrementalAlterConfigsRequest(validate_only=validate_only, resources=[R(
        resource_type=TOPIC, resource_name=name,
        configs=[R.AlterableConfig(name=k, config_operation=op, value=v) for k, v, op in ops])])
    (result,) = raw.call(request, IncrementalAlterConfigsResponse, 1).responses
    return result.error_code, result.error_message


def replace(raw, name: str, configs: dict[str, str | None], validate_only: bool = False):
    R = AlterConfigsRequest.AlterConfigsResource
    request = AlterConfigsRequest(validate_only=validate_only, resources=[R(
        resource_type=TOPIC, resource_name=name,
        configs=[R.AlterableConfig(name=k, value=v) for k, v in configs.items()])])
    (result,) = raw.call(request, AlterConfigsResponse, 2).responses
    return result.error_code, result.error_message


def test_incremental_operations(broker, bootstrap, raw, topic_name):
    create_topic(bootstrap, topic_name)
    assert incremental(raw, topic_name, ("retention.ms", "1000", SET), ("segment.bytes", "1048576", SET)) == (
        E.NONE, None)
    assert overrides(broker, topic_name) == {"retention.ms": "1000", "segment.bytes": "1048576"}
    # APPEND/SUBTRACT work on list configs, starting from the default (cleanup.policy=delete).
    assert incremental(raw, topic_name, ("cleanup.policy", "compact", APPEND)) == (E.NONE, None)
    assert overrides(broker, topic_name)["cleanup.policy"] == "delete,compact"
    assert incremental(raw, topic_name, ("cleanup.policy", "delete", SUBTRACT), ("retention.ms", None, DELETE)) == (
        E.NONE, None)
    assert overrides(broker, topic_name) == {"cleanup.policy": "compact", "segment.bytes": "1048576"}
    assert incremental(raw, topic_name, ("retention.ms", "5", APPEND)) == (
        E.INVALID_CONFIG, "Config value append is not allowed for config key: retention.ms")
    # validateOnly checks and commits nothing.
    assert incremental(raw, topic_name, ("retention.ms", "7", SET), validate_only=True) == (E.NONE, None)
    assert incremental(raw, topic_name, ("retention.ms", "x", SET), validate_only=True)[0] == E.INVALID_CONFIG
    assert "retention.ms" not in overrides(broker, topic_name)


def test_replace_and_errors(broker, bootstrap, raw, topic_name):
    create_topic(bootstrap, topic_name)
    assert replace(raw, topic_name, {"retention.ms": "1000", "segment.bytes": "1048576"}) == (E.NONE, None)
    assert replace(raw, topic_name, {"retention.ms": "2000"}) == (E.NONE, None)
    assert overrides(broker, topic_name) == {"retention.ms": "2000"}  # the whole set is replaced
    assert replace(raw, topic_name, {"retention.ms": "3000"}, validate_only=True) == (E.NONE, None)
    assert overrides(broker, topic_name) == {"retention.ms": "2000"}
    assert replace(raw, topic_name, {"no.such.key": "1"}) == (E.INVALID_CONFIG, "Unknown topic config name: no.such.key")
    assert replace(raw, topic_name, {"retention.ms": None}) == (
        E.INVALID_REQUEST, "Null value not supported for: retention.ms")
    assert replace(raw, topic_name + "-missing", {"retention.ms": "1"}) == (
        E.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {topic_name}-missing does not exist")
    assert incremental(raw, topic_name, ("retention.ms", "1", SET), ("retention.ms", "2", SET)) == (
        E.INVALID_REQUEST, "Error due to duplicate config keys: retention.ms")
    assert overrides(broker, topic_name) == {"retention.ms": "2000"}


def test_describe_configs_documentation_comes_from_the_declarations(broker, bootstrap, raw, topic_name):
    from kbroker.config import TOPIC_KEYS
    from kbroker_protocol.messages.describe_configs import DescribeConfigsRequest, DescribeConfigsResponse

    create_topic(bootstrap, topic_name)
    R = DescribeConfigsRequest.DescribeConfigsResource

    def describe(include_documentation: bool) -> dict[str, str | None]:
        request = DescribeConfigsRequest(resources=[R(resource_type=TOPIC, resource_name=topic_name,
                                                      configuration_keys=None)],
                                         include_synonyms=False, include_documentation=include_documentation)
        (result,) = raw.call(request, DescribeConfigsResponse, 4).results
        assert result.error_code == E.NONE
        return {c.name: c.documentation for c in result.configs}

    documented = describe(True)
    assert documented.keys() == TOPIC_KEYS.keys()
    assert documented["segment.bytes"] == TOPIC_KEYS["segment.bytes"].spec.doc
    assert "1 MiB" in documented["segment.bytes"]
    assert all(documented.values())
    assert set(describe(False).values()) == {None}


def test_describe_configs_of_a_broker_returns_each_keys_documentation(broker, raw):
    """DescribeConfigs of a BROKER resource with IncludeDocumentation: every key it lists carries
    its documentation from the key table (Kafka returns each key's doc), a dynamic-only throttle
    too once set; without IncludeDocumentation none."""
    from kbroker.config import BROKER_KEYS, DYNAMIC_ONLY_BROKER_KEYS
    from kbroker_protocol.messages.describe_configs import DescribeConfigsRequest, DescribeConfigsResponse

    node = str(broker.broker.node_id)
    R = IncrementalAlterConfigsRequest.AlterConfigsResource
    throttle = R(resource_type=BROKER, resource_name=node, configs=[R.AlterableConfig(
        name="leader.replication.throttled.rate", config_operation=SET, value="1000000")])
    (altered,) = raw.call(IncrementalAlterConfigsRequest(validate_only=False, resources=[throttle]),
                          IncrementalAlterConfigsResponse, 1).responses
    assert altered.error_code == E.NONE

    D = DescribeConfigsRequest.DescribeConfigsResource

    def describe(include_documentation: bool) -> dict[str, str | None]:
        request = DescribeConfigsRequest(resources=[D(resource_type=BROKER, resource_name=node,
                                                      configuration_keys=None)],
                                         include_synonyms=False, include_documentation=include_documentation)
        (result,) = raw.call(request, DescribeConfigsResponse, 4).results
        assert result.error_code == E.NONE
        return {c.name: c.documentation for c in result.configs}

    documented = describe(True)
    assert "leader.replication.throttled.rate" in documented
    assert documented.keys() >= BROKER_KEYS.keys() - DYNAMIC_ONLY_BROKER_KEYS - {
        "group.consumer.regex.refresh.interval.ms"}
    assert {name: doc for name, doc in documented.items() if doc != BROKER_KEYS[name].doc or not doc} == {}
    assert "no effect" in documented["num.io.threads"]
    assert documented["kbroker.request.receive.timeout.ms"].startswith("kbroker's own")
    assert set(describe(False).values()) == {None}


def test_describe_configs_of_a_group_returns_each_keys_documentation(raw):
    """DescribeConfigs of a GROUP resource with IncludeDocumentation: each group config with its
    documentation (Kafka's ConfigHelper: GroupConfig.documentationOf)."""
    from kbroker.config import GROUP_KEYS
    from kbroker_protocol.messages.describe_configs import DescribeConfigsRequest, DescribeConfigsResponse

    D = DescribeConfigsRequest.DescribeConfigsResource
    request = DescribeConfigsRequest(resources=[D(resource_type=GROUP, resource_name="docs-group",
                                                  configuration_keys=None)],
                                     include_synonyms=False, include_documentation=True)
    (result,) = raw.call(request, DescribeConfigsResponse, 4).results
    assert result.error_code == E.NONE
    documented = {c.name: c.documentation for c in result.configs}
    assert documented == {name: key.spec.doc for name, key in GROUP_KEYS.items()}
    assert all(documented.values())
