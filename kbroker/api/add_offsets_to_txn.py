"""AddOffsetsToTxn (key 25), v0-4.

Adds the group's ``__consumer_offsets`` partition to the transaction, so that offsets sent with
TxnOffsetCommit become visible when (and only if) the transaction commits. Errors as
AddPartitionsToTxn; PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v2.
"""

from __future__ import annotations

from kbroker.api.authorization import refused
from kbroker.api.context import RequestContext, require
from kbroker.api.registry import api
from kbroker.api.services import TxnServices
from kbroker.coordinator.txn_coordinator import TxnError
from kbroker.security.acls import GROUP, READ, TRANSACTIONAL_ID, WRITE
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.add_offsets_to_txn import AddOffsetsToTxnRequest, AddOffsetsToTxnResponse


@api(AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, 0, 4)
async def handle_add_offsets_to_txn(ctx: RequestContext[TxnServices], request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse:
    # Kafka's checks, in its order (kbroker/security/acls.py)
    if (denied := refused(ctx, request, AddOffsetsToTxnResponse, [
        (WRITE, TRANSACTIONAL_ID, request.transactional_id, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        (READ, GROUP, request.group_id, ErrorCode.GROUP_AUTHORIZATION_FAILED)])) is not None:
        return denied
    try:
        await require(ctx.broker.txn_coordinator, "the transaction coordinator").add_offsets(
            request.transactional_id, request.producer_id, request.producer_epoch, request.group_id)
        code = ErrorCode.NONE
    except TxnError as exc:
        code = exc.code
        if code == ErrorCode.PRODUCER_FENCED and ctx.api_version < 2:
            code = ErrorCode.INVALID_PRODUCER_EPOCH
    return AddOffsetsToTxnResponse(throttle_time_ms=0, error_code=code)
