"""The tests' waiting helpers (tests/integration/waiting.py): the value the predicate gave once it
held, a failure naming what was awaited once the deadline passed, and (async) other tasks running
while it waits."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.waiting import async_wait_until, wait_until


def test_wait_until_returns_the_value_once_the_predicate_holds() -> None:
    calls = iter(range(100))
    assert wait_until(lambda: next(calls) >= 3 and "ready", timeout=5, interval=0.001) == "ready"


def test_wait_until_fails_naming_what_it_waited_for_with_its_details() -> None:
    with pytest.raises(AssertionError, match=r"^timed out waiting for the answer: 3 calls$"):
        wait_until(lambda: None, timeout=0.05, interval=0.01, message="the answer", details=lambda: "3 calls")


async def test_async_wait_until_lets_the_loop_run_the_task_it_waits_on() -> None:
    events: list[int] = []

    async def producer() -> None:
        for i in range(3):
            await asyncio.sleep(0)
            events.append(i)

    task = asyncio.ensure_future(producer())
    assert await async_wait_until(lambda: len(events) == 3 and list(events), timeout=5, interval=0.001) == [0, 1, 2]
    await task


async def test_async_wait_until_fails_naming_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"^timed out waiting for a member: \[\]$"):
        await async_wait_until(lambda: [], timeout=0.05, interval=0.01, message="a member", details=lambda: [])
