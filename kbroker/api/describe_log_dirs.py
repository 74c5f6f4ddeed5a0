"""DescribeLogDirs (key 35), v1-5.

One result per configured log dir (absolute path), listing the partition logs it holds: size in
bytes, offset lag (high watermark minus log end offset, never below 0; -1 when the partition is
not hosted), never a future log (no AlterReplicaLogDirs). A null topic list means every partition;
otherwise only the partitions asked for; a topic none of whose partitions match is left out, as
in Kafka. v3+ adds a top-level error code; v4+ the
volume's total and usable bytes; v5 IsCordoned (the dir is in ``cordoned.log.dirs``, KIP-1066;
false below metadata.version 30, as Kafka). The metadata log is the controller's
and is not listed, as in Kafka. A partition whose log is offline (corrupt) still has its size. An offline log dir (see
kbroker/log/log_manager.py) is listed with KAFKA_STORAGE_ERROR and no partitions, as in Kafka.
Without DESCRIBE on the cluster the answer is CLUSTER_AUTHORIZATION_FAILED (v3+; earlier versions
have no error code) and no results, as Kafka's ``handleDescribeLogDirsRequest``.
"""

from __future__ import annotations

import os
from pathlib import Path

from kbroker.api.context import BrokerServices, RequestContext, require
from kbroker.api.registry import api
from kbroker.controller.quorum import METADATA_TOPIC
from kbroker.metadata.directories import cordoned_dirs_supported
from kbroker.security.acls import CLUSTER, CLUSTER_NAME, DESCRIBE, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.describe_log_dirs import DescribeLogDirsRequest, DescribeLogDirsResponse

Result = DescribeLogDirsResponse.DescribeLogDirsResult
TopicOut = Result.DescribeLogDirsTopic
PartOut = Result.DescribeLogDirsTopic.DescribeLogDirsPartition

INVALID_OFFSET_LAG = -1


def _volume(path: Path) -> tuple[int, int]:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def _offset_lag(broker: BrokerServices, topic: str, index: int, log_end_offset: int) -> int:
    partition = broker.partition(topic, index)
    if partition is None:
        return INVALID_OFFSET_LAG
    return max(partition.high_watermark - log_end_offset, 0)


@api(35, 1, 5)
def handle_describe_log_dirs(ctx: RequestContext, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse:
    broker = ctx.broker
    if not authorized(ctx, DESCRIBE, CLUSTER, CLUSTER_NAME):
        return DescribeLogDirsResponse(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                                       results=[])
    log_manager = require(broker.log_manager, "the log manager")
    logs = {k: v for k, v in log_manager.partitions().items()
            if k[0] != METADATA_TOPIC}
    if request.topics is None:
        wanted = set(logs)
    else:
        wanted = {(t.topic, p) for t in request.topics for p in t.partitions}
    by_dir: dict[Path, dict[str, list[PartOut]]] = {}
    for (topic, index), plog in sorted(logs.items()):
        parent = plog.directory.parent.resolve()
        dir_topics = by_dir.setdefault(parent, {})
        parts = dir_topics.setdefault(topic, [])
        if (topic, index) not in wanted:
            continue
        try:
            size = plog.size
            end = plog.log_end_offset
        except (OSError, ValueError):
            continue
        parts.append(PartOut(partition_index=index, partition_size=size,
                             offset_lag=_offset_lag(broker, topic, index, end), is_future_key=False))
    results = []
    offline = {Path(d).resolve() for d in log_manager.offline_dirs}
    cordoned = {Path(d).resolve() for d in broker.config.cordoned_log_dirs} \
        if cordoned_dirs_supported(broker.image) else set()
    for log_dir in broker.config.log_dirs:
        path = Path(log_dir).resolve()
        if path in offline:
            results.append(Result(error_code=ErrorCode.KAFKA_STORAGE_ERROR, log_dir=str(path), topics=[]))
            continue
        try:
            total, usable = _volume(path)
        except OSError:
            results.append(Result(error_code=ErrorCode.KAFKA_STORAGE_ERROR, log_dir=str(path), topics=[]))
            continue
        topics = [TopicOut(name=name, partitions=parts) for name, parts in sorted(by_dir.get(path, {}).items())
                  if parts]
        results.append(Result(error_code=ErrorCode.NONE, log_dir=str(path), topics=topics,
                              total_bytes=total, usable_bytes=usable, is_cordoned=path in cordoned))
    return DescribeLogDirsResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, results=results)
