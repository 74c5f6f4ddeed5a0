"""DescribeCluster (key 60), v0-2.

Brokers as the metadata image registers them, with the endpoint of the listener the request came
in on. v1 adds EndpointType: this is a broker endpoint, so 1 (brokers) is served, 2 (controllers)
gets MISMATCHED_ENDPOINT_TYPE and anything else UNSUPPORTED_ENDPOINT_TYPE (INVALID_REQUEST at v0),
as Kafka. v2 adds IncludeFencedBrokers and IsFenced. The controller id is an alive broker (this
one), as a Kafka broker answers. Without an authorizer every cluster operation is authorized.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.metadata import CLUSTER_OPERATIONS
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.security.acls import CLUSTER, CLUSTER_NAME, authorized_operations
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.describe_cluster import DescribeClusterRequest, DescribeClusterResponse

if TYPE_CHECKING:
    from kbroker.metadata.image import MetadataImage

Broker = DescribeClusterResponse.DescribeClusterBroker

ENDPOINT_BROKER = 1
ENDPOINT_CONTROLLER = 2
ENDPOINT_NAMES = {ENDPOINT_BROKER: "BROKER", ENDPOINT_CONTROLLER: "CONTROLLER"}
UNSET_OPERATIONS = -(2**31)


class DescribeClusterServices(Authorizing, Protocol):
    """What DescribeCluster uses of the broker."""

    cluster_id: str
    image: MetadataImage
    node_id: int

    def listener_endpoint(self, listener: str) -> tuple[str, int]: ...


@api(DescribeClusterRequest, DescribeClusterResponse, 0, 2)
def handle_describe_cluster(ctx: RequestContext[DescribeClusterServices], request: DescribeClusterRequest) -> DescribeClusterResponse:
    broker = ctx.broker
    version = ctx.api_version
    endpoint_type = request.endpoint_type if version >= 1 else ENDPOINT_BROKER
    if endpoint_type not in ENDPOINT_NAMES:
        return DescribeClusterResponse(
            error_code=ErrorCode.INVALID_REQUEST if version == 0 else ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            error_message=f"Unsupported endpoint type {endpoint_type}", brokers=[],
        )
    if endpoint_type != ENDPOINT_BROKER:
        return DescribeClusterResponse(
            error_code=ErrorCode.INVALID_REQUEST if version == 0 else ErrorCode.MISMATCHED_ENDPOINT_TYPE,
            error_message="The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type "
            f"{ENDPOINT_NAMES[endpoint_type]}",
            brokers=[],
        )
    include_fenced = version >= 2 and request.include_fenced_brokers
    listener = ctx.connection.endpoint.listener
    brokers = []
    for node_id, reg in sorted(broker.image.brokers.items()):
        if reg.fenced and not include_fenced:
            continue
        if node_id == broker.node_id:
            host, port = broker.listener_endpoint(listener)
        else:
            ep = reg.endpoints.get(listener)
            if ep is None:
                continue
            host, port = ep[0], ep[1]
        brokers.append(Broker(broker_id=node_id, host=host, port=port, rack=reg.rack, is_fenced=reg.fenced))
    alive = [b.broker_id for b in brokers if not b.is_fenced]
    controller_id = broker.node_id if broker.node_id in alive else (alive[0] if alive else -1)
    return DescribeClusterResponse(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        error_message=None,
        endpoint_type=ENDPOINT_BROKER,
        cluster_id=broker.cluster_id,
        controller_id=controller_id,
        brokers=brokers,
        cluster_authorized_operations=(
            authorized_operations(ctx, CLUSTER, CLUSTER_NAME, CLUSTER_OPERATIONS)
            if request.include_cluster_authorized_operations else UNSET_OPERATIONS
        ),
    )


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(60)
def _describe_cluster_error(request: DescribeClusterRequest, version: int, code: int) -> DescribeClusterResponse:
    return DescribeClusterResponse(error_code=code, error_message=None)
