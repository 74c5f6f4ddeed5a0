"""The group coordinator's write path: append locally, complete once replicated (Kafka's CoordinatorRuntime).

Kafka's coordinator appends its records to the ``__consumer_offsets`` partition it leads with
acks=1 (``CoordinatorPartitionWriter.append``) and completes the write — the request's answer, or
the ``appendFuture`` a state change waits on — only once the partition's high watermark passes the
records (its deferred event queue), within ``offsets.commit.timeout.ms``. The high watermark does
not advance while the ISR is below ``min.insync.replicas`` (KIP-966), so with too few replicas the
write times out. A failed local append fails at once. Errors reach clients as
``appendGroupMetadataErrorToResponseError`` / ``GroupCoordinatorService.normalizeException`` map
them: too few replicas, a timeout or a missing partition -> COORDINATOR_NOT_AVAILABLE; leadership
gone or a storage error -> NOT_COORDINATOR; a record too large -> UNKNOWN_SERVER_ERROR.

:class:`ReplicatedWrites` runs the waits as tasks on the broker's loop and calls ``done(error)``
exactly once per write, so the sans-IO group state machines (``group_classic``) stay free of asyncio.

A state change whose records cannot be appended leaves no trace (Kafka's runtime replays a write's
records into its timeline structures and reverts them to the batch's base offset when the append
fails): :class:`GroupSnapshot` keeps a group as it was before an operation, and
:class:`DeferredTimer` holds the operation's timer changes until its records are appended. (Records
appended but not replicated in time stay applied, as in Kafka: they are in the log, and a leader
change unloads the partition's groups.)
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, is_dataclass
from typing import TYPE_CHECKING, Any

from kbroker.replication.deadline import Deadline
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.coordinator.group_classic_model import Timer
    from kbroker.coordinator.hosts import WriteHost
    from kbroker.coordinator.timer_keys import TimerKey
    from kbroker.replication.partition import Partition

log = logging.getLogger(__name__)

WriteCallback = Callable[[ErrorCode], None]


def response_error(append_error: ErrorCode) -> ErrorCode:
    """Kafka's ``appendGroupMetadataErrorToResponseError``: the error a client gets for a failed
    coordinator write."""
    if append_error in (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_ENOUGH_REPLICAS,
                        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND, ErrorCode.REQUEST_TIMED_OUT):
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    if append_error in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.KAFKA_STORAGE_ERROR):
        return ErrorCode.NOT_COORDINATOR
    if append_error in (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE, ErrorCode.INVALID_FETCH_SIZE):
        return ErrorCode.UNKNOWN_SERVER_ERROR
    return append_error


class ReplicatedWrites:
    """Waits for coordinator writes to be replicated. ``broker`` gives the replica manager, the
    config (``offsets.commit.timeout.ms``) and optionally a manual ``clock``."""

    def __init__(self, broker: WriteHost) -> None:
        self.broker = broker
        self._tasks: set[asyncio.Task[None]] = set()

    async def wait(self, partition: Partition, required_offset: int) -> ErrorCode:
        """NONE once ``partition``'s high watermark reaches ``required_offset``, else the client
        error (see the module docstring)."""
        code = await self.wait_raw(partition, required_offset)
        return ErrorCode.NONE if code == ErrorCode.NONE else response_error(code)

    async def wait_raw(self, partition: Partition, required_offset: int) -> ErrorCode:
        """:meth:`wait` with the append's own error (REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS,
        NOT_LEADER_OR_FOLLOWER...), for the APIs that map it their own way (OffsetFetch)."""
        deadline = Deadline(self.broker.config["offsets.commit.timeout.ms"], self.broker.clock)
        code: ErrorCode = await self.broker.replica_manager.wait_for_replication(partition, required_offset, deadline)
        return code

    def complete_when_replicated(self, partition: Partition, required_offset: int, done: WriteCallback) -> None:
        """Call ``done`` with the outcome of :meth:`wait`, from a task on the running loop."""

        async def run() -> None:
            try:
                code = await self.wait(partition, required_offset)
            except asyncio.CancelledError:
                code = ErrorCode.NOT_COORDINATOR  # the coordinator is stopping (Kafka: unload fails the writes)
                done(code)
                raise
            except Exception:
                log.exception("waiting for the replication of %s-%d failed", partition.topic, partition.index)
                code = ErrorCode.UNKNOWN_SERVER_ERROR
            done(code)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


@dataclass(slots=True)
class GroupSnapshot:
    """A group as it was before an operation, put back in place by :meth:`restore` (the objects
    stay the same ones, which the timers' callbacks check): the object under its id (None: there
    was none), its fields with their containers copied one level (the members and target maps and
    the like: operations add, remove and replace their entries, never change one in place), and a
    deep copy of the members the operation acts on (``take``'s ``members``), whose fields it does
    change in place. Cheap enough for every heartbeat of a large group (no copy of the others)."""

    group_id: str
    group: object | None
    fields: dict[str, Any] | None
    members: list[tuple[object, dict[str, Any]]]

    @classmethod
    def take(cls, groups: MutableMapping[str, Any], group_id: str, copied: type | tuple[type, ...],
             members: Iterable[str] = ()) -> GroupSnapshot:
        """``copied``: the group classes whose fields are copied (others are put back as they are)."""
        group = groups.get(group_id)
        if not isinstance(group, copied):
            return cls(group_id, group, None, [])
        fields = {k: type(v)(v) if type(v) in _CONTAINERS else v for k, v in vars(group).items()}
        by_id: dict[str, object] = vars(group)["members"]
        acting = [(m, _copied(vars(m))) for m in (by_id.get(mid) for mid in set(members)) if m is not None]
        return cls(group_id, group, fields, acting)

    def restore(self, groups: MutableMapping[str, Any]) -> None:
        if self.group is None:
            groups.pop(self.group_id, None)
            return
        groups[self.group_id] = self.group
        if self.fields is not None:
            _put_back(self.group, self.fields)
        for member, state in self.members:
            _put_back(member, state)


def _put_back(obj: object, state: dict[str, Any]) -> None:
    current = vars(obj)
    current.clear()
    current.update(state)


_CONTAINERS = frozenset({dict, list, set})
_SHARED = frozenset({int, str, bool, float, bytes, type(None), uuid.UUID, frozenset})
_CLONED: dict[type, bool] = {}  # per class: a dataclass with a __dict__ (copied), or shared


def _copied(value: Any) -> Any:
    """A copy of a member's state deep enough to undo an operation, and much cheaper than
    ``copy.deepcopy``: containers (dict, list, set, tuple) and dataclass instances with a
    ``__dict__`` are copied; everything else is shared: numbers, strings, ids and the slotted or
    frozen values (protocol messages), which operations replace rather than change."""
    kind = type(value)
    if kind is dict:
        out = dict(value)
        for k, v in out.items():
            if type(v) not in _SHARED:
                out[k] = _copied(v)
        return out
    if kind is set:
        return set(value)
    if kind is list or kind is tuple:
        return kind(v if type(v) in _SHARED else _copied(v) for v in value)
    cloned = _CLONED.get(kind)
    if cloned is None:
        cloned = _CLONED[kind] = is_dataclass(kind) and "__dict__" in dir(kind)
    if cloned:
        clone = object.__new__(kind)
        clone.__dict__ = _copied(value.__dict__)
        return clone
    return value


class DeferredTimer:
    """A keyed timer's schedule/cancel calls held until :meth:`apply` (the operation's records were
    appended) or dropped (they were not)."""

    def __init__(self, timer: Timer) -> None:
        self.timer = timer
        self.calls: list[tuple[TimerKey, int, Callable[[], None] | None]] = []

    def now_ms(self) -> int:
        now: int = self.timer.now_ms()
        return now

    def schedule(self, key: TimerKey, delay_ms: int, fn: Callable[[], None]) -> None:
        self.calls.append((key, delay_ms, fn))

    def cancel(self, key: TimerKey) -> None:
        self.calls.append((key, 0, None))

    def apply(self) -> None:
        for key, delay_ms, fn in self.calls:
            if fn is None:
                self.timer.cancel(key)
            else:
                self.timer.schedule(key, delay_ms, fn)
        self.calls.clear()
