"""OffsetFetch (key 9), v1-10.

v1 answers per partition; v2+ accepts a null topic list (every committed partition) and has a
top-level error; v5 adds the leader epoch; v6+ is flexible; v7 adds RequireStable (the latest offsets, a partition
with pending transactional offsets getting UNSTABLE_OFFSET_COMMIT, answered once the writes pending
on the group's partition are replicated, as Kafka's record-less write operation; without it the
offsets replicated so far); v8+ fetches several groups at once;
v9 carries the KIP-848 member id and epoch (checked for consumer groups: STALE_MEMBER_EPOCH /
UNKNOWN_MEMBER_ID); v10 names topics by id. Partitions without a committed offset get offset -1.
"""

from __future__ import annotations

import asyncio

from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import NO_EPOCH, NO_OFFSET, refusal
from kbroker.api.registry import api
from kbroker.api.services import GroupTopicServices
from kbroker.coordinator.group_coordinator import coordinator_error
from kbroker.security.acls import DESCRIBE, GROUP, TOPIC, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.offset_fetch import OffsetFetchRequest, OffsetFetchResponse

T = OffsetFetchResponse.OffsetFetchResponseTopic
P = T.OffsetFetchResponsePartition
GT = OffsetFetchResponse.OffsetFetchResponseGroup.OffsetFetchResponseTopics
GP = GT.OffsetFetchResponsePartitions
_Topics = list[tuple[str, list[int]]]  # (topic, partitions) asked for
_Row = tuple[str, int, int, int, str, ErrorCode]  # (topic, partition, offset, leader epoch, metadata, error)


async def _fetch(ctx: RequestContext[GroupTopicServices], group_id: str, topics: _Topics | None, require_stable: bool,
                 member_id: str | None = None, member_epoch: int = -1) -> tuple[ErrorCode, list[_Row]]:
    """Kafka's checks first: DESCRIBE on the group (else GROUP_AUTHORIZATION_FAILED), then DESCRIBE
    on each topic: a requested topic one may not describe answers TOPIC_AUTHORIZATION_FAILED, and
    with all topics asked for, such topics are left out (kbroker/security/acls.py)."""
    if not authorized(ctx, DESCRIBE, GROUP, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, []
    denied: list[_Row] = []
    if topics is not None:
        allowed = [(t, parts) for t, parts in topics if authorized(ctx, DESCRIBE, TOPIC, t)]
        denied = [(t, p, -1, -1, "", ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                  for t, parts in topics if (t, parts) not in allowed for p in parts]
        topics = allowed
    error, rows = await _fetch_authorized(ctx, group_id, topics, require_stable, member_id, member_epoch)
    if topics is None:
        rows = [row for row in rows if authorized(ctx, DESCRIBE, TOPIC, row[0])]
    return error, rows + denied if error == ErrorCode.NONE else rows


async def _fetch_authorized(ctx: RequestContext[GroupTopicServices], group_id: str, topics: _Topics | None, require_stable: bool,
                            member_id: str | None = None, member_epoch: int = -1) -> tuple[ErrorCode, list[_Row]]:
    coordinator = ctx.broker.group_coordinator
    # Kafka: the group's partition answers first (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS),
    # as the group error (v2+) or on every requested partition (v1).
    code = coordinator_error(coordinator, group_id)
    if code != ErrorCode.NONE:
        return code, []
    coordinator = require(coordinator, "the group coordinator")
    if require_stable:
        return await coordinator.fetch_stable_offsets(group_id, topics, member_id, member_epoch)
    return coordinator.fetch_offsets(group_id, topics, False, member_id, member_epoch)


def _group_by_topic(rows: list[_Row]) -> dict[str, list[_Row]]:
    out: dict[str, list[_Row]] = {}
    for row in rows:
        out.setdefault(row[0], []).append(row)
    return out


@api(OffsetFetchRequest, OffsetFetchResponse, 1, 10)
async def handle_offset_fetch(ctx: RequestContext[GroupTopicServices], request: OffsetFetchRequest) -> OffsetFetchResponse:
    version = ctx.api_version
    if version < 8:
        topics = None if request.topics is None else [(t.name, list(t.partition_indexes)) for t in request.topics]
        error, rows = await _fetch(ctx, request.group_id, topics, version >= 7 and request.require_stable)
        if version < 2 and error != ErrorCode.NONE and topics is not None:
            rows = [(t, p, -1, -1, "", error) for t, parts in topics for p in parts]
        resp_topics = [
            T(name=name, partitions=[
                P(partition_index=p, committed_offset=off, committed_leader_epoch=epoch, metadata=meta,
                  error_code=err)
                for _t, p, off, epoch, meta, err in parts])
            for name, parts in _group_by_topic(rows).items()
        ]
        return OffsetFetchResponse(throttle_time_ms=0, topics=resp_topics,
                                   error_code=error if version >= 2 else ErrorCode.NONE)
    image = ctx.broker.image
    asked = []
    for g in request.groups:
        unknown_ids: list[OffsetFetchRequest.OffsetFetchRequestGroup.OffsetFetchRequestTopics] = []
        topics = None
        if g.topics is not None:
            topics = []
            for t in g.topics:
                if version >= 10:
                    info = image.topic_by_id(t.topic_id)
                    if info is None:
                        unknown_ids.append(t)
                        continue
                    topics.append((info.name, list(t.partition_indexes)))
                else:
                    topics.append((t.name, list(t.partition_indexes)))
        asked.append((g, topics, unknown_ids))
    # The groups concurrently, as Kafka's per-group operations (a RequireStable one may wait for
    # its partition's pending writes; one group's wait does not add to another's).
    results = await asyncio.gather(*(
        _fetch(ctx, g.group_id, topics, request.require_stable,
               g.member_id if version >= 9 else None, g.member_epoch if version >= 9 else -1)
        for g, topics, _unknown in asked))
    groups = []
    for (g, _topics, unknown_ids), (error, rows) in zip(asked, results, strict=True):
        group_topics: list[GT] = []
        for name, parts in _group_by_topic(rows).items():
            info = image.topic(name)
            group_topics.append(GT(
                name=name, topic_id=info.topic_id if info is not None else GT().topic_id,
                partitions=[GP(partition_index=p, committed_offset=off, committed_leader_epoch=epoch,
                                    metadata=meta, error_code=err)
                            for _t, p, off, epoch, meta, err in parts]))
        for t in unknown_ids:
            group_topics.append(GT(name="", topic_id=t.topic_id, partitions=[
                GP(partition_index=p, committed_offset=-1, committed_leader_epoch=-1, metadata="",
                        error_code=ErrorCode.UNKNOWN_TOPIC_ID) for p in t.partition_indexes]))
        groups.append(OffsetFetchResponse.OffsetFetchResponseGroup(group_id=g.group_id, topics=group_topics,
                                                                   error_code=error))
    return OffsetFetchResponse(throttle_time_ms=0, groups=groups)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(9)
def _offset_fetch_error(request: OffsetFetchRequest, version: int, code: int) -> OffsetFetchResponse:
    R = OffsetFetchResponse
    if version >= 8:
        return R(groups=[R.OffsetFetchResponseGroup(group_id=group.group_id, error_code=code, topics=[])
                         for group in request.groups])
    topics = []
    if version < 2:  # no top-level error code before v2: every requested partition carries it
        T = R.OffsetFetchResponseTopic
        topics = [
            T(name=topic.name, partitions=[
                T.OffsetFetchResponsePartition(partition_index=index, committed_offset=NO_OFFSET,
                                               committed_leader_epoch=NO_EPOCH, metadata="",
                                               error_code=code)
                for index in topic.partition_indexes])
            for topic in request.topics or ()
        ]
    return R(error_code=code, topics=topics)
