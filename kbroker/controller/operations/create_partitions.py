"""The controller's side of CreatePartitions (key 37): Kafka's ControllerApis.createPartitions and
ReplicationControlManager.createPartitions.

Adds partitions to existing topics through metadata records (one commit per topic). A topic named
twice gets INVALID_REQUEST ("Duplicate topic name.") once. validateOnly runs every check and
commits nothing. Manual assignments must name registered brokers, each at most once, with as many
replicas as the topic's existing partitions, and at least one unfenced broker; the controller
mutation quota is checked before them (after the count checks), as Kafka does. A request adding
more than 10,000 partitions in all to the existing topics it may alter fails whole with
POLICY_VIOLATION "Excessively large number of additional partitions per request."; one naming more
than 10,000 such topics with "Unable to perform excessively large batch operation." (Kafka 4.4's
bound on one controller operation).

The new partitions' logs are created on a worker thread before the records are committed (see
kbroker/controller/operations/topic_logs.py); a topic whose logs cannot all be created gets KAFKA_STORAGE_ERROR
with nothing committed or left on disk. Run one at a time with the controller's other operations,
so two requests never plan the same new partition ids (Kafka's controller serializes them too).
The broker's handler is kbroker/api/create_partitions.py.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from kbroker.controller.errors import ControllerError
from kbroker.controller.operations.host import local_controller, operation_subject, require
from kbroker.controller.operations.topic_logs import (
    TopicLogsHost,
    create_partition_logs,
    storage_error,
    write_created,
)
from kbroker.controller.topic_plans import MAX_PARTITIONS_PER_REQUEST, validate_create_partitions
from kbroker.controller.user_op_limits import BATCH_TOO_LARGE_MESSAGE, MAX_RECORDS_PER_USER_OP
from kbroker.metadata.client import Requester
from kbroker.security.acls import ALTER, TOPIC, authorized
from kbroker.security.quotas import (
    UNBOUNDED_MUTATION_QUOTA,
    MutationQuota,
    ThrottlingQuotaExceeded,
    mutation_quota_for,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_partitions import CreatePartitionsRequest, CreatePartitionsResponse

if TYPE_CHECKING:
    from kbroker.security.acls import Authorizer
    from kbroker.security.quotas import ClientQuotas


class CreatePartitionsHost(TopicLogsHost, Protocol):
    """CreatePartitions as it uses the node: the new partitions' logs
    (``topic_logs.TopicLogsHost``), the authorizer and the controller mutation quota."""

    @property
    def authorizer(self) -> Authorizer: ...

    @property
    def client_quotas(self) -> ClientQuotas: ...  # the controller mutation quota


Result = CreatePartitionsResponse.CreatePartitionsTopicResult
TOO_MANY_ADDED_MESSAGE = "Excessively large number of additional partitions per request."


async def create_partitions(broker: CreatePartitionsHost, request: CreatePartitionsRequest, version: int, requester: Requester | None = None) -> CreatePartitionsResponse:
    """The controller's side of CreatePartitions (Kafka's ControllerApis.createPartitions)."""
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        # Kafka: ALTER on each topic (kbroker/security/acls.py), the forwarded principal's
        ctx = operation_subject(broker, requester)
        denied = {t.name for t in request.topics if not authorized(ctx, ALTER, TOPIC, t.name)}
        mutations = mutation_quota_for(broker, requester, version, strict_since=3)
        response = await _create_partitions(broker, request, denied, mutations)
        response.throttle_time_ms = mutations.throttle_time()
        return response


def _refused(broker: CreatePartitionsHost, topics: list[CreatePartitionsRequest.CreatePartitionsTopic]) -> str | None:
    """Why the whole operation fails, if it does (every topic of the request then gets
    POLICY_VIOLATION with this message, Kafka's CreatePartitionsRequest.getErrorResponse).

    Kafka's ReplicationControlManager.validateTotalNumberOfPartitions: the partitions added to
    existing topics (a negative count or a count that adds nothing counts none) may total at most
    MAX_PARTITIONS_PER_BATCH. Then one result per topic goes into a list bounded to
    MAX_RECORDS_PER_USER_OP (its records cannot overflow, being at most the partitions added)."""
    added = 0
    for t in topics:
        topic = local_controller(broker).image.topic(t.name)
        if t.count < 0 or topic is None:
            continue
        extra = t.count - len(topic.partitions)
        if extra <= 0:
            continue
        added += extra
        if added > MAX_PARTITIONS_PER_REQUEST:
            return TOO_MANY_ADDED_MESSAGE
    if len(topics) > MAX_RECORDS_PER_USER_OP:
        return BATCH_TOO_LARGE_MESSAGE
    return None


async def _create_partitions(broker: CreatePartitionsHost, request: CreatePartitionsRequest, denied: set[str] | None = None,
                             mutations: MutationQuota = UNBOUNDED_MUTATION_QUOTA) -> CreatePartitionsResponse:
    controller = local_controller(broker)  # (the operation holds it: create_partitions)
    counts: dict[str, int] = {}
    for t in request.topics:
        counts[t.name] = counts.get(t.name, 0) + 1
    results: list[Result] = [
        Result(name=name, error_code=ErrorCode.INVALID_REQUEST, error_message="Duplicate topic name.")
        for name, n in counts.items() if n > 1
    ]
    # What Kafka's ControllerApis passes its controller: no duplicates, only authorized topics.
    controller_topics = [t for t in request.topics if counts[t.name] == 1 and not (denied and t.name in denied)]
    refused = _refused(broker, controller_topics)
    if refused is not None:
        return CreatePartitionsResponse(throttle_time_ms=0, results=[
            Result(name=t.name, error_code=ErrorCode.POLICY_VIOLATION, error_message=refused)
            for t in request.topics
        ])
    for t in request.topics:
        if counts[t.name] > 1:
            continue
        if denied and t.name in denied:
            results.append(Result(name=t.name, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, error_message=None))
            continue
        assignments = None if t.assignments is None else [list(a.broker_ids) for a in t.assignments]
        # Kafka's ReplicationControlManager.createPartitions: the topic and the counts, then the
        # controller mutation quota for the partitions added, then the manual assignments or the
        # placement (a refused assignment has used the quota)
        try:
            validate_create_partitions(controller.image, t.name, t.count, assignments)
            known = controller.image.topics[t.name]
            mutations.record(t.count - len(known.partitions))
            records = controller.plan_partitions(t.name, t.count, assignments)
        except ControllerError as exc:
            results.append(Result(name=t.name, error_code=exc.code, error_message=exc.message))
            continue
        except ThrottlingQuotaExceeded as exc:
            results.append(Result(name=t.name, error_code=ErrorCode.THROTTLING_QUOTA_EXCEEDED, error_message=str(exc)))
            continue
        if not request.validate_only:
            # the controller's topic: the broker's image may not have it yet (the controller's runs
            # ahead of it by the records appended but not committed)
            try:
                keys = await asyncio.to_thread(create_partition_logs, broker, t.name, records, known.configs)
            except OSError as exc:
                results.append(Result(name=t.name, error_code=ErrorCode.KAFKA_STORAGE_ERROR,
                                      error_message=storage_error(t.name, exc).message))
                continue
            current = controller.image.topic(t.name)
            if current is None or current.topic_id != known.topic_id:  # deleted meanwhile
                require(broker.log_manager, "the log manager").remove_new_logs(keys)
                results.append(Result(name=t.name, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, error_message=None))
                continue
            failed = await write_created(broker, t.name, records, keys)
            if failed is not None:
                results.append(Result(name=t.name, error_code=failed.error, error_message=failed.message))
                continue
        results.append(Result(name=t.name, error_code=ErrorCode.NONE, error_message=None))
    return CreatePartitionsResponse(throttle_time_ms=0, results=results)
