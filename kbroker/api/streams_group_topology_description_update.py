"""StreamsGroupTopologyDescriptionUpdate (key 93), v0.

Kafka 4.4 stores topology descriptions only through a broker plugin
(``group.streams.topology.description.plugin.class``, none by default); without one every request
is answered UNSUPPORTED_VERSION ("The broker has no streams group topology description plugin
configured."), before the group is looked at, which is what this broker does: it has no such
plugin. (Kafka's heartbeat then never sets ``TopologyDescriptionRequired``, so clients do not send
this request.) Before that, as Kafka's KafkaApis: UNSUPPORTED_VERSION when streams groups are
disabled, GROUP_AUTHORIZATION_FAILED without READ on the group.
"""

from __future__ import annotations

from kbroker.api.authorization import group_refused
from kbroker.api.context import RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import GroupConfigServices
from kbroker.api.streams_group_heartbeat import streams_enabled
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.streams_group_topology_description_update import (
    StreamsGroupTopologyDescriptionUpdateRequest,
    StreamsGroupTopologyDescriptionUpdateResponse,
)


@api(StreamsGroupTopologyDescriptionUpdateRequest, StreamsGroupTopologyDescriptionUpdateResponse, 0, 0)
def handle_streams_group_topology_description_update(ctx: RequestContext[GroupConfigServices], request: StreamsGroupTopologyDescriptionUpdateRequest) -> StreamsGroupTopologyDescriptionUpdateResponse:
    if not streams_enabled(ctx.broker):
        return StreamsGroupTopologyDescriptionUpdateResponse(error_code=ErrorCode.UNSUPPORTED_VERSION,
                                                             error_message=default_message(ErrorCode.UNSUPPORTED_VERSION))
    if (refused := group_refused(ctx, request, StreamsGroupTopologyDescriptionUpdateResponse)) is not None:  # READ on the group (KIP-1331)
        return refused
    coordinator = ctx.broker.group_coordinator
    if coordinator is None:
        return StreamsGroupTopologyDescriptionUpdateResponse(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE)
    return StreamsGroupTopologyDescriptionUpdateResponse(
        error_code=ErrorCode.UNSUPPORTED_VERSION,
        error_message="The broker has no streams group topology description plugin configured.")


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(93)
def _streams_group_topology_description_update_error(request: StreamsGroupTopologyDescriptionUpdateRequest, version: int, code: int) -> StreamsGroupTopologyDescriptionUpdateResponse:
    # ApiError.fromThrowable leaves the message null for UNKNOWN_SERVER_ERROR.
    return StreamsGroupTopologyDescriptionUpdateResponse(error_code=code, error_message=None)
