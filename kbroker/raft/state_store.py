"""The ``quorum-state`` a voter persists: its epoch, the leader it knows and the candidate it voted for.

It must be durable before any answer that depends on it (a granted vote, a candidacy, a new
leadership) so that a restarted node never votes twice in one epoch nor goes back in epochs.
``FileQuorumStateStore`` writes Kafka's ``quorum-state`` JSON (``FileQuorumStateStore`` in Kafka:
``data_version`` 0 of ``QuorumStateData`` at kraft.version 0, 1 at kraft.version 1) to a temporary
file, fsyncs it, renames it over the old one and fsyncs the directory, so a crash leaves either the
old or the new state.
"""

from __future__ import annotations

import abc
import base64
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from kbroker.log import dir_failure
from kbroker.raft.files import write_atomically

NO_ID = -1
_ZERO_UUID = uuid.UUID(int=0)


def _uuid_text(value: uuid.UUID) -> str:
    """Kafka's ``Uuid.toString``: URL-safe base64 of the 16 bytes, without padding."""
    return base64.urlsafe_b64encode(value.bytes).rstrip(b"=").decode()


def _read_voters(path: str, voters: object) -> tuple[int, ...]:
    if voters is None:
        return ()
    if not isinstance(voters, list) or not all(
            isinstance(v, dict) and isinstance(v.get("voterId"), int) and not isinstance(v["voterId"], bool)
            for v in voters):
        raise QuorumStateError(f"{path}: field currentVoters must be a list of {{\"voterId\": int}}, got {voters!r}")
    return tuple(sorted(v["voterId"] for v in voters))


def _read_directory(path: str, text: object) -> uuid.UUID | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise QuorumStateError(f"{path}: field votedDirectoryId must be a string, got {text!r}")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raw = b""
    if len(raw) != 16 or len(text) != 22:
        raise QuorumStateError(f"{path}: field votedDirectoryId is not a Kafka Uuid: {text!r}")
    value = uuid.UUID(bytes=raw)
    return value if value != _ZERO_UUID else None


@dataclass(frozen=True, slots=True)
class ElectionState:
    epoch: int
    leader_id: int = NO_ID
    voted_id: int = NO_ID
    # the voted candidate's directory id (Kafka's votedDirectoryId, KIP-853); None: unknown
    voted_directory_id: uuid.UUID | None = None
    # the file's form, as Kafka's ``KRaftVersion.quorumStateVersion``: at kraft.version 0 data_version
    # 0 with the voter ids (``currentVoters``), at 1 data_version 1 with the votedDirectoryId. Not
    # part of the state's equality.
    kraft_version: int = field(default=1, compare=False)
    voters: tuple[int, ...] = field(default=(), compare=False)


class QuorumStateError(Exception):
    """The stored quorum state cannot be read."""


class QuorumStateStore(abc.ABC):
    @abc.abstractmethod
    def read(self) -> ElectionState | None:
        """The last state written, or None when nothing was ever written."""

    @abc.abstractmethod
    def write(self, state: ElectionState) -> None:
        """Persist ``state`` durably and atomically; returns once it is durable."""


class MemoryQuorumStateStore(QuorumStateStore):
    """A store that survives simulated crashes (it stands for a file written with fsync)."""

    __slots__ = ("state", "writes")

    def __init__(self) -> None:
        self.state: ElectionState | None = None
        self.writes = 0

    def read(self) -> ElectionState | None:
        return self.state

    def write(self, state: ElectionState) -> None:
        self.state = state
        self.writes += 1


class FileQuorumStateStore(QuorumStateStore):
    """Kafka's ``quorum-state`` file in a metadata log directory."""

    FILE_NAME = "quorum-state"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, self.FILE_NAME)

    def read(self) -> ElectionState | None:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise QuorumStateError(f"{self.path}: not valid JSON ({e})") from None
        if not isinstance(doc, dict):
            raise QuorumStateError(f"{self.path}: expected a JSON object, got {type(doc).__name__}")
        version = doc.get("data_version")
        if version not in (0, 1):
            raise QuorumStateError(f"{self.path}: unsupported data_version {version!r} (expected 0 or 1)")
        values = {}
        for key in ("leaderId", "leaderEpoch", "votedId"):
            v = doc.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or not -(2**31) <= v < 2**31:
                raise QuorumStateError(f"{self.path}: field {key} must be a 32-bit integer, got {v!r}")
            values[key] = v
        if values["leaderEpoch"] < 0 and (values["leaderId"] != NO_ID or values["votedId"] != NO_ID):
            raise QuorumStateError(f"{self.path}: negative leaderEpoch {values['leaderEpoch']}")
        voted_directory = _read_directory(self.path, doc.get("votedDirectoryId")) if version == 1 else None
        voters = _read_voters(self.path, doc.get("currentVoters")) if version == 0 else ()
        return ElectionState(
            epoch=max(values["leaderEpoch"], 0), leader_id=values["leaderId"], voted_id=values["votedId"],
            voted_directory_id=voted_directory if values["votedId"] != NO_ID else None,
            kraft_version=version, voters=voters,
        )

    def write(self, state: ElectionState) -> None:
        doc: dict[str, object]
        if state.kraft_version == 0:  # QuorumStateData version 0, as Kafka writes it at kraft.version 0
            doc = {
                "clusterId": "",
                "leaderId": state.leader_id,
                "leaderEpoch": state.epoch,
                "votedId": state.voted_id,
                "appliedOffset": 0,
                "currentVoters": [{"voterId": v} for v in sorted(state.voters)],
                "data_version": 0,
            }
        else:
            doc = {
                "leaderId": state.leader_id,
                "leaderEpoch": state.epoch,
                "votedId": state.voted_id,
                "votedDirectoryId": _uuid_text(state.voted_directory_id or _ZERO_UUID),
                "data_version": 1,
            }
        data = json.dumps(doc, separators=(",", ":")).encode()
        try:
            write_atomically(self.directory, self.FILE_NAME, data)
        except OSError as exc:  # the Raft node cannot go on with a state it could not make durable
            dir_failure.metadata_log_failed(Path(self.directory).parent, "writing the quorum state", exc)
            raise
