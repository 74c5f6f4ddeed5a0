"""The controller's side of DeleteTopics (key 20): Kafka's ControllerApis.deleteTopics.

v0-5 name topics; v6 names or ids (exactly one of them, else INVALID_REQUEST). A name or id given
twice is INVALID_REQUEST once ("Duplicate topic name." / "Duplicate topic id."), and so is a name
whose topic's id the request also gives. Internal topics cannot be deleted. Past 10,000 topics
deleted by one request (Kafka's bound on the records of one controller operation), each further
topic gets UNKNOWN_SERVER_ERROR, as Kafka's deleteTopics answers its BoundedListTooLongException
per topic. ``delete.topic.enable=false`` answers every topic TOPIC_DELETION_DISABLED
(INVALID_REQUEST before v3). The broker's handler is kbroker/api/delete_topics.py.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Protocol

from kbroker.controller.operations.host import (
    ControllerHolder,
    OperationSubject,
    local_controller,
    operation_subject,
)
from kbroker.controller.user_op_limits import MAX_RECORDS_PER_USER_OP, BatchTooLarge, RecordBudget
from kbroker.metadata.client import Requester
from kbroker.security.acls import DELETE, DESCRIBE, TOPIC, authorized
from kbroker.security.quotas import (
    UNBOUNDED_MUTATION_QUOTA,
    MutationQuota,
    ThrottlingQuotaExceeded,
    mutation_quota_for,
)
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.delete_topics import DeleteTopicsRequest, DeleteTopicsResponse

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.security.acls import Authorizer
    from kbroker.security.quotas import ClientQuotas


class DeleteTopicsHost(ControllerHolder, Protocol):
    """DeleteTopics as it uses the node: its controller, its configuration (delete.topic.enable),
    the authorizer and the controller mutation quota."""

    @property
    def config(self) -> BrokerConfig: ...

    @property
    def authorizer(self) -> Authorizer: ...

    @property
    def client_quotas(self) -> ClientQuotas: ...  # the controller mutation quota


Result = DeleteTopicsResponse.DeletableTopicResult
_log = logging.getLogger(__name__)
ZERO_UUID = uuid.UUID(int=0)


def _invalid(name: str | None, topic_id: uuid.UUID, message: str) -> Result:
    return Result(name=name, topic_id=topic_id, error_code=ErrorCode.INVALID_REQUEST, error_message=message)


async def delete_topics(broker: DeleteTopicsHost, request: DeleteTopicsRequest, version: int, requester: Requester | None = None) -> DeleteTopicsResponse:
    """The controller's side of DeleteTopics (Kafka's ControllerApis.deleteTopics)."""
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        mutations = mutation_quota_for(broker, requester, version, strict_since=5)
        response = await _delete_topics(broker, request, version, operation_subject(broker, requester), mutations)
        response.throttle_time_ms = mutations.throttle_time()
        return response


async def _delete_topics(broker: DeleteTopicsHost, request: DeleteTopicsRequest, version: int, ctx: OperationSubject[DeleteTopicsHost],
                         mutations: MutationQuota = UNBOUNDED_MUTATION_QUOTA) -> DeleteTopicsResponse:
    image = local_controller(broker).image  # the controller's own (kbroker/controller/quorum.py)
    wanted: list[tuple[str | None, uuid.UUID]] = (
        [(t.name, t.topic_id) for t in request.topics] if version >= 6
        else [(name, ZERO_UUID) for name in request.topic_names]
    )
    if not broker.config["delete.topic.enable"]:
        code = ErrorCode.TOPIC_DELETION_DISABLED if version >= 3 else ErrorCode.INVALID_REQUEST
        return DeleteTopicsResponse(throttle_time_ms=0, responses=[
            Result(name=name, topic_id=topic_id, error_code=code, error_message=None) for name, topic_id in wanted])
    names = Counter(name for name, topic_id in wanted if name is not None and topic_id == ZERO_UUID)
    ids = Counter(topic_id for name, topic_id in wanted if name is None and topic_id != ZERO_UUID)
    by_id = [image.topic_by_id(topic_id) for topic_id in ids]
    named_by_id = {topic.name: topic.topic_id for topic in by_id if topic is not None}
    answered: set[str | uuid.UUID] = set()
    results = []
    budget = RecordBudget(MAX_RECORDS_PER_USER_OP)  # Kafka's bounded RemoveTopicRecord list
    for name, topic_id in wanted:
        if name is None and topic_id == ZERO_UUID:
            results.append(_invalid(None, ZERO_UUID, "Neither topic name nor id were specified."))
            continue
        if name is not None and topic_id != ZERO_UUID:
            results.append(_invalid(name, topic_id, "You may not specify both topic name and topic id."))
            continue
        key = name if name is not None else topic_id
        if key in answered:
            continue
        answered.add(key)
        if name is not None and names[name] > 1:
            results.append(_invalid(name, ZERO_UUID, "Duplicate topic name."))
            continue
        if name is None and ids[topic_id] > 1:
            results.append(_invalid(None, topic_id, "Duplicate topic id."))
            continue
        if name in named_by_id:
            results.append(_invalid(name, named_by_id[name],
                                    "The provided topic name maps to an ID that was already supplied."))
            continue
        topic = image.topic(name) if name is not None else image.topic_by_id(topic_id)
        # Kafka's ControllerApis: DESCRIBE (a topic by id one may not describe is unknown), then DELETE
        checked = name if name is not None else (topic.name if topic is not None else None)
        if checked is not None and not authorized(ctx, DELETE, TOPIC, checked):
            if name is None and not authorized(ctx, DESCRIBE, TOPIC, checked):
                results.append(Result(name=None, topic_id=topic_id, error_code=ErrorCode.UNKNOWN_TOPIC_ID,
                                      error_message=None))
            else:
                results.append(Result(name=name, topic_id=topic_id, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                      error_message=default_message(ErrorCode.TOPIC_AUTHORIZATION_FAILED)))
            continue
        if topic is None:
            code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if name is not None else ErrorCode.UNKNOWN_TOPIC_ID
            results.append(Result(name=name, topic_id=topic_id, error_code=code, error_message=None))
            continue
        if topic.is_internal:
            results.append(Result(name=topic.name, topic_id=topic.topic_id,
                                  error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                  error_message="Internal topics cannot be deleted."))
            continue
        try:
            mutations.record(len(topic.partitions))  # Kafka: the controller mutation quota, per topic
        except ThrottlingQuotaExceeded as exc:
            results.append(Result(name=topic.name, topic_id=topic.topic_id,
                                  error_code=ErrorCode.THROTTLING_QUOTA_EXCEEDED, error_message=str(exc)))
            continue
        records = local_controller(broker).delete_topic_records(topic.topic_id)
        try:
            budget.add(len(records))
        except BatchTooLarge as exc:
            # Kafka's deleteTopics catches the BoundedListTooLongException per topic: this topic
            # fails with UNKNOWN_SERVER_ERROR (no message), the ones before it are deleted.
            _log.error("DeleteTopics: not deleting %s: %s", topic.name, exc)
            results.append(Result(name=topic.name, topic_id=topic.topic_id,
                                  error_code=ErrorCode.UNKNOWN_SERVER_ERROR, error_message=None))
            continue
        await local_controller(broker).write(records)
        results.append(Result(name=topic.name, topic_id=topic.topic_id, error_code=ErrorCode.NONE,
                              error_message=None))
    return DeleteTopicsResponse(throttle_time_ms=0, responses=results)
