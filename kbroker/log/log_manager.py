"""All partition logs of a broker, and the background maintenance thread.

`LogManager` places each partition directory (``<topic>-<partition>``) in the log dir holding
the fewest partitions (among those not cordoned, KIP-1066: ``cordoned_dirs``), loads every existing partition at start-up (recovering it if needed; a
corrupt partition loads offline), and runs one maintenance thread that, every
``maintenance_interval_s``:

* queues the write-back of each active segment's new data (4 MiB or more; see `writeback`),
* flushes logs whose ``flush.ms`` has passed,
* applies retention (``retention.ms``, ``retention.bytes``, the log start),
* compacts logs with ``cleanup.policy`` containing ``compact``,
* checkpoints recovery points every ``checkpoint_interval_s``,
* removes the directories of deleted partitions,
* releases segment files kept open beyond the descriptor budget while in use (see fd_budget).

`move` (AlterReplicaLogDirs) moves a partition to another log dir, and a move a crash interrupted
is repaired at load; the file steps and their crash safety are in `dir_move`.

A log dir that cannot be used at start-up (it cannot be created or listed) is *offline*, as in
Kafka: the others load; a partition the broker should host that is in no online dir is served by an
offline placeholder (every operation raises `LogDirOfflineError`, KAFKA_STORAGE_ERROR) instead of
being created empty elsewhere, as Kafka refuses to create a log that is not new while a log dir is
offline; new partitions go to the online dirs. Its data is back when the dir is.

`close` stops the thread, then closes every log cleanly (fsync, checkpoint, clean-shutdown marker).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import dir_failure, dir_move
from .cleaner import clean_log
from .config import LogConfig
from .dir_move import FUTURE_DIR_SUFFIX
from .errors import LogCorruptedError
from .fd_budget import BUDGET
from .log_state import sync_filesystem
from .partition_log import DELETE_DIR_SUFFIX, PartitionLog
from .roll import run_logged
from .thread_names import name_os_thread

CLOSE_THREADS = 8

logger = logging.getLogger(__name__)



class LogDirOfflineError(LogCorruptedError):
    """The log dir holding a partition is offline (KAFKA_STORAGE_ERROR)."""

    def __init__(self, log_dir: Path, reason: str) -> None:
        Exception.__init__(self, f"{reason} ({log_dir})")
        self.path = log_dir
        self.offset = -1
        self.position = -1
        self.reason = reason


class _OfflineSegment:
    """The one segment of an offline placeholder log: empty, no file; appends take the checked path."""

    append_limits = None
    base_offset = next_offset = size = reserved_end = 0

    def close(self) -> None:
        pass




def parse_partition_dir(name: str) -> tuple[str, int] | None:
    topic, sep, partition = name.rpartition("-")
    if not sep or not topic or not partition.isdigit():
        return None
    return topic, int(partition)


class LogManager:
    def __init__(
        self,
        log_dirs: list[Path],
        default_config: LogConfig,
        *,
        clock: Callable[[], float] = time.time,
        config_for: Callable[[str], LogConfig] | None = None,
        maintenance_interval_s: float = 1.0,
        checkpoint_interval_s: float = 60.0,
        verify: str = "recovery",
        exclude_topics: frozenset[str] = frozenset(),
        retention_in_rounds: bool = True,
        recovery_threads: int = 1,
    ) -> None:
        """Load every partition found in ``log_dirs``.

        ``recovery_threads``: threads per log dir that open (and, after a crash, recover) its
        partitions, as Kafka's ``num.recovery.threads.per.data.dir``; a recovered log is fsynced
        and checkpointed, so with many partitions the load waits on the disk, not the CPU.

        ``config_for(topic)`` gives the config of existing topics at load time (default: the
        default config); `get_or_create` with a config replaces it later.
        ``retention_in_rounds=False``: the background rounds leave retention and compaction to
        explicit ``run_maintenance(retention=True)`` calls (a broker on a manual clock makes them
        every ``log.retention.check.interval.ms`` of that clock's time).
        """
        if not log_dirs:
            raise ValueError("at least one log dir is needed")
        self.log_dirs = [Path(d) for d in log_dirs]
        self.default_config = default_config
        self.clock = clock
        self.retention_in_rounds = retention_in_rounds
        self._maintenance_lock = threading.Lock()  # one round at a time (the thread's or a caller's)
        self.maintenance_interval_s = maintenance_interval_s
        self.checkpoint_interval_s = checkpoint_interval_s
        self._verify = verify
        self._config_for = config_for
        # topics whose directories are not partition logs of this manager (the Raft metadata log)
        self._exclude_topics = exclude_topics
        self._recovery_threads = max(1, recovery_threads)
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rounds = 0
        self._round_done = threading.Condition()
        self._thread: threading.Thread | None = None
        # Runs the disk waits of segment rolls off the appending thread (log/roll.py) and makes
        # the directories of new partitions (`make_dirs`); started and stopped with the
        # maintenance thread (None: the work is done at once, by the caller).
        self._roll_worker: ThreadPoolExecutor | None = None
        self._pending_removal: list[Path] = []
        self._last_checkpoint = clock()
        self._closed = False
        self.offline_dirs: list[Path] = []
        # KIP-1066: log dirs that take no new partition while another online dir does
        # (cordoned.log.dirs; the broker keeps this current)
        self.cordoned_dirs: frozenset[Path] = frozenset()
        for log_dir in self.log_dirs:
            try:
                log_dir.mkdir(parents=True, exist_ok=True)
                next(iter(log_dir.iterdir()), None)
            except OSError as exc:
                logger.error("log dir %s is offline: %s", log_dir, exc)
                self.offline_dirs.append(log_dir)
        if len(self.offline_dirs) == len(self.log_dirs):
            raise LogDirOfflineError(self.log_dirs[0], "all log dirs are offline")
        # Called (in the failing thread) once every log dir has failed at run time; the broker
        # halts there, as Kafka (dir_failure.py). None: the logs just stay offline.
        self.on_all_dirs_failed: Callable[[], None] | None = None
        # Called (in the failing thread) when a log dir fails and others remain: the broker tells
        # the controller (kbroker/wiring/jbod.py). None: the logs just stay offline.
        self.on_dir_failed: Callable[[Path], None] | None = None
        for log_dir in self.online_dirs:
            dir_failure.register(log_dir, self._dir_failed)
        self._load()

    def _open_log(self, directory: Path, config: LogConfig, *, clock: Callable[[], float],
                  verify: str, lazy_dir: bool = False) -> PartitionLog:
        """`PartitionLog.open`, the log's rolls completed by this manager's roll worker."""
        log = PartitionLog.open(directory, config, clock=clock, verify=verify, lazy_dir=lazy_dir)
        log.roll_scheduler = self._schedule_roll
        return log

    def _schedule_roll(self, task: Callable[[], object]) -> None:
        """Run a roll's completion on the roll worker (in roll order), or at once without one."""
        worker = self._roll_worker
        if worker is not None:
            try:
                worker.submit(run_logged, task)
                return
            except RuntimeError:  # (shut down meanwhile)
                pass
        task()

    def drain_worker(self) -> None:
        """Wait until every task queued on the roll worker so far (roll completions, directories
        of new partitions) has run."""
        worker = self._roll_worker
        if worker is not None:
            with contextlib.suppress(RuntimeError):
                worker.submit(lambda: None).result()

    def _dir_failed(self, log_dir: Path, what: str, exc: OSError) -> None:
        """A storage error in ``log_dir`` (Kafka's LogManager.handleLogDirFailure): the dir goes
        offline with every log in it (KAFKA_STORAGE_ERROR from then on, nothing more written
        there); with no log dir left, `on_all_dirs_failed`."""
        with self._lock:
            if log_dir in self.offline_dirs or log_dir not in self.log_dirs:
                return
            self.offline_dirs.append(log_dir)
            logs = [log for log in self._logs.values() if log.directory.parent == log_dir]
            all_failed = not self.online_dirs
        logger.error("Error while %s in dir %s: %s", what, log_dir, exc)
        logger.warning("Stopping serving logs in dir %s", log_dir)
        offline = LogDirOfflineError(log_dir, f"the log dir failed: {exc}")
        for log in logs:
            with log.lock:
                if log.offline is None:
                    log._go_offline(offline)
        if all_failed:
            logger.critical("Shutdown broker because all log dirs in %s have failed",
                            ", ".join(str(d) for d in self.log_dirs))
            if self.on_all_dirs_failed is not None:
                self.on_all_dirs_failed()
        elif self.on_dir_failed is not None:
            self.on_dir_failed(log_dir)

    @property
    def online_dirs(self) -> list[Path]:
        return [d for d in self.log_dirs if d not in self.offline_dirs]

    def _new_log_dir(self, counts: dict[Path, int]) -> Path:
        """Where a new partition goes (Kafka's LogManager.nextLogDirs): the online dir holding the
        fewest partitions among those not cordoned; the first online dir when all are cordoned."""
        online = self.online_dirs
        usable = [d for d in online if d not in self.cordoned_dirs]
        if len(online) == 1 or not usable:
            return online[0]
        return min(usable, key=lambda d: counts[d])

    def _offline_placeholder(self, topic: str, partition: int, config: LogConfig) -> PartitionLog:
        """A partition that may be in an offline log dir: offline, touching no file."""
        where = self.offline_dirs[0]
        log = PartitionLog(where / f"{topic}-{partition}", config, self.clock)
        log._segments = [_OfflineSegment()]  # type: ignore[list-item]
        log._go_offline(LogDirOfflineError(where, f"Log directories {[str(d) for d in self.offline_dirs]} are offline"))
        return log

    def _load(self) -> None:
        futures: list[Path] = []
        for log_dir in self.online_dirs:
            found: list[tuple[tuple[str, int], Path, LogConfig]] = []
            for path in sorted(log_dir.iterdir()):
                if not path.is_dir():
                    continue
                if path.name.endswith(DELETE_DIR_SUFFIX):
                    self._pending_removal.append(path)
                    continue
                if path.name.endswith(FUTURE_DIR_SUFFIX):
                    futures.append(path)
                    continue
                parsed = parse_partition_dir(path.name)
                if parsed is None or parsed[0] in self._exclude_topics:
                    continue
                if parsed in self._logs:
                    raise RuntimeError(f"partition {path.name} found in two log dirs: {self._logs[parsed].directory}, {path}")
                config = self._config_for(parsed[0]) if self._config_for else self.default_config
                found.append((parsed, path, config))
            loaded = self._open_logs(found)
            for (parsed, _path, _config), log in zip(found, loaded, strict=True):
                self._logs[parsed] = log
            self._sync_markers_removed(log_dir, loaded)
        for path in futures:
            self._recover_move(path)
        self._remove_deleted_dirs()

    def _open_logs(self, found: list[tuple[tuple[str, int], Path, LogConfig]]) -> list[PartitionLog]:
        """Open the logs of one log dir, in order, on up to ``recovery_threads`` threads (their
        files are apart; the descriptor budget and the roll worker lock what they share). If any
        fails, the first failure is raised once every open has ended."""

        def one(item: tuple[tuple[str, int], Path, LogConfig]) -> PartitionLog:
            return self._open_log(item[1], item[2], clock=self.clock, verify=self._verify)

        threads = min(self._recovery_threads, len(found))
        if threads <= 1:
            return [one(item) for item in found]
        with ThreadPoolExecutor(threads, thread_name_prefix="log-recovery", initializer=name_os_thread) as pool:
            return list(pool.map(one, found))

    @staticmethod
    def _sync_markers_removed(log_dir: Path, logs: list[PartitionLog]) -> None:
        """Opening a cleanly closed log removes its clean-shutdown marker without a directory
        fsync (and leaves that fsync to its first flush). One syncfs for the whole log dir makes
        every removal durable before the broker serves: a marker back after a power loss would
        skip the recovery of data appended since this start."""
        reopened = [log for log in logs if log._dirs_unsynced]
        if not reopened:
            return
        try:
            sync_filesystem(log_dir)
        except OSError as exc:  # each log's first flush still fsyncs its directory
            logger.warning("syncfs of %s failed: %s", log_dir, exc)
            return
        for log in reopened:
            with log.lock:
                log._dirs_unsynced = False

    def _recover_move(self, future: Path) -> None:
        """A move interrupted by a crash (see the module docstring)."""
        name = dir_move.partition_name(future)
        parsed = parse_partition_dir(name)
        if parsed is None or parsed in self._logs or not dir_move.is_complete(future):
            logger.info("removing %s: an unfinished log dir move", future)
            self._pending_removal.append(future)
            return
        target = dir_move.finish_interrupted(future)
        logger.info("finished the interrupted move of %s to %s", name, future.parent)
        config = self._config_for(parsed[0]) if self._config_for else self.default_config
        self._logs[parsed] = self._open_log(target, config, clock=self.clock, verify=self._verify)

    def _reopen(self, closed: PartitionLog, directory: Path) -> PartitionLog:
        """The log ``closed`` by a move, opened from ``directory`` (its copy, or itself after a
        failed copy) with what only memory held: its config, high watermark and roll listener."""
        log = self._open_log(directory, closed.config, clock=self.clock, verify=self._verify)
        # As Kafka's replaceCurrentWithFutureLog: the high watermark, not the log end that opening
        # set (a replicated partition's records above it are not committed).
        log.high_watermark = closed.high_watermark
        log.roll_listener = closed.roll_listener
        return log

    def log_dir_of(self, topic: str, partition: int) -> Path | None:
        log = self._logs.get((topic, partition))
        return None if log is None else log.directory.parent

    def move(self, topic: str, partition: int, dest: Path) -> PartitionLog:
        """Move the partition's log to the log dir ``dest`` (one of ``log_dirs``); returns the log
        now serving it (the same one when it is there already). Appends wait meanwhile. A copy
        that fails raises its OSError, the log reopened where it was (`get` returns it)."""
        key = (topic, partition)
        with self._lock:
            log = self._logs.get(key)
            if log is None:
                raise KeyError(key)
            if dest not in self.log_dirs:
                raise ValueError(f"{dest} is not a log dir")
            if self.offline_dirs:
                # Kafka creates no future log while a log dir is offline.
                raise LogDirOfflineError(self.offline_dirs[0], "a log dir is offline")
            if log.directory.parent == dest:
                return log
            source = log.directory
            with log.lock:
                log.close(clean=True)
                try:
                    future = dir_move.copy_to_future(source, dest)
                except OSError:  # (no space, ...): the partition stays where it was, served again
                    self._logs[key] = self._reopen(log, source)
                    raise
                gone, target = dir_move.swap_in(source, future, dest)
                self._pending_removal.append(gone)
            moved = self._logs[key] = self._reopen(log, target)
        if self._thread is None:
            self._remove_deleted_dirs()
        logger.info("moved %s-%d from %s to %s", topic, partition, source.parent, dest)
        return moved

    # -- partitions ----------------------------------------------------------------------------

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def get_or_create(self, topic: str, partition: int, config: LogConfig | None = None, *,
                      new: bool = True) -> PartitionLog:
        """The partition's log, created empty if missing; ``config`` replaces the current one.
        ``new=False`` (a partition the metadata already had): while a log dir is offline, a missing
        log is not created but served offline (see the module docstring)."""
        key = (topic, partition)
        with self._lock:
            log = self._logs.get(key)
            if log is None and not new and self.offline_dirs:
                log = self._offline_placeholder(topic, partition, config or self.default_config)
                self._logs[key] = log
                return log
            if log is None:
                counts = {d: 0 for d in self.online_dirs}
                for existing in self._logs.values():
                    parent = existing.directory.parent
                    if parent in counts:
                        counts[parent] += 1
                log_dir = self._new_log_dir(counts)
                log = self._open_log(
                    log_dir / f"{topic}-{partition}", config or self.default_config, clock=self.clock, verify=self._verify
                )
                self._logs[key] = log
            elif config is not None:
                log.config = config
            return log

    def create_logs(self, keys: list[tuple[str, int]], config: LogConfig) -> list[tuple[str, int]]:
        """Create the logs of new partitions, all or none, their directories left to `make_dirs`
        (after the controller committed them, as Kafka's broker makes its logs when it applies
        the partition records) or to the first write into them (``lazy_dir`` of
        `PartitionLog.open`).

        Safe to call from a worker thread. If one cannot be created (``OSError``), every log
        created by this call is removed again and the error is raised. Returns the keys created
        (those already present are left as they are).
        """
        created: list[tuple[str, int]] = []
        with self._lock:
            counts = {d: 0 for d in self.online_dirs}
            for existing in self._logs.values():
                parent = existing.directory.parent
                if parent in counts:
                    counts[parent] += 1
        try:
            for key in keys:
                with self._lock:
                    if key in self._logs:
                        continue
                    log_dir = self._new_log_dir(counts)
                    path = log_dir / f"{key[0]}-{key[1]}"
                    existed = path.exists()
                    try:
                        log = self._open_log(path, config, clock=self.clock, verify=self._verify, lazy_dir=True)
                    except BaseException:
                        if not existed:
                            shutil.rmtree(path, ignore_errors=True)
                        raise
                    self._logs[key] = log
                    counts[log_dir] += 1
                    created.append(key)
        except BaseException:
            self.remove_new_logs(created)
            raise
        return created

    def make_dirs(self, keys: list[tuple[str, int]]) -> None:
        """Make the directories of the logs `create_logs` created, on the roll worker (at once
        without one): called once their partitions are committed. A partition written before
        that makes its own at the first write."""
        with self._lock:
            logs = [log for key in keys if (log := self._logs.get(key)) is not None and not log.directory_made]
        if not logs:
            return

        def make() -> None:
            for log in logs:
                try:
                    log.materialize()
                except OSError as exc:
                    dir_failure.report(log.directory.parent, f"creating {log.directory.name}", exc)

        self._schedule_roll(make)

    def remove_new_logs(self, keys: list[tuple[str, int]]) -> None:
        """Undo `create_logs`: close and remove the logs of partitions that were never committed."""
        for key in keys:
            with self._lock:
                log = self._logs.pop(key, None)
            if log is None:
                continue
            with contextlib.suppress(Exception):
                log.close(clean=False)
            try:
                shutil.rmtree(log.directory)
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.error("cannot remove %s: %s", log.directory, exc)

    def update_config(self, topic: str, config: LogConfig) -> None:
        """New config for every partition of ``topic`` (AlterConfigs)."""
        with self._lock:
            for (t, _), log in self._logs.items():
                if t == topic:
                    log.config = config

    def delete(self, topic: str, partition: int, *, sync: bool = True) -> bool:
        """Delete the partition: its directory is renamed now and removed in the background.
        ``sync=False``: the rename is not fsynced (the caller syncs the log dirs once)."""
        with self._lock:
            log = self._logs.pop((topic, partition), None)
        if log is None:
            return False
        target = log.delete(remove=False, sync=sync)
        with self._lock:
            self._pending_removal.append(target)
        if self._thread is None:
            self._remove_deleted_dirs()
        return True

    def partitions(self) -> dict[tuple[str, int], PartitionLog]:
        with self._lock:
            return dict(self._logs)

    def offline_partitions(self) -> dict[tuple[str, int], PartitionLog]:
        return {key: log for key, log in self.partitions().items() if log.offline is not None}

    # -- maintenance ----------------------------------------------------------------------------

    def run_maintenance(self, now: float | None = None, *, retention: bool | None = None) -> None:
        """One round of flushing, retention, compaction and checkpointing (``retention=False``:
        no retention nor compaction; None: ``retention_in_rounds``)."""
        if retention is None:
            retention = self.retention_in_rounds
        with self._maintenance_lock:
            now = self.clock() if now is None else now
            now_ms = int(now * 1000)
            checkpoint = now - self._last_checkpoint >= self.checkpoint_interval_s
            for key, log in self.partitions().items():
                try:
                    log.start_writeback()
                    log.maybe_flush(now_ms)
                    if retention:
                        log.delete_old_segments(now_ms)
                        if log.config.compact:
                            clean_log(log, now_ms)
                            log.delete_old_segments(now_ms)
                    if checkpoint:
                        log.checkpoint()
                except Exception:
                    logger.exception("maintenance of %s-%d failed", *key)
            if checkpoint:
                self._last_checkpoint = now
            BUDGET.trim()
            self._remove_deleted_dirs()
        with self._round_done:
            self._rounds += 1
            self._round_done.notify_all()

    @property
    def maintenance_rounds(self) -> int:
        """How many maintenance rounds have completed (background or `run_maintenance`)."""
        return self._rounds

    def wait_for_maintenance(self, rounds: int, timeout: float | None = None) -> bool:
        """Block until at least ``rounds`` rounds have completed; False on timeout."""
        with self._round_done:
            return self._round_done.wait_for(lambda: self._rounds >= rounds, timeout)

    def _remove_deleted_dirs(self) -> None:
        with self._lock:
            pending, self._pending_removal = self._pending_removal, []
        for path in pending:
            shutil.rmtree(path, ignore_errors=True)

    def _run(self) -> None:
        name_os_thread()
        while not self._stop.wait(self.maintenance_interval_s):
            self.run_maintenance()

    def start(self) -> None:
        if self._roll_worker is None:
            self._roll_worker = ThreadPoolExecutor(1, thread_name_prefix="log-roll", initializer=name_os_thread)
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="log-maintenance", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()
        worker, self._roll_worker = self._roll_worker, None
        if worker is not None:
            worker.shutdown(wait=True)  # (the rolls queued complete first)

    def flush_all(self) -> None:
        for log in self.partitions().values():
            with contextlib.suppress(Exception):
                if log.offline is None:
                    log.flush()

    def close(self) -> None:
        """Stop maintenance and close every log cleanly, on `CLOSE_THREADS` threads: a clean close
        is a handful of fsyncs per log (segment, checkpoint, epoch file, directory), which the
        threads overlap (10,000 partitions closed one after another took minutes)."""
        if self._closed:
            return
        self.stop()

        def close_one(item: tuple[tuple[str, int], PartitionLog]) -> None:
            key, log = item
            try:
                log.close(clean=True)
            except Exception:
                logger.exception("closing %s-%d failed", *key)

        items = list(self.partitions().items())
        if len(items) > 1:
            with ThreadPoolExecutor(min(CLOSE_THREADS, len(items)), thread_name_prefix="log-close",
                                    initializer=name_os_thread) as pool:
                list(pool.map(close_one, items))
        else:
            for item in items:
                close_one(item)
        self._remove_deleted_dirs()
        for log_dir in self.log_dirs:
            dir_failure.unregister(log_dir, self._dir_failed)
        self._closed = True
