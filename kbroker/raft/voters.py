"""The voter set of a KRaft quorum and its history in the log (KIP-853), with no IO.

Kafka's ``VoterSet`` and ``KRaftControlRecordStateMachine``: since kraft.version 1 the voters are
not configuration but data. A ``VotersRecord`` control record in the log (or in a snapshot, or in
the bootstrap checkpoint that ``format --standalone/--initial-controllers`` writes) names every
voter with its directory id, endpoints and supported kraft.version range; the set in effect is the
latest one in the log, committed or not (a replica acts on a voter set as soon as it has it), and
a truncation brings the previous one back. ``KRaftVersionRecord`` control records carry the
kraft.version level the same way. A static quorum (``controller.quorum.voters``) is a voter set
without directory ids at kraft.version 0, never written to the log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kbroker.raft.log import ControlRecord, Entry, Snapshot
from kbroker_protocol.messages.data.kraft_version_record import KRaftVersionRecord
from kbroker_protocol.messages.data.voters_record import VotersRecord
from kbroker_protocol.records import ControlType

ZERO_UUID = uuid.UUID(int=0)
# the kraft.version range this node supports (Kafka 4.4: 0-1)
KRAFT_VERSION_MIN, KRAFT_VERSION_MAX = 0, 1


@dataclass(frozen=True, slots=True)
class Voter:
    """One voter: its id, directory id (None in a static quorum), endpoints ``(listener, host,
    port)`` and the kraft.version range it supports (Kafka's ``VoterSet.VoterNode``)."""

    node_id: int
    directory_id: uuid.UUID | None = None
    endpoints: tuple[tuple[str, str, int], ...] = ()
    kraft_min: int = KRAFT_VERSION_MIN
    kraft_max: int = KRAFT_VERSION_MAX

    def matches(self, directory_id: uuid.UUID | None) -> bool:
        """Kafka's ``VoterNode.isVoter(ReplicaKey)``: same id is given; the directory ids must be
        equal when the voter has one."""
        return self.directory_id is None or self.directory_id == directory_id

    def address(self, listener: str | None = None) -> tuple[str, int] | None:
        for name, host, port in self.endpoints:
            if listener is None or name == listener:
                return host, port
        return None


VoterSet = Mapping[int, Voter]


def static_voter_set(ids: Iterable[int]) -> dict[int, Voter]:
    return {v: Voter(v) for v in ids}


def encode_voters(voters: VoterSet) -> ControlRecord:
    """A ``VotersRecord`` control record naming ``voters``."""
    V = VotersRecord.Voter
    record = VotersRecord(version=0, voters=[
        V(voter_id=v.node_id, voter_directory_id=v.directory_id or ZERO_UUID,
          endpoints=[V.Endpoint(name=name, host=host, port=port) for name, host, port in v.endpoints],
          kraft_version_feature=V.KRaftVersionFeature(min_supported_version=v.kraft_min,
                                                      max_supported_version=v.kraft_max))
        for v in sorted(voters.values(), key=lambda v: v.node_id)
    ])
    return ControlRecord(ControlType.KRAFT_VOTERS, bytes(record.encode(0)))


def decode_voters(value: bytes | bytearray | memoryview) -> dict[int, Voter]:
    record = VotersRecord.decode(memoryview(value), 0)
    out: dict[int, Voter] = {}
    for v in record.voters:
        directory = v.voter_directory_id if v.voter_directory_id and v.voter_directory_id != ZERO_UUID else None
        feature = v.kraft_version_feature
        out[v.voter_id] = Voter(v.voter_id, directory, tuple((e.name, e.host, e.port) for e in v.endpoints),
                                feature.min_supported_version if feature else 0,
                                feature.max_supported_version if feature else 0)
    return out


def encode_kraft_version(level: int) -> ControlRecord:
    return ControlRecord(ControlType.KRAFT_VERSION, bytes(KRaftVersionRecord(version=0, kraft_version=level).encode(0)))


def control_of(item: object) -> tuple[dict[int, Voter] | None, int | None]:
    """``(voters, kraft version)`` carried by a log entry or a snapshot item (one of them at most)."""
    value = item.value if isinstance(item, Entry) else item
    if isinstance(value, ControlRecord):
        if value.type == ControlType.KRAFT_VOTERS:
            return decode_voters(value.value), None
        if value.type == ControlType.KRAFT_VERSION:
            return None, KRaftVersionRecord.decode(memoryview(value.value), 0).kraft_version
    return None, None


def snapshot_controls(snapshot: Snapshot) -> tuple[dict[int, Voter] | None, int | None]:
    """The voter set and kraft.version a snapshot holds, when its data is a sequence of entries,
    records or ``ControlRecord``s (the owner of a log whose snapshots are files passes its own
    reader to the node)."""
    voters: dict[int, Voter] | None = None
    level: int | None = None
    if isinstance(snapshot.data, list | tuple):
        for item in snapshot.data:
            v, k = control_of(item)
            voters = v if v is not None else voters
            level = k if k is not None else level
    return voters, level


class ControlHistory:
    """The voter sets and kraft.version levels by log offset (Kafka's
    ``KRaftControlRecordStateMachine`` with its ``LogHistory``): a base (the snapshot's, the
    bootstrap checkpoint's or the static configuration) and one entry per control record in the
    log."""

    __slots__ = ("base_voters", "base_kraft", "_voters", "_kraft")

    def __init__(self, voters: VoterSet, kraft_version: int = 0) -> None:
        self.base_voters: dict[int, Voter] = dict(voters)
        self.base_kraft = kraft_version
        self._voters: list[tuple[int, dict[int, Voter]]] = []
        self._kraft: list[tuple[int, int]] = []

    def reset(self, voters: VoterSet, kraft_version: int) -> None:
        self.base_voters = dict(voters)
        self.base_kraft = kraft_version
        self._voters = []
        self._kraft = []

    def observe(self, offset: int, entry: Entry) -> bool:
        """Take in the entry at ``offset`` (appended to the log); True when the voter set changed."""
        if not entry.control:
            return False
        voters, level = control_of(entry)
        if level is not None:
            self._kraft.append((offset, level))
        if voters is not None:
            self._voters.append((offset, voters))
            return True
        return False

    def truncate(self, offset: int) -> bool:
        """Forget the control records at ``offset`` and beyond; True when the voter set changed."""
        before = len(self._voters)
        self._voters = [(o, v) for o, v in self._voters if o < offset]
        self._kraft = [(o, k) for o, k in self._kraft if o < offset]
        return len(self._voters) != before

    def compact(self, start_offset: int) -> None:
        """The log now starts at ``start_offset`` (a snapshot): fold what is below into the base."""
        while self._voters and self._voters[0][0] < start_offset:
            self.base_voters = self._voters.pop(0)[1]
        while self._kraft and self._kraft[0][0] < start_offset:
            self.base_kraft = self._kraft.pop(0)[1]

    @property
    def voters(self) -> dict[int, Voter]:
        return self._voters[-1][1] if self._voters else self.base_voters

    @property
    def voters_offset(self) -> int:
        """Offset of the latest VotersRecord, -1 when the set is the base one."""
        return self._voters[-1][0] if self._voters else -1

    @property
    def kraft_version(self) -> int:
        return self._kraft[-1][1] if self._kraft else self.base_kraft

    def voters_at(self, end_offset: int) -> dict[int, Voter]:
        """The voter set after the entries ``[0, end_offset)``."""
        found = self.base_voters
        for o, v in self._voters:
            if o >= end_offset:
                break
            found = v
        return found

    def kraft_version_at(self, end_offset: int) -> int:
        found = self.base_kraft
        for o, k in self._kraft:
            if o >= end_offset:
                break
            found = k
        return found
