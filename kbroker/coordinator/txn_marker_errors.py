"""How a leader's answer to a transaction marker is taken (``txn_markers``, ``txn_marker_channel``),
as Kafka 4.4's TransactionMarkerRequestCompletionHandler: written (the partition leaves the set
waiting for markers), retried (queued again for the partition's leader, which may have moved), or
the end of this coordinator's markers for the transaction (it stays Prepare* here; a newer
coordinator, or this one after reloading the partition, completes it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.coordinator.txn_coordinator_core import log
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.coordinator.txn_log import TxnMetadata

MARKER_RETRIABLE = frozenset({
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.NOT_ENOUGH_REPLICAS,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND, ErrorCode.REQUEST_TIMED_OUT, ErrorCode.KAFKA_STORAGE_ERROR,
})
# (A partition whose leader cannot take markers could not have taken the producer's records.)
MARKER_SKIPPED = frozenset({ErrorCode.NONE, ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT, ErrorCode.UNSUPPORTED_VERSION})
# The producer or the coordinator epoch moved on: this transaction is no longer this coordinator's
# to complete.
MARKER_FENCED = frozenset({ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.TRANSACTION_COORDINATOR_FENCED})
# Kafka's handler throws IllegalStateException on these ("fatal") as on any other error, and its
# sender thread then stops the broker (FatalExitError); here they stop the transaction's markers
# (logged as errors), the broker and the other transactions' markers go on.
MARKER_FATAL = frozenset({ErrorCode.CORRUPT_MESSAGE, ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE,
                          ErrorCode.INVALID_REQUIRED_ACKS})


def marker_retried(txn: TxnMetadata, topic: str, index: int, code: ErrorCode) -> bool | None:
    """Whether the marker answered ``code`` for ``topic-index`` is sent again (False: written or
    skipped), or None: no more markers for ``txn`` from this coordinator (logged)."""
    if code in MARKER_SKIPPED:
        if code != ErrorCode.NONE:
            log.info("marker for %s-%d of transaction %r: %s; the partition no longer waits for it", topic, index,
                     txn.transactional_id, code.name)
        return False
    if code in MARKER_RETRIABLE:
        log.info("marker for %s-%d of transaction %r not written: %s; retrying", topic, index,
                 txn.transactional_id, code.name)
        return True
    if code in MARKER_FENCED:
        log.info("marker for %s-%d of transaction %r failed for good: %s; no more markers for it from this "
                 "coordinator", topic, index, txn.transactional_id, code.name)
    else:
        log.error("%s error %s writing the marker for %s-%d of transaction %r; no more markers for it "
                  "from this coordinator", "fatal" if code in MARKER_FATAL else "unexpected", code.name, topic,
                  index, txn.transactional_id)
    return None
