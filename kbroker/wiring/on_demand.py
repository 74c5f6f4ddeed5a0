"""Broker services built when first needed (issue 14, start-up): the coordinators
(``kbroker.wiring.coordinators``) and delayed delivery (``kbroker.wiring.delayed``).

Such a service follows internal topics of its own. :class:`OnDemand` stands for it among the
broker's services: a broker starting on metadata that holds one of those topics builds and starts
it with its other services (its state loads at start-up, as before); otherwise importing and
building it waits for its first use (:meth:`OnDemand.get`, which the broker's attribute reads) or
for the metadata creating one of its topics (their TopicRecord, before any partition of them opens
here), and it is then started at once, as it would have been at start-up with nothing to load.
Read from another thread while the broker runs, it is built and started on the broker's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from kbroker.metadata.image import MetadataImage

T = TypeVar("T")


class ImageHolder(Protocol):
    @property
    def image(self) -> MetadataImage: ...


class OnDemand(Generic[T]):
    """A service built by :meth:`_build` when first needed (see the module's docstring), as one of
    the broker's services (``start()``/``stop()``) and its image listener."""

    topics: frozenset[str] = frozenset()  # the internal topics it follows

    def __init__(self, broker: ImageHolder) -> None:
        self._host = broker
        self._built: T | None = None
        self._running = False  # between start() and stop(): built now, it is started at once
        self._started = False  # the built one was started
        self._building = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the broker's, where it is started
        broker.image.listeners.append(self.on_metadata_record)

    # -- what a subclass provides ---------------------------------------------------------------------

    def _build(self) -> T:
        raise NotImplementedError

    def _start_built(self, built: T) -> None:
        raise NotImplementedError

    async def _stop_built(self, built: T) -> None:
        raise NotImplementedError

    def _needed_at_start(self) -> bool:
        """Built with the broker's services: the metadata holds one of its topics."""
        image = self._host.image
        return any(image.topic(name) is not None for name in self.topics)

    def _on_record(self, built: T, record: object) -> None:
        """A metadata record, once built (none by default)."""

    # -- building ------------------------------------------------------------------------------------

    @property
    def built(self) -> bool:
        return self._built is not None

    def peek(self) -> T | None:
        """The service if it was built (building none)."""
        return self._built

    def get(self) -> T:
        """The service, built (and started while the broker runs) if it was not yet."""
        built = self._built
        if built is not None:
            return built
        loop = self._loop
        if self._running and loop is not None and not _running_on(loop):
            # read from another thread (a test's): built and started on the broker's loop, where its
            # timers and tasks run
            asyncio.run_coroutine_threadsafe(_call(self.get), loop).result()
            assert self._built is not None
            return self._built
        if self._building:
            raise RuntimeError(f"{type(self).__name__}: needed while it is being built")
        self._building = True
        try:
            built = self._built = self._build()
        finally:
            self._building = False
        if self._running:
            self._started = True
            self._start_built(built)
        return built

    # -- the broker's service ------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = True
        if self._built is not None or self._needed_at_start():
            built = self.get()  # started by it if it builds it now
            if not self._started:  # built before the broker started
                self._started = True
                self._start_built(built)

    async def stop(self) -> None:
        was_running, self._running = self._running, False
        if self._built is not None and was_running and self._started:
            self._started = False  # (a start after this one starts it again, as the control plane's reset does)
            await self._stop_built(self._built)

    def forget(self) -> None:
        """Forget the (stopped) service: a new one is built when next needed."""
        self._built = None
        self._started = False

    # -- hooks -----------------------------------------------------------------------------------------

    def on_metadata_record(self, record: object) -> None:
        """The metadata image's listener: the creation of one of its topics needs it."""
        built = self._built
        if built is None:
            if not self._running or type(record).__name__ != "TopicRecord" \
                    or getattr(record, "name", None) not in self.topics:
                return
            built = self.get()
        self._on_record(built, record)

    def _needed_for(self, topic: str) -> T | None:
        """For the broker's partition hooks: the service if built, else built now for a partition
        of its topics while the broker runs, else None (nothing of it to follow yet)."""
        if self._built is None and not (self._running and topic in self.topics):
            return None
        return self.get()


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()
