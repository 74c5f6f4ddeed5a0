"""InitProducerId (key 22), v0-6.

With a null TransactionalId (idempotent producers, the default of the Java and kafka-python
clients) the broker hands out a fresh producer id at epoch 0 from a block the controller reserved
durably in the metadata log (AllocateProducerIds through ``ctx.broker.controller_client``), so ids
are never reused across restarts or brokers (``kbroker/replication/producer_ids.py``); a request
waits for a block when none is at hand, and is answered COORDINATOR_LOAD_IN_PROGRESS (retried by
clients) when the controller cannot give one. As in Kafka, a producer id and epoch named
in such a request are ignored (idempotent clients bump their epoch themselves): the broker never
hands out an epoch of an id it did not just allocate, so one client cannot fence another's id.
Transactional ids go to the transaction coordinator when one is installed on the broker
(``kbroker/coordinator/txn_coordinator.py``): a new id gets a producer id at epoch 0, a known one its epoch bumped (fencing older instances, whose ongoing transaction is
aborted first), PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v4) when a v3+ request names an id
and epoch the transactional id no longer has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kbroker.api.context import RequestContext
from kbroker.api.error_response import error_response_as, refusal
from kbroker.api.registry import api
from kbroker.api.services import Authorizing
from kbroker.replication.producer_ids import ProducerIdsUnavailable
from kbroker.security.acls import TRANSACTIONAL_ID, WRITE, authorized, idempotent_write_allowed
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.init_producer_id import InitProducerIdRequest, InitProducerIdResponse

if TYPE_CHECKING:
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator
    from kbroker.replication.producer_ids import ProducerIdManager


class InitProducerIdServices(Authorizing, Protocol):
    """What InitProducerId uses of the broker."""

    producer_ids: ProducerIdManager
    @property
    def txn_coordinator(self) -> TransactionCoordinator | None: ...


@api(InitProducerIdRequest, InitProducerIdResponse, 0, 6)
async def handle_init_producer_id(ctx: RequestContext[InitProducerIdServices], request: InitProducerIdRequest) -> InitProducerIdResponse:
    if request.transactional_id is not None and not authorized(ctx, WRITE, TRANSACTIONAL_ID,
                                                               request.transactional_id):
        # Kafka: WRITE on the transactional id (kbroker/security/acls.py)
        return error_response_as(InitProducerIdResponse, request, ctx.api_version, int(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED))
    if request.transactional_id is None and not idempotent_write_allowed(ctx):
        # Kafka: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (authorizeByResourceType)
        return error_response_as(InitProducerIdResponse, request, ctx.api_version, int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    broker = ctx.broker
    try:
        await broker.producer_ids.ensure()
    except ProducerIdsUnavailable as exc:
        return InitProducerIdResponse(throttle_time_ms=0, error_code=exc.code, producer_id=-1, producer_epoch=-1)
    if request.transactional_id is not None:
        coordinator = broker.txn_coordinator
        if coordinator is None:
            return InitProducerIdResponse(throttle_time_ms=0, error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                                          producer_id=-1, producer_epoch=-1)
        return await _transactional(ctx, coordinator, request, request.transactional_id)
    try:
        producer_id = broker.producer_ids.allocate()
    except ProducerIdsUnavailable as exc:
        return InitProducerIdResponse(throttle_time_ms=0, error_code=exc.code, producer_id=-1, producer_epoch=-1)
    return InitProducerIdResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, producer_id=producer_id,
                                  producer_epoch=0)


async def _transactional(ctx: RequestContext[InitProducerIdServices], coordinator: TransactionCoordinator,
                         request: InitProducerIdRequest, transactional_id: str) -> InitProducerIdResponse:
    from kbroker.coordinator.txn_coordinator import TxnError

    version = ctx.api_version
    pid, epoch = (request.producer_id, request.producer_epoch) if version >= 3 else (-1, -1)
    try:
        pid, epoch = await coordinator.init_producer_id(transactional_id, request.transaction_timeout_ms,
                                                  pid, epoch)
    except TxnError as exc:
        code = exc.code
        if code == ErrorCode.PRODUCER_FENCED and version < 4:
            code = ErrorCode.INVALID_PRODUCER_EPOCH
        return InitProducerIdResponse(throttle_time_ms=0, error_code=code, producer_id=-1, producer_epoch=-1)
    return InitProducerIdResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, producer_id=pid,
                                  producer_epoch=epoch)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(22)
def _init_producer_id_error(request: InitProducerIdRequest, version: int, code: int) -> InitProducerIdResponse:
    return InitProducerIdResponse(error_code=code, producer_id=-1, producer_epoch=-1)
