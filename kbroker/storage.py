"""Formatting a node's directories, as Kafka's ``kafka-storage.sh format`` does, and checking them at start.

``kbroker format --cluster-id ID --config server.properties [--standalone | --initial-controllers
V | --no-initial-controllers] [--ignore-formatted]`` writes in every log directory (``log.dirs``
and ``metadata.log.dir``) that has no ``meta.properties`` yet:

- ``meta.properties`` (``version=1``, ``node.id``, ``cluster.id``, ``directory.id``), written to a
  ``.tmp`` file, fsynced and renamed as Kafka's ``PropertiesUtils.writePropertiesFile`` does;
- ``bootstrap.checkpoint`` (Kafka's ``BootstrapDirectory``): a snapshot-format file of record batches
  (SnapshotHeader, the FeatureLevelRecords of the release, SnapshotFooter) that the first active
  controller writes to the metadata log;
- for a dynamic quorum (``--standalone`` / ``--initial-controllers``), in the metadata directory,
  ``__cluster_metadata-0/00000000000000000000-0000000000.checkpoint``: Kafka's bootstrap snapshot
  holding a KRaftVersionRecord (1) and the VotersRecord of the initial controllers, whose directory
  id becomes this node's ``directory.id``.

``kbroker random-uuid`` prints a new cluster id (Kafka's ``Uuid.randomUuid``: 16 random bytes,
URL-safe base64 without padding, never starting with ``-``).

At start-up a node in KRaft mode (``process.roles`` set) refuses unformatted directories with
Kafka's message (``No readable meta.properties files found.``); the single-node start formats its
directories itself.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kbroker.config import BrokerConfig, parse_properties
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.features import KRAFT_VERSION, METADATA_VERSION, SUPPORTED_FEATURES, bootstrap_levels
from kbroker.raft.files import write_atomically
from kbroker_protocol.messages.data.kraft_version_record import KRaftVersionRecord
from kbroker_protocol.messages.data.snapshot_footer_record import SnapshotFooterRecord
from kbroker_protocol.messages.data.snapshot_header_record import SnapshotHeaderRecord
from kbroker_protocol.messages.data.voters_record import VotersRecord
from kbroker_protocol.record_batch import iter_batch_headers
from kbroker_protocol.records import ControlType, Record, build_batch, iter_records, parse_control_record

META_PROPERTIES = "meta.properties"
BOOTSTRAP_CHECKPOINT = "bootstrap.checkpoint"
METADATA_PARTITION_DIR = "__cluster_metadata-0"
BOOTSTRAP_SNAPSHOT = "00000000000000000000-0000000000.checkpoint"  # Snapshots.BOOTSTRAP_SNAPSHOT_ID (0, 0)
_CONTROL_KEY = struct.Struct(">hh")
# Kafka's reserved directory ids (DirectoryId.UNASSIGNED, LOST, MIGRATING) and Uuid.ZERO/ONE
_RESERVED = {uuid.UUID(int=i) for i in range(100)}


class StorageError(Exception):
    """A refusal of ``format`` or of the start-up checks; the message is Kafka's."""


def random_uuid() -> str:
    """Kafka's ``Uuid.randomUuid().toString()``."""
    while True:
        u = uuid.uuid4()
        if u in _RESERVED:
            continue
        text = uuid_to_str(u)
        if not text.startswith("-"):
            return text


def uuid_to_str(u: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(u.bytes).decode().rstrip("=")


def uuid_from_str(text: str) -> uuid.UUID:
    """Kafka's ``Uuid.fromString``."""
    if len(text) > 24:
        raise ValueError(f"Input string with prefix `{text[:24]}` is too long to be decoded as a base64 UUID")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ValueError(f"Input string `{text}` cannot be converted to a UUID") from None
    if len(raw) != 16:
        raise ValueError(f"Input string `{text}` decoded as {len(raw)} bytes, which is not equal to the "
                         "expected 16 bytes of a base64-encoded UUID")
    return uuid.UUID(bytes=raw)


# -- meta.properties -------------------------------------------------------------------------


def read_meta_properties(directory: Path) -> dict[str, str] | None:
    path = directory / META_PROPERTIES
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"Error: log directory {directory} could not be read: {exc}") from None
    return parse_properties(text, str(path))


def write_meta_properties(directory: Path, props: dict[str, str]) -> None:
    """Kafka's ``PropertiesUtils.writePropertiesFile`` with fsync: a ``.tmp`` file, then a rename."""
    body = "#\n#Written by kbroker\n" + "".join(f"{k}={v}\n" for k, v in sorted(props.items()))
    write_atomically(directory, META_PROPERTIES, body.encode("utf-8"))


def node_directories(config: BrokerConfig) -> list[Path]:
    """The directories a node owns: ``log.dirs`` and ``metadata.log.dir`` (Kafka's order)."""
    dirs = list(config.log_dirs)
    meta = config.metadata_log_dir
    if meta not in dirs:
        dirs.append(meta)
    return dirs


# -- snapshot-format files (bootstrap.checkpoint, the bootstrap snapshot) ----------------------


def _control(kind: ControlType, value: bytes, now: int) -> Record:
    return Record(key=_CONTROL_KEY.pack(0, kind), value=value, timestamp=now)


def snapshot_file_bytes(records: Sequence[object], voters: VotersRecord | None = None,
                        kraft_version: int | None = None) -> bytes:
    """A Kafka snapshot file: a SnapshotHeader control batch, the KRaftVersion and Voters control
    records (when given), the metadata records in one batch, a SnapshotFooter control batch."""
    now = int(time.time() * 1000)
    out = [build_batch([_control(ControlType.SNAPSHOT_HEADER,
                                 bytes(SnapshotHeaderRecord(version=0, last_contained_log_timestamp=0).encode(0)),
                                 now)], control=True, base_offset=0)]
    offset = 1
    if voters is not None:
        assert kraft_version is not None
        out.append(build_batch([
            _control(ControlType.KRAFT_VERSION, bytes(KRaftVersionRecord(version=0, kraft_version=kraft_version)
                                                      .encode(0)), now),
            _control(ControlType.KRAFT_VOTERS, bytes(voters.encode(0)), now),
        ], control=True, base_offset=offset))
        offset += 2
    if records:
        out.append(build_batch([Record(key=None, value=mr.encode_frame(r), timestamp=now) for r in records],
                               base_offset=offset))
        offset += len(records)
    out.append(build_batch([_control(ControlType.SNAPSHOT_FOOTER, bytes(SnapshotFooterRecord(version=0).encode(0)),
                                     now)], control=True, base_offset=offset))
    return b"".join(out)


@dataclass
class SnapshotContent:
    records: list[mr.MetadataRecord]
    voters: VotersRecord | None
    kraft_version: int


def read_snapshot_file(path: Path) -> SnapshotContent:
    data = path.read_bytes()
    records: list[mr.MetadataRecord] = []
    voters = None
    kraft_version = 0
    for pos, header in iter_batch_headers(data, validate=True):
        batch = memoryview(data)[pos: pos + header.size]
        for record in iter_records(batch):
            if header.is_control:
                kind = parse_control_record(record).type
                if record.value is None:
                    continue
                if kind == ControlType.KRAFT_VOTERS:
                    voters = VotersRecord.decode(memoryview(record.value), 0)
                elif kind == ControlType.KRAFT_VERSION:
                    kraft_version = KRaftVersionRecord.decode(memoryview(record.value), 0).kraft_version
            elif record.value is not None:
                records.append(mr.decode_frame(record.value))
    return SnapshotContent(records, voters, kraft_version)


def _write_file(path: Path, data: bytes) -> None:
    write_atomically(path.parent, path.name, data)


def read_bootstrap_records(metadata_dir: Path) -> list[mr.MetadataRecord]:
    """The records of ``bootstrap.checkpoint`` (the FeatureLevelRecords of the formatted release);
    Kafka's default levels when there is none (a directory formatted by an older kbroker)."""
    path = metadata_dir / BOOTSTRAP_CHECKPOINT
    if path.exists():
        return read_snapshot_file(path).records
    return [mr.FeatureLevelRecord(name=name, feature_level=level) for name, level in bootstrap_levels().items()]


def read_initial_voters(metadata_dir: Path) -> dict[int, tuple[str, int]] | None:
    """The voters of the bootstrap snapshot written by ``format --standalone/--initial-controllers``
    (id -> host, port of the first endpoint), or None for a static quorum."""
    path = metadata_dir / METADATA_PARTITION_DIR / BOOTSTRAP_SNAPSHOT
    if not path.exists():
        return None
    content = read_snapshot_file(path)
    if content.voters is None:
        return None
    return {v.voter_id: (v.endpoints[0].host, v.endpoints[0].port) for v in content.voters.voters if v.endpoints}


# -- --initial-controllers ------------------------------------------------------------------


@dataclass(frozen=True)
class DynamicVoter:
    node_id: int
    host: str
    port: int
    directory_id: uuid.UUID


def parse_dynamic_voter(text: str) -> DynamicVoter:
    """Kafka's ``DynamicVoter.parse``: ``id@host:port:directoryId`` (host may be ``[ipv6]``)."""
    text = text.strip()
    at = text.find("@")
    if at < 0:
        raise ValueError("No @ found in dynamic voter string.")
    if at == 0:
        raise ValueError("Invalid @ at beginning of dynamic voter string.")
    try:
        node_id = int(text[:at])
    except ValueError:
        raise ValueError("Failed to parse node id in dynamic voter string.") from None
    if node_id < 0:
        raise ValueError(f"Invalid negative node id {node_id} in dynamic voter string.")
    rest = text[at + 1:]
    if not rest:
        raise ValueError("No hostname found after node id.")
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ValueError("Hostname began with left bracket, but no right bracket was found.")
        host, rest = rest[1:end], rest[end + 1:]
    else:
        colon = rest.find(":")
        if colon < 0:
            raise ValueError("No colon following hostname could be found.")
        host, rest = rest[:colon], rest[colon:]
    if not rest.startswith(":"):
        raise ValueError("Port section must start with a colon.")
    rest = rest[1:]
    colon = rest.find(":")
    if colon < 0:
        raise ValueError("No colon following port could be found.")
    try:
        port = int(rest[:colon])
    except ValueError:
        raise ValueError("Failed to parse port in dynamic voter string.") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"Invalid port {port} in dynamic voter string.")
    try:
        directory_id = uuid_from_str(rest[colon + 1:])
    except ValueError:
        raise ValueError("Failed to parse directory ID in dynamic voter string.") from None
    return DynamicVoter(node_id, host, port, directory_id)


def parse_dynamic_voters(text: str) -> dict[int, DynamicVoter]:
    """Kafka's ``DynamicVoters.parse``: comma-separated voters, each node id once."""
    voters: dict[int, DynamicVoter] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        voter = parse_dynamic_voter(item)
        if voter.node_id in voters:
            raise ValueError(f"Node id {voter.node_id} was specified more than once.")
        voters[voter.node_id] = voter
    if not voters:
        raise ValueError("No voters given.")
    return dict(sorted(voters.items()))


def _voters_record(voters: dict[int, DynamicVoter], listener: str) -> VotersRecord:
    V = VotersRecord.Voter
    lo, hi = SUPPORTED_FEATURES[KRAFT_VERSION]
    return VotersRecord(version=0, voters=[
        V(voter_id=v.node_id, voter_directory_id=v.directory_id,
          endpoints=[V.Endpoint(name=listener, host=v.host, port=v.port)],
          kraft_version_feature=V.KRaftVersionFeature(min_supported_version=lo, max_supported_version=hi))
        for v in voters.values()
    ])


# -- format ---------------------------------------------------------------------------------


def format_storage(config: BrokerConfig, cluster_id: str | None, *, standalone: bool = False,
                   initial_controllers: str | None = None, no_initial_controllers: bool = False,
                   ignore_formatted: bool = False, add_scram: list[str] | None = None, out: TextIO) -> None:
    """``kafka-storage.sh format`` (Kafka's StorageTool.runFormatCommand and Formatter). Raises
    StorageError with Kafka's message. ``add_scram``: ``--add-scram`` arguments, SCRAM
    credentials in the bootstrap metadata (kbroker.security.scram_bootstrap)."""
    if not config.kraft_mode:
        raise StorageError("The kafka configuration file appears to be for a legacy cluster. "
                           "Formatting is only supported for clusters in KRaft mode.")
    if not cluster_id:
        raise StorageError("You must specify the cluster id.")
    names = [n.upper() for n in (config["controller.listener.names"] or [])]
    static_voters = bool(config.quorum_voters)
    if static_voters and (initial_controllers is not None or standalone):
        raise StorageError("You cannot specify controller.quorum.voters and format the node with "
                           "--initial-controllers or --standalone. If you want to use dynamic quorum, please remove "
                           "controller.quorum.voters and specify controller.quorum.bootstrap.servers instead.")
    voters: dict[int, DynamicVoter] | None = None
    if initial_controllers is not None:
        try:
            voters = parse_dynamic_voters(initial_controllers)
        except ValueError as exc:
            raise StorageError(str(exc)) from None
    if standalone:
        if "controller" not in config.process_roles:
            raise StorageError("You can only use --standalone on a controller.")
        advertised = {e.listener: e for e in config.advertised_listeners}
        listeners = [advertised.get(e.listener, e) for e in config.controller_listeners]
        if not listeners:
            raise StorageError("No controller listeners found.")
        host = listeners[0].host or "localhost"
        voters = {config.node_id: DynamicVoter(config.node_id, host, listeners[0].port, uuid_from_str(random_uuid()))}
    if (not no_initial_controllers and "controller" in config.process_roles and not static_voters
            and voters is None):
        raise StorageError("Because controller.quorum.voters is not set on this controller, you must specify one "
                           "of the following: --standalone, --initial-controllers, or --no-initial-controllers.")
    if config.node_id < 0:
        raise StorageError("You must specify a valid non-negative node ID.")
    if not names:
        raise StorageError("You must specify the name of the initial controller listener.")
    dirs = node_directories(config)
    metadata_dir = config.metadata_log_dir
    formatted = []
    for d in dirs:
        props = read_meta_properties(d)
        if props is not None:
            if props.get("cluster.id") and props["cluster.id"] != cluster_id:
                raise StorageError(f"Invalid cluster.id in: {d / META_PROPERTIES}. Expected {cluster_id}, but read "
                                   f"{props['cluster.id']}")
            if props.get("node.id") and props["node.id"] != str(config.node_id):
                raise StorageError(f"Stored node id {props['node.id']} doesn't match previous node id "
                                   f"{config.node_id} in {d / META_PROPERTIES}. If you moved your data, make sure "
                                   "your configured node id matches. If you intend to create a new node, you should "
                                   "remove all data in your data directories.")
            formatted.append(d)
    if formatted and not ignore_formatted:
        raise StorageError(f"Log directory {formatted[0]} is already formatted. Use --ignore-formatted to ignore "
                           "this directory and format the others.")
    empty = [d for d in dirs if d not in formatted]
    if not empty:
        print("All of the log directories are already formatted.", file=out)
        return
    levels = bootstrap_levels()
    records: list[object] = [mr.FeatureLevelRecord(name=name, feature_level=level) for name, level in levels.items()]
    if add_scram:
        from kbroker.security.scram_bootstrap import scram_records

        try:
            records += scram_records(add_scram)
        except ValueError as exc:
            raise StorageError(str(exc)) from None
    # MV_LATEST_PRODUCTION (33) is Kafka 4.4's 4.4-IV2
    release = "4.4-IV2" if levels[METADATA_VERSION] == 33 else f"level {levels[METADATA_VERSION]}"
    for d in empty:
        if d != metadata_dir:
            kind = "data directory"
        elif voters is None:
            kind = "metadata directory"
        elif config.node_id in voters:
            kind = "dynamic metadata voter directory"
        else:
            kind = "dynamic metadata directory"
        directory_id = (voters[config.node_id].directory_id
                        if voters is not None and kind == "dynamic metadata voter directory"
                        else uuid_from_str(random_uuid()))
        print(f"Formatting {kind} {d} with metadata.version {release}.", file=out)
        try:
            d.mkdir(parents=True, exist_ok=True)
            _write_file(d / BOOTSTRAP_CHECKPOINT, snapshot_file_bytes(records))
            if voters is not None and d == metadata_dir:
                part = d / METADATA_PARTITION_DIR
                part.mkdir(exist_ok=True)
                _write_file(part / BOOTSTRAP_SNAPSHOT,
                            snapshot_file_bytes([], _voters_record(voters, names[0]), kraft_version=1))
            write_meta_properties(d, {"version": "1", "node.id": str(config.node_id), "cluster.id": cluster_id,
                                      "directory.id": uuid_to_str(directory_id)})
        except OSError as exc:
            raise StorageError(f"Error while writing meta.properties file {d}: {exc}") from None


def check_formatted(config: BrokerConfig) -> str:
    """Kafka's start-up checks of a KRaft node's directories (KafkaRaftServer.initializeLogDirs);
    returns the cluster id. Raises StorageError with Kafka's message."""
    dirs = node_directories(config)
    found: dict[Path, dict[str, str]] = {}
    for d in dirs:
        props = read_meta_properties(d) if d.is_dir() else None
        if props is not None:
            found[d] = props
    if not found:
        raise StorageError("No readable meta.properties files found.")
    cluster_id: str | None = None
    for d, props in found.items():
        path = d / META_PROPERTIES
        if not props.get("cluster.id"):
            raise StorageError(f"cluster.id was not specified in the v1 file: {path}")
        if cluster_id is None:
            cluster_id = props["cluster.id"]
        elif props["cluster.id"] != cluster_id:
            raise StorageError(f"Invalid cluster.id in: {path}. Expected {cluster_id}, but read {props['cluster.id']}")
        if not props.get("node.id"):
            raise StorageError(f"node.id was not specified in {path}")
        if props["node.id"] != str(config.node_id):
            raise StorageError(f"Stored node id {props['node.id']} doesn't match previous node id {config.node_id} "
                               f"in {path}. If you moved your data, make sure your configured node id matches. If "
                               "you intend to create a new node, you should remove all data in your data directories.")
    for d in dirs:
        if d not in found:
            raise StorageError(f"No `meta.properties` found in {d} (have you run `kafka-storage.sh` to format the "
                               "directory?)")
    assert cluster_id is not None
    return cluster_id
