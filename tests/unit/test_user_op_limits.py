"""The record bound of one controller operation (kbroker.controller.user_op_limits), as Kafka's
BoundedList with QuorumController.MAX_RECORDS_PER_USER_OP."""

from __future__ import annotations

import pytest

from kbroker.controller.user_op_limits import (
    BATCH_TOO_LARGE_MESSAGE,
    MAX_RECORDS_PER_USER_OP,
    BatchTooLarge,
    RecordBudget,
)


def test_kafkas_limit_and_message():
    assert MAX_RECORDS_PER_USER_OP == 10_000
    assert BATCH_TOO_LARGE_MESSAGE == "Unable to perform excessively large batch operation."


def test_records_up_to_the_limit_fit_and_one_more_does_not():
    budget = RecordBudget(5)
    budget.add(3)
    budget.add(2)
    assert budget.used == 5
    with pytest.raises(BatchTooLarge):
        budget.add(1)
    assert budget.used == 5  # the refused add counts nothing
    budget.add(0)


def test_one_add_over_the_limit_is_refused_whole():
    budget = RecordBudget(5)
    with pytest.raises(BatchTooLarge) as exc:
        budget.add(6)
    assert exc.value.limit == 5 and budget.used == 0


def test_default_limit_is_kafkas():
    budget = RecordBudget()
    budget.add(MAX_RECORDS_PER_USER_OP)
    with pytest.raises(BatchTooLarge):
        budget.add(1)


@pytest.mark.parametrize("limit", [0, -1])
def test_non_positive_limit_is_refused(limit):
    with pytest.raises(ValueError):
        RecordBudget(limit)


def test_negative_count_is_refused():
    with pytest.raises(ValueError):
        RecordBudget(5).add(-1)
