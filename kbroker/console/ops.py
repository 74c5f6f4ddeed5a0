"""What the console's JSON endpoints do, each as Kafka requests through :class:`KafkaClient`.

Every function takes a client and returns plain JSON-able data. Nothing is read from the broker's
objects: a topic's partitions come from Metadata, its sizes from DescribeLogDirs, its offsets from
ListOffsets, its records from Fetch, a group's lag from OffsetFetch and ListOffsets, and so on. Bad
input raises :class:`Invalid` (answered 400 naming the field); a Kafka error in a response raises
:class:`~kbroker.console.client.KafkaError`.

By concern: this module has the input checks, the cluster overview and topics;
:mod:`kbroker.console.records` the message browser and produce; :mod:`kbroker.console.groups`
consumer groups, transactions and producers; :mod:`kbroker.console.access` ACLs and SCRAM
users; :mod:`kbroker.console.delayed` pending delayed records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kbroker.console.client import KafkaClient, KafkaError, check
from kbroker_protocol import messages
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker_protocol.messages.describe_quorum import ReplicaState

EARLIEST = -2
LATEST = -1
TOPIC_RESOURCE = 2
CONFIG_SET = 0
CONFIG_DELETE = 1
MAX_LIMIT = 500
MAX_SCAN = 10_000
CONFIG_SOURCES = {0: "UNKNOWN", 1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG",
                  3: "DYNAMIC_DEFAULT_BROKER_CONFIG", 4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG",
                  6: "DYNAMIC_BROKER_LOGGER_CONFIG", 7: "CLIENT_METRICS_CONFIG", 8: "GROUP_CONFIG"}


class Invalid(Exception):
    """Bad input from the page: answered 400 with the message and the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


# -- input checks -----------------------------------------------------------------------------


def want_int(data: Mapping[str, object], field: str, *, default: int | None = None, low: int | None = None,
             high: int | None = None) -> int:
    value = data.get(field, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if value is None:
        raise Invalid(field, f"{field} is required")
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(field, f"{field} must be an integer, not {value!r}")
    if low is not None and value < low:
        raise Invalid(field, f"{field} must be at least {low}")
    if high is not None and value > high:
        raise Invalid(field, f"{field} must be at most {high}")
    return value


def want_str(data: Mapping[str, object], field: str, *, optional: bool = False) -> str | None:
    value = data.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise Invalid(field, f"{field} must be a string")
    return value


def topic_name(name: object, field: str = "name") -> str:
    """Kafka's topic name rules (Topic.validate): 1-249 chars of [a-zA-Z0-9._-], not . or .."""
    if not isinstance(name, str) or not name:
        raise Invalid(field, "the topic name is required")
    if name in (".", ".."):
        raise Invalid(field, "topic name cannot be \".\" or \"..\"")
    if len(name) > 249:
        raise Invalid(field, "topic name is longer than 249 characters")
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "._-"))})
    if bad:
        raise Invalid(field, f"topic name {name!r} has characters other than ASCII alphanumerics, "
                             f"'.', '_' and '-': {''.join(bad)!r}")
    return name


# -- cluster ----------------------------------------------------------------------------------


async def overview(client: KafkaClient) -> dict[str, object]:
    cluster = await client.send(60, 1, include_cluster_authorized_operations=False, endpoint_type=1)
    check(cluster.error_code, cluster.error_message, "DescribeCluster")
    meta = await client.metadata(None)
    versions = await client.send(18, 3, client_software_name="kbroker-console", client_software_version="1")
    topics = [t for t in meta.topics if t.error_code == ErrorCode.NONE]
    partitions = [p for t in topics for p in t.partitions]
    live = {b.broker_id for b in cluster.brokers}
    metadata_quorum = await quorum(client)
    return {
        "quorum": metadata_quorum,
        "cluster_id": cluster.cluster_id,
        # The active controller is the quorum's leader. DescribeCluster's ControllerId is no
        # help: a KRaft broker answers a live broker there (this one), as Kafka's does, since
        # clients cannot reach the controllers. Without DESCRIBE on the cluster (no quorum), it
        # is unknown (None) rather than a wrong node.
        "controller_id": metadata_quorum.get("leader_id"),
        "brokers": [{"id": b.broker_id, "host": b.host, "port": b.port, "rack": b.rack}
                    for b in sorted(cluster.brokers, key=lambda b: b.broker_id)],
        "features": {f.name: f.max_version_level for f in versions.finalized_features},
        "topics": sum(1 for t in topics if not t.is_internal),
        "internal_topics": sum(1 for t in topics if t.is_internal),
        "partitions": len(partitions),
        "offline_partitions": sum(1 for p in partitions if p.leader_id not in live),
        "under_replicated_partitions": sum(1 for p in partitions if len(p.isr_nodes) < len(p.replica_nodes)),
    }


async def quorum(client: KafkaClient) -> dict[str, object]:
    """The metadata quorum (DescribeQuorum, forwarded by the broker to the active controller):
    leader, epoch, high watermark, and each voter's and observer's log end offset and lag. Needs
    DESCRIBE on the cluster: without it, the error instead."""
    Req = messages.DescribeQuorumRequest
    resp = await client.send(55, 2, topics=[Req.TopicData(topic_name="__cluster_metadata", partitions=[
        Req.TopicData.PartitionData(partition_index=0)])])
    if resp.error_code != ErrorCode.NONE:
        return {"error": str(KafkaError(resp.error_code, resp.error_message, "DescribeQuorum"))}
    p = resp.topics[0].partitions[0]
    if p.error_code != ErrorCode.NONE:
        return {"error": str(KafkaError(p.error_code, p.error_message, "DescribeQuorum"))}

    def replica(r: ReplicaState, role: str) -> dict[str, object]:
        return {"id": r.replica_id, "role": "leader" if r.replica_id == p.leader_id else role,
                "log_end_offset": r.log_end_offset, "lag": max(0, p.high_watermark - r.log_end_offset),
                "last_caught_up_ms": r.last_caught_up_timestamp}

    return {"leader_id": p.leader_id, "leader_epoch": p.leader_epoch, "high_watermark": p.high_watermark,
            "replicas": [replica(r, "voter") for r in p.current_voters] + [replica(r, "observer") for r in p.observers]}


# -- topics -----------------------------------------------------------------------------------


async def _offsets_many(client: KafkaClient, leaders: dict[tuple[str, int], int], timestamp: int,
                        strict: bool = True) -> dict[tuple[str, int], int]:
    """(topic, partition) -> offset for ``timestamp`` (EARLIEST, LATEST or ms): one ListOffsets per
    leader for all the partitions it leads. A partition without a leader (-1, offline) has no one to
    ask: it is left out. Not ``strict``: a partition answered with an error (a leader gone
    meanwhile) is left out too, rather than failing the whole answer."""
    Req = messages.ListOffsetsRequest
    by_leader: dict[int, dict[str, list[int]]] = {}
    for (topic, index), leader in leaders.items():
        if leader >= 0:
            by_leader.setdefault(leader, {}).setdefault(topic, []).append(index)
    out: dict[tuple[str, int], int] = {}
    for leader, topics in sorted(by_leader.items()):
        resp = await client.send(2, 7, node=leader, replica_id=-1, isolation_level=0, topics=[
            Req.ListOffsetsTopic(name=topic, partitions=[Req.ListOffsetsTopic.ListOffsetsPartition(
                partition_index=i, current_leader_epoch=-1, timestamp=timestamp) for i in sorted(indexes)])
            for topic, indexes in sorted(topics.items())])
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code != ErrorCode.NONE and not strict:
                    continue
                check(p.error_code, None, f"ListOffsets {t.name}-{p.partition_index}")
                out[(t.name, p.partition_index)] = p.offset
    return out


async def _offsets(client: KafkaClient, topic: str, partitions: dict[int, int],
                   timestamp: int, strict: bool = True) -> dict[int, int]:
    """partition -> offset for ``timestamp`` of one topic's partitions (partition -> leader); the
    partitions without a leader left out."""
    found = await _offsets_many(client, {(topic, i): leader for i, leader in partitions.items()}, timestamp,
                                strict)
    return {i: off for (_t, i), off in found.items()}


async def _sizes(client: KafkaClient) -> dict[tuple[str, int], int] | None:
    """(topic, partition) -> bytes of its largest replica, from DescribeLogDirs on every broker."""
    return await _sizes_of(client, None, {})


async def _sizes_of(client: KafkaClient, wanted: list[messages.DescribeLogDirsRequest.DescribableLogDirTopic] | None,
                    sizes: dict[tuple[str, int], int]) -> dict[tuple[str, int], int] | None:
    """None without DESCRIBE on the cluster (DescribeLogDirs answers CLUSTER_AUTHORIZATION_FAILED):
    sizes unknown, rather than shown as 0."""
    for node, resp in await client.each_broker(35, 4, topics=wanted):
        if resp.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED:
            return None
        check(resp.error_code, None, f"DescribeLogDirs on broker {node}")
        for result in resp.results:
            for t in result.topics:
                for p in t.partitions:
                    key = (t.name, p.partition_index)
                    sizes[key] = max(sizes.get(key, 0), p.partition_size)
    return sizes


async def list_topics(client: KafkaClient) -> dict[str, Any]:
    meta = await client.metadata(None)
    sizes = await _sizes(client)
    topics = sorted((t for t in meta.topics if t.error_code == ErrorCode.NONE), key=lambda t: t.name)
    leaders = {(t.name, p.partition_index): p.leader_id for t in topics for p in t.partitions if p.leader_id >= 0}
    ends = await _offsets_many(client, leaders, LATEST, strict=False)
    starts = await _offsets_many(client, leaders, EARLIEST, strict=False)
    out = []
    for t in topics:
        keys = [(t.name, p.partition_index) for p in t.partitions]
        out.append({
            "name": t.name,
            "internal": t.is_internal,
            "partitions": len(t.partitions),
            "replication_factor": max((len(p.replica_nodes) for p in t.partitions), default=0),
            "under_replicated": sum(1 for p in t.partitions if len(p.isr_nodes) < len(p.replica_nodes)),
            "messages": sum(ends[k] - starts[k] for k in keys if k in ends and k in starts),
            "size": None if sizes is None else sum(sizes.get(k, 0) for k in keys),
        })
    return {"topics": out}


async def describe_topic(client: KafkaClient, name: str) -> dict[str, Any]:
    meta = await client.metadata([name])
    t = meta.topics[0]
    if t.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        raise NotFound(f"no topic {name!r}")
    check(t.error_code, None, f"topic {name}")
    leaders = {p.partition_index: p.leader_id for p in t.partitions}
    # a partition without a leader (offline) or whose leader just moved: its offsets unknown (None)
    ends = await _offsets(client, name, leaders, LATEST, strict=False)
    starts = await _offsets(client, name, leaders, EARLIEST, strict=False)
    sizes = await _sizes_of(client, [messages.DescribeLogDirsRequest.DescribableLogDirTopic(topic=name, partitions=sorted(leaders))],
                            {})
    Req = messages.DescribeConfigsRequest
    resp = await client.send(32, 4, resources=[Req.DescribeConfigsResource(
        resource_type=TOPIC_RESOURCE, resource_name=name, configuration_keys=None)],
        include_synonyms=False, include_documentation=True)
    result = resp.results[0]
    configs_error = None
    if result.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED:  # DESCRIBE without DESCRIBE_CONFIGS
        configs_error = KafkaError(result.error_code, result.error_message, f"DescribeConfigs {name}")
    else:
        check(result.error_code, result.error_message, f"DescribeConfigs {name}")
    return {
        "name": name,
        "topic_id": str(t.topic_id),
        "internal": t.is_internal,
        "partitions": [{
            "partition": p.partition_index, "leader": p.leader_id, "leader_epoch": p.leader_epoch,
            "replicas": list(p.replica_nodes), "isr": list(p.isr_nodes), "offline": list(p.offline_replicas),
            "start_offset": starts.get(p.partition_index), "end_offset": ends.get(p.partition_index),
            "size": None if sizes is None else sizes.get((name, p.partition_index), 0),
        } for p in sorted(t.partitions, key=lambda p: p.partition_index)],
        "configs": None if configs_error else [{
            "name": c.name, "value": None if c.is_sensitive else c.value, "read_only": c.read_only,
            "sensitive": c.is_sensitive, "source": CONFIG_SOURCES.get(c.config_source, str(c.config_source)),
            "doc": c.documentation,
        } for c in sorted(result.configs, key=lambda c: c.name)],
        "configs_error": str(configs_error) if configs_error else None,
    }


async def create_topic(client: KafkaClient, data: dict[str, Any]) -> dict[str, object]:
    name = topic_name(data.get("name"))
    partitions = want_int(data, "partitions", default=1, low=1, high=100_000)
    replication = want_int(data, "replication_factor", default=-1, low=-1, high=32767)
    if replication == 0:
        raise Invalid("replication_factor", "replication_factor must be -1 (the broker default) or at least 1")
    configs = data.get("configs") or {}
    if not isinstance(configs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in configs.items()):
        raise Invalid("configs", "configs must be an object of string names to string values")
    Req = messages.CreateTopicsRequest
    topic = Req.CreatableTopic(name=name, num_partitions=partitions, replication_factor=replication,
                               assignments=[], configs=[Req.CreatableTopic.CreatableTopicConfig(name=k, value=v)
                                                        for k, v in configs.items()])
    resp = await client.send(19, 7, topics=[topic], timeout_ms=30_000, validate_only=False)
    r = resp.topics[0]
    check(r.error_code, r.error_message, f"create topic {name}")
    return {"name": name, "partitions": r.num_partitions, "replication_factor": r.replication_factor}


async def delete_topic(client: KafkaClient, name: str) -> dict[str, object]:
    Req = messages.DeleteTopicsRequest
    resp = await client.send(20, 6, topics=[Req.DeleteTopicState(name=name)], timeout_ms=30_000)
    r = resp.responses[0]
    if r.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        raise NotFound(f"no topic {name!r}")
    check(r.error_code, r.error_message, f"delete topic {name}")
    return {"deleted": name}


async def alter_configs(client: KafkaClient, name: str, data: dict[str, Any]) -> dict[str, object]:
    sets = data.get("set") or {}
    deletes = data.get("delete") or []
    if not isinstance(sets, dict) or not all(isinstance(k, str) and k and isinstance(v, str)
                                             for k, v in sets.items()):
        raise Invalid("set", "set must be an object of config names to string values")
    if not isinstance(deletes, list) or not all(isinstance(k, str) and k for k in deletes):
        raise Invalid("delete", "delete must be a list of config names")
    if not sets and not deletes:
        raise Invalid("set", "nothing to change: give set or delete")
    Req = messages.IncrementalAlterConfigsRequest
    Res = Req.AlterConfigsResource
    configs = [Res.AlterableConfig(name=k, config_operation=CONFIG_SET, value=v) for k, v in sets.items()]
    configs += [Res.AlterableConfig(name=k, config_operation=CONFIG_DELETE, value=None) for k in deletes]
    resp = await client.send(44, 1, resources=[Res(resource_type=TOPIC_RESOURCE, resource_name=name,
                                                   configs=configs)], validate_only=False)
    r = resp.responses[0]
    if r.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        raise NotFound(f"no topic {name!r}")
    check(r.error_code, r.error_message, f"alter configs of {name}")
    return {"altered": name, "set": sets, "deleted": deletes}
