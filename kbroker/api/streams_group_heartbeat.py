"""StreamsGroupHeartbeat (key 88), v0-1: KIP-1071 streams groups.

As Kafka's ``KafkaApis.handleStreamsGroupHeartbeat``: refused with UNSUPPORTED_VERSION unless
``group.coordinator.rebalance.protocols`` lists ``streams`` and the finalized ``streams.version``
is at least 1; a topology naming Kafka's internal topics or invalid topic names gets
STREAMS_INVALID_TOPOLOGY before the coordinator sees it. ACLs as Kafka: READ on the group
(GROUP_AUTHORIZATION_FAILED), DESCRIBE on every topic of the topology (TOPIC_AUTHORIZATION_FAILED),
and CREATE on the cluster or on each internal topic before creating them (else the
MISSING_INTERNAL_TOPICS status says "Unauthorized to CREATE on topics ..."). The internal topics the coordinator
reports missing (repartition and changelog topics) are asked of the active controller after the
answer is built, as Kafka's AutoTopicCreationManager does, through the controller client
(``kbroker.api.auto_topic_creation``), and the answer awaits the controller's; a creation it
refuses is added to the MISSING_INTERNAL_TOPICS status detail. See ``kbroker.coordinator.streams_group`` for the group itself.
"""

from __future__ import annotations

import logging
import re

from kbroker.api.authorization import group_refused
from kbroker.api.auto_topic_creation import auto_create
from kbroker.api.context import BrokerServices, RequestContext
from kbroker.api.registry import api
from kbroker.coordinator.group_coordinator import coordinator_error, group_write_error, offsets_topic_created
from kbroker.coordinator.streams_group import MISSING_INTERNAL_TOPICS
from kbroker.coordinator.streams_group_model import StreamsGroupError
from kbroker.metadata.image import INTERNAL_TOPICS
from kbroker.metadata.new_topic import NewTopic
from kbroker.security.acls import CLUSTER, CLUSTER_NAME, CREATE, DESCRIBE, TOPIC, authorized
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.streams_group_heartbeat import (
    StreamsGroupHeartbeatRequest,
    StreamsGroupHeartbeatResponse,
)

log = logging.getLogger(__name__)

_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")


def streams_enabled(broker: BrokerServices) -> bool:
    """Kafka's ``isStreamsGroupProtocolEnabled``."""
    return ("streams" in broker.config["group.coordinator.rebalance.protocols"]
            and broker.image.features.get("streams.version", 0) >= 1)


def _valid_topic(name: str) -> bool:
    return bool(name) and name not in (".", "..") and len(name) <= 249 and bool(_LEGAL.fullmatch(name))


def _error(code: ErrorCode, message: str | None = None) -> StreamsGroupHeartbeatResponse:
    return StreamsGroupHeartbeatResponse(error_code=code, error_message=message)


@api(88, 0, 1)
async def handle_streams_group_heartbeat(ctx: RequestContext, request: StreamsGroupHeartbeatRequest) -> StreamsGroupHeartbeatResponse:
    # Answered once the group partition's records are replicated (Kafka's coordinator runtime
    # completes a write, with or without records, when the high watermark passes its last
    # written offset): COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR if that fails (issue 17).
    response, to_create = _streams_group_heartbeat(ctx, request)
    if (response.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE and request.group_id
            and await offsets_topic_created(ctx.broker.group_coordinator)):
        response, to_create = _streams_group_heartbeat(ctx, request)  # __consumer_offsets was being created
    if to_create:
        await _create_internal_topics(ctx, request.group_id, response, to_create)
    if response.error_code == ErrorCode.NONE:
        code = await group_write_error(ctx.broker.group_coordinator, request.group_id)
        if code != ErrorCode.NONE:
            return _error(code, default_message(code))
    return response


def _streams_group_heartbeat(ctx: RequestContext, request: StreamsGroupHeartbeatRequest
                             ) -> tuple[StreamsGroupHeartbeatResponse, list[NewTopic]]:
    """The answer, and the internal topics to create before it is sent."""
    broker = ctx.broker
    coordinator = broker.group_coordinator
    if not streams_enabled(broker):
        return _error(ErrorCode.UNSUPPORTED_VERSION), []
    if (refused := group_refused(ctx, request, StreamsGroupHeartbeatResponse)) is not None:  # READ on the group
        return refused, []
    if request.topology is not None:
        required: list[str] = []
        for s in request.topology.subtopologies:
            for name in (list(s.source_topics) + list(s.repartition_sink_topics)
                         + [t.name for t in s.repartition_source_topics] + [t.name for t in s.state_changelog_topics]):
                if name not in required:
                    required.append(name)
        prohibited = [t for t in required if t in INTERNAL_TOPICS]
        if prohibited:
            return _error(ErrorCode.STREAMS_INVALID_TOPOLOGY,
                          f"Use of Kafka internal topics {','.join(prohibited)} in a Kafka Streams topology is prohibited."), []
        invalid = [t for t in required if not _valid_topic(t)]
        if invalid:
            return _error(ErrorCode.STREAMS_INVALID_TOPOLOGY, f"Topic names {','.join(invalid)} are not valid topic names."), []
        if not all(authorized(ctx, DESCRIBE, TOPIC, t) for t in required):
            return _error(ErrorCode.TOPIC_AUTHORIZATION_FAILED), []
    if coordinator is None or coordinator.streams is None:
        return _error(ErrorCode.COORDINATOR_NOT_AVAILABLE), []
    streams = coordinator.streams
    try:
        streams.validate(request)
    except StreamsGroupError as exc:  # (validate raises nothing else)
        return _error(exc.code, exc.message), []
    code = coordinator_error(coordinator, request.group_id, create_topic=True)
    if code != ErrorCode.NONE:
        return _error(code, default_message(code)), []
    client_host = "/" + ctx.peer.rsplit(":", 1)[0]
    response, to_create = streams.heartbeat(request, ctx.client_id or "", client_host)
    if to_create and not authorized(ctx, CREATE, CLUSTER, CLUSTER_NAME):
        # As Kafka: without CREATE on the cluster, CREATE on each topic; none created otherwise.
        unauthorized = [t for t in sorted(to_create) if not authorized(ctx, CREATE, TOPIC, t)]
        if unauthorized:
            _add_detail(response, f"Unauthorized to CREATE on topics {', '.join(unauthorized)}.", always=True)
            return response, []
    return response, [NewTopic(name, partitions, replication if replication > 0 else -1, configs=dict(configs))
                      for name, (partitions, replication, configs) in sorted(to_create.items())
                      if broker.image.topic(name) is None]


async def _create_internal_topics(ctx: RequestContext, group_id: str, response: StreamsGroupHeartbeatResponse,
                                  topics: list[NewTopic]) -> None:
    """Ask the controller for the group's missing internal topics and await its answer."""
    created = await auto_create(ctx, topics)
    failed = []
    for topic in topics:
        outcome = created[topic.name]
        if outcome.exists:
            log.info("created streams internal topic %s (%d partitions) for group %s", topic.name,
                     topic.num_partitions, group_id)
        else:
            failed.append(f"{topic.name} ({outcome.error.name}: {outcome.message})")
    if failed:
        _add_detail(response, f"Creation failed: {', '.join(failed[:3])}" + (
            f" and {len(failed) - 3} more." if len(failed) > 3 else "."))


def _add_detail(response: StreamsGroupHeartbeatResponse, detail: str, always: bool = False) -> None:
    """Append ``detail`` to the MISSING_INTERNAL_TOPICS status (``always``: add that status if the
    answer has none)."""
    for status in response.status or []:
        if status.status_code == MISSING_INTERNAL_TOPICS:
            status.status_detail += "; " + detail
            return
    if always:
        response.status = [*(response.status or []), StreamsGroupHeartbeatResponse.Status(
            status_code=MISSING_INTERNAL_TOPICS, status_detail=detail)]
