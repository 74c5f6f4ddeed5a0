"""ListConfigResources (key 74), v0-1 (KIP-1142; v0 was ListClientMetricsResources).

Lists the resources that have configs, by type: v0 knows only CLIENT_METRICS (16); v1 TOPIC (2),
BROKER (4), BROKER_LOGGER (8), CLIENT_METRICS and GROUP (32). No types asked means all the
version knows; a type it does not know makes the answer UNSUPPORTED_VERSION with no resources, as
in Kafka's KafkaApis. Topics are every topic in the metadata image (internal ones included),
brokers and broker loggers the registered, unfenced brokers with an endpoint on the listener the
request came in on, groups those with dynamic group configs (share groups' ``share.*`` keys, set
on a GROUP resource). kbroker has no client-metrics subscriptions, so that type lists nothing. Without an authorizer, DESCRIBE_CONFIGS on the cluster is allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext
from kbroker.api.registry import api
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.list_config_resources import (
    ListConfigResourcesRequest,
    ListConfigResourcesResponse,
)

if TYPE_CHECKING:
    from kbroker.metadata.image import MetadataImage

TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP = 2, 4, 8, 16, 32
SUPPORTED = {0: {CLIENT_METRICS}, 1: {TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP}}

Resource = ListConfigResourcesResponse.ConfigResource


class ListConfigResourcesServices(Protocol):
    """What ListConfigResources uses of the broker."""

    image: MetadataImage
    node_id: int


@api(ListConfigResourcesRequest, ListConfigResourcesResponse, 0, 1)
def handle_list_config_resources(ctx: RequestContext[ListConfigResourcesServices], request: ListConfigResourcesRequest) -> ListConfigResourcesResponse:
    broker = ctx.broker
    supported = SUPPORTED[min(ctx.api_version, 1)]
    types = set(request.resource_types) if ctx.api_version >= 1 and request.resource_types else supported
    if not types <= supported:
        return ListConfigResourcesResponse(throttle_time_ms=0, error_code=ErrorCode.UNSUPPORTED_VERSION,
                                           config_resources=[])
    listener = ctx.connection.endpoint.listener
    brokers = [str(node_id) for node_id, reg in sorted(broker.image.brokers.items())
               if not reg.fenced and (node_id == broker.node_id or listener in reg.endpoints)]
    resources: list[Resource] = []
    # Kafka's order: groups, client metrics, broker loggers, brokers, topics.
    if GROUP in types:
        resources += [Resource(resource_name=g, resource_type=GROUP)
                      for g, configs in sorted(broker.image.group_configs.items()) if configs]
    for kind in (BROKER_LOGGER, BROKER):
        if kind in types:
            resources += [Resource(resource_name=b, resource_type=kind) for b in brokers]
    if TOPIC in types:
        resources += [Resource(resource_name=name, resource_type=TOPIC) for name in sorted(broker.image.topics)]
    return ListConfigResourcesResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, config_resources=resources)
