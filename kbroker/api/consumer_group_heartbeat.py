"""ConsumerGroupHeartbeat (key 68), v0-1: the KIP-848 consumer group protocol.

Join (epoch 0), heartbeat, reconcile and leave (-1, or -2 for a static member) in one API; the
broker assigns (``group.consumer.assignors``: uniform, range). v0: the broker generates the member
id on join. v1 (KIP-1082) adds the topic regex and requires a client-generated member id. See
``kbroker.coordinator.group_consumer`` for the state machine. Refused with UNSUPPORTED_VERSION when
``group.coordinator.rebalance.protocols`` does not list ``consumer`` or the finalized feature
``group.version`` is below 1, as Kafka does.
"""

from __future__ import annotations

from kbroker.api.authorization import group_refused
from kbroker.api.context import RequestContext
from kbroker.api.registry import api
from kbroker.api.services import GroupConfigServices
from kbroker.coordinator.group_coordinator import await_offsets_topic, coordinator_error
from kbroker.coordinator.group_regex import Requester
from kbroker.security.acls import DESCRIBE, TOPIC, authorized, client_host
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.consumer_group_heartbeat import (
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
)


@api(ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, 0, 1)
async def handle_consumer_group_heartbeat(ctx: RequestContext[GroupConfigServices], request: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse:
    coordinator = ctx.broker.group_coordinator
    if coordinator is None or coordinator.consumer is None:
        return ConsumerGroupHeartbeatResponse(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id=None,
                                              assignment=None)
    if ("consumer" not in ctx.broker.config["group.coordinator.rebalance.protocols"]
            or ctx.broker.image.features.get("group.version", 0) < 1):
        # Kafka's isConsumerGroupProtocolEnabled: the protocol listed and the finalized
        # group.version at least 1 (kafka-features.sh can downgrade it to 0).
        return ConsumerGroupHeartbeatResponse(error_code=ErrorCode.UNSUPPORTED_VERSION, member_id=None,
                                              error_message="The consumer rebalance protocol is disabled.",
                                              assignment=None)
    # Kafka's handleConsumerGroupHeartbeat checks READ on the group after the protocol is found enabled
    if (refused := group_refused(ctx, request, ConsumerGroupHeartbeatResponse)) is not None:  # (kbroker/security/acls.py)
        return refused
    names = request.subscribed_topic_names
    if names and not all(authorized(ctx, DESCRIBE, TOPIC, name) for name in set(names)):
        # Kafka's handleConsumerGroupHeartbeat: a member may subscribe only to topics it may describe
        # (the answer has the error code only, no message)
        return ConsumerGroupHeartbeatResponse(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, member_id=None,
                                              assignment=None)
    await await_offsets_topic(coordinator)
    code = coordinator_error(coordinator, request.group_id, create_topic=True)
    if code != ErrorCode.NONE:
        return ConsumerGroupHeartbeatResponse(error_code=code, error_message=default_message(code), member_id=None,
                                              assignment=None)
    # Regular expressions resolve to the topics this request's principal may DESCRIBE (group_regex).
    requester = None if ctx.internal else Requester(
        ctx.connection.principal, client_host(ctx.connection.peer))
    response = coordinator.consumer.heartbeat(request, ctx.api_version, ctx.client_id or "",
                                              "/" + ctx.peer.rsplit(":", 1)[0], requester)
    if response.error_code != ErrorCode.NONE:
        return response
    # Answered once the group's records are replicated (Kafka's coordinator runtime completes a
    # write, with or without records, when the high watermark passes its last written offset).
    code = await coordinator.wait_for_replication(request.group_id)
    if code != ErrorCode.NONE:
        return ConsumerGroupHeartbeatResponse(error_code=code, error_message=default_message(code), member_id=None,
                                              assignment=None)
    return response
