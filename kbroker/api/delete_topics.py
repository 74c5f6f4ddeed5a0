"""DeleteTopics (key 20), v1-6.

v0-5 name topics; v6 names or ids (exactly one of them). Internal topics cannot be deleted.
``delete.topic.enable=false`` answers TOPIC_DELETION_DISABLED.
"""

from __future__ import annotations

import uuid

from kbroker.api.registry import api
from protocol.errors import ErrorCode
from protocol.messages.delete_topics import DeleteTopicsResponse

Result = DeleteTopicsResponse.DeletableTopicResult
ZERO_UUID = uuid.UUID(int=0)


@api(20, 1, 6)
def handle_delete_topics(ctx, request) -> DeleteTopicsResponse:
    broker = ctx.broker
    image = broker.image
    wanted: list[tuple[str | None, uuid.UUID]] = (
        [(t.name, t.topic_id) for t in request.topics] if ctx.api_version >= 6
        else [(name, ZERO_UUID) for name in request.topic_names]
    )
    results = []
    for name, topic_id in wanted:
        if name is not None and topic_id != ZERO_UUID:
            results.append(Result(name=name, topic_id=topic_id, error_code=ErrorCode.INVALID_REQUEST,
                                  error_message="Only one of topic name and topic id may be set."))
            continue
        topic = image.topic(name) if name is not None else image.topic_by_id(topic_id)
        if topic is None:
            code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if name is not None else ErrorCode.UNKNOWN_TOPIC_ID
            results.append(Result(name=name, topic_id=topic_id, error_code=code, error_message=None))
            continue
        if not broker.config["delete.topic.enable"]:
            results.append(Result(name=topic.name, topic_id=topic.topic_id,
                                  error_code=ErrorCode.TOPIC_DELETION_DISABLED, error_message=None))
            continue
        if topic.is_internal:
            results.append(Result(name=topic.name, topic_id=topic.topic_id,
                                  error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                  error_message="Internal topics cannot be deleted."))
            continue
        broker.controller.commit(broker.controller.delete_topic_records(topic.topic_id))
        results.append(Result(name=topic.name, topic_id=topic.topic_id, error_code=ErrorCode.NONE,
                              error_message=None))
    return DeleteTopicsResponse(throttle_time_ms=0, responses=results)
