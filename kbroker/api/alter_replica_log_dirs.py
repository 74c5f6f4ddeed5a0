"""AlterReplicaLogDirs (key 34), v1-2: move partitions between this broker's log dirs (JBOD).

As Kafka's ``ReplicaManager.alterReplicaLogDirs``, per partition: a destination that is not one of
the configured log dirs (given as its absolute path) gets LOG_DIR_NOT_FOUND ("Failed to find log
dir ..."), a cordoned destination (KIP-1066, ``cordoned.log.dirs``) INVALID_REPLICA_ASSIGNMENT, a
partition whose future directory name would pass 255 characters INVALID_TOPIC_EXCEPTION,
a partition this broker does not host REPLICA_NOT_AVAILABLE, an offline destination dir, an offline
(corrupt) partition, or any move while a log dir is offline KAFKA_STORAGE_ERROR; a partition already in the destination is left as it is. Nothing changes for
a partition that gets an error.

Kafka creates a future log in the destination and catches it up with a background thread; here the
move is done before the answer (``LogManager.move``: the closed log copied, fsynced, then swapped
in), so producers writing meanwhile wait for it and lose nothing, and DescribeLogDirs never shows a
future replica. A copy that fails (no space) leaves the partition where it was, served, KAFKA_STORAGE_ERROR. Without
ALTER on the cluster every partition gets CLUSTER_AUTHORIZATION_FAILED, as in Kafka.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.log.log_manager import LogDirOfflineError
from kbroker.security.acls import ALTER, CLUSTER, CLUSTER_NAME, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_replica_log_dirs import (
    AlterReplicaLogDirsRequest,
    AlterReplicaLogDirsResponse,
)

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.log import LogManager, PartitionLog
    from kbroker.replication.partition import Partition

log = logging.getLogger(__name__)

Result = AlterReplicaLogDirsResponse.AlterReplicaLogDirTopicResult
PartResult = Result.AlterReplicaLogDirPartitionResult


class AlterReplicaLogDirsServices(Authorizing, Protocol):
    """What AlterReplicaLogDirs uses of the broker."""

    config: BrokerConfig
    log_manager: LogManager | None

    def partition(self, topic: str, index: int) -> Partition | None: ...


def _move(broker: AlterReplicaLogDirsServices, topic: str, index: int, destination: str) -> ErrorCode:
    if len(f"{topic}-{index}.{'0' * 32}-future") > 255:
        return ErrorCode.INVALID_TOPIC_EXCEPTION
    manager = require(broker.log_manager, "the log manager")
    dest = next((manager.log_dirs[i] for i, d in enumerate(broker.config.log_dirs)
                 if os.path.abspath(d) == destination), None)
    if dest is None:
        return ErrorCode.LOG_DIR_NOT_FOUND
    if dest in manager.offline_dirs:
        return ErrorCode.KAFKA_STORAGE_ERROR  # "Log directory ... is offline"
    if dest in manager.cordoned_dirs:
        return ErrorCode.INVALID_REPLICA_ASSIGNMENT  # "Log directory ... is cordoned" (KIP-1066)
    partition = broker.partition(topic, index)
    if partition is None or manager.get(topic, index) is None:
        return ErrorCode.REPLICA_NOT_AVAILABLE
    if partition.log.offline is not None:
        return ErrorCode.KAFKA_STORAGE_ERROR
    serving: PartitionLog | None
    try:
        code, serving = ErrorCode.NONE, manager.move(topic, index, dest)
    except (OSError, LogDirOfflineError) as exc:
        log.error("cannot move %s-%d to %s: %s", topic, index, destination, exc)
        # (a failed copy: the log reopened where it was, as Kafka's current log goes on serving)
        code, serving = ErrorCode.KAFKA_STORAGE_ERROR, manager.get(topic, index)
    if serving is not None:
        partition.log = serving  # (the manager carried over its high watermark and roll listener)
    return code


@api(AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, 1, 2)
def handle_alter_replica_log_dirs(ctx: RequestContext[AlterReplicaLogDirsServices], request: AlterReplicaLogDirsRequest) -> AlterReplicaLogDirsResponse:
    if not authorized(ctx, ALTER, CLUSTER, CLUSTER_NAME):  # as Kafka: every partition refused
        from kbroker.api.error_response import error_response_as

        return error_response_as(AlterReplicaLogDirsResponse, request, ctx.api_version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    wanted: dict[tuple[str, int], str] = {}
    for d in request.dirs:
        for t in d.topics:
            for p in t.partitions:
                wanted[(t.name, p)] = d.path  # the last one given wins, as in Kafka's map
    by_topic: dict[str, list[PartResult]] = {}
    for (topic, index), destination in wanted.items():
        code = _move(ctx.broker, topic, index, destination)
        by_topic.setdefault(topic, []).append(PartResult(partition_index=index, error_code=code))
    return AlterReplicaLogDirsResponse(throttle_time_ms=0, results=[
        Result(topic_name=name, partitions=parts) for name, parts in by_topic.items()])


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(34)
def _alter_replica_log_dirs_error(request: AlterReplicaLogDirsRequest, version: int, code: int) -> AlterReplicaLogDirsResponse:
    R = AlterReplicaLogDirsResponse
    T = R.AlterReplicaLogDirTopicResult
    return R(results=[T(topic_name=t.name, partitions=[T.AlterReplicaLogDirPartitionResult(partition_index=p,
                                                                                          error_code=code)
                                                       for p in t.partitions])
                      for d in request.dirs for t in d.topics])
