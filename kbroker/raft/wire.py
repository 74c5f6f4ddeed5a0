"""Conversion between the core's messages and Kafka's wire messages (the generated codec classes).

The IO layer (a later step) frames what ``to_wire`` returns and feeds ``from_wire`` what it decodes;
``src``, ``dst`` and ``request_id`` are not in the bodies (they come from the connection and the
correlation id), so ``from_wire`` takes them as arguments. Every message names the single partition
``__cluster_metadata-0`` (Kafka's KRaft topic, id ``Uuid.METADATA_TOPIC_ID``).

Fetch records travel as magic-2 record batches, one per run of entries of one epoch and kind, with
``partitionLeaderEpoch`` = the entries' epoch: data records carry the entry value (bytes) as the
record value; the control record a leader writes first in its epoch is a ``LeaderChangeMessage``
(key: version 0, type LEADER_CHANGE = 2).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from kbroker.metadata.image import METADATA_TOPIC
from kbroker.raft import messages as m
from kbroker.raft.log import ControlRecord, Entry, LeaderChange
from kbroker_protocol.messages import begin_quorum_epoch as bqe
from kbroker_protocol.messages import end_quorum_epoch as eqe
from kbroker_protocol.messages import fetch as fe
from kbroker_protocol.messages import fetch_snapshot as fs
from kbroker_protocol.messages import vote as vo
from kbroker_protocol.messages.data.leader_change_message import LeaderChangeMessage
from kbroker_protocol.primitives import Message as WireMessage
from kbroker_protocol.primitives import received_records
from kbroker_protocol.record_batch import iter_batch_headers
from kbroker_protocol.records import ControlType, Record, build_batch, decode_batch

METADATA_TOPIC_ID = uuid.UUID(int=1)  # Kafka's Uuid.METADATA_TOPIC_ID (0, 1)
METADATA_PARTITION = 0
_ZERO_UUID = uuid.UUID(int=0)
_CONTROL_KEY = struct.Struct(">hh")
_NO_HIGH_WATERMARK = 2**63 - 1  # FetchPartition.HighWatermark's default (Long.MAX_VALUE): unknown


class WireError(ValueError):
    """A KRaft message that is not for the single ``__cluster_metadata-0`` partition, or whose
    records cannot be read (Kafka answers such requests with INVALID_REQUEST)."""


# The responses that carry only an error and the leader and epoch the responder knows (Vote adds
# its grant): the wire class, the core class, and what a WireError calls it.
_EPOCH_ANSWERS = (
    (vo.VoteResponse, m.VoteResponse, "Vote response"),
    (bqe.BeginQuorumEpochResponse, m.BeginQuorumEpochResponse, "BeginQuorumEpoch response"),
    (eqe.EndQuorumEpochResponse, m.EndQuorumEpochResponse, "EndQuorumEpoch response"),
)
_WIRE_ANSWER: dict[type, tuple[Any, str]] = {core: (wire, what) for wire, core, what in _EPOCH_ANSWERS}
_CORE_ANSWER: dict[type, tuple[Callable[..., m.Message], str]] = {
    wire: (core, what) for wire, core, what in _EPOCH_ANSWERS
}


# ------------------------------------------------------------------ records


def leader_change_message(value: int, voters: Iterable[int] = ()) -> LeaderChangeMessage:
    """The ``LeaderChangeMessage`` (version 0, Kafka's LEADER_CHANGE_CURRENT_VERSION) of a control
    entry's value: a ``LeaderChange`` names its epoch's voters and the granting voters; a bare
    leader id takes ``voters`` and no granting voters."""
    V = LeaderChangeMessage.Voter
    if isinstance(value, LeaderChange):
        voters, granting = value.voters, value.granting
    else:
        granting = ()
    return LeaderChangeMessage(version=0, leader_id=int(value), voters=[V(voter_id=v) for v in sorted(voters)],
                               granting_voters=[V(voter_id=v) for v in granting])


def leader_change_value(lcm: LeaderChangeMessage) -> LeaderChange:
    return LeaderChange(lcm.leader_id, [v.voter_id for v in lcm.voters], [v.voter_id for v in lcm.granting_voters])


def encode_entries(base_offset: int, entries: Sequence[Entry], voters: Iterable[int] = ()) -> bytes:
    """Record batches for ``entries`` starting at ``base_offset``."""
    voters = tuple(voters)
    out = bytearray()
    i = 0
    while i < len(entries):
        first = entries[i]
        j = i
        while j < len(entries) and entries[j].epoch == first.epoch and entries[j].control == first.control:
            j += 1
            if entries[j - 1].batch_end:
                break  # one batch per proposal, as Kafka's leader writes and serves them
        records = []
        for e in entries[i:j]:
            if e.control and isinstance(e.value, ControlRecord):
                records.append(Record(key=_CONTROL_KEY.pack(e.value.key_version, e.value.type),
                                      value=bytes(e.value.value)))
            elif e.control:
                msg = leader_change_message(e.value, voters)
                records.append(Record(key=_CONTROL_KEY.pack(0, ControlType.LEADER_CHANGE), value=msg.encode(0)))
            else:
                if not isinstance(e.value, bytes | bytearray):
                    raise TypeError(f"a record value must be bytes, not {type(e.value).__name__}")
                records.append(Record(value=bytes(e.value)))
        out += build_batch(
            records, base_offset=base_offset + i, control=first.control, partition_leader_epoch=first.epoch
        )
        i = j
    return bytes(out)


def decode_entries(data: bytes | bytearray | memoryview | None, base_offset: int) -> tuple[Entry, ...]:
    """The entries of the record batches in ``data``, which must start at ``base_offset`` and be
    contiguous."""
    if not data:
        return ()
    entries: list[Entry] = []
    expected = base_offset
    try:
        for pos, header in iter_batch_headers(data):
            if header.base_offset != expected:
                raise WireError(f"record batch at offset {header.base_offset}, expected {expected}")
            batch = decode_batch(data, pos)
            epoch = header.partition_leader_epoch
            batch_first = len(entries)
            for rec in batch.records:
                if rec.offset != expected:
                    raise WireError(f"record at offset {rec.offset}, expected {expected}")
                expected += 1
                if batch.header.is_control:
                    if rec.key is None or len(rec.key) < 4:
                        raise WireError("control record without a key")
                    key_version, ctype = _CONTROL_KEY.unpack_from(rec.key)
                    if ctype in (ControlType.KRAFT_VERSION, ControlType.KRAFT_VOTERS):
                        entries.append(Entry(epoch, ControlRecord(ctype, bytes(rec.value or b""), key_version),
                                             control=True))
                        continue
                    if ctype != ControlType.LEADER_CHANGE:
                        raise WireError(f"control record type {ctype} is not supported yet")
                    lcm = LeaderChangeMessage.decode(rec.value or b"", 0)
                    entries.append(Entry(epoch, leader_change_value(lcm), control=True))
                else:
                    entries.append(Entry(epoch, rec.value))
            # a batch is one proposal (or several whole ones): only its last entry ends one
            for k in range(batch_first, len(entries) - 1):
                e = entries[k]
                entries[k] = Entry(e.epoch, e.value, e.control, batch_end=False)
    except WireError:
        raise
    except ValueError as e:  # InvalidRecordBatch and the codec's errors
        raise WireError(f"unreadable records: {e}") from None
    return tuple(entries)


# ------------------------------------------------------------------ to the wire


def _single_partition(wire_class: Any, part: Any, **fields: Any) -> WireMessage:
    """A Vote, BeginQuorumEpoch or EndQuorumEpoch request or response (``wire_class``) naming the one
    partition ``part`` of ``__cluster_metadata``, with its top-level ``fields``."""
    topic = wire_class.TopicData(topic_name=METADATA_TOPIC, partitions=[part])
    message: WireMessage = wire_class(topics=[topic], **fields)
    return message


def to_wire(msg: m.Message, cluster_id: str | None = None, voters: Iterable[int] = ()) -> WireMessage:
    """The generated request or response object for ``msg``."""
    t = METADATA_TOPIC
    answer = _WIRE_ANSWER.get(type(msg))
    if answer is not None:
        assert isinstance(msg, m.VoteResponse | m.BeginQuorumEpochResponse | m.EndQuorumEpochResponse)
        W = answer[0]
        extra = {"vote_granted": msg.vote_granted} if isinstance(msg, m.VoteResponse) else {}
        part = W.TopicData.PartitionData(partition_index=METADATA_PARTITION, error_code=msg.error,
                                         leader_id=msg.leader_id, leader_epoch=msg.leader_epoch, **extra)
        return _single_partition(W, part)
    if isinstance(msg, m.VoteRequest):
        VP = vo.VoteRequest.TopicData.PartitionData
        part = VP(
            partition_index=METADATA_PARTITION,
            replica_epoch=msg.replica_epoch,
            replica_id=msg.src,
            last_offset_epoch=msg.last_offset_epoch,
            last_offset=msg.last_offset,
            pre_vote=msg.pre_vote,
            replica_directory_id=msg.replica_directory_id or _ZERO_UUID,
            voter_directory_id=msg.voter_directory_id or _ZERO_UUID,
        )
        return _single_partition(vo.VoteRequest, part, cluster_id=cluster_id, voter_id=msg.dst)
    if isinstance(msg, m.BeginQuorumEpochRequest):
        BP = bqe.BeginQuorumEpochRequest.TopicData.PartitionData
        part = BP(partition_index=METADATA_PARTITION, leader_id=msg.leader_id, leader_epoch=msg.leader_epoch,
                  voter_directory_id=msg.voter_directory_id or _ZERO_UUID)
        return _single_partition(bqe.BeginQuorumEpochRequest, part, cluster_id=cluster_id, voter_id=msg.dst)
    if isinstance(msg, m.EndQuorumEpochRequest):
        EP = eqe.EndQuorumEpochRequest.TopicData.PartitionData
        part = EP(
            partition_index=METADATA_PARTITION,
            leader_id=msg.leader_id,
            leader_epoch=msg.leader_epoch,
            preferred_successors=list(msg.preferred_successors),
            preferred_candidates=[
                EP.ReplicaInfo(candidate_id=c, candidate_directory_id=d or _ZERO_UUID)
                for c, d in zip(msg.preferred_successors,
                                msg.successor_directory_ids or (None,) * len(msg.preferred_successors), strict=True)
            ],
        )
        return _single_partition(eqe.EndQuorumEpochRequest, part, cluster_id=cluster_id)
    if isinstance(msg, m.FetchRequest):
        part = fe.FetchRequest.FetchTopic.FetchPartition(
            partition=METADATA_PARTITION,
            current_leader_epoch=msg.current_leader_epoch,
            fetch_offset=msg.fetch_offset,
            last_fetched_epoch=msg.last_fetched_epoch,
            log_start_offset=0,
            partition_max_bytes=8 * 1024 * 1024,
            high_watermark=msg.high_watermark if msg.high_watermark >= 0 else _NO_HIGH_WATERMARK,
            replica_directory_id=msg.replica_directory_id or _ZERO_UUID,
        )
        return fe.FetchRequest(
            cluster_id=cluster_id,
            replica_id=msg.src,
            max_wait_ms=msg.max_wait_ms,
            replica_state=fe.FetchRequest.ReplicaState(replica_id=msg.src, replica_epoch=-1),
            topics=[fe.FetchRequest.FetchTopic(topic=t, topic_id=METADATA_TOPIC_ID, partitions=[part])],
        )
    if isinstance(msg, m.FetchResponse):
        FP = fe.FetchResponse.FetchableTopicResponse.PartitionData
        part = FP(
            partition_index=METADATA_PARTITION,
            error_code=msg.error,
            high_watermark=msg.high_watermark,
            log_start_offset=0,
            diverging_epoch=FP.EpochEndOffset(epoch=msg.diverging_epoch, end_offset=msg.diverging_end_offset),
            current_leader=FP.LeaderIdAndEpoch(leader_id=msg.leader_id, leader_epoch=msg.leader_epoch),
            snapshot_id=FP.SnapshotId(end_offset=msg.snapshot_end_offset, epoch=msg.snapshot_epoch),
            records=encode_entries(msg.base_offset, msg.records, voters) if msg.records else None,
        )
        return fe.FetchResponse(
            responses=[
                fe.FetchResponse.FetchableTopicResponse(topic=t, topic_id=METADATA_TOPIC_ID, partitions=[part])
            ]
        )
    if isinstance(msg, m.FetchSnapshotRequest):
        SQ = fs.FetchSnapshotRequest.TopicSnapshot.PartitionSnapshot
        part = SQ(
            partition=METADATA_PARTITION,
            current_leader_epoch=msg.current_leader_epoch,
            snapshot_id=SQ.SnapshotId(end_offset=msg.snapshot_end_offset, epoch=msg.snapshot_epoch),
            position=msg.position,
        )
        return fs.FetchSnapshotRequest(
            cluster_id=cluster_id,
            replica_id=msg.src,
            topics=[fs.FetchSnapshotRequest.TopicSnapshot(name=t, partitions=[part])],
        )
    if isinstance(msg, m.FetchSnapshotResponse):
        SR = fs.FetchSnapshotResponse.TopicSnapshot.PartitionSnapshot
        data = msg.data
        if data is not None and not isinstance(data, bytes | bytearray):
            raise TypeError(f"snapshot data must be bytes, not {type(data).__name__}")
        part = SR(
            index=METADATA_PARTITION,
            error_code=msg.error,
            snapshot_id=SR.SnapshotId(end_offset=msg.snapshot_end_offset, epoch=msg.snapshot_epoch),
            current_leader=SR.LeaderIdAndEpoch(leader_id=msg.leader_id, leader_epoch=msg.leader_epoch),
            size=len(data) if data is not None else 0,
            position=0,
            unaligned_records=bytes(data) if data is not None else b"",  # not nullable
        )
        return fs.FetchSnapshotResponse(topics=[fs.FetchSnapshotResponse.TopicSnapshot(name=t, partitions=[part])])
    raise TypeError(f"not a raft message: {type(msg).__name__}")


# ------------------------------------------------------------------ from the wire


_P_co = TypeVar("_P_co", covariant=True)


class _Topic(Protocol[_P_co]):
    """A generated message's topic entry: its partitions."""

    @property
    def partitions(self) -> Sequence[_P_co]: ...


def _single(
    topics: Sequence[_Topic[_P_co]], name_of: Callable[[Any], tuple[str | None, uuid.UUID | None]], what: str
) -> _P_co:
    if len(topics) != 1:
        raise WireError(f"{what} must name exactly one topic, not {len(topics)}")
    topic = topics[0]
    name, topic_id = name_of(topic)
    if name != METADATA_TOPIC and topic_id != METADATA_TOPIC_ID:
        raise WireError(f"{what} is for topic {name or topic_id}, not {METADATA_TOPIC}")
    parts = topic.partitions
    if len(parts) != 1 or any(
        getattr(parts[0], field, METADATA_PARTITION) != METADATA_PARTITION
        for field in ("partition_index", "partition", "index")
    ):
        raise WireError(f"{what} must name exactly partition {METADATA_PARTITION}")
    return parts[0]


def _responder(obj: object, src: int | None) -> int:
    if src is None:
        raise ValueError(f"a {type(obj).__name__} needs the id of the node that answered")
    return src


def _directory(value: uuid.UUID | None) -> uuid.UUID | None:
    """A directory id field: the zero UUID (Kafka's ReplicaKey.NO_DIRECTORY_ID) is none."""
    return value if value and value != _ZERO_UUID else None


def _named(topic: Any) -> tuple[str | None, uuid.UUID | None]:
    return topic.topic_name, None


def from_wire(
    obj: object, src: int | None, dst: int, request_id: int, fetch_base_offset: int | None = None
) -> m.Message:
    """The core message for a decoded wire object received by ``dst``.

    For a request the sender is read from the body, as Kafka does (an inbound connection does not
    say which node it comes from): Vote's ReplicaId, BeginQuorumEpoch's and EndQuorumEpoch's
    LeaderId, Fetch's ReplicaState.ReplicaId (ReplicaId before v15), FetchSnapshot's ReplicaId;
    ``src`` is only used for a response (the node the request went to). A Fetch response needs the
    fetch offset of the request it answers (``fetch_base_offset``): records start there."""
    answer = _CORE_ANSWER.get(type(obj))
    if answer is not None:
        assert isinstance(obj, (vo.VoteResponse, bqe.BeginQuorumEpochResponse, eqe.EndQuorumEpochResponse))
        src = _responder(obj, src)
        if isinstance(obj, vo.VoteResponse):
            vote = _single(obj.topics, _named, answer[1])
            return m.VoteResponse(src, dst, request_id, obj.error_code or vote.error_code, vote.leader_id,
                                  vote.leader_epoch, bool(vote.vote_granted))
        epoch: bqe.BeginQuorumEpochResponse.TopicData.PartitionData | eqe.EndQuorumEpochResponse.TopicData.PartitionData
        if isinstance(obj, bqe.BeginQuorumEpochResponse):
            epoch = _single(obj.topics, _named, answer[1])
        else:
            epoch = _single(obj.topics, _named, answer[1])
        return answer[0](src, dst, request_id, obj.error_code or epoch.error_code, epoch.leader_id, epoch.leader_epoch)
    if isinstance(obj, vo.VoteRequest):
        ballot = _single(obj.topics, _named, "Vote request")
        # the replica the sender meant (VoterId, v1+): the core refuses it with INVALID_VOTER_KEY
        # when it is not this node
        dst = obj.voter_id if obj.voter_id >= 0 else dst
        return m.VoteRequest(
            ballot.replica_id, dst, request_id, ballot.replica_epoch, ballot.last_offset_epoch, ballot.last_offset, bool(ballot.pre_vote),
            _directory(ballot.replica_directory_id), _directory(ballot.voter_directory_id),
        )
    if isinstance(obj, bqe.BeginQuorumEpochRequest):
        begin = _single(obj.topics, _named, "BeginQuorumEpoch request")
        dst = obj.voter_id if obj.voter_id >= 0 else dst
        return m.BeginQuorumEpochRequest(begin.leader_id, dst, request_id, begin.leader_id, begin.leader_epoch,
                                         _directory(begin.voter_directory_id))
    if isinstance(obj, eqe.EndQuorumEpochRequest):
        end = _single(obj.topics, _named, "EndQuorumEpoch request")
        if end.preferred_candidates:
            successors = tuple(c.candidate_id for c in end.preferred_candidates)
            directories = tuple(_directory(c.candidate_directory_id) for c in end.preferred_candidates)
        else:
            successors, directories = tuple(end.preferred_successors), ()
        if not any(d is not None for d in directories):
            directories = ()
        return m.EndQuorumEpochRequest(end.leader_id, dst, request_id, end.leader_id, end.leader_epoch, successors,
                                       directories)
    if isinstance(obj, fe.FetchRequest):
        fetch = _single(obj.topics, lambda t: (t.topic, t.topic_id), "Fetch request")
        replica = obj.replica_state.replica_id if obj.replica_state.replica_id >= 0 else obj.replica_id
        hw = fetch.high_watermark if fetch.high_watermark != _NO_HIGH_WATERMARK else -1
        return m.FetchRequest(
            replica,
            dst,
            request_id,
            fetch.current_leader_epoch,
            fetch.fetch_offset,
            fetch.last_fetched_epoch,
            max(obj.max_wait_ms, 0),
            hw,
            fetch.replica_directory_id if fetch.replica_directory_id and fetch.replica_directory_id != _ZERO_UUID else None,
        )
    if isinstance(obj, fe.FetchResponse):
        src = _responder(obj, src)
        fetched = _single(obj.responses, lambda t: (t.topic, t.topic_id), "Fetch response")
        if fetch_base_offset is None:
            raise ValueError("a Fetch response needs the fetch offset of its request")
        err = obj.error_code or fetched.error_code
        records = decode_entries(received_records(fetched.records), fetch_base_offset) if err == 0 else ()
        return m.FetchResponse(
            src,
            dst,
            request_id,
            err,
            fetched.current_leader.leader_id,
            fetched.current_leader.leader_epoch,
            fetched.high_watermark,
            fetch_base_offset,
            records,
            fetched.diverging_epoch.epoch,
            fetched.diverging_epoch.end_offset,
            fetched.snapshot_id.end_offset,
            fetched.snapshot_id.epoch,
        )
    if isinstance(obj, fs.FetchSnapshotRequest):
        wanted = _single(obj.topics, lambda t: (t.name, None), "FetchSnapshot request")
        return m.FetchSnapshotRequest(
            obj.replica_id,
            dst,
            request_id,
            wanted.current_leader_epoch,
            wanted.snapshot_id.end_offset,
            wanted.snapshot_id.epoch,
            wanted.position,
        )
    if isinstance(obj, fs.FetchSnapshotResponse):
        src = _responder(obj, src)
        chunk = _single(obj.topics, lambda t: (t.name, None), "FetchSnapshot response")
        err = obj.error_code or chunk.error_code
        data: bytes | None = None
        if err == 0:
            data = bytes(received_records(chunk.unaligned_records) or b"")
            if chunk.position != 0 or len(data) != chunk.size:
                raise WireError(
                    f"snapshot chunk at position {chunk.position} of {len(data)} bytes out of {chunk.size}: "
                    "the core takes a snapshot in one piece (reassembly is the IO layer's)"
                )
        return m.FetchSnapshotResponse(
            src,
            dst,
            request_id,
            err,
            chunk.current_leader.leader_id,
            chunk.current_leader.leader_epoch,
            chunk.snapshot_id.end_offset,
            chunk.snapshot_id.epoch,
            data,
        )
    raise TypeError(f"not a KRaft wire message: {type(obj).__name__}")
