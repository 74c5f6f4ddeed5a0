"""Group configs over the wire (ConfigResource type GROUP, 32): IncrementalAlterConfigs and
DescribeConfigs of one group, and the wait until the broker's metadata has an alteration (used by
the group-override tests on kbroker and against the reference Kafka)."""

from __future__ import annotations

from typing import Any

from waiting import wait_until

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

GROUP_RESOURCE = 32
GROUP_CONFIG_SOURCE, DEFAULT_CONFIG_SOURCE = 8, 5  # DescribeConfigs' ConfigSource values
SET, DELETE = 0, 1


def alter_group_configs(wire: Any, group: str, configs: dict[str, str | None]) -> tuple[int, str | None]:
    """IncrementalAlterConfigs of ``group`` (a None value deletes the override): (error code, message)."""
    Req = REQUESTS[44]
    res = Req.AlterConfigsResource(resource_type=GROUP_RESOURCE, resource_name=group, configs=[
        Req.AlterConfigsResource.AlterableConfig(name=k, config_operation=SET if v is not None else DELETE, value=v)
        for k, v in configs.items()])
    r = wire.call(44, 1, resources=[res], validate_only=False).responses[0]
    return r.error_code, r.error_message


def describe_group_configs(wire: Any, group: str, names: list[str] | None = None) -> dict[str, tuple[str | None, int]]:
    """DescribeConfigs of ``group`` (``names``: only those keys): name -> (value, config source)."""
    Req = REQUESTS[32]
    resp = wire.call(32, 4, resources=[Req.DescribeConfigsResource(resource_type=GROUP_RESOURCE, resource_name=group,
                                                                   configuration_keys=names)],
                     include_synonyms=False, include_documentation=False)
    assert resp.results[0].error_code == ErrorCode.NONE, resp.results[0]
    return {c.name: (c.value, c.config_source) for c in resp.results[0].configs}


def wait_group_configs(wire: Any, group: str, configs: dict[str, str | None], timeout: float = 30) -> None:
    """Until DescribeConfigs shows ``configs`` as the group's overrides (None: no override), that
    is until the broker's metadata has them."""
    def shown() -> bool:
        described = describe_group_configs(wire, group, list(configs))
        return all(described.get(k, (None, -1))[1] != GROUP_CONFIG_SOURCE if v is None
                   else described.get(k) == (v, GROUP_CONFIG_SOURCE) for k, v in configs.items())

    wait_until(shown, timeout=timeout, message=f"the configs of group {group} in the image")


def set_group_configs(wire: Any, group: str, configs: dict[str, str | None]) -> None:
    """Alter ``group``'s configs (which must be accepted) and wait until the broker has them."""
    error, message = alter_group_configs(wire, group, configs)
    assert error == ErrorCode.NONE, message
    wait_group_configs(wire, group, configs)
