"""The halt of a broker whose every log dir has failed, after the requests in flight are answered.

In Kafka 4.4 the request that hits the storage error is answered: ``LocalLog.maybeHandleIOException``
(called by ``UnifiedLog.append``) adds the dir to the ``LogDirFailureChannel`` and throws a
``KafkaStorageException``, which ``ReplicaManager.appendToLocalLog`` turns into KAFKA_STORAGE_ERROR
in the produce response. The halt happens in another thread: ``ReplicaManager``'s
``LogDirFailureHandler`` takes the dir from the channel, ``handleLogDirFailure`` stops serving its
replicas and ``LogManager.handleLogDirFailure`` logs ``Shutdown broker because all log dirs in ...
have failed`` and calls ``Exit.halt(1)`` when no live dir is left. So the producers whose appends
failed (and the other requests answered meanwhile) read KAFKA_STORAGE_ERROR rather than a dropped
connection (a seeded fault run saw it on Kafka).

kbroker's log dir failure is reported in the thread that hit it, on the event loop for a produce
append, before the request's error is raised; halting there (``os._exit``) would drop that answer.
`HaltAfterAnswers` makes the order deterministic: on the loop, it notes every request in flight
at that moment on every client connection, and halts (``dir_failure.halt(1)``) once each of them
is answered and written to its socket, or after ``grace`` seconds for requests parked longer (a
long-polling fetch, a produce waiting for followers), which the halt cuts off as Kafka's does.
The failing produce is answered in a few loop steps: the log is offline already, so the produce
requests behind it answer KAFKA_STORAGE_ERROR too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from kbroker.log import dir_failure

log = logging.getLogger(__name__)

# How long requests in flight may hold the halt (Kafka's: the failure handler thread's own work).
HALT_GRACE_S = 1.0


class _Transport(Protocol):
    def get_write_buffer_size(self) -> int: ...


class _Connection(Protocol):
    """What is read of a client connection (``kbroker.server.connection.KafkaConnection``)."""

    @property
    def closed(self) -> bool: ...

    @property
    def transport(self) -> _Transport | None: ...

    @property
    def in_flight(self) -> tuple[object, ...]: ...

    @property
    def output_stalled(self) -> bool: ...


class HaltAfterAnswers:
    """``LogManager.on_all_dirs_failed`` of a running broker (see the module docstring)."""

    def __init__(self, connections: Iterable[_Connection], *, grace: float = HALT_GRACE_S,
                 halt: Callable[[], None] | None = None) -> None:
        self._connections = connections
        self._grace = grace
        self._halt = halt
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._waiting: list[tuple[_Connection, list[object]]] = []
        self._deadline = 0.0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the connections run on (before this is called, a failure halts at once)."""
        self._loop = loop

    def __call__(self) -> None:
        """Every log dir failed (called in the failing thread, once)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._do_halt()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._start()
        else:
            try:
                loop.call_soon_threadsafe(self._start)
            except RuntimeError:  # (closed meanwhile)
                self._do_halt()

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._grace
        self._waiting = [(conn, list(_pending(conn))) for conn in list(self._connections)]
        unanswered = sum(len(slots) for _, slots in self._waiting)
        log.info("halting once the requests in flight are answered (%d, at most %.1f s)", unanswered, self._grace)
        # (checked from the next loop step: the failing request raises its error after this call)
        loop.call_soon(self._check)

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        self._waiting = [(conn, slots) for conn, slots in self._waiting if not _answered(conn, slots)]
        if not self._waiting:
            log.info("halting: the requests in flight are answered")
            self._do_halt()
            return
        if loop.time() >= self._deadline:
            unanswered = sum(len(slots) for _, slots in self._waiting)
            log.info("halting with %d requests in flight unanswered", unanswered)
            self._do_halt()
            return
        # Each loop step (an answer is queued in the step its handler finishes, written in the
        # same or the next one); a short timer once the ready work has run.
        loop.call_later(0.001, self._check)

    def _do_halt(self) -> None:
        if self._halt is not None:
            self._halt()
        else:
            dir_failure.halt(1)  # (looked up now: tests replace it)


def _pending(conn: _Connection) -> Iterable[object]:
    """The connection's requests not yet written out, in order."""
    return conn.in_flight


def _answered(conn: _Connection, slots: list[object]) -> bool:
    """Every request of ``slots`` was written to the socket (or the connection is gone)."""
    if conn.closed:
        return True
    pending = {id(p) for p in _pending(conn)}
    if any(id(slot) in pending for slot in slots):
        return False
    if conn.output_stalled:
        return False
    transport = conn.transport
    return transport is None or transport.get_write_buffer_size() == 0
