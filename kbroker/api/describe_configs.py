"""DescribeConfigs (key 32), v1-4.

TOPIC resources list every topic-level config with its effective value, its source and (v1+
IncludeSynonyms) the chain of synonyms Kafka reports: the topic override, dynamic broker configs,
static ``server.properties`` values, then defaults. BROKER resources (this node's id, or "" for
the cluster-wide default) list every broker config. v3+ carries the config type. Sensitive values
are never returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.config import CONFIG_TYPE_IDS, RESOURCE_GROUP, ConfigEntry, describe_group_configs
from kbroker.security.acls import DESCRIBE_CONFIGS
from kbroker.security.acls import config_refused as _refused
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.describe_configs import DescribeConfigsRequest, DescribeConfigsResponse

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.metadata.image import MetadataImage

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
RESOURCE_BROKER_LOGGER = 8

Result = DescribeConfigsResponse.DescribeConfigsResult
Entry = DescribeConfigsResponse.DescribeConfigsResult.DescribeConfigsResourceResult
Synonym = Entry.DescribeConfigsSynonym


class DescribeConfigsServices(Authorizing, Protocol):
    """What DescribeConfigs uses of the broker."""

    config: BrokerConfig
    image: MetadataImage
    node_id: int


def _entry(e: ConfigEntry, include_synonyms: bool, include_documentation: bool) -> Entry:
    return Entry(
        name=e.name,
        value=None if e.sensitive else e.value,
        read_only=e.read_only,
        config_source=e.source,
        is_sensitive=e.sensitive,
        synonyms=[Synonym(name=n, value=None if e.sensitive else v, source=s) for n, v, s in e.synonyms]
        if include_synonyms else [],
        config_type=CONFIG_TYPE_IDS.get(e.type, 0),
        documentation=e.doc if include_documentation else None,
    )


class NodeIdentity(Protocol):
    """What :func:`broker_resource_error` reads of the broker: its id."""

    node_id: int


def broker_resource_error(broker: NodeIdentity, name: str) -> tuple[ErrorCode, str] | None:
    if name not in ("", str(broker.node_id)):
        if not name.lstrip("-").isdigit():
            return ErrorCode.INVALID_REQUEST, f"Broker id must be an integer, but it is: {name}"
        return ErrorCode.INVALID_REQUEST, (
            f"Unexpected broker id, expected {broker.node_id} or empty string, but received {name}"
        )
    return None


@api(DescribeConfigsRequest, DescribeConfigsResponse, 1, 4)
def handle_describe_configs(ctx: RequestContext[DescribeConfigsServices], request: DescribeConfigsRequest) -> DescribeConfigsResponse:
    broker = ctx.broker
    version = ctx.api_version
    include_synonyms = bool(request.include_synonyms)
    include_documentation = version >= 3 and bool(request.include_documentation)
    results = []
    for res in request.resources:
        result = Result(error_code=ErrorCode.NONE, error_message=None, resource_type=res.resource_type,
                        resource_name=res.resource_name, configs=[])
        results.append(result)
        if (denied := _refused(ctx, DESCRIBE_CONFIGS, res.resource_type, res.resource_name)) is not None:
            result.error_code = denied  # Kafka: per resource, no message (kbroker/security/acls.py)
            continue
        if res.resource_type == RESOURCE_TOPIC:
            topic = broker.image.topic(res.resource_name)
            if topic is None:
                result.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                result.error_message = f"Topic {res.resource_name} does not exist"
                continue
            entries = broker.config.describe_topic(topic.configs)
        elif res.resource_type == RESOURCE_BROKER:
            problem = broker_resource_error(broker, res.resource_name)
            if problem:
                result.error_code, result.error_message = problem
                continue
            entries = broker.config.describe_broker()
        elif res.resource_type == RESOURCE_GROUP:
            entries = describe_group_configs(broker.config, broker.image.group_configs.get(res.resource_name, {}))
        elif res.resource_type == RESOURCE_BROKER_LOGGER:
            problem = broker_resource_error(broker, res.resource_name)
            if problem:
                result.error_code, result.error_message = problem
                continue
            entries = describe_loggers()
        else:
            result.error_code = ErrorCode.INVALID_REQUEST
            result.error_message = f"Unsupported resource type {res.resource_type}"
            continue
        wanted = None if res.configuration_keys is None else set(res.configuration_keys)
        result.configs = [_entry(e, include_synonyms, include_documentation) for e in entries
                          if wanted is None or e.name in wanted]
    return DescribeConfigsResponse(throttle_time_ms=0, results=results)


def describe_loggers() -> list[ConfigEntry]:
    import logging

    manager = logging.Logger.manager
    names = sorted(n for n in manager.loggerDict if n.startswith("kbroker"))
    out = [ConfigEntry("root", logging.getLevelName(logging.getLogger().getEffectiveLevel()), 2, False, False,
                       "string")]
    for name in names:
        level = logging.getLevelName(logging.getLogger(name).getEffectiveLevel())
        out.append(ConfigEntry(name, level, 2, False, False, "string"))
    return out


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(32)
def _describe_configs_error(request: DescribeConfigsRequest, version: int, code: int) -> DescribeConfigsResponse:
    R = DescribeConfigsResponse
    message = default_message(code)
    return R(results=[
        R.DescribeConfigsResult(error_code=code, error_message=message,
                                resource_type=resource.resource_type,
                                resource_name=resource.resource_name, configs=[])
        for resource in request.resources
    ])
