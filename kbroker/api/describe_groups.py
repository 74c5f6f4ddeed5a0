"""DescribeGroups (key 15), v0-6.

State, protocol and members of classic groups. Member metadata and assignments, and the protocol
name (``protocol_data``), are filled in only for Stable groups, as Kafka does. v1 adds throttle time;
v3 authorized operations (not computed: reported as unknown); v4 ``group.instance.id``; v5+ is
flexible; v6 answers GROUP_ID_NOT_FOUND for an unknown group (older versions describe it as Dead).
A KIP-848 group is described with protocol type ``consumer``, its server assignor as the protocol,
and members' subscriptions and assignments in the consumer embedded protocol (v0).
"""

from __future__ import annotations

import struct

from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import AUTHORIZED_OPERATIONS_OMITTED, refusal
from kbroker.api.registry import api
from kbroker.api.services import GroupServices
from kbroker.coordinator.group_classic import ClassicGroup, GroupState
from kbroker.coordinator.group_coordinator import GroupCoordinator, coordinator_error
from kbroker.coordinator.group_views import reading_committed
from kbroker.coordinator.share_group import ShareGroup
from kbroker.security.acls import DESCRIBE, GROUP, authorized
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.data.consumer_protocol_assignment import ConsumerProtocolAssignment
from kbroker_protocol.messages.data.consumer_protocol_subscription import ConsumerProtocolSubscription
from kbroker_protocol.messages.describe_groups import DescribeGroupsRequest, DescribeGroupsResponse

G = DescribeGroupsResponse.DescribedGroup
_VERSION = struct.Struct(">h")


def _subscription(topics: list[str]) -> bytes:
    return _VERSION.pack(0) + ConsumerProtocolSubscription(topics=topics).encode(0)


def _assignment(parts: dict[str, set[int]]) -> bytes:
    T = ConsumerProtocolAssignment.TopicPartition
    value = ConsumerProtocolAssignment(assigned_partitions=[
        T(topic=t, partitions=sorted(ps)) for t, ps in sorted(parts.items()) if ps])
    return _VERSION.pack(0) + value.encode(0)
M = G.DescribedGroupMember


def _describe(ctx: RequestContext[GroupServices], coordinator: GroupCoordinator, group_id: str) -> G:
    version = ctx.api_version
    if not group_id:
        return G(group_id=group_id, error_code=ErrorCode.INVALID_GROUP_ID, group_state="", protocol_type="",
                 protocol_data="", members=[])
    group = coordinator.groups.get(group_id)
    if group is None or (isinstance(group, ClassicGroup) and group.is_in(GroupState.DEAD)):
        if version >= 6:
            return G(group_id=group_id, error_code=ErrorCode.GROUP_ID_NOT_FOUND,
                     error_message=f"Group {group_id} not found.", group_state="Dead", protocol_type="",
                     protocol_data="", members=[])
        return G(group_id=group_id, error_code=ErrorCode.NONE, group_state="Dead", protocol_type="",
                 protocol_data="", members=[])
    if isinstance(group, ShareGroup) or getattr(group, "type_name", None) == "streams":
        # As Kafka's classicGroup(): a share or streams group is not a classic group.
        if version >= 6:
            return G(group_id=group_id, error_code=ErrorCode.GROUP_ID_NOT_FOUND,
                     error_message=f"Group {group_id} is not a classic group.", group_state="Dead",
                     protocol_type="", protocol_data="", members=[])
        return G(group_id=group_id, error_code=ErrorCode.NONE, group_state="Dead", protocol_type="",
                 protocol_data="", members=[])
    if not isinstance(group, ClassicGroup):
        # A KIP-848 group seen through the classic API: members' subscriptions and assignments in
        # the consumer embedded protocol, the server assignor as the protocol.
        consumer = require(coordinator.consumer, "the consumer group manager")  # (it hosts the group)
        members = [M(member_id=mid, group_instance_id=m.instance_id, client_id=m.client_id,
                     client_host=m.client_host,
                     member_metadata=_subscription(sorted(consumer.subscribed_topics(m, group_id))),
                     member_assignment=_assignment(m.assigned))
                   for mid, m in group.members.items()]
        assignor = next((m.server_assignor for m in group.members.values() if m.server_assignor),
                        consumer.assignor_names()[0])
        return G(group_id=group_id, error_code=ErrorCode.NONE, group_state=group.state_name(),
                 protocol_type="consumer", protocol_data=assignor, members=members)
    stable = group.is_in(GroupState.STABLE)
    members = [
        M(member_id=m.member_id, group_instance_id=m.group_instance_id, client_id=m.client_id,
          client_host=m.client_host,
          member_metadata=m.metadata(group.protocol_name) if stable else b"",
          member_assignment=m.assignment if stable else b"")
        for m in group.members.values()
    ]
    return G(group_id=group_id, error_code=ErrorCode.NONE, group_state=group.state.value,
             protocol_type=group.protocol_type or "", protocol_data=(group.protocol_name or "") if stable else "",
             members=members)


@api(DescribeGroupsRequest, DescribeGroupsResponse, 0, 6)
def handle_describe_groups(ctx: RequestContext[GroupServices], request: DescribeGroupsRequest) -> DescribeGroupsResponse:
    # Kafka reads the groups at the last committed offset of their partition (group_views).
    with reading_committed(ctx.broker.group_coordinator, request.groups):
        return _describe_groups(ctx, request)


def _describe_groups(ctx: RequestContext[GroupServices], request: DescribeGroupsRequest) -> DescribeGroupsResponse:
    coordinator = ctx.broker.group_coordinator
    out = []
    for group_id in request.groups:
        if not authorized(ctx, DESCRIBE, GROUP, group_id):  # Kafka: before the coordinator (security/acls.py)
            code = ErrorCode.GROUP_AUTHORIZATION_FAILED
            out.append(G(group_id=group_id, error_code=code, error_message=default_message(code), group_state="",
                         protocol_type="", protocol_data="", members=[]))
            continue
        # Kafka sends every group id, the empty one included, to its partition first.
        code = coordinator_error(coordinator, group_id)
        if code != ErrorCode.NONE:
            out.append(G(group_id=group_id, error_code=code, error_message=default_message(code), group_state="",
                         protocol_type="", protocol_data="", members=[]))
        else:
            # (coordinator_error: there is one)
            out.append(_describe(ctx, require(coordinator, "the group coordinator"), group_id))
    return DescribeGroupsResponse(throttle_time_ms=0, groups=out)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(15)
def _describe_groups_error(request: DescribeGroupsRequest, version: int, code: int) -> DescribeGroupsResponse:
    R = DescribeGroupsResponse
    return R(groups=[
        R.DescribedGroup(group_id=group_id, error_code=code, group_state="", protocol_type="",
                         protocol_data="", members=[],
                         authorized_operations=AUTHORIZED_OPERATIONS_OMITTED)
        for group_id in request.groups
    ])
