"""A fault-injecting TCP proxy (asyncio, in a thread of its own), for kernels without ``tc netem``.

One ``Proxy`` listens on a port and forwards to one target. Every connection is attributed to a
source by the peer's address (``sources``: address -> name; others are ``"client"``), and the faults
are set per source at run time from any thread:

* ``delay`` seconds added to every chunk, both ways (order kept: a chunk waits until it is due);
* ``loss``: the probability that a chunk is dropped; a dropped chunk resets the connection (both
  sides are aborted: a TCP stream cannot lose bytes in the middle and stay a stream);
* ``cut()``: abort the open connections now (of one source or all); new ones are accepted.

``ProxyHub`` runs the event loop and owns the proxies.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("faults.proxy")
CHUNK = 65536


@dataclass
class LinkFaults:
    delay: float = 0.0
    loss: float = 0.0


class Proxy:
    def __init__(self, hub: ProxyHub, name: str, listen_host: str, target: tuple[str, int],
                 sources: dict[str, str] | None = None, seed: int = 0) -> None:
        self.hub = hub
        self.name = name
        self.listen_host = listen_host
        self.target = target
        self.sources = dict(sources or {})
        self.faults: dict[str, LinkFaults] = {}
        self.rng = random.Random(seed)
        self.port = 0
        self.accepted = 0
        self.resets = 0
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[tuple[str, asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    # -- control (any thread) ---------------------------------------------------------------------

    def set(self, source: str | None = None, delay: float | None = None, loss: float | None = None) -> None:
        """Set the faults of one source (``None``: every source, present and future)."""
        def apply() -> None:
            names = [source] if source is not None else ["*", *self.faults]
            for name in names:
                f = self.faults.setdefault(name, LinkFaults(**vars(self.faults.get("*", LinkFaults()))))
                if delay is not None:
                    f.delay = delay
                if loss is not None:
                    f.loss = loss
        self.hub.call(apply)

    def clear(self) -> None:
        self.hub.call(self.faults.clear)

    def cut(self, source: str | None = None) -> int:
        """Abort the open connections (of ``source``, or all); how many were cut."""
        def apply() -> int:
            n = 0
            for conn in list(self._conns):
                if source is None or conn[0] == source:
                    self._abort(conn)
                    n += 1
            return n
        return self.hub.call(apply)

    def connections(self) -> int:
        return self.hub.call(lambda: len(self._conns))

    # -- data path (event loop) --------------------------------------------------------------------

    def _faults(self, source: str) -> LinkFaults:
        return self.faults.get(source) or self.faults.get("*") or LinkFaults()

    def _abort(self, conn: tuple[str, asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        self._conns.discard(conn)
        for writer in conn[1:]:
            writer.transport.abort()

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._handle, self.listen_host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            self._abort(conn)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        source = self.sources.get(peer, "client")
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 10.0)
        except (TimeoutError, OSError):
            writer.transport.abort()
            return
        conn = (source, writer, up_writer)
        self._conns.add(conn)
        try:
            await asyncio.gather(self._pump(conn, reader, up_writer), self._pump(conn, up_reader, writer))
        finally:
            self._abort(conn)

    async def _pump(self, conn: tuple[str, asyncio.StreamWriter, asyncio.StreamWriter],
                    reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; chunks wait out the delay in a queue so that order and throughput stay."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            try:
                while True:
                    due, data = await queue.get()
                    if not data:
                        break
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    writer.write(data)
                    await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()
            except (ConnectionError, OSError):
                self._abort(conn)  # this side was reset: so is the other, as on the real connection

        sender = asyncio.ensure_future(send())
        try:
            while conn in self._conns:
                data = await reader.read(CHUNK)
                if not data:
                    break
                faults = self._faults(conn[0])
                if faults.loss and self.rng.random() < faults.loss:
                    self.resets += 1
                    self._abort(conn)
                    return
                queue.put_nowait((time.monotonic() + faults.delay, data))
            queue.put_nowait((0.0, b""))
            await sender
        except (ConnectionError, OSError):
            # A reset (a node killed with data unread, say) resets the other side too: a client
            # connected to the node itself would see it, instead of a connection that swallows its
            # requests until its own timeout.
            self._abort(conn)
        finally:
            sender.cancel()


LAG_TICK_S = 0.1


class ProxyHub:
    """An asyncio event loop in a daemon thread, hosting proxies.

    The loop's lag is watched (``take_lag``): a timer due every ``LAG_TICK_S`` notes how late it
    ran. Every connection between the nodes crosses this loop, in the harness's process: a loop
    that runs late (the process starved of CPU, the GIL held by another of its threads) delays
    every message between the nodes, as a slow network would."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.loop = asyncio.new_event_loop()
        self.proxies: list[Proxy] = []
        self._lag_lock = threading.Lock()
        self._lag_ticks, self._lag_max, self._lag_total = 0, 0.0, 0.0
        self._thread = threading.Thread(target=self.loop.run_forever, name="proxy-hub", daemon=True)
        self._thread.start()
        self._lag_task = asyncio.run_coroutine_threadsafe(self._watch_lag(), self.loop)

    async def _watch_lag(self) -> None:
        while True:
            due = time.monotonic() + LAG_TICK_S
            await asyncio.sleep(LAG_TICK_S)
            late = max(0.0, time.monotonic() - due)
            with self._lag_lock:
                self._lag_ticks += 1
                self._lag_total += late
                self._lag_max = max(self._lag_max, late)

    def take_lag(self) -> dict[str, float]:
        """The loop's lag since the last call: ticks run, the longest and the summed lateness (ms)."""
        with self._lag_lock:
            out = {"ticks": self._lag_ticks, "max_ms": round(self._lag_max * 1000, 1),
                   "total_ms": round(self._lag_total * 1000, 1)}
            self._lag_ticks, self._lag_max, self._lag_total = 0, 0.0, 0.0
        return out

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, timeout: float = 30.0) -> Any:
        async def wrapper() -> Any:
            return fn()
        return self.run(wrapper(), timeout)

    def add(self, name: str, listen_host: str, target: tuple[str, int], sources: dict[str, str] | None = None,
            port: int = 0) -> Proxy:
        proxy = Proxy(self, name, listen_host, target, sources, seed=self.seed + len(self.proxies))
        self.run(proxy.start(port))
        self.proxies.append(proxy)
        return proxy

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self._lag_task.cancel()
        for proxy in self.proxies:
            try:
                self.run(proxy.close(), 10.0)
            except Exception:  # noqa: BLE001 - best effort at the end of a run
                log.exception("closing proxy %s", proxy.name)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
