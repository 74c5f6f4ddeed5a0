"""The bound on the metadata records one user operation may write (Kafka's
QuorumController.MAX_RECORDS_PER_USER_OP and BoundedList).

Kafka gathers the records of a CreateTopics (its TopicRecord, ConfigRecords and PartitionRecords,
for every topic that passes its checks, validateOnly included) in a list bounded to 10,000 records.
The record past the bound throws BoundedListTooLongException, which fails the whole operation: the
controller answers it as PolicyViolationException("Unable to perform excessively large batch
operation.") and ControllerApis gives every topic of the request that error, with nothing written.
A single topic of 10,000 partitions therefore fails (10,001 records), although it passes the
separate bound on the partitions of one request (MAX_PARTITIONS_PER_REQUEST, at most 10,000).
"""

from __future__ import annotations

# Kafka's QuorumController.MAX_RECORDS_PER_USER_OP (= MAX_RECORDS_PER_BATCH).
MAX_RECORDS_PER_USER_OP = 10_000
BATCH_TOO_LARGE_MESSAGE = "Unable to perform excessively large batch operation."


class BatchTooLarge(Exception):
    """An operation would write more records than its bound (Kafka's BoundedListTooLongException)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Cannot add another element to the list because it would exceed the maximum "
                         f"length of {limit}")
        self.limit = limit


class RecordBudget:
    """Counts the records one user operation has planned; planning past ``limit`` raises
    :class:`BatchTooLarge` and leaves the count unchanged."""

    def __init__(self, limit: int = MAX_RECORDS_PER_USER_OP) -> None:
        if limit <= 0:
            raise ValueError(f"Invalid non-positive maxLength of {limit}")
        self.limit = limit
        self.used = 0

    def add(self, count: int) -> None:
        if count < 0:
            raise ValueError(f"negative record count {count}")
        if self.used + count > self.limit:
            raise BatchTooLarge(self.limit)
        self.used += count
