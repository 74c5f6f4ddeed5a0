"""The controller's side of AlterConfigs (key 33) and IncrementalAlterConfigs (key 44).

Both change TOPIC configs, dynamic BROKER configs (a node's id, or "" for the cluster-wide
default) and GROUP configs through ConfigRecords in the metadata log, authorized for the forwarded
principal. AlterConfigs replaces a resource's whole set of overrides; IncrementalAlterConfigs
applies SET (0), DELETE (1), APPEND (2) and SUBTRACT (3, list configs only) to single keys.
ValidateOnly checks without committing. Broker keys that Kafka marks read-only cannot be changed
dynamically (INVALID_REQUEST), unknown topic keys and invalid topic values give INVALID_CONFIG,
invalid broker values INVALID_REQUEST (both as Kafka 4.4, with its validators and messages), and a
key named twice for a resource gives INVALID_REQUEST. Each operation runs alone among the
controller's operations (a resource's overrides are read and rewritten without another change
between). The brokers' handlers, which answer the BROKER resources naming another broker
themselves (Kafka's ConfigAdminManager.preprocess) with the checks below, are
kbroker/api/alter_configs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, TypeVar

from kbroker.config import BROKER_KEYS, TOPIC_KEYS, ConfigError, dynamic_listener_key
from kbroker.config.broker_config import cordoned_log_dirs_problem
from kbroker.config.group_keys import GROUP_KEYS, RESOURCE_GROUP, validate_group_configs
from kbroker.controller.operations.host import (
    ControllerHolder,
    OperationSubject,
    local_controller,
    operation_subject,
)
from kbroker.metadata.client import Requester
from kbroker.metadata.directories import cordoned_dirs_supported
from kbroker.security.acls import ALTER_CONFIGS as ALTER_CONFIGS_OP
from kbroker.security.acls import config_refused as _refused
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_configs import AlterConfigsRequest, AlterConfigsResponse
from kbroker_protocol.messages.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.security.acls import Authorizer

RESOURCE_TOPIC, RESOURCE_BROKER = 2, 4  # Kafka's ConfigResource.Type ids (as kbroker/api/describe_configs.py)
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3

# AlterConfigs and IncrementalAlterConfigs share the resource-by-resource flow below.
AlterRequest = TypeVar("AlterRequest", AlterConfigsRequest, IncrementalAlterConfigsRequest)
AlterResponse = TypeVar("AlterResponse", AlterConfigsResponse, IncrementalAlterConfigsResponse)
Resource = AlterConfigsRequest.AlterConfigsResource | IncrementalAlterConfigsRequest.AlterConfigsResource
_Config = (AlterConfigsRequest.AlterConfigsResource.AlterableConfig
           | IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig)


class ConfigNode(ControllerHolder, Protocol):
    """What a resource's new overrides and the ``cordoned.log.dirs`` check read of the node: its
    configuration, and its controller (the check made there). The brokers' AlterConfigs handlers
    run them too (kbroker/api/alter_configs.py)."""

    @property
    def config(self) -> BrokerConfig: ...


class ConfigsHost(ConfigNode, Protocol):
    """AlterConfigs and IncrementalAlterConfigs as they use the node: its configuration and
    controller (``ConfigNode``) and the authorizer."""

    @property
    def authorizer(self) -> Authorizer: ...


NewConfigs = Callable[[ConfigNode, Resource, dict[str, str]], tuple[dict[str, str], dict[str, str]]]
"""``(broker, resource, old) -> (new, changed)``: a resource's overrides after the request."""


class Reject(Exception):
    def __init__(self, code: ErrorCode, message: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _current(broker: ConfigsHost, resource_type: int, name: str) -> dict[str, str]:
    """The resource's configs in the controller's image (this runs on the controller)."""
    image = local_controller(broker).image
    if resource_type == RESOURCE_TOPIC:
        topic = image.topic(name)
        if topic is None:
            raise Reject(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name} does not exist")
        return dict(topic.configs)
    if resource_type == RESOURCE_BROKER:
        # The receiving broker checked that the name is its own id or "" (`_local_answers`); the
        # controller checks only that it names a broker (Kafka's ControllerConfigurationValidator).
        if name and not name.lstrip("-").isdigit():
            raise Reject(ErrorCode.INVALID_REQUEST, f"Invalid broker name {name}")
        return dict(image.broker_configs.get(name, {}))
    if resource_type == RESOURCE_GROUP:
        if not name:
            raise Reject(ErrorCode.INVALID_REQUEST, "Group name must not be empty")
        return dict(image.group_configs.get(name, {}))
    raise Reject(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {resource_type}")


def _validate(broker: ConfigsHost, resource_type: int, new: dict[str, str], changed: dict[str, str], name: str = "") -> None:
    """Kafka's checks: a topic's whole new set of overrides as its controller validates them
    (INVALID_CONFIG); for a broker the changed keys as its DynamicBrokerConfig does, whose
    failures Kafka answers with INVALID_REQUEST (KAFKA-13609)."""
    if resource_type == RESOURCE_TOPIC:
        try:
            broker.config.validate_topic_configs(new)
        except ConfigError as exc:
            raise Reject(ErrorCode.INVALID_CONFIG, str(exc)) from None
        return
    if resource_type == RESOURCE_GROUP:
        try:
            validate_group_configs(broker.config, new)
        except ConfigError as exc:
            raise Reject(ErrorCode.INVALID_CONFIG, str(exc)) from None
        return
    for key, value in changed.items():
        spec = BROKER_KEYS.get(key)
        base = dynamic_listener_key(key) if spec is None else None
        if base is not None:
            # Kafka's ListenerConnectionQuota.validateReconfiguration: at least 1
            try:
                number = BROKER_KEYS[base].parse(value)
            except ConfigError as exc:
                raise Reject(ErrorCode.INVALID_REQUEST, str(exc).replace(base, key)) from None
            if number <= 0:
                raise Reject(ErrorCode.INVALID_REQUEST, f"Invalid {key} {number}")
            continue
        if spec is None:
            raise Reject(ErrorCode.INVALID_CONFIG, f"Unknown broker config name: {key}")
        if spec.read_only:
            raise Reject(ErrorCode.INVALID_REQUEST, f"Cannot update these configs dynamically: [{key}]")
        try:
            spec.parse(value)
        except ConfigError as exc:
            raise Reject(ErrorCode.INVALID_REQUEST, str(exc)) from None
    if CORDONED in changed:
        validate_cordoned(broker, name, new, on_controller=True)
    if changed.keys() & _CONNECTION_KEYS or any(dynamic_listener_key(k) for k in changed):
        # Kafka validates the whole new KafkaConfig (e.g. max.connections.per.ip 0 needs overrides)
        config = broker.config
        try:
            if name == "":
                config.with_dynamic(new, config.dynamic_node)
            else:
                config.with_dynamic(config.dynamic_default, new)
        except ConfigError as exc:
            raise Reject(ErrorCode.INVALID_REQUEST, str(exc)) from None


CORDONED = "cordoned.log.dirs"


def validate_cordoned(broker: ConfigNode, name: str, new: dict[str, str], *, on_controller: bool) -> None:
    """KIP-1066's ``cordoned.log.dirs``: per-broker only (Kafka's DynamicBrokerConfig
    PER_BROKER_CONFIGS), its entries among the named broker's log dirs (checked by that broker,
    which receives the request: ``_local_answers``), and metadata.version 30 or more (the
    controller's ConfigurationControlManager, INVALID_CONFIG)."""
    if name == "":
        raise Reject(ErrorCode.INVALID_REQUEST, "Cannot update these configs at default cluster level, broker id "
                      f"must be specified: [{CORDONED}]")
    if not on_controller or name == str(broker.config.node_id):
        problem = cordoned_log_dirs_problem(BROKER_KEYS[CORDONED].parse(new[CORDONED]),
                                            [str(d) for d in broker.config.log_dirs])
        if problem is not None:
            raise Reject(ErrorCode.INVALID_REQUEST, problem)
    if on_controller and not cordoned_dirs_supported(local_controller(broker).image):
        raise Reject(ErrorCode.INVALID_CONFIG, f"The {CORDONED} configuration value cannot be set because it "
                      "requires metadata.version >= 4.3-IV0")


_CONNECTION_KEYS = frozenset({"max.connections", "max.connections.per.ip", "max.connections.per.ip.overrides",
                              "max.connection.creation.rate"})


async def _write(broker: ConfigsHost, resource_type: int, name: str, old: dict[str, str], new: dict[str, str]) -> None:
    changes: dict[str, str | None] = {k: v for k, v in new.items() if old.get(k) != v}
    for k in old:
        if k not in new:
            changes[k] = None
    if changes:
        controller = local_controller(broker)
        await controller.write(controller.config_records(resource_type, name, changes))


def duplicates(configs: Iterable[_Config]) -> str | None:
    seen: set[str] = set()
    for c in configs:
        name: str = c.name
        if name in seen:
            return name
        seen.add(name)
    return None


async def _alter(broker: ConfigsHost, request: AlterRequest, response_cls: type[AlterResponse], new_configs: NewConfigs,
                 requester: Requester | None = None) -> AlterResponse:
    """Apply ``new_configs(broker, resource, old) -> (new, changed)`` to each resource of ``request``:
    ``changed`` is validated, then (unless validateOnly) the overrides become ``new``."""
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        return await _alter_resources(operation_subject(broker, requester), request, response_cls, new_configs)


async def _alter_resources(ctx: OperationSubject[ConfigsHost], request: AlterRequest, response_cls: type[AlterResponse],
                           new_configs: NewConfigs) -> AlterResponse:
    broker = ctx.broker
    out = []
    for res in request.resources:
        code, message = ErrorCode.NONE, None
        try:
            if (denied := _refused(ctx, ALTER_CONFIGS_OP, res.resource_type, res.resource_name)) is not None:
                raise Reject(denied, None)
            dup = duplicates(res.configs)
            if dup:
                raise Reject(ErrorCode.INVALID_REQUEST, f"Error due to duplicate config keys: {dup}")
            old = _current(broker, res.resource_type, res.resource_name)
            new, changed = new_configs(broker, res, old)
            _validate(broker, res.resource_type, new, changed, res.resource_name)
            if not request.validate_only:
                await _write(broker, res.resource_type, res.resource_name, old, new)
        except Reject as exc:
            code, message = exc.code, exc.message
        out.append(response_cls.AlterConfigsResourceResponse(
            error_code=code, error_message=message, resource_type=res.resource_type,
            resource_name=res.resource_name))
    return response_cls(throttle_time_ms=0, responses=out)


def replaced(broker: ConfigNode, res: Resource, old: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    new = {}
    for c in res.configs:
        if c.value is None:
            raise Reject(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {c.name}")
        new[c.name] = c.value
    return new, new


async def alter_configs(broker: ConfigsHost, request: AlterConfigsRequest, version: int,
                        requester: Requester | None = None) -> AlterConfigsResponse:
    """The controller's side of AlterConfigs (authorized for the forwarded principal)."""
    return await _alter(broker, request, AlterConfigsResponse, replaced, requester)


def _list_type(resource_type: int, key: str) -> bool:
    spec = (TOPIC_KEYS.get(key) if resource_type == RESOURCE_TOPIC else GROUP_KEYS.get(key)
            if resource_type == RESOURCE_GROUP else BROKER_KEYS.get(key))
    return spec is not None and spec.type == "list"


def incremented(broker: ConfigNode, res: Resource, old: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    assert isinstance(res, IncrementalAlterConfigsRequest.AlterConfigsResource)  # (IncrementalAlterConfigs' only)
    new = dict(old)
    for c in res.configs:
        op = c.config_operation
        if op == SET:
            if c.value is None:
                raise Reject(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {c.name}")
            new[c.name] = c.value
        elif op == DELETE:
            new.pop(c.name, None)
        elif op in (APPEND, SUBTRACT):
            if not _list_type(res.resource_type, c.name):
                raise Reject(ErrorCode.INVALID_CONFIG,
                              f"Config value append is not allowed for config key: {c.name}")
            if res.resource_type == RESOURCE_TOPIC:
                current, _ = broker.config.topic_default(c.name)
                base = new.get(c.name)
                items = [i for i in (base.split(",") if base else (current or [])) if i]
            else:
                base = new.get(c.name)
                items = [i for i in (base or "").split(",") if i]
            given = [i.strip() for i in (c.value or "").split(",") if i.strip()]
            if op == APPEND:
                items += [i for i in given if i not in items]
            else:
                items = [i for i in items if i not in given]
            new[c.name] = ",".join(items)
        else:
            raise Reject(ErrorCode.INVALID_REQUEST, f"Unknown config operation {op}")
    return new, {k: v for k, v in new.items() if old.get(k) != v}


async def incremental_alter_configs(broker: ConfigsHost, request: IncrementalAlterConfigsRequest, version: int,
                                    requester: Requester | None = None) -> IncrementalAlterConfigsResponse:
    """The controller's side of IncrementalAlterConfigs (authorized for the forwarded principal)."""
    return await _alter(broker, request, IncrementalAlterConfigsResponse, incremented, requester)
