"""Log dir failures at run time: Kafka's LogDirFailureChannel and its handler.

In Kafka an I/O error while writing a partition's files (an ``IOException``: no space left, an I/O
error, a read-only file system) marks the partition's *log dir* failed
(``LogDirFailureChannel.maybeAddOfflineLogDir``); the failed operation answers
KAFKA_STORAGE_ERROR, nothing more is written to that dir, and ``LogManager.handleLogDirFailure``
stops serving its logs; when no log dir is left it logs ``Shutdown broker because all log dirs in
... have failed`` and halts the process (``Exit.halt(1)``), so that the controller fences the
broker and moves leadership to the other replicas.

Here a `LogManager` registers a handler for each of its log dirs (`register`); a partition log
that hits a storage error reports it (`report`, from `PartitionLog`'s write paths) with its dir.
A failed dir is reported once. A running broker's handler for the last dir
does not halt in the failing thread: it halts once the requests in flight, the failing append's
produce among them, are answered KAFKA_STORAGE_ERROR (kbroker/wiring/dir_halt.py), as Kafka's
halt comes from its LogDirFailureHandler thread while the request thread answers. Errors that say nothing about the disk (no descriptor left, out of
memory, an interrupted call) are not dir failures: the descriptor budget (fd_budget.py) deals with
those. An error injected by replacing a log's ``append`` (the control endpoint's simulated full
disk) never reaches `report`.

The KRaft metadata log (``__cluster_metadata-0`` in ``metadata.log.dir``, and its quorum-state
file) is different: any I/O error while writing it halts the node at once
(`metadata_log_failed`), whether or not other log dirs remain, as Kafka (KafkaRaftClientDriver's
fatal fault handler, ReplicaManager's "Shutdown broker because the metadata log dir ... has
failed"): its in-memory state may no longer match what is on disk, and a node that cannot write
its Raft log must not vote or lead.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

# errno values of an OSError that are not a failure of the disk
NOT_STORAGE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EINTR, errno.EAGAIN})

Handler = Callable[[Path, str, OSError], None]

_handlers: dict[Path, Handler] = {}
_lock = threading.Lock()


def is_storage_error(exc: BaseException) -> bool:
    """An OSError that means the disk failed (no space, I/O error, read-only...)."""
    return isinstance(exc, OSError) and exc.errno not in NOT_STORAGE_ERRNOS


def register(log_dir: Path, handler: Handler) -> None:
    with _lock:
        _handlers[Path(log_dir)] = handler


def unregister(log_dir: Path, handler: Handler) -> None:
    with _lock:
        if _handlers.get(Path(log_dir)) == handler:
            del _handlers[Path(log_dir)]


def report(log_dir: Path, what: str, exc: BaseException) -> None:
    """``what`` (e.g. "appending to topic-0") failed in ``log_dir`` with ``exc``: a storage error
    fails the dir (its handler runs in this thread); anything else is ignored here."""
    if not isinstance(exc, OSError) or not is_storage_error(exc):
        return
    with _lock:
        handler = _handlers.get(Path(log_dir))
    if handler is not None:
        handler(Path(log_dir), what, exc)


def halt(status: int = 1) -> None:
    """Kafka's ``Exit.halt``: end the process now, without the orderly shutdown (which would try to
    write to the failed dir again). The log handlers are flushed first so the reason is kept."""
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: BLE001 - nothing may stop the halt
            pass
    sys.stderr.flush()
    os._exit(status)


def metadata_log_failed(directory: Path, what: str, exc: BaseException) -> None:
    """``what`` failed in the metadata log in ``directory`` with ``exc``: log it and halt with
    status 1. (Returns only when ``halt`` is replaced, in tests: the caller then re-raises.)"""
    logger.critical("Error while %s in the metadata log dir %s: %s", what, directory, exc)
    logger.critical("Shutdown broker because the metadata log dir %s has failed", directory)
    halt(1)
