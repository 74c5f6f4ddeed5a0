"""Run a real kbroker inside a test suite or any Python program.

Asynchronous code::

    async with EmbeddedBroker() as broker:
        print(broker.bootstrap_servers)

Synchronous code (the broker runs its own event loop on a thread)::

    with BrokerThread() as broker:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)

Both default to an ephemeral port on 127.0.0.1 and a temporary data directory removed on exit;
``config`` takes any ``server.properties`` keys.

Test controls (see :mod:`kbroker.control`): ``faults=[{"api": "Produce", "error":
"NOT_LEADER_OR_FOLLOWER", "count": 1}]`` installs fault rules before the first client connects;
``add_fault``, ``faults``, ``fired``, ``remove_fault``, ``clear_faults``, ``pause``/``resume``,
``start_trace``/``trace``/``negotiation``, ``reset``, ``snapshot`` change and inspect the running
broker; ``snapshot=DIR`` starts from a snapshot; ``clock="manual"`` gives the broker a clock that
moves only on ``advance(ms)`` (group and transaction timeouts, expirations, retention, delayed
produce and long polls: :mod:`kbroker.control.clock`); ``control=True`` also opens the HTTP control endpoint on an
ephemeral loopback port (``control_url``).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from kbroker.config import BrokerConfig

if TYPE_CHECKING:
    from kbroker.broker import Broker
    from kbroker.control.plane import ControlPlane
    from kbroker.json_types import JsonObject

T = TypeVar("T")

TEST_DEFAULTS = {
    "node.id": "1",
    "listeners": "PLAINTEXT://127.0.0.1:0",
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "5",
    "transaction.state.log.num.partitions": "5",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.num.partitions": "5",
}


def _config(config: Mapping[str, str] | None, data_dir: str) -> BrokerConfig:
    props = dict(TEST_DEFAULTS)
    props["log.dirs"] = data_dir
    props.update(config or {})
    return BrokerConfig(props)


class _Controls:
    """The test controls shared by :class:`EmbeddedBroker` and :class:`BrokerThread`; each call
    runs on the broker's loop (``_on_loop``)."""

    @property
    def broker(self) -> Broker | None:
        raise NotImplementedError

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on the broker's loop (``fn`` is synchronous)."""
        raise NotImplementedError

    def _on_loop_async(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> Any:
        """``fn()`` on the broker's loop: its coroutine for :class:`EmbeddedBroker` (the caller
        awaits it), its result for :class:`BrokerThread`."""
        raise NotImplementedError

    def _running(self) -> Broker:
        if self.broker is None:
            raise RuntimeError("the broker is not running")
        return self.broker

    def _plane(self) -> ControlPlane:
        return self._running().control

    def add_fault(self, spec: Mapping[str, object] | None = None, **fields: object) -> int:
        """Add a fault rule (fields as for ``POST /faults``); returns its id. Raises
        :class:`kbroker.control.faults.RuleError` (naming the field) for a bad rule."""
        rule = dict(spec or {}, **fields)

        def add() -> int:
            rule_id: int = self._plane().add_faults(rule)[0]["id"]
            return rule_id

        return self._on_loop(add)

    def faults(self) -> list[dict[str, Any]]:
        """The rules, each with ``matched`` and ``fired`` counts."""
        return self._on_loop(lambda: self._plane().list_faults())

    def fault(self, rule_id: int) -> dict[str, Any]:
        for rule in self.faults():
            if rule["id"] == rule_id:
                return rule
        raise KeyError(rule_id)

    def fired(self, rule_id: int | None = None) -> list[JsonObject]:
        """The firings (newest last): rule, api, version, correlation id, client id, connection."""
        return self._on_loop(lambda: self._plane().fired(rule_id))

    def remove_fault(self, rule_id: int) -> bool:
        return self._on_loop(lambda: self._plane().remove_fault(rule_id))

    def clear_faults(self) -> int:
        return self._on_loop(lambda: self._plane().clear_faults())

    def pause(self) -> None:
        """Stop serving: requests queue (in order) until :meth:`resume`."""
        self._on_loop(lambda: self._plane().pause())

    def resume(self) -> None:
        self._on_loop(lambda: self._plane().resume())

    def start_trace(self, path: str | None = None, **filters: object) -> None:
        """Trace every request (filters: ``api``, ``client_id``, ``topic``), to ``path`` if given."""
        from kbroker.control.trace import validate_filters

        checked = validate_filters(filters)
        self._on_loop(lambda: self._plane().start_trace(path, checked))

    def stop_trace(self) -> None:
        self._on_loop(lambda: self._plane().stop_trace())

    def trace(self, limit: int | None = None, **filters: object) -> list[dict[str, object]]:
        from kbroker.control.trace import validate_filters

        checked = validate_filters(filters)

        def read() -> list[dict[str, object]]:
            tracer = self._plane().tracer
            if tracer is None:
                raise RuntimeError("the trace is off: call start_trace() first")
            return tracer.records(checked, limit)

        return self._on_loop(read)

    def negotiation(self, client_id: str | None = None) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            tracer = self._plane().tracer
            if tracer is None:
                raise RuntimeError("the trace is off: call start_trace() first")
            return tracer.negotiation(None if client_id is None else [client_id])

        return self._on_loop(read)

    def set_disk_full(self, full: bool = True) -> None:
        """Appends fail with ENOSPC (Produce: KAFKA_STORAGE_ERROR) until called with False."""
        self._on_loop(lambda: self._plane().set_disk_full(full))

    def move_leadership(self, topic: str, partition: int) -> Any:
        """A new leader epoch for the partition; the next Produce to it gets NOT_LEADER_OR_FOLLOWER
        (awaitable on :class:`EmbeddedBroker`). Returns the leader and its new epoch."""
        return self._on_loop_async(lambda: self._plane().move_leadership(topic, partition))

    def move_coordinator(self, *, group: str | None = None, transactional_id: str | None = None) -> JsonObject:
        """The next request to the group's (or transactional id's) coordinator gets NOT_COORDINATOR."""
        return self._on_loop(lambda: self._plane().move_coordinator(group=group, transactional_id=transactional_id))

    def advance(self, ms: int) -> int:
        """Move a manual clock (``clock="manual"``) forward; timers due run at once. Returns the
        number of timers that ran."""
        def run() -> int:
            clock = self.broker.clock if self.broker is not None else None
            if clock is None:
                raise RuntimeError("the broker's clock is not manual: start it with clock='manual'")
            return clock.advance(ms)

        return self._on_loop(run)

    def reset(self, drop_connections: bool = False) -> Any:
        """Delete every topic, group, transaction and producer state, fault rule and pause: a fresh
        broker on the same ports (awaitable on :class:`EmbeddedBroker`). Returns what was deleted."""
        return self._on_loop_async(lambda: self._plane().reset(drop_connections=drop_connections))

    def snapshot(self, path: str) -> Any:
        """Copy the broker's whole state to the directory ``path`` (empty or absent); start a broker
        from it with ``snapshot=path`` (awaitable on :class:`EmbeddedBroker`)."""
        return self._on_loop_async(lambda: self._plane().snapshot(path))

    @property
    def control_url(self) -> str:
        """The HTTP control endpoint (start with ``control=True`` or kbroker.control.listeners)."""
        http = self._plane().http
        if http is None:
            raise RuntimeError("no control endpoint: start the broker with control=True")
        return http.url


def _control_config(config: Mapping[str, str] | None, control: bool, trace: str | None,
                    clock: str | None = None) -> dict[str, str]:
    props = dict(config or {})
    if clock is not None:
        props["kbroker.clock"] = clock
    if control and "kbroker.control.listeners" not in props:
        props["kbroker.control.listeners"] = "127.0.0.1:0"
    if trace is not None:
        props["kbroker.trace.file"] = trace
    return props


class EmbeddedBroker(_Controls):
    """A broker on the running event loop."""

    def __init__(self, config: Mapping[str, str] | None = None, data_dir: str | None = None, *,
                 faults: list[Mapping[str, object]] | None = None, control: bool = False,
                 trace: str | None = None, snapshot: str | None = None, clock: str | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="kbroker-")
        self.config = _config(_control_config(config, control, trace, clock), self.data_dir)
        self._snapshot = snapshot
        self._broker: Broker | None = None
        self._initial_faults = list(faults or [])
        if self._initial_faults:  # a bad rule fails here, before anything starts
            from kbroker.control.faults import FaultInjector

            FaultInjector().add_many(self._initial_faults)

    @property
    def broker(self) -> Broker | None:
        return self._broker

    def _on_loop(self, fn: Callable[[], T]) -> T:
        return fn()

    def _on_loop_async(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> Any:
        return fn()

    async def start(self) -> EmbeddedBroker:
        from kbroker.broker import Broker

        if self._snapshot is not None:
            from kbroker.control.state import restore

            try:
                restore(self._snapshot, self.config)
            except BaseException:
                self._cleanup()
                raise
        broker = self._broker = Broker(self.config)
        if self._initial_faults:
            broker.control.add_faults(self._initial_faults)
        try:
            await broker.start()
        except BaseException:
            await broker.stop()
            self._cleanup()
            raise
        return self

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.stop()
            self._broker = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def bootstrap_servers(self) -> str:
        return self._running().bootstrap_servers

    async def __aenter__(self) -> EmbeddedBroker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class BrokerThread(_Controls):
    """A broker with its own event loop on a daemon thread, for synchronous code."""

    def __init__(self, config: Mapping[str, str] | None = None, data_dir: str | None = None, *,
                 faults: list[Mapping[str, object]] | None = None, control: bool = False,
                 trace: str | None = None, snapshot: str | None = None, clock: str | None = None) -> None:
        self.embedded = EmbeddedBroker(config, data_dir, faults=faults, control=control, trace=trace,
                                       snapshot=snapshot, clock=clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def broker(self) -> Broker | None:
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

    def _on_loop(self, fn: Callable[[], T]) -> T:
        result: T = self.call(fn)
        return result

    def _on_loop_async(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> Any:
        return self.call(fn)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the broker's loop and return its result (for tests)."""
        assert self._loop is not None
        async def run() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def __enter__(self) -> BrokerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
