"""The CPU the step timer (``kbroker.server.slots.timed``) adds to a request whose handler returns
an awaitable, on its own (issue 21).

A 64 KiB Produce batch is validated off the event loop, so its handler returns an awaitable that
waits once (on the validation) and completes in a second task step: with metrics on, the
connection wraps it in ``timed``, which reads the clock around each step. This runs that shape
``--requests`` times in one process (a task awaiting a handler coroutine that waits on a future,
the future then resolved), with and without ``timed``, and prints the process CPU per request of
each and the difference. The connection's other per-request metrics work (clock readings per
read, per write and when the response is ready; ``RequestStats.requests_sent``) is not in it.

Usage: ``.venv/bin/python scripts/bench_step_timer.py [--requests 100000] [--repeat 3] [--asyncio]``
(uvloop by default, as ``python -m kbroker`` runs).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable

from kbroker.server.slots import Slot, timed


async def _handler(waits_on: asyncio.Future[None]) -> int:
    await waits_on
    return 1


async def _answer_after(awaitable: Awaitable[object]) -> object:
    return await awaitable  # the connection's task (KafkaConnection._answer_after), without its answer


async def _per_request(requests: int, wrap: bool) -> float:
    loop = asyncio.get_running_loop()
    slot = Slot(None)
    start = time.process_time()
    for _ in range(requests):
        waits_on: asyncio.Future[None] = loop.create_future()
        coroutine = _handler(waits_on)
        task = loop.create_task(_answer_after(timed(coroutine, slot) if wrap else coroutine))
        await asyncio.sleep(0)  # the task's first step: the handler waits on the future
        waits_on.set_result(None)
        await task  # its second step: the handler completes
    return (time.process_time() - start) / requests * 1e6


async def _run(requests: int, repeat: int) -> None:
    for _ in range(repeat):
        plain = await _per_request(requests, False)
        stepped = await _per_request(requests, True)
        print(f"CPU per request: without timed {plain:.2f} us, with timed {stepped:.2f} us, "
              f"difference {stepped - plain:+.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--asyncio", action="store_true", help="the asyncio event loop instead of uvloop")
    args = parser.parse_args()
    if args.asyncio:
        asyncio.run(_run(args.requests, args.repeat))
    else:
        import uvloop

        uvloop.run(_run(args.requests, args.repeat))


if __name__ == "__main__":
    main()
