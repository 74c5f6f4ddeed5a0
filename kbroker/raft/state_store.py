"""The ``quorum-state`` a voter persists: its epoch, the leader it knows and the candidate it voted for.

It must be durable before any answer that depends on it (a granted vote, a candidacy, a new
leadership) so that a restarted node never votes twice in one epoch nor goes back in epochs.
``FileQuorumStateStore`` writes Kafka's ``quorum-state`` JSON (``FileQuorumStateStore`` in Kafka,
``data_version`` 1 of ``QuorumStateData``) to a temporary file, fsyncs it, renames it over the old
one and fsyncs the directory, so a crash leaves either the old or the new state.
"""

from __future__ import annotations

import abc
import base64
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from kbroker.log import dir_failure
from kbroker.raft.files import write_atomically

NO_ID = -1
_ZERO_DIR = base64.urlsafe_b64encode(uuid.UUID(int=0).bytes).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class ElectionState:
    epoch: int
    leader_id: int = NO_ID
    voted_id: int = NO_ID


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
        return ElectionState(
            epoch=max(values["leaderEpoch"], 0), leader_id=values["leaderId"], voted_id=values["votedId"]
        )

    def write(self, state: ElectionState) -> None:
        doc = {
            "leaderId": state.leader_id,
            "leaderEpoch": state.epoch,
            "votedId": state.voted_id,
            "votedDirectoryId": _ZERO_DIR,
            "data_version": 1,
        }
        data = json.dumps(doc, separators=(",", ":")).encode()
        try:
            write_atomically(self.directory, self.FILE_NAME, data)
        except OSError as exc:  # the Raft node cannot go on with a state it could not make durable
            dir_failure.metadata_log_failed(Path(self.directory).parent, "writing the quorum state", exc)
            raise
