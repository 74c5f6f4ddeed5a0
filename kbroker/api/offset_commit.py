"""OffsetCommit (key 8), v2-10.

v2-4 carry a retention time (an explicit expiry, written as OffsetCommitValue v1); v5 drops it;
v6 adds the leader epoch; v7 ``group.instance.id``; v8+ is flexible; v9 is the first usable by
KIP-848 members (the generation field carries the member epoch) and answers GROUP_ID_NOT_FOUND for
an unknown group instead of ILLEGAL_GENERATION; v10 names topics by id (UNKNOWN_TOPIC_ID).
Commits from outside the group (generation -1, empty member id) are accepted for empty groups and
create a "simple" group. Unknown topics/partitions get UNKNOWN_TOPIC_OR_PARTITION; metadata longer
than ``offset.metadata.max.bytes`` gets OFFSET_METADATA_TOO_LARGE.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext
from kbroker.api.error_response import error_response_as, refusal
from kbroker.api.registry import api
from kbroker.api.services import GroupTopicServices
from kbroker.coordinator.group_coordinator import await_offsets_topic, coordinator_error
from kbroker.security.acls import GROUP, READ, TOPIC, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.offset_commit import OffsetCommitRequest, OffsetCommitResponse

Resp = OffsetCommitResponse.OffsetCommitResponseTopic
RespPart = Resp.OffsetCommitResponsePartition


@api(OffsetCommitRequest, OffsetCommitResponse, 2, 10)
async def handle_offset_commit(ctx: RequestContext[GroupTopicServices], request: OffsetCommitRequest) -> OffsetCommitResponse:
    if not authorized(ctx, READ, GROUP, request.group_id):  # Kafka: the whole request (kbroker/security/acls.py)
        return error_response_as(OffsetCommitResponse, request, ctx.api_version, int(ErrorCode.GROUP_AUTHORIZATION_FAILED))
    version = ctx.api_version
    broker = ctx.broker
    coordinator = broker.group_coordinator
    image = broker.image
    # (topic index, partition index) -> error, for partitions rejected before the coordinator.
    entries = []
    slots: list[tuple[int, int]] = []
    early: dict[tuple[int, int], ErrorCode] = {}
    for ti, topic in enumerate(request.topics):
        if version >= 10:
            info = image.topic_by_id(topic.topic_id)
            missing = ErrorCode.UNKNOWN_TOPIC_ID
        else:
            info = image.topic(topic.name)
            missing = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        name = info.name if info is not None else (topic.name if version < 10 else None)
        denied = name is not None and not authorized(ctx, READ, TOPIC, name)
        for pi, p in enumerate(topic.partitions):
            if denied:
                early[(ti, pi)] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
                continue
            if info is None or p.partition_index not in info.partitions:
                early[(ti, pi)] = missing if info is None else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            slots.append((ti, pi))
            entries.append((info.name, p.partition_index, p.committed_offset,
                            p.committed_leader_epoch if version >= 6 else -1, p.committed_metadata))
    # Kafka sends only the partitions of known topics to the coordinator, which answers them all
    # COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS when it cannot
    # take the group; a missing offsets topic is created (see group_coordinator).
    if entries:
        await await_offsets_topic(coordinator)
    ready = coordinator_error(coordinator, request.group_id, create_topic=True) if entries else ErrorCode.NONE
    if coordinator is None or ready != ErrorCode.NONE:
        unavailable = ErrorCode.COORDINATOR_NOT_AVAILABLE if coordinator is None else ready
        group_error, errors = unavailable, [unavailable] * len(entries)
    elif not entries and not request.group_id:
        group_error, errors = ErrorCode.INVALID_GROUP_ID, []
    elif not entries:
        group_error, _ = coordinator.validate_commit(
            request.group_id, request.generation_id_or_member_epoch, request.member_id,
            request.group_instance_id if version >= 7 else None, version)
        errors = []
    else:
        group_error, errors = coordinator.commit_offsets(
            request.group_id, request.generation_id_or_member_epoch, request.member_id,
            request.group_instance_id if version >= 7 else None,
            request.retention_time_ms if 2 <= version <= 4 else -1, entries, version)
        if group_error == ErrorCode.NONE and any(e == ErrorCode.NONE for e in errors):
            replicated = await coordinator.wait_for_replication(request.group_id)
            if replicated != ErrorCode.NONE:
                errors = [replicated if e == ErrorCode.NONE else e for e in errors]
    by_slot = dict(zip(slots, errors, strict=True))
    topics = []
    for ti, topic in enumerate(request.topics):
        parts = []
        for pi, p in enumerate(topic.partitions):
            code = early.get((ti, pi))
            if code is None:
                code = by_slot[(ti, pi)]
            elif group_error in (ErrorCode.INVALID_GROUP_ID, ErrorCode.COORDINATOR_NOT_AVAILABLE):
                code = group_error
            parts.append(RespPart(partition_index=p.partition_index, error_code=code))
        topics.append(Resp(name=topic.name, topic_id=topic.topic_id, partitions=parts))
    return OffsetCommitResponse(throttle_time_ms=0, topics=topics)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(8)
def _offset_commit_error(request: OffsetCommitRequest, version: int, code: int) -> OffsetCommitResponse:
    R = OffsetCommitResponse
    T = R.OffsetCommitResponseTopic
    return R(topics=[
        T(name=topic.name, topic_id=topic.topic_id, partitions=[
            T.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
            for p in topic.partitions])
        for topic in request.topics
    ])
