"""AlterConfigs (key 33, v0-2) and IncrementalAlterConfigs (key 44, v0-1).

Both change TOPIC configs and dynamic BROKER configs (this node's id, or "" for the cluster-wide
default) through ConfigRecords in the metadata log. AlterConfigs replaces a resource's whole set
of overrides; IncrementalAlterConfigs applies SET (0), DELETE (1), APPEND (2) and SUBTRACT (3, list
configs only) to single keys. ValidateOnly checks without committing. Broker keys that Kafka
marks read-only cannot be changed dynamically (INVALID_REQUEST), unknown topic keys and invalid
topic values give INVALID_CONFIG, invalid broker values INVALID_REQUEST (both as Kafka 4.4, with
its validators and messages), and a key named twice for a resource gives INVALID_REQUEST.
"""

from __future__ import annotations

from kbroker.api.authorization import config_refused as _refused
from kbroker.api.describe_configs import RESOURCE_BROKER, RESOURCE_TOPIC, broker_resource_error
from kbroker.api.registry import api
from kbroker.config import BROKER_KEYS, TOPIC_KEYS, ConfigError
from kbroker.security.acls import ALTER_CONFIGS
from protocol.errors import ErrorCode
from protocol.messages.alter_configs import AlterConfigsResponse
from protocol.messages.incremental_alter_configs import IncrementalAlterConfigsResponse

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


class _Reject(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _current(broker, resource_type: int, name: str) -> dict[str, str]:
    if resource_type == RESOURCE_TOPIC:
        topic = broker.image.topic(name)
        if topic is None:
            raise _Reject(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name} does not exist")
        return dict(topic.configs)
    if resource_type == RESOURCE_BROKER:
        problem = broker_resource_error(broker, name)
        if problem:
            raise _Reject(*problem)
        return dict(broker.image.broker_configs.get(name, {}))
    raise _Reject(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {resource_type}")


def _validate(broker, resource_type: int, new: dict[str, str], changed: dict[str, str]) -> None:
    """Kafka's checks: a topic's whole new set of overrides as its controller validates them
    (INVALID_CONFIG); for a broker the changed keys as its DynamicBrokerConfig does, whose
    failures Kafka answers with INVALID_REQUEST (KAFKA-13609)."""
    if resource_type == RESOURCE_TOPIC:
        try:
            broker.config.validate_topic_configs(new)
        except ConfigError as exc:
            raise _Reject(ErrorCode.INVALID_CONFIG, str(exc)) from None
        return
    for key, value in changed.items():
        spec = BROKER_KEYS.get(key)
        if spec is None:
            raise _Reject(ErrorCode.INVALID_CONFIG, f"Unknown broker config name: {key}")
        if spec.read_only:
            raise _Reject(ErrorCode.INVALID_REQUEST, f"Cannot update these configs dynamically: [{key}]")
        try:
            spec.parse(value)
        except ConfigError as exc:
            raise _Reject(ErrorCode.INVALID_REQUEST, str(exc)) from None


def _commit(broker, resource_type: int, name: str, old: dict[str, str], new: dict[str, str]) -> None:
    changes: dict[str, str | None] = {k: v for k, v in new.items() if old.get(k) != v}
    for k in old:
        if k not in new:
            changes[k] = None
    if changes:
        broker.controller.commit(broker.controller.config_records(resource_type, name, changes))


def _duplicates(configs) -> str | None:
    seen: set[str] = set()
    for c in configs:
        if c.name in seen:
            return c.name
        seen.add(c.name)
    return None


def _alter(ctx, request, response_cls, new_configs):
    """Apply ``new_configs(broker, resource, old) -> (new, changed)`` to each resource of ``request``:
    ``changed`` is validated, then (unless validateOnly) the overrides become ``new``."""
    broker = ctx.broker
    out = []
    for res in request.resources:
        code, message = ErrorCode.NONE, None
        try:
            if (denied := _refused(ctx, ALTER_CONFIGS, res.resource_type, res.resource_name)) is not None:
                raise _Reject(denied, None)
            dup = _duplicates(res.configs)
            if dup:
                raise _Reject(ErrorCode.INVALID_REQUEST, f"Error due to duplicate config keys: {dup}")
            old = _current(broker, res.resource_type, res.resource_name)
            new, changed = new_configs(broker, res, old)
            _validate(broker, res.resource_type, new, changed)
            if not request.validate_only:
                _commit(broker, res.resource_type, res.resource_name, old, new)
        except _Reject as exc:
            code, message = exc.code, exc.message
        out.append(response_cls.AlterConfigsResourceResponse(
            error_code=code, error_message=message, resource_type=res.resource_type,
            resource_name=res.resource_name))
    return response_cls(throttle_time_ms=0, responses=out)


def _replaced(broker, res, old: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    new = {}
    for c in res.configs:
        if c.value is None:
            raise _Reject(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {c.name}")
        new[c.name] = c.value
    return new, new


@api(33, 0, 2)
def handle_alter_configs(ctx, request) -> AlterConfigsResponse:
    return _alter(ctx, request, AlterConfigsResponse, _replaced)


def _list_type(resource_type: int, key: str) -> bool:
    spec = TOPIC_KEYS.get(key) if resource_type == RESOURCE_TOPIC else BROKER_KEYS.get(key)
    return spec is not None and spec.type == "list"


def _incremented(broker, res, old: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
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
def handle_incremental_alter_configs(ctx, request) -> IncrementalAlterConfigsResponse:
    return _alter(ctx, request, IncrementalAlterConfigsResponse, _incremented)
