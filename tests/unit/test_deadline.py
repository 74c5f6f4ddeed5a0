"""kbroker/replication/deadline.py: a delayed operation's wait on the real clock (a held fetch, an
acks=all produce). Completed, it resumes the waiting task in the next loop iteration; at its
deadline it returns with the future cancelled; a cancellation of the waiting task propagates."""

from __future__ import annotations

import asyncio

import pytest

from kbroker.replication.deadline import Deadline


def test_a_completed_wait_resumes_in_the_next_loop_iteration() -> None:
    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        deadline = Deadline(60_000)
        order: list[object] = []

        async def waiter() -> None:
            await deadline.wait(fut)
            order.append("woken")

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)  # the waiter is parked on fut
        await asyncio.sleep(0)

        def tick(i: int) -> None:  # one entry per loop iteration
            order.append(i)
            if i < 3:
                loop.call_soon(tick, i + 1)

        fut.set_result(None)
        loop.call_soon(tick, 0)
        await task
        return order

    order = asyncio.run(main())
    # woken in the iteration that follows set_result, before the callback queued after it
    # (asyncio.wait_for's inner waiter took one iteration more: [0, "woken", 1, ...])
    assert order[0] == "woken"


def test_at_the_deadline_the_wait_returns_and_the_future_is_cancelled() -> None:
    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        deadline = Deadline(5)
        await deadline.wait(fut)
        return fut.cancelled(), deadline.passed

    cancelled, passed = asyncio.run(main())
    assert cancelled and passed


def test_a_cancelled_waiting_task_is_cancelled_not_timed_out() -> None:
    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        deadline = Deadline(60_000)
        reached = False

        async def waiter() -> None:
            nonlocal reached
            await deadline.wait(fut)
            reached = True

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return reached, fut.cancelled()

    reached, fut_cancelled = asyncio.run(main())
    assert not reached
    assert fut_cancelled


def test_a_wait_whose_deadline_passed_returns_at_once() -> None:
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        await Deadline(0).wait(fut)
        return fut.done()

    assert asyncio.run(main()) is False
