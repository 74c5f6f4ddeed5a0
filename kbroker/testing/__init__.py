"""Run a real kbroker inside a test suite or any Python program.

Asynchronous code::

    async with EmbeddedBroker() as broker:
        print(broker.bootstrap_servers)

Synchronous code (the broker runs its own event loop on a thread)::

    with BrokerThread() as broker:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)

Both default to an ephemeral port on 127.0.0.1 and a temporary data directory removed on exit;
``config`` takes any ``server.properties`` keys.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from kbroker.config import BrokerConfig

TEST_DEFAULTS = {
    "node.id": "1",
    "listeners": "PLAINTEXT://127.0.0.1:0",
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "5",
    "transaction.state.log.num.partitions": "5",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
}


def _config(config: Mapping[str, str] | None, data_dir: str) -> BrokerConfig:
    props = dict(TEST_DEFAULTS)
    props["log.dirs"] = data_dir
    props.update(config or {})
    return BrokerConfig(props)


class EmbeddedBroker:
    """A broker on the running event loop."""

    def __init__(self, config: Mapping[str, str] | None = None, data_dir: str | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="kbroker-")
        self.config = _config(config, self.data_dir)
        self.broker: Any = None

    async def start(self) -> EmbeddedBroker:
        from kbroker.broker import Broker

        self.broker = Broker(self.config)
        try:
            await self.broker.start()
        except BaseException:
            await self.broker.stop()
            self._cleanup()
            raise
        return self

    async def stop(self) -> None:
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers

    async def __aenter__(self) -> EmbeddedBroker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class BrokerThread:
    """A broker with its own event loop on a daemon thread, for synchronous code."""

    def __init__(self, config: Mapping[str, str] | None = None, data_dir: str | None = None) -> None:
        self.embedded = EmbeddedBroker(config, data_dir)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def broker(self) -> Any:
        return self.embedded.broker

    @property
    def bootstrap_servers(self) -> str:
        return self.embedded.bootstrap_servers

    @property
    def data_dir(self) -> str:
        return self.embedded.data_dir

    def start(self) -> BrokerThread:
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.embedded.start())
            except BaseException as exc:  # reported to the starting thread
                error.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.embedded.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="kbroker", daemon=True)
        self._thread.start()
        ready.wait()
        if error:
            raise error[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop = None

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the broker's loop and return its result (for tests)."""
        assert self._loop is not None
        async def run():
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def __enter__(self) -> BrokerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
