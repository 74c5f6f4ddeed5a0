"""CreateTopics (key 19), v2-7.

Partitions and replication factor may be -1 (v4+) for the broker defaults, or replaced by a
manual assignment. validateOnly (v1+) checks everything and commits nothing. v5+ responses carry
the topic's partition count, replication factor and effective configs; v7+ the topic id. A
request for more than 10,000 partitions in all fails whole with POLICY_VIOLATION, as in Kafka; so
does one whose topics would write more than 10,000 metadata records in all (TopicRecord,
ConfigRecords and PartitionRecords of the topics that pass their checks, validateOnly included:
kbroker/controller/user_op_limits.py), so a single topic of 10,000 partitions is refused.
``__cluster_metadata`` (the metadata log) cannot be created: INVALID_REQUEST, as Kafka's
ControllerApis.createTopics answers.

The handler sends the request to the controller (``ctx.broker.controller_client``: this node's
own, or the active controller of a cluster, as Kafka's brokers forward it); the controller's side
(checks, the partition logs of this node's replicas, the records) is
kbroker/controller/operations/create_topics.py.
"""

from __future__ import annotations

from kbroker.api.context import RequestContext, requester
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Forwarding
from kbroker_protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse


@api(CreateTopicsRequest, CreateTopicsResponse, 2, 7)
async def handle_create_topics(ctx: RequestContext[Forwarding], request: CreateTopicsRequest) -> CreateTopicsResponse:
    return await ctx.broker.controller_client.create_topics(request, ctx.api_version, requester(ctx))


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(19)
def _create_topics_error(request: CreateTopicsRequest, version: int, code: int) -> CreateTopicsResponse:
    R = CreateTopicsResponse
    return R(topics=[R.CreatableTopicResult(name=topic.name, error_code=code, error_message=None)
                     for topic in request.topics])
