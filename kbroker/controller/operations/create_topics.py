"""The controller's side of CreateTopics (key 19): Kafka's ControllerApis.createTopics and
ReplicationControlManager.createTopics.

Run one at a time with the controller's other operations. A request for more than 10,000
partitions in all fails whole with POLICY_VIOLATION, as in Kafka; so does one whose topics would
write more than 10,000 metadata records in all (TopicRecord, ConfigRecords and PartitionRecords of
the topics that pass their checks, validateOnly included: kbroker/controller/user_op_limits.py).
``__cluster_metadata`` (the metadata log) cannot be created: INVALID_REQUEST. The partition logs
of this node's replicas are created on a worker thread before the topic is committed (see
kbroker/controller/operations/topic_logs.py): other clients are served meanwhile, and a topic whose logs cannot
all be created (out of descriptors or disk) is answered KAFKA_STORAGE_ERROR with nothing committed
and nothing left on disk. The broker's handler is kbroker/api/create_topics.py.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Protocol

from kbroker.controller.operations.host import (
    OperationSubject,
    local_controller,
    operation_subject,
    require,
)
from kbroker.controller.operations.topic_logs import (
    METADATA_TOPIC_PROHIBITED,
    TopicLogsHost,
    create_partition_logs,
    plan_create,
    release_topic,
    reserve_topic,
    storage_error,
    write_created,
)
from kbroker.controller.topic_plans import MAX_PARTITIONS_PER_REQUEST
from kbroker.controller.user_op_limits import (
    BATCH_TOO_LARGE_MESSAGE,
    MAX_RECORDS_PER_USER_OP,
    BatchTooLarge,
    RecordBudget,
)
from kbroker.metadata.client import Requester
from kbroker.metadata.image import METADATA_TOPIC
from kbroker.metadata.metadata_records import MetadataRecord
from kbroker.metadata.new_topic import NewTopic
from kbroker.security.acls import CLUSTER, CLUSTER_NAME, CREATE, TOPIC, authorized
from kbroker.security.quotas import (
    UNBOUNDED_MUTATION_QUOTA,
    MutationQuota,
    ThrottlingQuotaExceeded,
    mutation_quota_for,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_topics import CreateTopicsRequest, CreateTopicsResponse
from kbroker_protocol.messages.metadata_records import PartitionRecord, TopicRecord

if TYPE_CHECKING:
    from kbroker.security.acls import Authorizer
    from kbroker.security.quotas import ClientQuotas


class CreateTopicsHost(TopicLogsHost, Protocol):
    """CreateTopics as it uses the node: a new topic's checks and partition logs
    (``topic_logs.TopicLogsHost``), the authorizer and the controller mutation quota."""

    @property
    def authorizer(self) -> Authorizer: ...

    @property
    def client_quotas(self) -> ClientQuotas: ...  # the controller mutation quota


Result = CreateTopicsResponse.CreatableTopicResult
_log = logging.getLogger(__name__)


async def create_topics(broker: CreateTopicsHost, request: CreateTopicsRequest, version: int, requester: Requester | None = None) -> CreateTopicsResponse:
    """The controller's side of CreateTopics (Kafka's ControllerApis.createTopics and
    ReplicationControlManager.createTopics)."""
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        mutations = mutation_quota_for(broker, requester, version, strict_since=6)
        response = await _create_topics(broker, request, operation_subject(broker, requester), mutations)
        response.throttle_time_ms = mutations.throttle_time()
        return response


async def _create_topics(broker: CreateTopicsHost, request: CreateTopicsRequest, ctx: OperationSubject[CreateTopicsHost], mutations: MutationQuota = UNBOUNDED_MUTATION_QUOTA
                         ) -> CreateTopicsResponse:
    results: list[Result] = []
    seen: dict[str, int] = {}
    for t in request.topics:
        seen[t.name] = seen.get(t.name, 0) + 1
    default_partitions = broker.config["num.partitions"]
    # Counted over the topics the controller is given, as Kafka's ControllerApis.createTopics
    # passes it the request without duplicates and without __cluster_metadata.
    total = sum(len(t.assignments) if t.assignments else
                default_partitions if t.num_partitions == -1 else max(t.num_partitions, 0)
                for t in request.topics if seen[t.name] == 1 and t.name != METADATA_TOPIC)
    if total > MAX_PARTITIONS_PER_REQUEST:
        return _refuse_all(request, "Excessively large number of partitions per request.")
    # Kafka's bounded record list of the operation: every record planned for a topic that passes
    # its checks counts, validate_only too; one past the bound fails the request whole.
    budget = RecordBudget(MAX_RECORDS_PER_USER_OP)
    to_commit: list[tuple[Result, NewTopic, list[MetadataRecord]]] = []
    for t in request.topics:
        if seen[t.name] > 1:
            results.append(Result(name=t.name, topic_id=uuid.UUID(int=0), error_code=ErrorCode.INVALID_REQUEST,
                                  error_message=f"Duplicate topic name {t.name} in request.", configs=None))
            continue
        if t.name == METADATA_TOPIC:  # before any other check of the topic, as Kafka
            results.append(Result(name=t.name, topic_id=uuid.UUID(int=0), error_code=ErrorCode.INVALID_REQUEST,
                                  error_message=METADATA_TOPIC_PROHIBITED, configs=None))
            continue
        if not (authorized(ctx, CREATE, CLUSTER, CLUSTER_NAME) or authorized(ctx, CREATE, TOPIC, t.name)):
            results.append(Result(name=t.name, topic_id=uuid.UUID(int=0),  # Kafka's ControllerApis
                                  error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                  error_message="Authorization failed.", configs=None))
            continue
        configs: dict[str, str] = {}
        bad_config = None
        for c in t.configs:
            if c.value is None:
                bad_config = f"Null value not supported for topic configs: {c.name}"
                break
            configs[c.name] = c.value
        if bad_config:
            results.append(Result(name=t.name, topic_id=uuid.UUID(int=0), error_code=ErrorCode.INVALID_CONFIG,
                                  error_message=bad_config, configs=None))
            continue
        new = NewTopic(
            t.name, t.num_partitions, t.replication_factor,
            [(a.partition_index, list(a.broker_ids)) for a in t.assignments], configs,
        )
        plan = plan_create(broker, new)
        if plan.error != ErrorCode.NONE:
            results.append(Result(name=t.name, topic_id=uuid.UUID(int=0), error_code=plan.error,
                                  error_message=plan.message, configs=None))
            continue
        planned = plan.records
        assert planned is not None  # (a plan without an error has its records)
        topic_record = planned[0]
        assert isinstance(topic_record, TopicRecord)  # (a plan starts with its TopicRecord)
        partition_records = [r for r in planned if isinstance(r, PartitionRecord)]
        try:
            mutations.record(len(partition_records))  # Kafka: the controller mutation quota, per topic
        except ThrottlingQuotaExceeded as exc:
            results.append(Result(name=t.name, topic_id=uuid.UUID(int=0),
                                  error_code=ErrorCode.THROTTLING_QUOTA_EXCEEDED, error_message=str(exc),
                                  configs=None))
            continue
        try:
            budget.add(len(planned))
        except BatchTooLarge:
            for _, reserved, _ in to_commit:
                release_topic(broker, reserved.name)
            _log.info("CreateTopics refused: more than %d metadata records in one operation", budget.limit)
            return _refuse_all(request, BATCH_TOO_LARGE_MESSAGE)
        result = Result(
            name=t.name,
            topic_id=topic_record.topic_id,
            error_code=ErrorCode.NONE,
            error_message=None,
            num_partitions=len(partition_records),
            replication_factor=len(partition_records[0].replicas) if partition_records else -1,
            configs=[
                CreateTopicsResponse.CreatableTopicResult.CreatableTopicConfigs(
                    name=e.name, value=e.value, read_only=e.read_only, config_source=e.source,
                    is_sensitive=e.sensitive,
                )
                for e in broker.config.describe_topic(new.configs)
            ],
        )
        results.append(result)
        if not request.validate_only:
            reserve_topic(broker, t.name)
            to_commit.append((result, new, planned))
    if not to_commit:
        return CreateTopicsResponse(throttle_time_ms=0, topics=results)
    try:
        created = await asyncio.to_thread(_create_logs, broker, to_commit)
        for result, new, records in to_commit:
            outcome = created[new.name]
            if isinstance(outcome, OSError):
                _fail(result, storage_error(new.name, outcome).message)
                continue
            if isinstance(outcome, Exception):  # a bug: this topic fails, the others go on
                _log.error("creating the logs of %s failed", new.name, exc_info=outcome)
                _fail(result, None, ErrorCode.UNKNOWN_SERVER_ERROR)
                continue
            keys, batch = outcome
            failed = await write_created(broker, new.name, records, keys, batch)
            if failed is not None:
                _fail(result, failed.message)
    finally:
        for _, new, _ in to_commit:
            release_topic(broker, new.name)
    return CreateTopicsResponse(throttle_time_ms=0, topics=results)


def _refuse_all(request: CreateTopicsRequest, message: str) -> CreateTopicsResponse:
    """The whole request fails with POLICY_VIOLATION for every topic it names (Kafka's
    CreateTopicsRequest.getErrorResponse for an operation that threw PolicyViolationException)."""
    return CreateTopicsResponse(throttle_time_ms=0, topics=[
        Result(name=t.name, topic_id=uuid.UUID(int=0), error_code=ErrorCode.POLICY_VIOLATION,
               error_message=message, configs=None)
        for t in request.topics
    ])


def _create_logs(broker: CreateTopicsHost, to_commit: list[tuple[Result, NewTopic, list[MetadataRecord]]]
                 ) -> dict[str, tuple[list[tuple[str, int]], list[bytes] | bytes] | Exception]:
    """On a worker thread: the partition logs of each topic and its encoded records (or the
    error that stopped them; the logs of that topic are then removed already)."""
    out: dict[str, tuple[list[tuple[str, int]], list[bytes] | bytes] | Exception] = {}
    for _, new, records in to_commit:
        keys: list[tuple[str, int]] = []
        try:
            keys = create_partition_logs(broker, new.name, records, new.configs)
            out[new.name] = (keys, local_controller(broker).build(records))
        except Exception as exc:
            require(broker.log_manager, "the log manager").remove_new_logs(keys)
            out[new.name] = exc
    return out


def _fail(result: Result, message: str | None, code: ErrorCode = ErrorCode.KAFKA_STORAGE_ERROR) -> None:
    result.error_code = code
    result.error_message = message
    result.topic_id = uuid.UUID(int=0)
    result.num_partitions = -1
    result.replication_factor = -1
    result.configs = None
