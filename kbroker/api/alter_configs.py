"""AlterConfigs (key 33, v0-2) and IncrementalAlterConfigs (key 44, v0-1).

Both change TOPIC configs and dynamic BROKER configs (this node's id, or "" for the cluster-wide
default) through ConfigRecords in the metadata log. AlterConfigs replaces a resource's whole set
of overrides; IncrementalAlterConfigs applies SET (0), DELETE (1), APPEND (2) and SUBTRACT (3, list
configs only) to single keys. ValidateOnly checks without committing. Broker keys that Kafka
marks read-only cannot be changed dynamically (INVALID_REQUEST), unknown topic keys and invalid
topic values give INVALID_CONFIG, invalid broker values INVALID_REQUEST (both as Kafka 4.4, with
its validators and messages), and a key named twice for a resource gives INVALID_REQUEST.
The handlers send the request to the controller (``ctx.broker.controller_client``), except the
BROKER resources that do not name this broker (or "" for the cluster default): those the receiving
broker answers itself, INVALID_REQUEST, as Kafka's ConfigAdminManager.preprocess (so a broker's
own configs are changed through that broker). :func:`alter_configs` and
:func:`incremental_alter_configs` are the controller's side, each run alone among the
controller's operations (a resource's overrides are read and rewritten without another change
between).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from kbroker.api.authorization import OperationSubject, operation_subject
from kbroker.api.authorization import config_refused as _refused
from kbroker.api.context import BrokerServices, RequestContext, local_controller, requester
from kbroker.api.describe_configs import RESOURCE_BROKER, RESOURCE_TOPIC, broker_resource_error
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.config import BROKER_KEYS, TOPIC_KEYS, ConfigError, dynamic_listener_key
from kbroker.config.broker_config import cordoned_log_dirs_problem
from kbroker.controller.client import (
    ALTER_CONFIGS,
    INCREMENTAL_ALTER_CONFIGS,
    Requester,
    controller_operation,
)
from kbroker.controller.directories import cordoned_dirs_supported
from kbroker.coordinator.share_group_config import RESOURCE_GROUP, GroupConfigError, validate_group_configs
from kbroker.security.acls import ALTER_CONFIGS as ALTER_CONFIGS_OP
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_configs import AlterConfigsRequest, AlterConfigsResponse
from kbroker_protocol.messages.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3

# AlterConfigs and IncrementalAlterConfigs share the resource-by-resource flow below.
_Request = TypeVar("_Request", AlterConfigsRequest, IncrementalAlterConfigsRequest)
_Response = TypeVar("_Response", AlterConfigsResponse, IncrementalAlterConfigsResponse)
_Resource = AlterConfigsRequest.AlterConfigsResource | IncrementalAlterConfigsRequest.AlterConfigsResource
_Config = (AlterConfigsRequest.AlterConfigsResource.AlterableConfig
           | IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig)
_NewConfigs = Callable[[BrokerServices, _Resource, dict[str, str]], tuple[dict[str, str], dict[str, str]]]
"""``(broker, resource, old) -> (new, changed)``: a resource's overrides after the request."""


class _Reject(Exception):
    def __init__(self, code: ErrorCode, message: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _current(broker: BrokerServices, resource_type: int, name: str) -> dict[str, str]:
    """The resource's configs in the controller's image (this runs on the controller)."""
    image = local_controller(broker).image
    if resource_type == RESOURCE_TOPIC:
        topic = image.topic(name)
        if topic is None:
            raise _Reject(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name} does not exist")
        return dict(topic.configs)
    if resource_type == RESOURCE_BROKER:
        # The receiving broker checked that the name is its own id or "" (`_local_answers`); the
        # controller checks only that it names a broker (Kafka's ControllerConfigurationValidator).
        if name and not name.lstrip("-").isdigit():
            raise _Reject(ErrorCode.INVALID_REQUEST, f"Invalid broker name {name}")
        return dict(image.broker_configs.get(name, {}))
    if resource_type == RESOURCE_GROUP:
        if not name:
            raise _Reject(ErrorCode.INVALID_REQUEST, "Group name must not be empty")
        return dict(image.group_configs.get(name, {}))
    raise _Reject(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {resource_type}")


def _validate(broker: BrokerServices, resource_type: int, new: dict[str, str], changed: dict[str, str], name: str = "") -> None:
    """Kafka's checks: a topic's whole new set of overrides as its controller validates them
    (INVALID_CONFIG); for a broker the changed keys as its DynamicBrokerConfig does, whose
    failures Kafka answers with INVALID_REQUEST (KAFKA-13609)."""
    if resource_type == RESOURCE_TOPIC:
        try:
            broker.config.validate_topic_configs(new)
        except ConfigError as exc:
            raise _Reject(ErrorCode.INVALID_CONFIG, str(exc)) from None
        return
    if resource_type == RESOURCE_GROUP:
        try:
            validate_group_configs(broker.config, new)
        except GroupConfigError as exc:
            raise _Reject(ErrorCode.INVALID_CONFIG, str(exc)) from None
        return
    for key, value in changed.items():
        spec = BROKER_KEYS.get(key)
        base = dynamic_listener_key(key) if spec is None else None
        if base is not None:
            # Kafka's ListenerConnectionQuota.validateReconfiguration: at least 1
            try:
                number = BROKER_KEYS[base].parse(value)
            except ConfigError as exc:
                raise _Reject(ErrorCode.INVALID_REQUEST, str(exc).replace(base, key)) from None
            if number <= 0:
                raise _Reject(ErrorCode.INVALID_REQUEST, f"Invalid {key} {number}")
            continue
        if spec is None:
            raise _Reject(ErrorCode.INVALID_CONFIG, f"Unknown broker config name: {key}")
        if spec.read_only:
            raise _Reject(ErrorCode.INVALID_REQUEST, f"Cannot update these configs dynamically: [{key}]")
        try:
            spec.parse(value)
        except ConfigError as exc:
            raise _Reject(ErrorCode.INVALID_REQUEST, str(exc)) from None
    if CORDONED in changed:
        _validate_cordoned(broker, name, new, on_controller=True)
    if changed.keys() & _CONNECTION_KEYS or any(dynamic_listener_key(k) for k in changed):
        # Kafka validates the whole new KafkaConfig (e.g. max.connections.per.ip 0 needs overrides)
        config = broker.config
        try:
            if name == "":
                config.with_dynamic(new, config.dynamic_node)
            else:
                config.with_dynamic(config.dynamic_default, new)
        except ConfigError as exc:
            raise _Reject(ErrorCode.INVALID_REQUEST, str(exc)) from None


CORDONED = "cordoned.log.dirs"


def _validate_cordoned(broker: BrokerServices, name: str, new: dict[str, str], *, on_controller: bool) -> None:
    """KIP-1066's ``cordoned.log.dirs``: per-broker only (Kafka's DynamicBrokerConfig
    PER_BROKER_CONFIGS), its entries among the named broker's log dirs (checked by that broker,
    which receives the request: ``_local_answers``), and metadata.version 30 or more (the
    controller's ConfigurationControlManager, INVALID_CONFIG)."""
    if name == "":
        raise _Reject(ErrorCode.INVALID_REQUEST, "Cannot update these configs at default cluster level, broker id "
                      f"must be specified: [{CORDONED}]")
    if not on_controller or name == str(broker.config.node_id):
        problem = cordoned_log_dirs_problem(BROKER_KEYS[CORDONED].parse(new[CORDONED]),
                                            [str(d) for d in broker.config.log_dirs])
        if problem is not None:
            raise _Reject(ErrorCode.INVALID_REQUEST, problem)
    if on_controller and not cordoned_dirs_supported(local_controller(broker).image):
        raise _Reject(ErrorCode.INVALID_CONFIG, f"The {CORDONED} configuration value cannot be set because it "
                      "requires metadata.version >= 4.3-IV0")


_CONNECTION_KEYS = frozenset({"max.connections", "max.connections.per.ip", "max.connections.per.ip.overrides",
                              "max.connection.creation.rate"})


async def _write(broker: BrokerServices, resource_type: int, name: str, old: dict[str, str], new: dict[str, str]) -> None:
    changes: dict[str, str | None] = {k: v for k, v in new.items() if old.get(k) != v}
    for k in old:
        if k not in new:
            changes[k] = None
    if changes:
        controller = local_controller(broker)
        await controller.write(controller.config_records(resource_type, name, changes))


def _duplicates(configs: Iterable[_Config]) -> str | None:
    seen: set[str] = set()
    for c in configs:
        name: str = c.name
        if name in seen:
            return name
        seen.add(name)
    return None


async def _alter(broker: BrokerServices, request: _Request, response_cls: type[_Response], new_configs: _NewConfigs,
                 requester: Requester | None = None) -> _Response:
    """Apply ``new_configs(broker, resource, old) -> (new, changed)`` to each resource of ``request``:
    ``changed`` is validated, then (unless validateOnly) the overrides become ``new``."""
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        return await _alter_resources(operation_subject(broker, requester), request, response_cls, new_configs)


async def _alter_resources(ctx: OperationSubject, request: _Request, response_cls: type[_Response],
                           new_configs: _NewConfigs) -> _Response:
    broker = ctx.broker
    out = []
    for res in request.resources:
        code, message = ErrorCode.NONE, None
        try:
            if (denied := _refused(ctx, ALTER_CONFIGS_OP, res.resource_type, res.resource_name)) is not None:
                raise _Reject(denied, None)
            dup = _duplicates(res.configs)
            if dup:
                raise _Reject(ErrorCode.INVALID_REQUEST, f"Error due to duplicate config keys: {dup}")
            old = _current(broker, res.resource_type, res.resource_name)
            new, changed = new_configs(broker, res, old)
            _validate(broker, res.resource_type, new, changed, res.resource_name)
            if not request.validate_only:
                await _write(broker, res.resource_type, res.resource_name, old, new)
        except _Reject as exc:
            code, message = exc.code, exc.message
        out.append(response_cls.AlterConfigsResourceResponse(
            error_code=code, error_message=message, resource_type=res.resource_type,
            resource_name=res.resource_name))
    return response_cls(throttle_time_ms=0, responses=out)


def _replaced(broker: BrokerServices, res: _Resource, old: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    new = {}
    for c in res.configs:
        if c.value is None:
            raise _Reject(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {c.name}")
        new[c.name] = c.value
    return new, new


def _local_answers(broker: BrokerServices, request: _Request, new_configs: _NewConfigs | None = None,
                   ctx: RequestContext | None = None) -> dict[int, tuple[ErrorCode, str]]:
    """What the receiving broker answers itself before forwarding, as Kafka's
    ConfigAdminManager.preprocess: a BROKER resource must name this broker (or "" for the cluster
    default), and a new ``cordoned.log.dirs`` must name this broker's log dirs (its
    validateBrokerConfigChange); such a resource is never sent to the controller. Index in the
    request -> error. Kafka authorizes first: a principal without ALTER_CONFIGS on the cluster gets
    no check of its values here (its resource is forwarded and refused by the controller with
    CLUSTER_AUTHORIZATION_FAILED), so nothing about this broker's dirs is told to it."""
    out = {}
    for i, res in enumerate(request.resources):
        if res.resource_type == RESOURCE_BROKER and ctx is not None and _refused(
                ctx, ALTER_CONFIGS_OP, res.resource_type, res.resource_name) is not None:
            continue
        if res.resource_type == RESOURCE_BROKER and not _duplicates(res.configs):
            problem = broker_resource_error(broker, res.resource_name)
            if problem:
                out[i] = problem
            elif new_configs is not None and any(c.name == CORDONED for c in res.configs):
                try:
                    new, changed = new_configs(broker, res, dict(broker.image.broker_configs.get(res.resource_name, {})))
                    if CORDONED in changed:
                        _validate_cordoned(broker, res.resource_name, new, on_controller=False)
                except _Reject as exc:
                    out[i] = (exc.code, exc.message or "")
    return out


async def _preprocess_and_forward(ctx: RequestContext, request: _Request, response_cls: type[_Response],
                                  send: Callable[[_Request, int, Requester], Awaitable[_Response]]) -> _Response:
    """Answer `_local_answers` here, forward the other resources, and give the answers in the
    request's order (Kafka's ConfigAdminManager.reassembleIncrementalResponse)."""
    local = _local_answers(ctx.broker, request, _replaced if response_cls is AlterConfigsResponse else _incremented,
                           ctx)
    resources = request.resources
    forwarded = [res for i, res in enumerate(resources) if i not in local]
    answers = []
    if forwarded:
        request.resources = forwarded
        try:
            response = await send(request, ctx.api_version, requester(ctx))
        finally:
            request.resources = resources
        if local and response.responses is not None and len(response.responses) != len(forwarded):
            raise RuntimeError(f"the controller answered {len(response.responses)} of {len(forwarded)} resources")
        answers = list(response.responses or [])
        if not local:
            return response
    else:
        response = response_cls(throttle_time_ms=0, responses=[])
    out = []
    remote = iter(answers)
    for i, res in enumerate(resources):
        if i in local:
            code, message = local[i]
            out.append(response_cls.AlterConfigsResourceResponse(
                error_code=code, error_message=message, resource_type=res.resource_type,
                resource_name=res.resource_name))
        else:
            out.append(next(remote))
    response.responses = out
    return response


@api(33, 0, 2)
async def handle_alter_configs(ctx: RequestContext, request: AlterConfigsRequest) -> AlterConfigsResponse:
    return await _preprocess_and_forward(ctx, request, AlterConfigsResponse,
                                         ctx.broker.controller_client.alter_configs)


@controller_operation(ALTER_CONFIGS)
async def alter_configs(broker: BrokerServices, request: AlterConfigsRequest, version: int,
                        requester: Requester | None = None) -> AlterConfigsResponse:
    """The controller's side of AlterConfigs (authorized for the forwarded principal)."""
    return await _alter(broker, request, AlterConfigsResponse, _replaced, requester)


def _list_type(resource_type: int, key: str) -> bool:
    spec = TOPIC_KEYS.get(key) if resource_type == RESOURCE_TOPIC else BROKER_KEYS.get(key)
    return spec is not None and spec.type == "list"


def _incremented(broker: BrokerServices, res: _Resource, old: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    new = dict(old)
    for c in res.configs:
        op = c.config_operation
        if op == SET:
            if c.value is None:
                raise _Reject(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {c.name}")
            new[c.name] = c.value
        elif op == DELETE:
            new.pop(c.name, None)
        elif op in (APPEND, SUBTRACT):
            if not _list_type(res.resource_type, c.name):
                raise _Reject(ErrorCode.INVALID_CONFIG,
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
            raise _Reject(ErrorCode.INVALID_REQUEST, f"Unknown config operation {op}")
    return new, {k: v for k, v in new.items() if old.get(k) != v}


@api(44, 0, 1)
async def handle_incremental_alter_configs(ctx: RequestContext, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse:
    return await _preprocess_and_forward(ctx, request, IncrementalAlterConfigsResponse,
                                         ctx.broker.controller_client.incremental_alter_configs)


@controller_operation(INCREMENTAL_ALTER_CONFIGS)
async def incremental_alter_configs(broker: BrokerServices, request: IncrementalAlterConfigsRequest, version: int,
                                    requester: Requester | None = None) -> IncrementalAlterConfigsResponse:
    """The controller's side of IncrementalAlterConfigs (authorized for the forwarded principal)."""
    return await _alter(broker, request, IncrementalAlterConfigsResponse, _incremented, requester)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(33)
def _alter_configs_error(request: AlterConfigsRequest, version: int, code: int) -> AlterConfigsResponse:
    R = AlterConfigsResponse
    return R(responses=[
        R.AlterConfigsResourceResponse(error_code=code, error_message=None, resource_type=resource.resource_type,
                                       resource_name=resource.resource_name)
        for resource in request.resources
    ])


@refusal(44)
def _incremental_alter_configs_error(
    request: IncrementalAlterConfigsRequest, version: int, code: int
) -> IncrementalAlterConfigsResponse:
    R = IncrementalAlterConfigsResponse
    return R(responses=[
        R.AlterConfigsResourceResponse(error_code=code, error_message=None, resource_type=resource.resource_type,
                                       resource_name=resource.resource_name)
        for resource in request.resources
    ])
