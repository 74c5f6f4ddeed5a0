"""The producer state's housekeeping on the partitions this broker hosts, where Kafka's log layer does it.

- Producer-id expiration: Kafka's ``UnifiedLog`` schedules ``removeExpiredProducers`` for each
  log (the ``PeriodicProducerExpirationCheck`` task, every
  ``producer.id.expiration.check.interval.ms``, cancelled when the log closes), which forgets a
  producer with no open transaction whose last batch is ``producer.id.expiration.ms`` old
  (``ProducerStateManager.removeExpiredProducers``). Here one task of the replica manager does it
  for every hosted partition whose producer state is loaded (a state not loaded yet is rebuilt
  when first used and checked from then on), leader or follower, as Kafka's logs do. It runs on
  the broker's clock: the manual clock when the broker has one (``kbroker.clock=manual``), where
  it fires inside the advance that reaches it.
- Producer snapshots at each roll: Kafka's ``UnifiedLog.roll`` takes one at the new segment's
  base offset (the log end), flushed by its scheduler. Here the log tells the partition's
  listener (:meth:`ProducerHousekeeping.watch_rolls`, installed when the replica manager opens
  the partition) of each roll: a loaded state is encoded then, on the appending thread, and the
  log's roll worker writes it once the sealed segment is durable, so that a restart after a kill
  finds a snapshot no older than the active segment and scans the log from there.
- Producer snapshots when the logs close: Kafka's ``UnifiedLog.close`` (from
  ``LogManager.shutdown``) takes a snapshot at the log end so a restart scans only what comes
  after it. :meth:`ProducerHousekeeping.close` does so for every loaded state (the replica
  manager closes it at shut-down, before the log manager closes the logs); the control plane's
  data-directory snapshot takes them too (:meth:`ProducerHousekeeping.take_snapshots`). The
  snapshot files: kbroker/replication/producer_snapshot.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from kbroker.log.log_state import RollWork
from kbroker.replication.producer_snapshot import roll_snapshot, write_snapshot

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.replication.partition import Partition

log = logging.getLogger(__name__)


class _Cancellable(Protocol):
    def cancel(self) -> None: ...


class HousekeepingClock(Protocol):
    """The manual clock (``kbroker.control.clock.ManualClock``) as the housekeeping uses it."""

    def now_ms(self) -> int: ...

    def call_at(self, due_ms: int, fn: Callable[[], None]) -> _Cancellable: ...


class HousekeepingHost(Protocol):
    """What the housekeeping reads of the broker: its config, the partitions it hosts, and its
    manual clock (None: real time)."""

    config: BrokerConfig
    partitions: dict[tuple[str, int], Partition]

    @property
    def clock(self) -> HousekeepingClock | None: ...


class ProducerHousekeeping:
    """Producer-id expiration every ``producer.id.expiration.check.interval.ms`` (from
    :meth:`start` until :meth:`close`) and the producer snapshots at close."""

    def __init__(self, host: HousekeepingHost) -> None:
        self.host = host
        self._timer: _Cancellable | None = None
        self._closed = False

    def now_ms(self) -> int:
        clock = self.host.clock
        return clock.now_ms() if clock is not None else int(time.time() * 1000)

    # -- the periodic check --------------------------------------------------------------------

    def start(self) -> None:
        """Schedule the expiration check (first one interval from now), on the running loop or
        the broker's manual clock."""
        if self._timer is None and not self._closed:
            self._schedule()

    def _schedule(self) -> None:
        interval_ms: int = max(1, self.host.config["producer.id.expiration.check.interval.ms"])
        clock = self.host.clock
        if clock is not None:
            self._timer = clock.call_at(clock.now_ms() + interval_ms, self._tick)
        else:
            self._timer = asyncio.get_running_loop().call_later(interval_ms / 1000, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self._closed:
            return
        try:
            self.remove_expired_producers()
        except Exception:  # noqa: BLE001 - a failed check must not stop the next ones
            log.exception("producer-id expiration check failed")
        self._schedule()  # (the interval read again: it may have changed)

    def remove_expired_producers(self, now_ms: int | None = None) -> int:
        """Forget, in every hosted partition whose producer state is loaded, the producers with no
        open transaction idle for ``producer.id.expiration.ms`` at ``now_ms`` (default: the
        broker's clock); the number forgotten."""
        now = self.now_ms() if now_ms is None else now_ms
        expiration: int = self.host.config["producer.id.expiration.ms"]
        count = 0
        for partition in list(self.host.partitions.values()):
            state = partition.producer_state
            if state is None:
                continue
            expired = state.expire_producers(now, expiration)
            if expired:
                log.debug("%s-%d: producer ids %s expired", partition.topic, partition.index, expired)
                count += len(expired)
        return count

    # -- snapshots -----------------------------------------------------------------------------

    @staticmethod
    def watch_rolls(partition: Partition) -> None:
        """Snapshot the partition's producer state at each roll of its log (see the module)."""
        def at_roll(base_offset: int) -> RollWork | None:
            plog = partition.log
            state = partition.producer_state
            # (a state not loaded has nothing to save; one behind the log end is not this offset's)
            if state is None or plog.log_end_offset != base_offset:
                return None
            return roll_snapshot(state, plog)

        partition.log.roll_listener = at_roll

    def take_snapshots(self) -> int:
        """Snapshot the producer state of every hosted partition whose state is loaded, at its log
        end (on the thread that appends); the number written or already there."""
        count = 0
        for partition in list(self.host.partitions.values()):
            state = partition.producer_state
            if state is None or getattr(partition.log, "offline", None) is not None:
                continue  # (an offline log: its dir failed, nothing can be written there)
            try:
                if write_snapshot(state, partition.log) is not None:
                    count += 1
            except Exception as exc:  # noqa: BLE001 - a snapshot only bounds a restart's scan
                log.warning("cannot snapshot producer state of %s-%d: %s", partition.topic, partition.index, exc)
        return count

    def close(self) -> None:
        """Stop the expiration check and snapshot every loaded producer state (Kafka's
        ``UnifiedLog.close``). Once only: a second close does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.take_snapshots()
