"""FindCoordinator (key 10), v0-6.

v0 looks up a group; v1+ adds the key type (0 group, 1 transaction); v3+ is flexible; v4+ batches
keys in ``coordinator_keys`` and answers per key. Keys are not validated (as in Kafka, an empty id
maps to a partition like any other).

Groups and transactional ids are answered alike, as Kafka's ``KafkaApis.getCoordinator`` does,
from the metadata alone: the leader of the key's partition of the internal topic
(``__consumer_offsets`` / ``__transaction_state``). While that topic does not exist the answer is
COORDINATOR_NOT_AVAILABLE, answered at once, and the topic is asked of the active controller
through the controller client in the background (Kafka's ``getCoordinator`` and
``AutoTopicCreationManager``; kbroker.replication.topics.ensure_internal_topic): the client
retries, as it does for any COORDINATOR_NOT_AVAILABLE. A partition without a live leader here (or
a broker shutting down) is COORDINATOR_NOT_AVAILABLE too. A
coordinator still loading its partition is found like any other: the group and transaction APIs
themselves answer COORDINATOR_LOAD_IN_PROGRESS until it is loaded.

Key type 2 (the share coordinator, v6+; INVALID_REQUEST before) takes a share partition key
``groupId:topicId:partition`` (INVALID_REQUEST when malformed) and answers the leader of its
``__share_group_state`` partition, created on first lookup like the others; an unknown key type
INVALID_REQUEST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.coordinator.share_state import ShareKeyCoordinator, parse_share_key
from kbroker.security import acls
from kbroker.security.acls import authorized
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse

if TYPE_CHECKING:
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.share_coordinator import ShareCoordinator
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator
    from kbroker.metadata.image import MetadataImage

GROUP, TRANSACTION, SHARE = 0, 1, 2


class FindCoordinatorServices(Authorizing, Protocol):
    """What FindCoordinator uses of the broker."""

    @property
    def group_coordinator(self) -> GroupCoordinator | None: ...
    image: MetadataImage
    node_id: int
    @property
    def share_coordinator(self) -> ShareCoordinator | None: ...
    stopping: bool  # shutting down
    @property
    def txn_coordinator(self) -> TransactionCoordinator | None: ...

    def listener_endpoint(self, listener: str) -> tuple[str, int]: ...


class _KeyCoordinator(Protocol):
    """A coordinator as FindCoordinator sees it: its internal topic, and the partition of a key."""

    @property
    def topic_name(self) -> str: ...

    def ensure_topic(self) -> bool: ...

    def partition_for(self, key: str, /) -> int: ...


def _coordinator(broker: FindCoordinatorServices, key_type: int) -> _KeyCoordinator | None:
    if key_type == GROUP:
        return broker.group_coordinator
    if key_type == SHARE:
        share = broker.share_coordinator
        return None if share is None else ShareKeyCoordinator(share.store)
    return broker.txn_coordinator


def _lookup(ctx: RequestContext[FindCoordinatorServices], key: str, key_type: int, topic_existed: dict[int, bool], found: dict[str, int],
            creating: list[_KeyCoordinator]) -> tuple[ErrorCode, str | None]:
    """``topic_existed``: per key type, whether the internal topic existed when the request came
    (Kafka creates it asynchronously, so every key of the request that found it missing answers
    COORDINATOR_NOT_AVAILABLE); ``creating``: the coordinators whose topic is to be created."""
    if key_type == SHARE:
        try:
            parse_share_key(key)
        except ValueError:
            return ErrorCode.INVALID_REQUEST, None
    if key_type not in (GROUP, TRANSACTION, SHARE):
        return ErrorCode.INVALID_REQUEST, f"Unknown coordinator type {key_type}"
    # Kafka: DESCRIBE on the group or transactional id (kbroker/security/acls.py)
    if key_type == GROUP and not authorized(ctx, acls.DESCRIBE, acls.GROUP, key):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, default_message(ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if key_type == TRANSACTION and not authorized(ctx, acls.DESCRIBE, acls.TRANSACTIONAL_ID, key):
        return (ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                default_message(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED))
    broker = ctx.broker
    coordinator = _coordinator(broker, key_type)
    if coordinator is None or broker.stopping:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
    if key_type not in topic_existed:
        topic_existed[key_type] = broker.image.topic(coordinator.topic_name) is not None
        if not topic_existed[key_type]:
            creating.append(coordinator)
    if not topic_existed[key_type]:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
    topic = broker.image.topic(coordinator.topic_name)
    state = None if topic is None else topic.partitions.get(coordinator.partition_for(key))
    # The coordinator is the leader of the key's partition (Kafka's getPartitionLeaderEndpoint on
    # the request's listener): none, fenced, or without that listener is COORDINATOR_NOT_AVAILABLE.
    if state is None or state.leader < 0:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
    found[key] = state.leader
    if state.leader != broker.node_id:
        reg = broker.image.brokers.get(state.leader)
        if reg is None or reg.fenced or ctx.connection.endpoint.listener not in reg.endpoints:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
    return ErrorCode.NONE, None


def _node(ctx: RequestContext[FindCoordinatorServices], leader: int) -> tuple[int, str, int]:
    """(node id, host, port) of a partition leader on the request's listener."""
    broker = ctx.broker
    listener = ctx.connection.endpoint.listener
    if leader == broker.node_id:
        host, port = broker.listener_endpoint(listener)
        return leader, host, port
    host, port, _protocol = broker.image.brokers[leader].endpoints[listener]
    return leader, host, port


@api(FindCoordinatorRequest, FindCoordinatorResponse, 0, 6)
async def handle_find_coordinator(ctx: RequestContext[FindCoordinatorServices], request: FindCoordinatorRequest) -> FindCoordinatorResponse:
    creating: list[_KeyCoordinator] = []
    response = _find_coordinator(ctx, request, creating)
    # The keys that found their coordinator's topic missing answer COORDINATOR_NOT_AVAILABLE now;
    # the creation is asked of the controller without waiting for it (as Kafka's getCoordinator).
    for coordinator in creating:
        coordinator.ensure_topic()
    return response


def _find_coordinator(ctx: RequestContext[FindCoordinatorServices], request: FindCoordinatorRequest, creating: list[_KeyCoordinator]
                      ) -> FindCoordinatorResponse:
    version = ctx.api_version
    found: dict[str, int] = {}
    if version < 4:
        key_type = request.key_type if version >= 1 else GROUP
        message: str | None
        if key_type == SHARE:  # refused before any lookup (which would create the share topic)
            error, message = ErrorCode.INVALID_REQUEST, "Share coordinator keys need FindCoordinator v6"
        else:
            error, message = _lookup(ctx, request.key, key_type, {}, found, creating)
        if error != ErrorCode.NONE:
            return FindCoordinatorResponse(error_code=error, error_message=message or default_message(error),
                                           node_id=-1, host="", port=-1)
        node_id, host, port = _node(ctx, found[request.key])
        return FindCoordinatorResponse(error_code=ErrorCode.NONE, error_message=None, node_id=node_id, host=host,
                                       port=port)
    out = []
    existed: dict[int, bool] = {}
    if version >= 6 or request.key_type != SHARE:
        for key in request.coordinator_keys:
            error, message = _lookup(ctx, key, request.key_type, existed, found, creating)
            if error != ErrorCode.NONE:
                out.append(FindCoordinatorResponse.Coordinator(
                    key=key, node_id=-1, host="", port=-1, error_code=error,
                    error_message=message or default_message(error)))
            else:
                node_id, host, port = _node(ctx, found[key])
                out.append(FindCoordinatorResponse.Coordinator(key=key, node_id=node_id, host=host, port=port,
                                                               error_code=ErrorCode.NONE, error_message=None))
    else:
        for key in request.coordinator_keys:
            out.append(FindCoordinatorResponse.Coordinator(
                key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.INVALID_REQUEST,
                error_message="Share coordinator keys need FindCoordinator v6"))
    return FindCoordinatorResponse(coordinators=out)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(10)
def _find_coordinator_error(request: FindCoordinatorRequest, version: int, code: int) -> FindCoordinatorResponse:
    R = FindCoordinatorResponse
    message = default_message(code)
    if version < 4:
        return R(error_code=code, error_message=message, node_id=-1, host="", port=-1)
    return R(coordinators=[
        R.Coordinator(key=key, node_id=-1, host="", port=-1, error_code=code, error_message=message)
        for key in request.coordinator_keys
    ])
