"""Metadata (key 3), v0-13.

Partitions answer the leader, replicas, ISR and offline replicas of the metadata image (see
``topic_metadata``).

v0: an empty topic list means all topics; v1+: null means all, empty means none. v4+ carries
AllowAutoTopicCreation (earlier versions always allow it, subject to
``auto.create.topics.enable``). v10+ topics carry ids and may be requested by id (v12+ name
nullable); an unknown id gets UNKNOWN_TOPIC_ID. A v10-11 request naming a topic by id (null name or
a non-zero id) is INVALID_REQUEST, answered as Kafka's ``getErrorResponse`` does (every topic
listed with the error, a null name as ""). v8+ may ask for authorized operations: without an
authorizer every operation is allowed, as in Kafka. v13 adds a top-level error code.

Auto-creation (``kbroker.api.auto_topic_creation``) asks the active controller for the topics
through the controller client, as Kafka's AutoTopicCreationManager sends it a CreateTopics, and
awaits its answer before the response is built. A topic the image then has is answered with its
partitions (on the active controller's node the records are applied once the controller answers);
one it does not have yet (the controller is on another node and this node's image has not applied
the records) is UNKNOWN_TOPIC_OR_PARTITION, Kafka 4.4's answer for a topic whose creation it has
sent to the controller, and the client asks again. A creation the controller refuses is
INVALID_TOPIC_EXCEPTION for an invalid name and UNKNOWN_TOPIC_OR_PARTITION otherwise (Kafka's
broker never passes the controller's other errors to a Metadata client).
"""

from __future__ import annotations

import struct
import uuid

from kbroker.api.auto_topic_creation import Created, auto_create
from kbroker.api.context import BrokerServices, RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.metadata.directories import has_online_dir
from kbroker.metadata.image import MetadataImage, PartitionState, TopicImage
from kbroker.metadata.new_topic import NewTopic
from kbroker.security.acls import (
    CLUSTER,
    CLUSTER_NAME,
    CREATE,
    DESCRIBE,
    TOPIC,
    authorized,
    authorized_operations,
)
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.metadata import MetadataRequest, MetadataResponse
from kbroker_protocol.primitives import Writer

ZERO_UUID = uuid.UUID(int=0)
UNSET_OPERATIONS = -(2**31)
TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))

Topic = MetadataResponse.MetadataResponseTopic
Part = MetadataResponse.MetadataResponseTopic.MetadataResponsePartition


def brokers_for(ctx: RequestContext) -> list[MetadataResponse.MetadataResponseBroker]:
    broker = ctx.broker
    listener = ctx.connection.endpoint.listener
    out = []
    for node_id, reg in sorted(broker.image.brokers.items()):
        if reg.fenced:
            continue
        if node_id == broker.node_id:
            host, port = broker.listener_endpoint(listener)
        else:
            ep = reg.endpoints.get(listener) or next(iter(reg.endpoints.values()))
            host, port = ep[0], ep[1]
        out.append(MetadataResponse.MetadataResponseBroker(node_id=node_id, host=host, port=port, rack=reg.rack))
    return out


def _has_listener(broker: BrokerServices, node_id: int, listener: str) -> bool | None:
    """Whether ``node_id`` is registered with ``listener`` (None: not registered at all)."""
    if node_id == broker.node_id:
        return True
    reg = broker.image.brokers.get(node_id)
    if reg is None:
        return None
    return listener in reg.endpoints


def _offline(broker: BrokerServices, node_id: int, listener: str, state: PartitionState) -> bool:
    """Kafka's ``isReplicaOffline``: not registered, fenced, without the request's listener, or
    in a log dir that is not one of the broker's online dirs (KIP-858)."""
    image = broker.image
    reg = image.brokers.get(node_id)
    if reg is None:
        return node_id != broker.node_id
    return (reg.fenced or (node_id != broker.node_id and listener not in reg.endpoints)
            or not has_online_dir(image, node_id, state))


def topic_metadata(ctx: RequestContext, topic: TopicImage, include_ops: bool) -> Topic:
    """The partitions as the image has them (Kafka's ``KRaftMetadataCache.partitionMetadata``):
    a leader that is not registered is LEADER_NOT_AVAILABLE, one without the request's listener
    LISTENER_NOT_FOUND (v6+; before, LEADER_NOT_AVAILABLE), both with leader -1; offline replicas
    are the unregistered, fenced or listener-less ones; v0 leaves out replicas without the
    listener and says REPLICA_NOT_AVAILABLE."""
    broker = ctx.broker
    version = ctx.api_version
    listener = ctx.connection.endpoint.listener
    # The partitions depend only on the image, the listener and the version's rules (v0 filters
    # replicas, v6+ says LISTENER_NOT_FOUND): computed once per image change (a topic of 10,000
    # partitions took a third of a second per request).
    derived = broker.image.derived
    key = ("metadata-partitions", topic.name, topic.topic_id, listener, 0 if version == 0 else 1 if version < 6 else 6)
    cached = derived.get(key)
    if isinstance(cached, list) and broker.image.topics.get(topic.name) is topic:
        partitions: list[Part] = cached
    else:
        partitions = _partitions(broker, topic, version, listener)
        derived[key] = partitions
    return Topic(
        error_code=ErrorCode.NONE,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.is_internal,
        partitions=partitions,
        topic_authorized_operations=(authorized_operations(ctx, TOPIC, topic.name, TOPIC_OPERATIONS)
                                     if include_ops else UNSET_OPERATIONS),
    )


def _partitions(broker: BrokerServices, topic: TopicImage, version: int, listener: str) -> list[Part]:
    partitions = []
    for index in sorted(topic.partitions):
        state = topic.partitions[index]
        replicas, isr = list(state.replicas), list(state.isr)
        if version == 0:
            replicas = [r for r in replicas if _has_listener(broker, r, listener)]
            isr = [r for r in isr if _has_listener(broker, r, listener)]
        offline = [r for r in state.replicas if _offline(broker, r, listener, state)]
        leader_alive = _has_listener(broker, state.leader, listener) if state.leader >= 0 else None
        leader = state.leader
        if not leader_alive:
            error = (ErrorCode.LISTENER_NOT_FOUND if leader_alive is False and version >= 6
                     else ErrorCode.LEADER_NOT_AVAILABLE)
            leader = -1
        elif len(replicas) < len(state.replicas) or len(isr) < len(state.isr):
            error = ErrorCode.REPLICA_NOT_AVAILABLE
        else:
            error = ErrorCode.NONE
        partitions.append(
            Part(
                error_code=error,
                partition_index=index,
                leader_id=leader,
                leader_epoch=state.leader_epoch,
                replica_nodes=replicas,
                isr_nodes=isr,
                offline_replicas=offline,
            )
        )
    return partitions


def _denied(name: str | None, topic_id: uuid.UUID = ZERO_UUID) -> Topic:
    return Topic(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, name=name, topic_id=topic_id, is_internal=False,
                 partitions=[], topic_authorized_operations=UNSET_OPERATIONS)


class EncodedMetadata:
    """A Metadata answer encoded once (with throttle_time_ms 0) and sent again while the image is
    unchanged: encoding the 10,000 partitions of a topic took most of a Metadata request's time.
    A quota may still set ``throttle_time_ms``, the body's first field from v3 on."""

    __slots__ = ("data", "throttle_time_ms")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.throttle_time_ms = 0

    def encode_into(self, w: Writer, version: int) -> None:
        if self.throttle_time_ms and version >= 3:
            w.buf += _THROTTLE.pack(self.throttle_time_ms)
            w.buf += memoryview(self.data)[4:]
        else:
            w.buf += self.data


_THROTTLE = struct.Struct(">i")
# Answers kept per image: each distinct request (list of topics, version, listener...) is one, and
# a quiet cluster keeps its image for hours. Past the bound, answers are encoded per request.
MAX_CACHED_ANSWERS = 256
_ANSWERS_KEY = "metadata-answers"


@api(3, 0, 13)
async def handle_metadata(ctx: RequestContext, request: MetadataRequest) -> MetadataResponse | EncodedMetadata:
    """Without an authorizer the answer depends only on the request, the listener and the image:
    it is encoded once per image change (`MetadataImage.derived`). An answer kept for the image
    asked for no auto-creation (see below), so neither does the same request while the image
    stays; otherwise the topics to create are awaited first (module docstring)."""
    broker = ctx.broker
    if broker.authorizer.enabled:
        return _metadata(ctx, request, await auto_create(ctx, _to_create(ctx, request)))
    version = ctx.api_version
    topics_key = None if request.topics is None else tuple(
        (t.name, getattr(t, "topic_id", None)) for t in request.topics)
    key = ("metadata-response", version, ctx.connection.endpoint.listener, topics_key,
           bool(getattr(request, "include_topic_authorized_operations", False)),
           bool(getattr(request, "include_cluster_authorized_operations", False)),
           bool(getattr(request, "allow_auto_topic_creation", True)))
    image = broker.image
    data = image.derived.get(key)
    if data is None:
        to_create = _to_create(ctx, request)
        created = await auto_create(ctx, to_create)
        image = broker.image
        offset = image.offset
        response = _metadata(ctx, request, created)
        w = Writer()
        response.encode_into(w, version)
        data = b"".join(w.parts())
        # Kept if no auto-creation was asked for (failed, or under way at the active controller:
        # as Kafka, the next request naming the topic tries again), the image did not change
        # while it was built and within MAX_CACHED_ANSWERS.
        if not to_create and broker.image is image and image.offset == offset and _take_answer_slot(image):
            image.derived[key] = data
    assert isinstance(data, bytes)
    return EncodedMetadata(data)


def _take_answer_slot(image: MetadataImage) -> bool:
    """Whether one more Metadata answer may be kept with ``image`` (then counted)."""
    count = image.derived.get(_ANSWERS_KEY, 0)
    assert isinstance(count, int)  # (only this function stores under _ANSWERS_KEY)
    if count >= MAX_CACHED_ANSWERS:
        return False
    image.derived[_ANSWERS_KEY] = count + 1
    return True


def _allow_auto_creation(broker: BrokerServices, request: MetadataRequest, version: int) -> bool:
    return bool(broker.config["auto.create.topics.enable"]) and (version < 4 or request.allow_auto_topic_creation)


def _to_create(ctx: RequestContext, request: MetadataRequest) -> list[NewTopic]:
    """The topics answering ``request`` auto-creates: named, absent from the image, and the
    principal may describe and create them (checked again by ``_metadata`` for its answer)."""
    broker = ctx.broker
    version = ctx.api_version
    if not request.topics or not _allow_auto_creation(broker, request, version):
        return []
    if 10 <= version < 12 and any(t.name is None or t.topic_id != ZERO_UUID for t in request.topics):
        return []  # INVALID_REQUEST
    names: list[str] = []
    for wanted in request.topics:
        name = wanted.name
        if (name is None or name in names or broker.image.topic(name) is not None
                or not authorized(ctx, DESCRIBE, TOPIC, name)
                or not (authorized(ctx, CREATE, CLUSTER, CLUSTER_NAME) or authorized(ctx, CREATE, TOPIC, name))):
            continue
        names.append(name)
    return [NewTopic(name) for name in names]


def _metadata(ctx: RequestContext, request: MetadataRequest, created: dict[str, Created]) -> MetadataResponse:
    broker = ctx.broker
    image = broker.image
    version = ctx.api_version
    include_ops = bool(getattr(request, "include_topic_authorized_operations", False))
    allow_auto = _allow_auto_creation(broker, request, version)
    topics: list[Topic] = []
    if 10 <= version < 12 and request.topics and any(
        t.name is None or t.topic_id != ZERO_UUID for t in request.topics
    ):
        return MetadataResponse(throttle_time_ms=0, brokers=[], cluster_id=None, controller_id=-1, topics=[
            Topic(error_code=ErrorCode.INVALID_REQUEST, name=t.name or "", topic_id=t.topic_id, is_internal=False,
                  partitions=[], topic_authorized_operations=UNSET_OPERATIONS)
            for t in request.topics
        ])
    if request.topics is None or (version == 0 and not request.topics):
        for known in sorted(image.topics):  # those the principal may describe (kbroker/security/acls.py)
            if authorized(ctx, DESCRIBE, TOPIC, known):
                topics.append(topic_metadata(ctx, image.topics[known], include_ops))
    else:
        for wanted in request.topics:
            name = wanted.name
            if name is None:
                topic_id = getattr(wanted, "topic_id", ZERO_UUID)
                topic = image.topic_by_id(topic_id)
                if topic is None:
                    topics.append(Topic(error_code=ErrorCode.UNKNOWN_TOPIC_ID, name=None, topic_id=topic_id,
                                        partitions=[], topic_authorized_operations=UNSET_OPERATIONS))
                elif not authorized(ctx, DESCRIBE, TOPIC, topic.name):
                    topics.append(_denied(None, topic_id))
                else:
                    topics.append(topic_metadata(ctx, topic, include_ops))
                continue
            if not authorized(ctx, DESCRIBE, TOPIC, name):
                topics.append(_denied(name))
                continue
            topic = image.topic(name)
            if topic is None and allow_auto and not (authorized(ctx, CREATE, CLUSTER, CLUSTER_NAME)
                                                     or authorized(ctx, CREATE, TOPIC, name)):
                topics.append(_denied(name))
                continue
            outcome = created.get(name) if topic is None and allow_auto else None
            if outcome is not None and outcome.error == ErrorCode.INVALID_TOPIC_EXCEPTION:
                topics.append(Topic(error_code=ErrorCode.INVALID_TOPIC_EXCEPTION, name=name, topic_id=ZERO_UUID,
                                    partitions=[], topic_authorized_operations=UNSET_OPERATIONS))
                continue
            if topic is None:  # not created, refused, or not yet in this node's image
                topics.append(Topic(error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name=name, topic_id=ZERO_UUID,
                                    partitions=[], topic_authorized_operations=UNSET_OPERATIONS))
            else:
                topics.append(topic_metadata(ctx, topic, include_ops))
    response = MetadataResponse(
        throttle_time_ms=0,
        brokers=brokers_for(ctx),
        cluster_id=broker.cluster_id,
        controller_id=broker.node_id,
        topics=topics,
    )
    if version <= 10 and getattr(request, "include_cluster_authorized_operations", False):
        response.cluster_authorized_operations = authorized_operations(ctx, CLUSTER, CLUSTER_NAME, CLUSTER_OPERATIONS)
    return response


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(3)
def _metadata_error(request: MetadataRequest, version: int, code: int) -> MetadataResponse:
    # Kafka leaves the top-level error code (v13+) at NONE and flags every requested topic.
    R = MetadataResponse
    return R(topics=[
        R.MetadataResponseTopic(name=topic.name or "", topic_id=topic.topic_id, error_code=code,
                                is_internal=False, partitions=[])
        for topic in request.topics or ()
    ])
