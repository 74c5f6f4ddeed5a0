"""DescribeTransactions (key 65), v0.

State, timeout, start time, producer id/epoch and partitions of each transactional id;
TRANSACTIONAL_ID_NOT_FOUND for an id the coordinator does not know, INVALID_REQUEST for an empty
one (as Kafka's TransactionCoordinator). An id the principal may not DESCRIBE answers
TRANSACTIONAL_ID_AUTHORIZATION_FAILED (the other fields at their zero values), and the topics of a
transaction are listed only when the principal may DESCRIBE them (Kafka's
handleDescribeTransactionsRequest).
"""

from __future__ import annotations

from kbroker.api.context import RequestContext, require
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import TxnServices
from kbroker.security.acls import DESCRIBE, TOPIC, TRANSACTIONAL_ID, authorized
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.describe_transactions import (
    DescribeTransactionsRequest,
    DescribeTransactionsResponse,
)

State = DescribeTransactionsResponse.TransactionState
TopicData = State.TopicData


@api(DescribeTransactionsRequest, DescribeTransactionsResponse, 0, 0)
def handle_describe_transactions(ctx: RequestContext[TxnServices], request: DescribeTransactionsRequest) -> DescribeTransactionsResponse:
    coordinator = ctx.broker.txn_coordinator
    out = []
    for tid in request.transactional_ids:
        if not authorized(ctx, DESCRIBE, TRANSACTIONAL_ID, tid):
            out.append(State(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, transactional_id=tid,
                             transaction_state="", transaction_timeout_ms=0, transaction_start_time_ms=0,
                             producer_id=0, producer_epoch=0, topics=[]))
            continue
        txn = require(coordinator, "the transaction coordinator").txns.get(tid)
        if txn is None:
            code = ErrorCode.TRANSACTIONAL_ID_NOT_FOUND if tid else ErrorCode.INVALID_REQUEST
            out.append(State(error_code=code, transactional_id=tid,
                             transaction_state="", transaction_timeout_ms=0, transaction_start_time_ms=-1,
                             producer_id=-1, producer_epoch=-1, topics=[]))
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, index in sorted(txn.partitions):
            by_topic.setdefault(topic, []).append(index)
        out.append(State(
            error_code=ErrorCode.NONE, transactional_id=tid, transaction_state=txn.state.display,
            transaction_timeout_ms=txn.timeout_ms, transaction_start_time_ms=txn.start_ms,
            producer_id=txn.producer_id, producer_epoch=txn.producer_epoch,
            topics=[TopicData(topic=t, partitions=ps) for t, ps in by_topic.items()
                    if authorized(ctx, DESCRIBE, TOPIC, t)],
        ))
    return DescribeTransactionsResponse(throttle_time_ms=0, transaction_states=out)


# -- the error response (Kafka's getErrorResponse of the request) ----------------------------------


@refusal(65)
def _describe_transactions_error(request: DescribeTransactionsRequest, version: int, code: int) -> DescribeTransactionsResponse:
    R = DescribeTransactionsResponse
    return R(transaction_states=[R.TransactionState(transactional_id=txn_id, error_code=code)
                                 for txn_id in request.transactional_ids])
