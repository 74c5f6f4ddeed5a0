"""StreamsGroupDescribe (key 89), v0-1: streams groups with their topology, members and tasks.

Per group, as Kafka's ``GroupMetadataManager.streamsGroupDescribe``: GROUP_ID_NOT_FOUND when
unknown ("Group X not found.") or not a streams group ("Group X is not a streams group."). The
topology is the configured one when it is ready (partition counts of the internal topics), else the
one the members sent. UNSUPPORTED_VERSION when streams groups are disabled; GROUP_AUTHORIZATION_FAILED without
DESCRIBE on the group. Authorized operations are not computed; no topology description is stored (Kafka needs a plugin for that, see
streams_group_topology_description_update.py), so ``TopologyDescription`` stays null.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import refusal
from kbroker.api.group_describe import group_to_describe
from kbroker.api.registry import api
from kbroker.api.services import GroupConfigServices
from kbroker.api.streams_group_heartbeat import streams_enabled
from kbroker.coordinator.group_views import reading_committed
from kbroker.coordinator.streams_assignor import Tasks
from kbroker.coordinator.streams_group import StreamsGroup
from kbroker.security.acls import DESCRIBE, GROUP, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.coordinator.streams_group_topology_value import TopicInfo as StoredTopicInfo
from kbroker_protocol.messages.streams_group_describe import (
    Assignment,
    Endpoint,
    KeyValue,
    StreamsGroupDescribeRequest,
    StreamsGroupDescribeResponse,
    TaskIds,
    TaskOffset,
    TopicInfo,
)

G = StreamsGroupDescribeResponse.DescribedGroup


def _ids(tasks: Tasks) -> list[TaskIds]:
    return [TaskIds(subtopology_id=s, partitions=sorted(tasks[s])) for s in sorted(tasks) if tasks[s]]


def _info(t: StoredTopicInfo, partitions: int | None = None) -> TopicInfo:
    return TopicInfo(name=t.name, partitions=t.partitions if partitions is None else partitions,
                     replication_factor=t.replication_factor,
                     topic_configs=[KeyValue(key=c.key, value=c.value) for c in t.topic_configs])


def _topology(group: StreamsGroup, ready: bool) -> G.Topology | None:
    topo = group.topology
    if topo is None:
        return None
    configured = group.configured if ready else None
    subs = []
    for s in topo.subtopologies:
        c = configured.get(s.subtopology_id) if configured else None
        subs.append(G.Topology.Subtopology(
            subtopology_id=s.subtopology_id, source_topics=list(s.source_topics),
            repartition_sink_topics=list(s.repartition_sink_topics),
            state_changelog_topics=[_info(t, c.changelogs.get(t.name) if c else None) for t in s.state_changelog_topics],
            repartition_source_topics=[_info(t, c.repartition_source.get(t.name) if c else None)
                                       for t in s.repartition_source_topics]))
    return G.Topology(epoch=topo.epoch, subtopologies=subs)


@api(StreamsGroupDescribeRequest, StreamsGroupDescribeResponse, 0, 1)
def handle_streams_group_describe(ctx: RequestContext[GroupConfigServices], request: StreamsGroupDescribeRequest) -> StreamsGroupDescribeResponse:
    # Kafka reads the groups at the last committed offset of their partition (group_views).
    with reading_committed(ctx.broker.group_coordinator, request.group_ids):
        return _streams_group_describe(ctx, request)


def _streams_group_describe(ctx: RequestContext[GroupConfigServices], request: StreamsGroupDescribeRequest) -> StreamsGroupDescribeResponse:
    coordinator = ctx.broker.group_coordinator
    if not streams_enabled(ctx.broker):
        return StreamsGroupDescribeResponse(groups=[G(group_id=g, error_code=ErrorCode.UNSUPPORTED_VERSION, members=[])
                                                    for g in request.group_ids])
    groups = []
    for group_id in request.group_ids:
        if coordinator is None:
            groups.append(G(group_id=group_id, error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE, members=[]))
            continue
        if not authorized(ctx, DESCRIBE, GROUP, group_id):
            groups.append(G(group_id=group_id, error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, members=[]))
            continue
        group = group_to_describe(coordinator, group_id, StreamsGroup, "streams", G)
        if not isinstance(group, StreamsGroup):
            groups.append(group)
            continue
        ready = require(coordinator.streams, "the streams group manager").is_ready(group)
        members = []
        for m in group.members.values():
            target = group.target.get(m.member_id)
            members.append(G.Member(
                member_id=m.member_id, member_epoch=m.member_epoch, instance_id=m.instance_id, rack_id=m.rack_id,
                client_id=m.client_id, client_host=m.client_host, topology_epoch=m.topology_epoch,
                process_id=m.process_id,
                user_endpoint=None if m.user_endpoint is None else Endpoint(host=m.user_endpoint[0],
                                                                            port=m.user_endpoint[1]),
                client_tags=[KeyValue(key=k, value=v) for k, v in sorted(m.client_tags.items())],
                task_offsets=[TaskOffset(subtopology_id=s, partition=p, offset=o) for s, p, o in m.task_offsets],
                task_end_offsets=[TaskOffset(subtopology_id=s, partition=p, offset=o) for s, p, o in m.task_end_offsets],
                assignment=Assignment(active_tasks=_ids(m.active_tasks()), standby_tasks=_ids(m.standby),
                                      warmup_tasks=_ids(m.warmup)),
                target_assignment=Assignment(active_tasks=_ids(target[0]), standby_tasks=_ids(target[1]),
                                             warmup_tasks=_ids(target[2])) if target else Assignment(),
                is_classic=False))
        groups.append(G(group_id=group_id, error_code=ErrorCode.NONE, group_state=group.state_name(),
                        group_epoch=group.group_epoch, assignment_epoch=group.assignment_epoch,
                        topology=_topology(group, ready), members=members, assignor_name="sticky"))
    return StreamsGroupDescribeResponse(throttle_time_ms=0, groups=groups)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(89)
def _streams_group_describe_error(request: StreamsGroupDescribeRequest, version: int, code: int) -> StreamsGroupDescribeResponse:
    R = StreamsGroupDescribeResponse
    return R(groups=[R.DescribedGroup(group_id=group_id, error_code=code) for group_id in request.group_ids])
