"""ListTransactions (key 66), v0-2.

Every transactional id the coordinator knows, filtered by state names (unknown names are
echoed in UnknownStateFilters), producer ids, v1+ a minimum duration of Ongoing transactions
(DurationFilter, ms), and v2+ a regular expression on the id (KIP-1152). Only the ids the
principal may DESCRIBE are listed (Kafka's handleListTransactionsRequest).
"""

from __future__ import annotations

import re

from kbroker.api.context import RequestContext, require
from kbroker.api.registry import api
from kbroker.api.services import TxnServices
from kbroker.coordinator.txn_log import STATE_BY_NAME
from kbroker.security.acls import DESCRIBE, TRANSACTIONAL_ID, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.list_transactions import ListTransactionsRequest, ListTransactionsResponse

State = ListTransactionsResponse.TransactionState


@api(ListTransactionsRequest, ListTransactionsResponse, 0, 2)
def handle_list_transactions(ctx: RequestContext[TxnServices], request: ListTransactionsRequest) -> ListTransactionsResponse:
    version = ctx.api_version
    coordinator = ctx.broker.txn_coordinator
    states = list(request.state_filters or ())
    unknown = [s for s in states if s not in STATE_BY_NAME]
    known = [s for s in states if s in STATE_BY_NAME]
    if states and not known:
        return ListTransactionsResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, unknown_state_filters=unknown,
                                        transaction_states=[])
    duration = request.duration_filter if version >= 1 else -1
    pattern = request.transactional_id_pattern if version >= 2 else None
    try:
        txns = require(coordinator, "the transaction coordinator").list_transactions(
            known, list(request.producer_id_filters or ()), duration, pattern)
    except re.error:
        return ListTransactionsResponse(throttle_time_ms=0, error_code=ErrorCode.INVALID_REGULAR_EXPRESSION,
                                        unknown_state_filters=unknown, transaction_states=[])
    return ListTransactionsResponse(
        throttle_time_ms=0, error_code=ErrorCode.NONE, unknown_state_filters=unknown,
        transaction_states=[State(transactional_id=t.transactional_id, producer_id=t.producer_id,
                                  transaction_state=t.state.display) for t in txns
                            if authorized(ctx, DESCRIBE, TRANSACTIONAL_ID, t.transactional_id)],
    )
