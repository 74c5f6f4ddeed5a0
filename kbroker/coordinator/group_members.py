"""The member machinery shared by the modern group kinds: KIP-848 consumer groups
(``group_consumer``), KIP-1071 streams groups (``streams_group``) and KIP-932 share groups
(``share_group``).

Each kind keeps, as Kafka's ``ModernGroup`` does, a *group epoch*, a *target assignment* for an
*assignment epoch*, and members with a *member epoch* (and the previous one), an optional static
instance id, a rack, the client's id and host. What is common lives here (and the assignment
algebra over ``{key: partitions}`` maps, in :mod:`kbroker.coordinator.assignment_sets`):

- :class:`GroupMember` and :class:`MemberGroup`, the typed records the kinds extend;
- :class:`GroupKind`: a kind's ``__consumer_offsets`` record types (key and value classes by
  record type), error and group classes and timer keys; the framing of those records (:func:`record_key`, :func:`record_value`,
  :func:`decode_record`);
- :class:`MemberGroupManager`: session and revocation timers on the coordinator's injected clock
  (keys ``<session prefix><group><sep><member>``), member and group tombstones, the
  TargetAssignmentMetadata record, the replay skeleton shared by the three kinds (group creation and
  deletion, target epoch, member tombstones), member-epoch fencing and static member replacement.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, cast, runtime_checkable

from kbroker.coordinator.coordinator_writes import DeferredTimer, GroupSnapshot
from kbroker.coordinator.group_classic import ClassicGroup
from kbroker.coordinator.hosts import GroupsView
from kbroker.coordinator.share_group_config import effective
from kbroker.coordinator.timer_keys import GroupTimerKey
from kbroker.replication.produce_batch import ProduceError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.primitives import Message

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.coordinator.group_classic import ClassicGroupManager, Timer

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2
TIMER_RETRY_BACKOFF_MS = 500  # Kafka's CoordinatorTimerImpl: a failed timer operation runs again after this

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes | None]
"""A ``__consumer_offsets`` record: framed key and value (None: a tombstone)."""


class GroupHost(Protocol):
    """What the group kinds use of their :class:`~kbroker.coordinator.group_coordinator.GroupCoordinator`
    (named structurally: the coordinator imports the kinds)."""

    @property
    def broker(self) -> GroupsView: ...

    @property
    def timer(self) -> Timer: ...

    @property
    def groups(self) -> dict[str, object]: ...  # every kind's groups by id

    @property
    def classic(self) -> ClassicGroupManager: ...

    @property
    def loaded(self) -> bool: ...

    def append(self, group_id: str, records: list[Record]) -> object: ...

    def note_written(self, snapshot: GroupSnapshot) -> None: ...  # the group before records just appended

_I16 = struct.Struct(">h")

# -- members and groups -----------------------------------------------------------------------------------


class GroupError(Exception):
    """A request error: the code and the message the response carries."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


@dataclass(eq=False)
class GroupMember:
    member_id: str
    member_epoch: int = 0
    previous_member_epoch: int = -1
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""

    def bump_epoch(self, epoch: int) -> None:
        """Move to ``epoch``, remembering the current one (a no-op when already there)."""
        if self.member_epoch != epoch:
            self.previous_member_epoch = self.member_epoch
            self.member_epoch = epoch

    def leave_temporarily(self) -> None:
        """A static member's -2 leave: it keeps its assignment until its session times out."""
        self.previous_member_epoch = self.member_epoch
        self.member_epoch = STATIC_LEAVE_EPOCH


M = TypeVar("M", bound=GroupMember)
T = TypeVar("T")


@dataclass(eq=False)
class MemberGroup(Generic[M, T]):
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, M] = field(default_factory=dict)
    target: dict[str, T] = field(default_factory=dict)
    empty_since_ms: int = -1

    def static_member(self, instance_id: str) -> M | None:
        for m in self.members.values():
            if m.instance_id == instance_id:
                return m
        return None


G = TypeVar("G", bound=MemberGroup[Any, Any])


# -- records ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupKind:
    """A group kind: its record types in ``__consumer_offsets`` (``types``: key and value classes by
    record type), its error and group classes, its timers' kinds (``GroupTimerKey(session_timer,
    group id, member id)``; no revocation timers without ``revoke_timer``) and the group-level record types
    tombstoned, in order, after the members' when a group is deleted."""

    group_metadata: int
    member_metadata: int
    target_metadata: int
    target_member: int
    current_assignment: int
    types: Mapping[int, tuple[type[Message], type[Message]]]
    error: type[GroupError]
    group_class: type
    member_class: type
    session_timer: str
    revoke_timer: str | None = None
    group_tombstones: tuple[int, ...] = ()


@runtime_checkable
class GroupRecordKey(Protocol):
    """The key of each of the kinds' records: its group id."""

    group_id: str


@runtime_checkable
class MemberRecordKey(Protocol):
    """The key of a member-level record of the kinds: its group and member ids."""

    group_id: str
    member_id: str


@runtime_checkable
class EpochValue(Protocol):
    """A group metadata value of the kinds: the group epoch."""

    epoch: int


@runtime_checkable
class TargetMetadataValue(Protocol):
    """A target assignment metadata value of the kinds: the assignment epoch."""

    assignment_epoch: int


def record_key(kind: int, key: Message) -> bytes:
    return _I16.pack(kind) + key.encode(0)


def record_value(value: Message) -> bytes:
    return _I16.pack(0) + value.encode(0)


def decode_record(types: Mapping[int, tuple[type[Message], type[Message]]], kind: int, key: bytes,
                  value: bytes | None) -> tuple[Message, Message | None]:
    key_cls, value_cls = types[kind]
    k = key_cls.decode(memoryview(key)[2:], 0)
    if value is None:
        return k, None
    (version,) = _I16.unpack_from(value)
    return k, value_cls.decode(memoryview(value)[2:], min(version, value_cls.MAX_VERSION))


# -- the manager base -----------------------------------------------------------------------------------------


class MemberGroupManager(Generic[G, M]):
    """What the managers of the three kinds share. A subclass sets ``kind`` and implements the
    ``_new_group``/``_new_member`` factories and the ``_replay_*`` hooks."""

    kind: ClassVar[GroupKind]

    def __init__(self, coordinator: GroupHost) -> None:
        self.coordinator = coordinator
        # the operation under way (_all_or_nothing): its group id, records and post-append actions
        self._operation: tuple[str, list[Record], list[Callable[[], None]]] | None = None
        self.broker: GroupsView = coordinator.broker
        self.timer: Timer = coordinator.timer

    @property
    def _config(self) -> BrokerConfig:
        return self.broker.config

    def _group_int(self, group_id: str, name: str) -> int:
        """Group config ``name`` (an INT key of Kafka's ``GroupConfig``) as ``group_id`` has it now:
        its override (IncrementalAlterConfigs on the GROUP resource, capped to the broker's current
        bounds), else the broker's ``group.<name>``, as Kafka's ``GroupMetadataManager`` reads it
        (``consumerGroupSessionTimeoutMs(groupId)``, ...) each time it is used."""
        value: int = effective(self.broker, group_id, name)
        return value

    # -- timers on the injected clock --------------------------------------------------------------------

    def _session_key(self, group: G, member_id: str) -> GroupTimerKey:
        return GroupTimerKey(self.kind.session_timer, group.group_id, member_id)

    def _revoke_key(self, group: G, member_id: str) -> GroupTimerKey:
        assert self.kind.revoke_timer is not None
        return GroupTimerKey(self.kind.revoke_timer, group.group_id, member_id)

    def _cancel_member_timers(self, group: G, member_id: str) -> None:
        self.timer.cancel(self._session_key(group, member_id))
        if self.kind.revoke_timer is not None:
            self.timer.cancel(self._revoke_key(group, member_id))

    def _schedule_revocation(self, group: G, member: M, timeout_ms: int, fn: Callable[[], None]) -> None:
        self.timer.schedule(self._revoke_key(group, member.member_id), timeout_ms, fn)

    # -- all or nothing -----------------------------------------------------------------------------

    @contextmanager
    def _all_or_nothing(self, group_id: str, members: Iterable[str] = (),
                        instance_id: str | None = None) -> Iterator[None]:
        """An operation on ``group_id`` as Kafka's runtime runs one: its records are appended as one
        batch at its end, and when that append fails (ProduceError), or the operation raises, the
        group is left as it was, its timers included (Kafka reverts its timeline state to the
        failed batch's base offset); the error goes on to the caller. Timer changes and the
        actions given to :meth:`_once_appended` take effect once the records are appended.
        ``members`` (and the static member of ``instance_id``, which a join may replace): the
        members whose fields the operation may change; the others it may only add or remove."""
        groups = self.coordinator.groups
        acting = set(members)
        group = groups.get(group_id)
        if instance_id is not None and isinstance(group, MemberGroup):
            static = group.static_member(instance_id)
            if static is not None:
                acting.add(static.member_id)
        snapshot = GroupSnapshot.take(groups, group_id, MemberGroup, acting)
        timer = self.timer
        deferred = DeferredTimer(timer)
        batch: list[Record] = []
        after: list[Callable[[], None]] = []
        self.timer, self._operation = deferred, (group_id, batch, after)
        try:
            yield
            self._operation = None
            self.coordinator.append(group_id, batch)
            if batch:  # reads show the group as it was until these records are replicated (group_views)
                self.coordinator.note_written(snapshot)
        except BaseException:
            snapshot.restore(groups)
            raise
        finally:
            self.timer, self._operation = timer, None
        deferred.apply()
        for action in after:
            action()

    def _timer_write(self, group_id: str, key: GroupTimerKey, again: Callable[[], None],
                     operation: Callable[[], None], members: Iterable[str] = ()) -> None:
        """A timer's ``operation`` on a group (on ``members``), all or nothing; when its records
        cannot be appended the timer ``key`` fires ``again`` after Kafka's timer retry backoff
        (CoordinatorTimerImpl)."""
        try:
            with self._all_or_nothing(group_id, members):
                operation()
        except ProduceError as exc:
            log.warning("group %s: the write of timer %s failed (%s); retrying in %d ms", group_id, key,
                        exc.code.name, TIMER_RETRY_BACKOFF_MS)
            self.timer.schedule(key, TIMER_RETRY_BACKOFF_MS, again)

    def _append(self, group_id: str, records: list[Record]) -> None:
        """Append ``records`` for ``group_id``: with the batch of the operation under way on it
        (:meth:`_all_or_nothing`), else at once."""
        if self._operation is not None and self._operation[0] == group_id:
            self._operation[1].extend(records)
        else:
            self.coordinator.append(group_id, records)

    def _once_appended(self, group_id: str, action: Callable[[], None]) -> None:
        """Run ``action`` once the records of the operation under way on ``group_id`` are appended
        (at once when there is none): what cannot be undone waits for the append."""
        if self._operation is not None and self._operation[0] == group_id:
            self._operation[2].append(action)
        else:
            action()

    # -- records ----------------------------------------------------------------------------------------

    def _record(self, kind: int, value: Message | None, group_id: str, member_id: str | None = None) -> Record:
        key_cls = self.kind.types[kind][0]
        key = key_cls(group_id=group_id) if member_id is None else key_cls(group_id=group_id, member_id=member_id)  # type: ignore[call-arg]
        return record_key(kind, key), None if value is None else record_value(value)

    def _member_tombstones(self, group: G, member_id: str) -> list[Record]:
        k = self.kind
        return [self._record(kind, None, group.group_id, member_id)
                for kind in (k.current_assignment, k.target_member, k.member_metadata)]

    def tombstones(self, group: G) -> list[Record]:
        """The records deleting the group: its members', then the group-level ones."""
        out: list[Record] = []
        for mid in list(group.members):
            out.extend(self._member_tombstones(group, mid))
        out.extend(self._record(kind, None, group.group_id) for kind in self.kind.group_tombstones)
        return out

    def _group_record(self, group: G) -> Record:
        raise NotImplementedError

    def _next_group_epoch(self, group: G, records: list[Record]) -> None:
        """Bump the group epoch, with the group's metadata record."""
        group.group_epoch += 1
        records.append(self._group_record(group))

    def _target_member_record(self, group: G, member_id: str) -> Record:
        raise NotImplementedError

    def _new_target(self, group: G, member_ids: Iterable[str]) -> list[Record]:
        """The target assignment is now the group epoch's: the records of the members' (given)
        targets and the TargetAssignmentMetadata."""
        group.assignment_epoch = group.group_epoch
        records = [self._target_member_record(group, mid) for mid in member_ids]
        records.append(self._target_metadata_record(group))
        return records

    def _drop_member(self, group: G, member_id: str) -> list[Record]:
        """Remove a member, its target and timers, and bump the group epoch; the member's
        tombstones."""
        records = self._member_tombstones(group, member_id)
        del group.members[member_id]
        group.target.pop(member_id, None)
        self._cancel_member_timers(group, member_id)
        group.group_epoch += 1
        return records

    def _target_metadata_record(self, group: G) -> Record:
        value_cls = self.kind.types[self.kind.target_metadata][1]
        value = value_cls(assignment_epoch=group.assignment_epoch, assignment_timestamp=self.timer.now_ms())  # type: ignore[call-arg]
        return self._record(self.kind.target_metadata, value, group.group_id)

    # -- replay ------------------------------------------------------------------------------------------

    def _new_group(self, group_id: str) -> G:
        """A group met first in the replayed records."""
        group: G = self.kind.group_class(group_id)
        return group

    def _new_member(self, member_id: str) -> M:
        member: M = self.kind.member_class(member_id=member_id)
        return member

    def _replay_group_metadata(self, group: G, value: Message) -> None:
        assert isinstance(value, EpochValue)  # (each kind's group metadata value)
        group.group_epoch = value.epoch

    def _replay_group_record(self, group: G, kind: int, value: Message | None) -> bool:
        """A group-level record type of the kind only (True when ``kind`` was one)."""
        return False

    def _replay_member_metadata(self, member: M, value: Message) -> None:
        raise NotImplementedError

    def _replay_target(self, value: Message) -> object:
        raise NotImplementedError

    def _replay_current(self, member: M, value: Message) -> None:
        raise NotImplementedError

    def replay(self, kind: int, key: bytes, value: bytes | None) -> None:
        """Apply one of the kind's records read back from ``__consumer_offsets``."""
        k, v = decode_record(self.kind.types, kind, key, value)
        assert isinstance(k, GroupRecordKey)  # (every key of the kinds' record types)
        kinds = self.kind
        groups = self.coordinator.groups
        group = groups.get(k.group_id)
        if kind == kinds.group_metadata and v is None:
            if isinstance(group, self.kind.group_class):
                del groups[k.group_id]
            return
        if not isinstance(group, self.kind.group_class):
            if v is None:
                return
            group = groups[k.group_id] = self._new_group(k.group_id)
        assert isinstance(group, MemberGroup)
        g: G = group  # type: ignore[assignment]
        if kind == kinds.group_metadata:
            assert v is not None
            self._replay_group_metadata(g, v)
            return
        if kind == kinds.target_metadata:
            if v is not None:
                assert isinstance(v, TargetMetadataValue)
                g.assignment_epoch = v.assignment_epoch
            return
        if self._replay_group_record(g, kind, v):
            return
        assert isinstance(k, MemberRecordKey)  # (the remaining record types are the members')
        mid = k.member_id
        if v is None:
            if kind == kinds.member_metadata:
                g.members.pop(mid, None)
            elif kind == kinds.target_member:
                g.target.pop(mid, None)
            return
        member = g.members.get(mid)
        if member is None:
            member = g.members[mid] = self._new_member(mid)
        if kind == kinds.member_metadata:
            self._replay_member_metadata(member, v)
        elif kind == kinds.target_member:
            g.target[mid] = self._replay_target(v)
        elif kind == kinds.current_assignment:
            self._replay_current(member, v)

    def _partial(self, group: G, member_id: str) -> bool:
        """A member replay left without its metadata record (dropped at load)."""
        return False

    def _loaded(self, group: G) -> None:
        """The kind's derived state of a replayed group."""

    def _schedule_session(self, group: G, member: M) -> None:
        raise NotImplementedError

    def on_loaded(self, group: G) -> None:
        """After replay: partial members go, the derived state is rebuilt, an empty group is empty
        since now, and every member gets a session timeout to come back (as Kafka schedules)."""
        for mid in list(group.members):
            if self._partial(group, mid):
                del group.members[mid]
        self._loaded(group)
        if not group.members:
            group.empty_since_ms = self.timer.now_ms()
        for m in group.members.values():
            self._schedule_session(group, m)

    # -- requests ------------------------------------------------------------------------------------------

    def _drop_empty_classic(self, group_id: str) -> None:
        """An empty classic group (committed offsets only) gives way to a group of this kind; its
        offsets stay. Its GroupMetadata tombstone is written whether or not a record of it was
        (Kafka's createGroupTombstoneRecords): a JoinGroup that created it wrote one, even if no
        member stayed."""
        from kbroker.coordinator.group_records import encode_group_key

        classic = self.coordinator.groups[group_id]
        assert isinstance(classic, ClassicGroup)
        self._append(group_id, [(encode_group_key(group_id), None)])
        self._once_appended(group_id, lambda: self.coordinator.classic.mark_dead(classic))
        del self.coordinator.groups[group_id]

    def _existing_or_new(self, group_id: str, create: bool, label: str, not_found: str | None = None) -> G:
        """The group ``group_id``, of this kind (else GROUP_ID_NOT_FOUND "Group x is not a <label>
        group."); a missing one is created empty when ``create``, else GROUP_ID_NOT_FOUND with
        ``not_found`` ("Group x not found." by default)."""
        group = self.coordinator.groups.get(group_id)
        if group is None:
            if not create:
                raise self.kind.error(ErrorCode.GROUP_ID_NOT_FOUND, not_found or f"Group {group_id} not found.")
            return self._create_group(group_id)
        if not isinstance(group, self.kind.group_class):
            raise self.kind.error(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a {label} group.")
        return cast(G, group)

    def _create_group(self, group_id: str) -> G:
        group: G = self.kind.group_class(group_id, empty_since_ms=self.timer.now_ms())
        self.coordinator.groups[group_id] = group
        return group

    def _fenced(self, kind: str, epoch: int, member: M, advice: str = "", detail: str = "") -> GroupError:
        """FENCED_MEMBER_EPOCH for a request whose member epoch is not the member's (``detail``
        goes after the smaller-epoch case's coordinator epoch, ``advice`` at the end)."""
        if epoch > member.member_epoch:
            return self.kind.error(ErrorCode.FENCED_MEMBER_EPOCH,
                              f"The {kind} group member has a greater member epoch ({epoch}) than the one known by "
                              f"the group coordinator ({member.member_epoch}).{advice}")
        return self.kind.error(ErrorCode.FENCED_MEMBER_EPOCH,
                          f"The {kind} group member has a smaller member epoch ({epoch}) than the one known by "
                          f"the group coordinator ({member.member_epoch}){detail}.{advice}")

    def _check_epoch(self, kind: str, epoch: int, member: M, owned_ok: Callable[[], bool], advice: str = "",
                     detail: str = "") -> None:
        """Fenced unless ``epoch`` is the member's, or its previous one while it owns nothing it
        should not (``owned_ok``): the answer with the new epoch may have been lost."""
        if epoch > member.member_epoch or (
                epoch < member.member_epoch and (epoch != member.previous_member_epoch or not owned_ok())):
            raise self._fenced(kind, epoch, member, advice, detail)

    def _take_over_static(self, group: G, previous: M, member_id: str, records: list[Record]) -> M:
        """A static member rejoining under a new member id takes over the old id's assignment and
        epoch: the old id's records are tombstoned and its timers cancelled."""
        old = previous.member_id
        records.extend(self._member_tombstones(group, old))
        del group.members[old]
        self._cancel_member_timers(group, old)
        previous.member_id = member_id
        if previous.member_epoch == STATIC_LEAVE_EPOCH:
            previous.member_epoch = previous.previous_member_epoch
        group.members[member_id] = previous
        return previous

    # -- used by the coordinator -------------------------------------------------------------------------

    def is_empty(self, group: G) -> bool:
        return not group.members

    def empty_since(self, group: G) -> int:
        return group.empty_since_ms

    def mark_dead(self, group: G) -> None:
        for mid in list(group.members):
            self._cancel_member_timers(group, mid)
        group.members.clear()

    def validate_fetch(self, group: G, member_id: str | None, member_epoch: int) -> ErrorCode:
        """OffsetFetch with a member epoch: the member's current one."""
        if member_epoch < 0 and member_id is None:
            return ErrorCode.NONE
        member = group.members.get(member_id or "")
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE
