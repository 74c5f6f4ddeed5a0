"""DeleteTopics (key 20), v1-6.

v0-5 name topics; v6 names or ids (exactly one of them, else INVALID_REQUEST). As Kafka's
ControllerApis: a name or id given twice is INVALID_REQUEST once ("Duplicate topic name." /
"Duplicate topic id."), and so is a name whose topic's id the request also gives. Internal topics
cannot be deleted. Past 10,000 topics deleted by one request (Kafka's bound on the records of one
controller operation), each further topic gets UNKNOWN_SERVER_ERROR, as Kafka's deleteTopics answers
its BoundedListTooLongException per topic. ``delete.topic.enable=false`` answers every topic TOPIC_DELETION_DISABLED
(INVALID_REQUEST before v3). The handler sends the request to the controller
(``ctx.broker.controller_client``); kbroker/controller/operations/delete_topics.py is the
controller's side.
"""

from __future__ import annotations

import uuid

from kbroker.api.context import RequestContext, requester
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Forwarding
from kbroker_protocol.messages.delete_topics import DeleteTopicsRequest, DeleteTopicsResponse


@api(DeleteTopicsRequest, DeleteTopicsResponse, 1, 6)
async def handle_delete_topics(ctx: RequestContext[Forwarding], request: DeleteTopicsRequest) -> DeleteTopicsResponse:
    return await ctx.broker.controller_client.delete_topics(request, ctx.api_version, requester(ctx))


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(20)
def _delete_topics_error(request: DeleteTopicsRequest, version: int, code: int) -> DeleteTopicsResponse:
    R = DeleteTopicsResponse
    keys: list[tuple[str | None, uuid.UUID | None]]
    if version >= 6:
        keys = [(topic.name, topic.topic_id) for topic in request.topics]
    else:
        keys = [(name, None) for name in request.topic_names]
    results = []
    for name, topic_id in keys:
        result = R.DeletableTopicResult(name=name, error_code=code, error_message=None)
        if topic_id is not None:
            result.topic_id = topic_id
        results.append(result)
    return R(responses=results)
