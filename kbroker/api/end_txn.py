"""EndTxn (key 26), v0-5.

Commits or aborts the producer's ongoing transaction: PrepareCommit/PrepareAbort is logged, a
COMMIT/ABORT marker is written to every partition of the transaction, the group offsets it
carries are completed, and CompleteCommit/CompleteAbort is logged before the answer. Retrying a
completed EndTxn with the same outcome answers NONE; the other outcome is INVALID_TXN_STATE.
PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v2. v5 is Transactions V2 (KIP-890): the
epoch is bumped by every EndTxn and the response carries the producer id and epoch to use next;
a retry (epoch one below, transaction completed the same way) gets them again.
"""

from __future__ import annotations

from kbroker.api.authorization import refused
from kbroker.api.context import RequestContext, require
from kbroker.api.registry import api
from kbroker.api.services import TxnServices
from kbroker.coordinator.txn_coordinator import TxnError
from kbroker.security.acls import TRANSACTIONAL_ID, WRITE
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.end_txn import EndTxnRequest, EndTxnResponse


@api(EndTxnRequest, EndTxnResponse, 0, 5)
async def handle_end_txn(ctx: RequestContext[TxnServices], request: EndTxnRequest) -> EndTxnResponse:
    # Kafka's checks, in its order (kbroker/security/acls.py)
    if (denied := refused(ctx, request, EndTxnResponse, [
        (WRITE, TRANSACTIONAL_ID, request.transactional_id, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)])) is not None:
        return denied
    version = ctx.api_version
    try:
        coordinator = require(ctx.broker.txn_coordinator, "the transaction coordinator")
        pid, epoch = await coordinator.end_txn(request.transactional_id, request.producer_id,
                                               request.producer_epoch, request.committed, v2=version >= 5)
    except TxnError as exc:
        code = exc.code
        if code == ErrorCode.PRODUCER_FENCED and version < 2:
            code = ErrorCode.INVALID_PRODUCER_EPOCH
        return EndTxnResponse(throttle_time_ms=0, error_code=code, producer_id=-1, producer_epoch=-1)
    return EndTxnResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, producer_id=pid, producer_epoch=epoch)
